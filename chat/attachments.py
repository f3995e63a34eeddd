"""Services for attachments: every change to an `Attachment` goes through here.

Kept beside `chat/services.py` rather than in it so that neither file grows past a screenful
of concerns; `message_send` calls `attachments_claim` inside its transaction.

The life of an attachment: `attachment_start` (a pending row and an upload target) → the browser
uploads (to S3, or to `attachment_upload` locally) → `attachment_confirm` (the object exists,
its size and type match, images get a cleaned copy and a thumbnail) → `message_send` claims it.
Anything never claimed is removed by `attachment_purge_stale` a day later.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import User
from chat import images, storage
from chat.models import Attachment, Message
from hobbies import metrics, ratelimit
from hobbies.errors import (
    Conflict,
    Invalid,
    NotFound,
    QuotaExceeded,
    TooLarge,
    TooLong,
    UnsupportedType,
    UploadIncomplete,
)

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 255
# Characters that can make a name display as something else (bidi overrides, zero-width).
INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}


def clean_filename(name: str) -> str:
    """The name shown to people and sent in `Content-Disposition`; refuses what it cannot keep."""
    name = unicodedata.normalize("NFC", name).strip()
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise Invalid("A filename cannot contain control characters.")
    if "/" in name or "\\" in name:
        raise Invalid("A filename cannot contain / or \\.")
    name = "".join(
        ch for ch in name if unicodedata.category(ch) != "Cf" and ch not in INVISIBLE
    ).strip()
    if len(name) > MAX_NAME_LENGTH:
        raise TooLong(f"A filename has at most {MAX_NAME_LENGTH} characters.")
    if name.strip(".") == "":
        raise Invalid("A file needs a name.")
    return name


def _clean_size(size: int) -> int:
    if size <= 0:
        raise Invalid("The file is empty.")
    if size > settings.ATTACHMENT_MAX_BYTES:
        raise TooLarge(f"A file has at most {_human(settings.ATTACHMENT_MAX_BYTES)}.")
    return int(size)


def _clean_declared_type(content_type: str) -> str:
    if content_type == "":
        return "application/octet-stream"
    if len(content_type) > 100:
        raise Invalid("content_type must be a MIME type.")
    base = images.normalize_type(content_type)
    kind, _, sub = base.partition("/")
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.+-_")
    if not kind or not sub or not set(kind) <= allowed or not set(sub) <= allowed:
        raise Invalid("content_type must be a MIME type.")
    return base


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


# --- Uploading ------------------------------------------------------------------------------


def attachment_start(
    *, uploader: User, name: str, size: int, content_type: str = ""
) -> tuple[Attachment, storage.UploadTarget]:
    """Reserve an attachment and say where the browser uploads its bytes."""
    clean_name = clean_filename(name)
    clean_size = _clean_size(size)
    declared = _clean_declared_type(content_type)
    ratelimit.hit("upload-user", str(uploader.id), settings.RATE_LIMIT_UPLOADS_USER)
    with transaction.atomic():
        # The user's row lock makes quota checks of concurrent uploads queue up.
        User.objects.select_for_update().filter(id=uploader.id).first()
        used = Attachment.objects.filter(uploader=uploader).aggregate(total=Sum("size"))["total"]
        if (used or 0) + clean_size > settings.ATTACHMENT_USER_QUOTA_BYTES:
            raise QuotaExceeded(
                f"Your files would take more than your "
                f"{_human(settings.ATTACHMENT_USER_QUOTA_BYTES)} of storage; delete some first."
            )
        attachment = Attachment.objects.create(
            uploader=uploader,
            name=clean_name,
            content_type=declared,
            size=clean_size,
            key=storage.new_key(),
        )
    target = storage.upload_start(
        attachment_id=attachment.id, key=attachment.key, content_type=declared, size=clean_size
    )
    return attachment, target


def attachment_for_uploader(user: User, attachment_id: uuid.UUID) -> Attachment:
    """The user's own attachment (pending or ready); another user's is reported as not found."""
    attachment = Attachment.objects.filter(id=attachment_id, uploader=user).first()
    if attachment is None or not user.is_authenticated:
        raise NotFound("No such attachment.")
    return attachment


def attachment_upload(*, attachment: Attachment, by: User, file: IO[bytes], size: int) -> None:
    """Receive the bytes of a local upload (the S3 path sends them to the bucket instead)."""
    if attachment.uploader_id != by.id:
        raise NotFound("No such attachment.")
    if attachment.status != Attachment.Status.PENDING:
        raise Conflict("This attachment was already uploaded.")
    if size != attachment.size:
        raise Invalid(f"The file has {size} bytes, but {attachment.size} were announced.")
    storage.save(attachment.key, file, attachment.content_type)


def attachment_confirm(*, attachment: Attachment, by: User) -> Attachment:
    """Check the uploaded object and make the attachment usable.

    On any problem the object and the row are removed, and the error says why.
    """
    if attachment.uploader_id != by.id:
        raise NotFound("No such attachment.")
    if attachment.status == Attachment.Status.READY:
        return attachment
    with metrics.timed(metrics.STORAGE_LATENCY, "size"):
        stored = storage.size(attachment.key)
    if stored is None:
        _discard(attachment)
        metrics.UPLOAD_FAILURES.inc()
        raise UploadIncomplete("Nothing was uploaded for this attachment; start the upload again.")
    try:
        finished = _check_and_finish(attachment, stored)
    except (Invalid, TooLarge, UnsupportedType):
        _discard(attachment)
        metrics.UPLOAD_FAILURES.inc()
        raise
    metrics.UPLOADS.inc()
    metrics.UPLOAD_BYTES.inc(finished.size)
    return finished


def _check_and_finish(attachment: Attachment, stored: int) -> Attachment:
    if stored != attachment.size:
        raise Invalid(f"The upload has {stored} bytes, but {attachment.size} were announced.")
    detected = images.sniff(storage.read_head(attachment.key))
    if detected not in settings.ATTACHMENT_ALLOWED_TYPES:
        raise UnsupportedType(f"Files of type {detected} cannot be shared here.")
    if not images.types_agree(attachment.content_type, detected):
        raise UnsupportedType(
            f"The file's content is {detected}, not {attachment.content_type} as its name says."
        )
    fields: dict[str, Any] = {"content_type": detected, "confirmed_at": timezone.now()}
    new_keys: list[str] = []
    if detected in images.IMAGE_TYPES:
        processed = images.process(storage.read(attachment.key), detected)
        thumb_key = storage.new_key("t")
        storage.save(thumb_key, processed.thumbnail, images.THUMBNAIL_TYPE)
        new_keys.append(thumb_key)
        fields.update(
            thumbnail_key=thumb_key,
            width=processed.width,
            height=processed.height,
            thumbnail_width=processed.thumbnail_width,
            thumbnail_height=processed.thumbnail_height,
        )
        if processed.full is not None:
            # The cleaned copy replaces the original, which may carry the camera's location.
            full_key = storage.new_key()
            storage.save(full_key, processed.full, processed.full_type)
            new_keys.append(full_key)
            fields.update(key=full_key, size=len(processed.full), content_type=processed.full_type)
    old_key = attachment.key
    with transaction.atomic():
        updated = Attachment.objects.filter(
            id=attachment.id, status=Attachment.Status.PENDING
        ).update(status=Attachment.Status.READY, **fields)
    if not updated:  # confirmed concurrently; keep the winner's files
        for key in new_keys:
            storage.delete(key)
        return Attachment.objects.get(id=attachment.id)
    if fields.get("key", old_key) != old_key:
        storage.delete(old_key)
    attachment.refresh_from_db()
    return attachment


def _discard(attachment: Attachment) -> None:
    storage.delete(attachment.key)
    storage.delete(attachment.thumbnail_key)
    Attachment.objects.filter(id=attachment.id).delete()


def attachment_delete(*, attachment: Attachment, by: User) -> None:
    """Cancel an upload, or remove an attachment not yet sent with a message."""
    if attachment.uploader_id != by.id:
        raise NotFound("No such attachment.")
    if attachment.message_id is not None:
        raise Conflict("This file was sent with a message; delete the message instead.")
    _discard(attachment)


def attachment_upload_direct(*, uploader: User, file: UploadedFile) -> Attachment:
    """Start, upload and confirm in one step: the form post without JavaScript."""
    attachment, _ = attachment_start(
        uploader=uploader,
        name=file.name or "",
        size=file.size or 0,
        content_type=file.content_type or "",
    )
    try:
        attachment_upload(attachment=attachment, by=uploader, file=file, size=file.size or 0)
        return attachment_confirm(attachment=attachment, by=uploader)
    except Exception:
        if Attachment.objects.filter(id=attachment.id).exists():
            _discard(attachment)
        raise


# --- Sending ----------------------------------------------------------------------------------


def attachment_ids_check(ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """The attachments of a send, checked for duplicates and count (no database access)."""
    parsed = list(ids)
    if len(set(parsed)) != len(parsed):
        raise Invalid("The same attachment is listed twice.")
    if len(parsed) > settings.ATTACHMENT_MAX_PER_MESSAGE:
        raise Invalid(f"A message has at most {settings.ATTACHMENT_MAX_PER_MESSAGE} attachments.")
    return parsed


def attachments_claim(*, message: Message, author: User, ids: list[uuid.UUID]) -> list[Attachment]:
    """Attach the author's ready, unsent attachments to `message` (inside its transaction);
    returns them in the order given."""
    if not ids:
        return []
    rows = list(
        Attachment.objects.select_for_update().filter(id__in=ids, uploader=author).order_by()
    )
    if len(rows) != len(ids):
        raise NotFound("No such attachment.")
    for row in rows:
        if row.status != Attachment.Status.READY:
            raise Invalid(f"{row.name} has not finished uploading.")
        if row.message_id is not None:
            raise Conflict(f"{row.name} was already sent with another message.")
    by_id = {row.id: row for row in rows}
    for position, attachment_id in enumerate(ids):
        Attachment.objects.filter(id=attachment_id).update(message=message, position=position)
        by_id[attachment_id].message, by_id[attachment_id].position = message, position
    return [by_id[attachment_id] for attachment_id in ids]


# --- Housekeeping ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Purged:
    id: uuid.UUID
    name: str
    size: int
    reason: str


def attachment_purge_stale(*, now: datetime | None = None) -> list[Purged]:
    """Remove uploads never sent after `ATTACHMENT_STALE_AFTER`, and the files of messages
    deleted more than `ATTACHMENT_DELETED_RETENTION` ago. Safe to run again at any time."""
    now = now or timezone.now()
    stale = Q(
        message__isnull=True,
        created_at__lt=now - timedelta(seconds=settings.ATTACHMENT_STALE_AFTER),
    )
    deleted = Q(
        message__deleted_at__lt=now - timedelta(seconds=settings.ATTACHMENT_DELETED_RETENTION)
    )
    removed: list[Purged] = []
    for attachment in Attachment.objects.filter(stale | deleted).order_by("created_at"):
        storage.delete(attachment.key)
        storage.delete(attachment.thumbnail_key)
        reason = "never sent" if attachment.message_id is None else "message deleted"
        Attachment.objects.filter(id=attachment.id).delete()
        removed.append(Purged(attachment.id, attachment.name, attachment.size, reason))
        logger.info("purged attachment %s (%s)", attachment.id, reason)
    return removed
