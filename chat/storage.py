"""Where attachment bytes live. The one module that knows django-storages and boto3.

Two implementations behind the same functions, chosen by `STORAGE_BACKEND`:

- `local` (the embedded default): files under `ATTACHMENTS_ROOT`. The browser uploads to our own
  upload URL with a signed token in the form, and our download view streams the file.
- `s3`: a private bucket. The browser uploads straight to it with a presigned POST whose policy
  fixes the key, the content type and the exact size; downloads redirect to a presigned GET that
  lives `ATTACHMENT_DOWNLOAD_EXPIRY` seconds and forces the content type and disposition.

Every S3 failure that is not "no such object" becomes `StorageUnavailable`, so callers show a
clear error and the rest of the chat keeps working.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import IO, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, Storage
from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage

from hobbies import metrics
from hobbies.errors import StorageUnavailable

UPLOAD_TOKEN_SALT = "chat.attachment-upload"  # noqa: S105 - a salt, not a secret
SNIFF_BYTES = 8192
# Served files can never run script or load anything, even if a browser renders them.
DOWNLOAD_CSP = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"
)


@dataclass(frozen=True)
class UploadTarget:
    """Where and how the browser sends the file: a multipart POST of `fields`, then `file`."""

    url: str
    fields: dict[str, str] = field(default_factory=dict)


def is_s3() -> bool:
    return bool(settings.STORAGE_BACKEND == "s3")


def new_key(kind: str = "f") -> str:
    """A random storage key; never derived from anything the user sent."""
    return f"attachments/{kind}/{secrets.token_hex(16)}"


# --- The django-storages instance -------------------------------------------------------------


def _config() -> tuple[Any, ...]:
    return (
        settings.STORAGE_BACKEND,
        str(settings.ATTACHMENTS_ROOT),
        settings.AWS_STORAGE_BUCKET_NAME,
        settings.AWS_S3_REGION_NAME,
        settings.AWS_S3_ENDPOINT_URL,
        settings.AWS_S3_ADDRESSING_STYLE,
        settings.AWS_S3_TIMEOUT,
        settings.ATTACHMENT_DOWNLOAD_EXPIRY,
    )


def _storage() -> Storage:
    return _build(_config())


@lru_cache(maxsize=4)
def _build(config: tuple[Any, ...]) -> Storage:
    backend, root, bucket, region, endpoint, style, timeout, expiry = config
    if backend != "s3":
        return FileSystemStorage(location=root, base_url=None)
    return S3Storage(
        bucket_name=bucket,
        region_name=region,
        endpoint_url=endpoint,
        addressing_style=style,
        signature_version="s3v4",
        querystring_auth=True,
        querystring_expire=expiry,
        file_overwrite=True,
        default_acl=None,
        client_config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            signature_version="s3v4",
            s3={"addressing_style": style} if style else None,
        ),
    )


def _client() -> Any:
    return _shared_client(_config())


@lru_cache(maxsize=4)
def _shared_client(config: tuple[Any, ...]) -> Any:
    """The boto3 client of the configured S3Storage, made once per process.

    django-storages keeps one boto3 session per thread, and Django runs each request's sync
    code in a fresh thread, so every request paid ~0.3 s for a new session (see bench/). boto3
    clients are thread-safe: one is shared instead.
    """
    return _build(config).connection.meta.client  # type: ignore[attr-defined]


@contextmanager
def _s3_errors() -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise StorageUnavailable(
            "File storage is unavailable right now; try the upload again later."
        ) from exc


def _is_missing(exc: Exception) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


# --- Uploads ----------------------------------------------------------------------------------


def upload_start(*, attachment_id: Any, key: str, content_type: str, size: int) -> UploadTarget:
    """Where the browser sends the file for this attachment (it then asks us to confirm)."""
    if is_s3():
        with _s3_errors():
            post = _client().generate_presigned_post(
                Bucket=settings.AWS_STORAGE_BUCKET_NAME,
                Key=key,
                Fields={"Content-Type": content_type},
                Conditions=[
                    {"Content-Type": content_type},
                    ["content-length-range", size, size],
                ],
                ExpiresIn=settings.ATTACHMENT_UPLOAD_EXPIRY,
            )
        return UploadTarget(url=post["url"], fields=dict(post["fields"]))
    token = signing.dumps({"id": str(attachment_id), "key": key}, salt=UPLOAD_TOKEN_SALT)
    return UploadTarget(
        url=reverse("api_attachment_upload", args=[attachment_id]), fields={"token": token}
    )


def upload_token_valid(token: str, *, attachment_id: Any, key: str) -> bool:
    """Whether a local upload's token was made by `upload_start` for this attachment."""
    try:
        data = signing.loads(
            token, salt=UPLOAD_TOKEN_SALT, max_age=settings.ATTACHMENT_UPLOAD_EXPIRY
        )
    except signing.BadSignature:
        return False
    return bool(data == {"id": str(attachment_id), "key": key})


def save(key: str, content: IO[bytes] | bytes, content_type: str) -> None:
    """Store bytes under `key` (local uploads, and the images we derive)."""
    with metrics.timed(metrics.STORAGE_LATENCY, "save"):
        _save(key, content, content_type)


def _save(key: str, content: IO[bytes] | bytes, content_type: str) -> None:
    if is_s3():
        body = content if isinstance(content, bytes) else content.read()
        with _s3_errors():
            _client().put_object(
                Bucket=settings.AWS_STORAGE_BUCKET_NAME,
                Key=key,
                Body=body,
                ContentType=content_type,
            )
        return
    storage = _storage()
    wrapped = ContentFile(content) if isinstance(content, bytes) else File(content)
    if storage.exists(key):
        storage.delete(key)
    stored = storage.save(key, wrapped)
    if stored != key:  # pragma: no cover - keys are random; a clash is a bug
        storage.delete(stored)
        raise RuntimeError("storage key clash")


def size(key: str) -> int | None:
    """The stored object's size in bytes, or None if nothing was stored under `key`."""
    if is_s3():
        try:
            with _s3_errors():
                head = _client().head_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=key)
        except StorageUnavailable as exc:
            if isinstance(exc.__cause__, ClientError) and _is_missing(exc.__cause__):
                return None
            raise
        return int(head["ContentLength"])
    storage = _storage()
    return storage.size(key) if storage.exists(key) else None


def read_head(key: str, length: int = SNIFF_BYTES) -> bytes:
    """The first `length` bytes of the object, to tell its type from its content."""
    if is_s3():
        with _s3_errors():
            obj = _client().get_object(
                Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=key, Range=f"bytes=0-{length - 1}"
            )
            return bytes(obj["Body"].read())
    with _storage().open(key, "rb") as fh:
        return bytes(fh.read(length))


def read(key: str) -> bytes:
    """The whole object (images, to make the thumbnail)."""
    if is_s3():
        with _s3_errors():
            obj = _client().get_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=key)
            return bytes(obj["Body"].read())
    with _storage().open(key, "rb") as fh:
        return bytes(fh.read())


def delete(key: str) -> None:
    """Remove the object; removing one that is not there is fine."""
    if not key:
        return
    if is_s3():
        with _s3_errors():
            _client().delete_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=key)
        return
    _storage().delete(key)


def exists(key: str) -> bool:
    return size(key) is not None


# --- Downloads --------------------------------------------------------------------------------


def download_response(
    key: str, *, filename: str, content_type: str, inline: bool
) -> HttpResponse | FileResponse:
    """The response that hands the file to a user our view has already checked.

    The content type and disposition are ours, never the stored object's: only raster images
    are ever shown inline, everything else downloads.
    """
    disposition = content_disposition_header(not inline, filename) or "attachment"
    if is_s3():
        with _s3_errors():
            url = _client().generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": settings.AWS_STORAGE_BUCKET_NAME,
                    "Key": key,
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": disposition,
                    "ResponseCacheControl": "private, max-age=60",
                },
                ExpiresIn=settings.ATTACHMENT_DOWNLOAD_EXPIRY,
            )
        response: HttpResponse | FileResponse = HttpResponseRedirect(url)
        response["Cache-Control"] = "private, no-store"
        return response
    try:
        handle = _storage().open(key, "rb")
    except FileNotFoundError:
        raise StorageUnavailable("The file is missing from storage.") from None
    response = FileResponse(handle, content_type=content_type)
    response["Content-Disposition"] = disposition
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = DOWNLOAD_CSP
    response["Cache-Control"] = "private, max-age=3600"
    return response
