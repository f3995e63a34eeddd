"""The figures of an analytics page as CSV, one table at a time. Text that a spreadsheet would
read as a formula (a name starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is
prefixed with `'` so it stays text."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from analytics.selectors import Figures
from hobbies.errors import Invalid

TABLES = ("daily", "channels", "hours", "communities")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def parse_table(raw: str | None, *, site: bool) -> str:
    table = raw or "daily"
    allowed = TABLES if site else TABLES[:3]
    if table not in allowed:
        raise Invalid(f"The table is one of: {', '.join(allowed)}.")
    return table


def cell(value: Any) -> Any:
    """A value as a CSV cell, with text that would be a formula made inert."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _write(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()


def figures_csv(figures: Figures, table: str) -> str:
    if table == "channels":
        site = any("community__name" in row for row in figures.channels)
        header = ["community", "channel", "messages"] if site else ["channel", "messages"]
        return _write(
            header,
            (
                ([r["community__name"]] if site else []) + [r["channel__name"], r["messages"]]
                for r in figures.channels
            ),
        )
    if table == "hours":
        return _write(
            ["weekday", *[f"{h:02d}:00" for h in range(24)]],
            ([name, *row] for name, row in figures.heat_rows()),
        )
    if table == "communities":
        return _write(
            ["community", "slug", "messages"],
            (
                (r["community__name"], r["community__slug"], r["messages"])
                for r in figures.communities
            ),
        )
    return _write(
        [
            "day",
            "messages",
            "active_members",
            "monthly_active_members",
            "new_members",
            "reports",
            "moderation_actions",
        ],
        (
            (
                d.day.isoformat(),
                d.messages,
                d.active_members,
                d.monthly_active_members,
                d.new_members,
                d.reports,
                d.moderation_actions,
            )
            for d in figures.days
        ),
    )
