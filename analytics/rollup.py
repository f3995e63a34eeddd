"""The rollup: counts new messages, reports and moderation actions into the analytics tables,
from where the last run stopped (docs/analytics.md).

What counts:
- a message counts once, on the UTC day and hour it was sent, in its channel; editing, deleting
  or removing it later changes nothing (it was sent). A message whose row is gone from the
  database (its channel was deleted) stays counted until a `--rebuild`.
- an active member on a day sent at least one message in the community that day; monthly
  active members on a day are the distinct members active in the 30 days ending that day.
- a report counts on the day it was made, whatever its outcome.
- a moderation action is an audit log entry of one of `MODERATION_ACTIONS`, on its day.

Rows are read by id above the last run's watermark, up to the newest row older than `SETTLE`:
a row that takes an id and commits later than that (a send's transaction lasts milliseconds)
would be skipped. So every run counts each row once, re-running counts nothing new, and a
rebuild from scratch gives the same tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.db.models import Count, Max, QuerySet
from django.db.models.functions import ExtractHour, TruncDate
from django.utils import timezone

from analytics.models import ChannelHour, CommunityDay, MemberDay, RollupState, SiteDay
from chat.models import Message, Report
from communities.models import AuditEntry

SETTLE = dt.timedelta(seconds=60)
CHUNK = 20_000
MONTH_DAYS = 30
A = AuditEntry.Action
MODERATION_ACTIONS = frozenset(
    {
        A.MESSAGE_REMOVE,
        A.MESSAGE_RESTORE,
        A.MESSAGE_DELETE,
        A.REPORT_RESOLVE,
        A.WARN,
        A.TIMEOUT,
        A.TIMEOUT_END,
        A.BAN,
        A.UNBAN,
        A.CLEANUP,
        A.REMOVE,
        A.HELD_APPROVE,
        A.HELD_REJECT,
        A.SLOW_MODE,
        A.FILTER,
    }
)


@dataclass(frozen=True)
class RollupResult:
    messages: int
    reports: int
    actions: int
    first_day: dt.date | None
    last_day: dt.date | None
    rebuilt: bool
    watermark: int

    def summary(self) -> str:
        what = "Rebuilt from scratch: counted" if self.rebuilt else "Counted"
        text = (
            f"{what} {self.messages} messages, {self.reports} reports and "
            f"{self.actions} moderation actions"
        )
        if self.first_day is None:
            return f"{text}; no days to recompute. Up to message {self.watermark}."
        return (
            f"{text}; active members computed for {self.first_day} to {self.last_day}. "
            f"Up to message {self.watermark}."
        )


def day_of(field: str) -> TruncDate:
    return TruncDate(field, tzinfo=dt.UTC)


def _upsert_add(
    model: type[models.Model],
    keys: tuple[str, ...],
    field: str,
    counts: dict[tuple[Any, ...], int],
    existing: QuerySet[Any],
    unique: list[str],
) -> None:
    """Add `counts` (by `keys`) to `field` of the rows of `model`, making missing rows."""
    if not counts:
        return
    have = {tuple(row[:-1]): row[-1] for row in existing.values_list(*keys, field)}
    rows = [
        model(**dict(zip(keys, key, strict=True)), **{field: have.get(key, 0) + n})
        for key, n in counts.items()
    ]
    model._default_manager.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=unique,
        update_fields=[field],
    )


def _count_messages(messages: QuerySet[Message]) -> tuple[int, dict[int, dt.date]]:
    """Add the messages to the hourly and member tables; the earliest day touched per
    community."""
    hourly = (
        messages.annotate(d=day_of("created_at"), h=ExtractHour("created_at", tzinfo=dt.UTC))
        .values_list("channel__community_id", "channel_id", "d", "h")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_hour: dict[tuple[Any, ...], int] = {}
    touched: dict[int, dt.date] = {}
    total = 0
    for community_id, channel_id, day, hour, n in hourly:
        by_hour[(community_id, channel_id, day, hour)] = n
        touched[community_id] = min(day, touched.get(community_id, day))
        total += n
    if not total:
        return 0, touched
    first = min(touched.values())
    _upsert_add(
        ChannelHour,
        ("community_id", "channel_id", "day", "hour"),
        "messages",
        by_hour,
        ChannelHour.objects.filter(
            channel_id__in={key[1] for key in by_hour}, day__gte=first
        ).order_by(),
        ["channel", "day", "hour"],
    )
    members = (
        messages.annotate(d=day_of("created_at"))
        .values_list("channel__community_id", "author_id", "d")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_member = {(c, u, d): n for c, u, d, n in members}
    _upsert_add(
        MemberDay,
        ("community_id", "user_id", "day"),
        "messages",
        by_member,
        MemberDay.objects.filter(
            community_id__in=touched, user_id__in={key[1] for key in by_member}, day__gte=first
        ).order_by(),
        ["community", "user", "day"],
    )
    return total, touched


def _count_daily(rows: QuerySet[Any], field: str) -> int:
    """Add reports or audit entries (`community_id`, day) to `field` of the community days."""
    counted = rows.annotate(d=day_of("created_at")).values_list("community_id", "d")
    counts = {(c, d): n for c, d, n in counted.annotate(n=Count("id")).order_by()}
    if counts:
        _upsert_add(
            CommunityDay,
            ("community_id", "day"),
            field,
            counts,
            CommunityDay.objects.filter(
                community_id__in={c for c, _ in counts}, day__gte=min(d for _, d in counts)
            ).order_by(),
            ["community", "day"],
        )
    return sum(counts.values())


def _days(first: dt.date, last: dt.date) -> Iterable[dt.date]:
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


def _compute_active(first: dt.date, last: dt.date) -> None:
    """Active and monthly active members per community and for the site, for each day from
    `first` to `last`, from the member days (distinct members, never sums of daily counts)."""
    for day in _days(first, last):
        window = MemberDay.objects.filter(
            day__gt=day - dt.timedelta(days=MONTH_DAYS), day__lte=day
        ).order_by()
        monthly = dict(
            window.values_list("community_id").annotate(n=Count("user_id", distinct=True))
        )
        daily = dict(
            MemberDay.objects.filter(day=day)
            .order_by()
            .values_list("community_id")
            .annotate(n=Count("user_id"))
        )
        CommunityDay.objects.filter(day=day).exclude(community_id__in=monthly).update(
            active_members=0, monthly_active_members=0
        )
        CommunityDay.objects.bulk_create(
            [
                CommunityDay(
                    community_id=c,
                    day=day,
                    active_members=daily.get(c, 0),
                    monthly_active_members=n,
                )
                for c, n in monthly.items()
            ],
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["community", "day"],
            update_fields=["active_members", "monthly_active_members"],
        )
        CommunityDay.objects.filter(
            day=day, active_members=0, monthly_active_members=0, reports=0, moderation_actions=0
        ).delete()
        site_monthly = window.aggregate(n=Count("user_id", distinct=True))["n"]
        if site_monthly:
            site_daily = MemberDay.objects.filter(day=day).aggregate(
                n=Count("user_id", distinct=True)
            )["n"]
            SiteDay.objects.update_or_create(
                day=day,
                defaults={"active_members": site_daily, "monthly_active_members": site_monthly},
            )
        else:
            SiteDay.objects.filter(day=day).delete()


def _settled_max(rows: QuerySet[Any], after: int, cutoff: dt.datetime) -> int:
    """The highest id above `after` of a row made before `cutoff` (`after` if none)."""
    found = rows.filter(id__gt=after, created_at__lte=cutoff).aggregate(m=Max("id"))["m"]
    return int(found) if found is not None else after


def _forget_since(start: dt.date, state: RollupState) -> tuple[int, int, int, dict[int, dt.date]]:
    """Drop the figures from `start` on and count again what the watermark already passed."""
    ChannelHour.objects.filter(day__gte=start).delete()
    MemberDay.objects.filter(day__gte=start).delete()
    CommunityDay.objects.filter(day__gte=start).update(reports=0, moderation_actions=0)
    since = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    messages, touched = _count_messages(
        Message.objects.filter(created_at__gte=since, id__lte=state.message_id)
    )
    reports = _count_daily(
        Report.objects.filter(created_at__gte=since, id__lte=state.report_id), "reports"
    )
    actions = _count_daily(
        AuditEntry.objects.filter(
            created_at__gte=since, id__lte=state.audit_id, action__in=MODERATION_ACTIONS
        ),
        "moderation_actions",
    )
    touched = dict.fromkeys(touched, start)
    return messages, reports, actions, touched


def stats_rollup(
    *, rebuild: bool = False, since: dt.date | None = None, now: dt.datetime | None = None
) -> RollupResult:
    """Count what arrived since the last run (all of it with `rebuild`; from the day `since`
    on again with `since`), in one transaction; concurrent runs wait for each other."""
    now = now or timezone.now()
    cutoff = now - SETTLE
    with transaction.atomic():
        RollupState.objects.get_or_create(id=1)
        state = RollupState.objects.select_for_update().get(id=1)
        messages = reports = actions = 0
        first: dt.date | None = None
        if rebuild:
            for model in (ChannelHour, MemberDay, CommunityDay, SiteDay):
                model._default_manager.all().delete()
            state.message_id = state.report_id = state.audit_id = 0
            state.computed_through = None
        elif since is not None:
            messages, reports, actions, touched = _forget_since(since, state)
            first = since
        message_top = _settled_max(Message.objects.all(), state.message_id, cutoff)
        for low in range(state.message_id, message_top, CHUNK):
            counted, touched = _count_messages(
                Message.objects.filter(id__gt=low, id__lte=min(low + CHUNK, message_top))
            )
            messages += counted
            for day in touched.values():
                first = day if first is None else min(first, day)
        report_top = _settled_max(Report.objects.all(), state.report_id, cutoff)
        reports += _count_daily(
            Report.objects.filter(id__gt=state.report_id, id__lte=report_top), "reports"
        )
        audit_top = _settled_max(AuditEntry.objects.all(), state.audit_id, cutoff)
        actions += _count_daily(
            AuditEntry.objects.filter(
                id__gt=state.audit_id, id__lte=audit_top, action__in=MODERATION_ACTIONS
            ),
            "moderation_actions",
        )
        if state.computed_through is not None:
            first = min(first or state.computed_through, state.computed_through)
        last = cutoff.astimezone(dt.UTC).date()
        if first is not None:
            _compute_active(first, last)
            state.computed_through = last
        state.message_id, state.report_id, state.audit_id = message_top, report_top, audit_top
        state.ran_at = now
        state.save()
    return RollupResult(
        messages=messages,
        reports=reports,
        actions=actions,
        first_day=first,
        last_day=last if first is not None else None,
        rebuilt=rebuild,
        watermark=message_top,
    )
