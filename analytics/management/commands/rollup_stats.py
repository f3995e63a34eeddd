"""`manage.py rollup_stats`: count what arrived since the last run into the analytics tables.

Run it every few minutes (a cron job or systemd timer, docs/analytics.md); running it again
counts nothing twice. `--rebuild` starts from scratch; `--since DATE` counts again from that
day (after a restore, or a channel deleted with its messages)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.rollup import stats_rollup


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since takes a date as YYYY-MM-DD, not {value!r}.") from None


class Command(BaseCommand):
    help = "Count new messages, members, reports and moderation actions into the analytics."

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--rebuild", action="store_true", help="Forget every figure and count all again."
        )
        group.add_argument(
            "--since", type=str, metavar="YYYY-MM-DD", help="Count again from that day (UTC) on."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        since = _date(options["since"]) if options["since"] else None
        result = stats_rollup(rebuild=options["rebuild"], since=since)
        self.stdout.write(result.summary())
