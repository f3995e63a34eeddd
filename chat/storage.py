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
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, Storage
from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage

from hobbies import metrics
from hobbies.errors import CheckFailed, StorageUnavailable

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


# --- Deployment check (`manage.py doctor`) ----------------------------------------------------

PROBE = b"doctor probe\n"
S3_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
S3_WRONG_REGION = {"PermanentRedirect", "AuthorizationHeaderMalformed", "301"}


def check() -> str:
    """Store, measure and delete a probe object under `attachments/`, with the calls (and so the
    rights) an upload needs. Returns what was checked; raises `CheckFailed` with the fix."""
    key = new_key()
    if is_s3():
        return _check_s3(key)
    root = settings.ATTACHMENTS_ROOT
    try:
        _save(key, PROBE, "text/plain")
        stored = size(key)
        delete(key)
    except OSError as exc:
        raise CheckFailed(
            f"cannot write files under {root} ({exc.strerror or exc})",
            fix=f"make {root} writable by the server's user, or set ATTACHMENTS_ROOT",
        ) from exc
    if stored != len(PROBE):
        raise CheckFailed(
            f"a file written under {root} read back as {stored} bytes, not {len(PROBE)}",
            fix=f"check the file system that holds {root}",
        )
    return f"local files in {root}"


def _check_s3(key: str) -> str:
    bucket = settings.AWS_STORAGE_BUCKET_NAME
    where = (
        settings.AWS_S3_ENDPOINT_URL
        or f"AWS region {settings.AWS_S3_REGION_NAME or '(the default region)'}"
    )
    client = _client()
    try:
        client.put_object(Bucket=bucket, Key=key, Body=PROBE, ContentType="text/plain")
        stored = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        client.delete_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        said = f"{code}: {error.get('Message')}" if error.get("Message") else code
        if code in ("NoSuchBucket", "404"):
            raise CheckFailed(
                f"bucket {bucket!r} does not exist at {where}",
                fix=(
                    f"create the bucket {bucket!r} there (deploy/cloudformation.yaml creates the "
                    "attachments bucket), or set AWS_STORAGE_BUCKET_NAME to the bucket you have"
                ),
            ) from exc
        if code in S3_DENIED:
            raise CheckFailed(
                f"S3 refused to store a file in bucket {bucket!r} at {where} ({said})",
                fix=(
                    "check the AWS credentials the server runs with (instance role, or "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and that they may s3:PutObject, "
                    f"s3:GetObject and s3:DeleteObject on attachments/* in {bucket!r} "
                    "(the stack's AttachmentsAccessPolicy)"
                ),
            ) from exc
        if code in S3_WRONG_REGION:
            raise CheckFailed(
                f"bucket {bucket!r} is not in {where} ({said})",
                fix="set AWS_S3_REGION_NAME to the bucket's region",
            ) from exc
        raise CheckFailed(
            f"S3 refused to store a file in bucket {bucket!r} at {where} ({said})",
            fix="check AWS_STORAGE_BUCKET_NAME, AWS_S3_REGION_NAME and the AWS credentials",
        ) from exc
    except NoCredentialsError as exc:
        raise CheckFailed(
            "no AWS credentials found",
            fix=(
                "run the server with an instance role that has the stack's "
                "AttachmentsAccessPolicy, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ),
        ) from exc
    except (BotoCoreError, OSError) as exc:
        raise CheckFailed(
            f"cannot reach S3 at {where} ({exc})",
            fix=(
                "check AWS_S3_ENDPOINT_URL (unset on AWS itself) and AWS_S3_REGION_NAME, and "
                "that this machine can reach S3"
            ),
        ) from exc
    if stored != len(PROBE):
        raise CheckFailed(
            f"a file stored in bucket {bucket!r} read back as {stored} bytes, not {len(PROBE)}",
            fix=f"check AWS_S3_ENDPOINT_URL and the bucket {bucket!r}",
        )
    return f"s3 bucket {bucket!r} at {where}: stored, read and deleted a file"
