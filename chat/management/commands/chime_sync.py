"""`manage.py chime_sync`: reconcile Chime with our database (users, channels, memberships,
moderators, bans), report the drift, and repair it unless `--dry-run`. Idempotent."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chat.backends.base import MessagingUnavailable
from chat.backends.chime import ChimeBackend
from chat.chime_admin import chime_sync


class Command(BaseCommand):
    help = "Reconcile the Chime AppInstance with the database and report drift."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report, change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.CHIME_APP_INSTANCE_ARN:
            raise CommandError(
                "Set CHIME_APP_INSTANCE_ARN first (manage.py chime_setup prints it)."
            )
        try:
            report = chime_sync(backend=ChimeBackend(), dry_run=options["dry_run"])
        except MessagingUnavailable as exc:
            raise CommandError(exc.detail) from exc
        for line in report.lines:
            self.stdout.write(line)
        verb = "to repair" if options["dry_run"] else "repaired"
        self.stdout.write(f"{report.changes} drift(s) {verb}.")
