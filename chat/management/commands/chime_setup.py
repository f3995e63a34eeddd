"""`manage.py chime_setup`: create or adopt the Chime AppInstance, make the bridge user its
AppInstanceAdmin, and optionally set message retention. Idempotent; says what it did."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chat.backends.base import MessagingUnavailable
from chat.backends.chime import ChimeConfig
from chat.chime_admin import chime_setup


class Command(BaseCommand):
    help = "Create or adopt the Chime AppInstance and its bridge user (MESSAGING_BACKEND=chime)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--name",
            default=settings.CHIME_APP_INSTANCE_NAME,
            help="AppInstance name to adopt or create when CHIME_APP_INSTANCE_ARN is unset.",
        )
        parser.add_argument(
            "--retention-days",
            type=int,
            default=settings.CHIME_RETENTION_DAYS,
            help="Keep channel messages this many days in Chime (0: leave retention as is).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would change.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            arn, report = chime_setup(
                config=ChimeConfig.from_settings(),
                name=options["name"],
                retention_days=options["retention_days"],
                dry_run=options["dry_run"],
            )
        except MessagingUnavailable as exc:
            raise CommandError(exc.detail) from exc
        for line in report.lines:
            self.stdout.write(line)
        if arn:
            self.stdout.write(f"CHIME_APP_INSTANCE_ARN={arn}")
        self.stdout.write(f"{report.changes} change(s){' to make' if options['dry_run'] else ''}.")
