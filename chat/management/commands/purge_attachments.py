"""`manage.py purge_attachments`: remove uploads never sent with a message (after
ATTACHMENT_STALE_AFTER seconds) and the files of long-deleted messages. Safe to run from cron."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chat.attachments import attachment_purge_stale
from hobbies.errors import StorageUnavailable


class Command(BaseCommand):
    help = "Remove stale uploads and the files of deleted messages, and say what was removed."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            removed = attachment_purge_stale()
        except StorageUnavailable as exc:
            raise CommandError(exc.detail) from exc
        for item in removed:
            self.stdout.write(f"removed {item.id} {item.name!r} ({item.size} bytes, {item.reason})")
        total = sum(item.size for item in removed)
        self.stdout.write(f"Removed {len(removed)} attachment(s), {total} bytes.")
