"""Reads for the analytics pages: a community's figures, or the site's, over a span of days,
from the rollup tables only (a fixed number of queries whatever the amount of data)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import ExtractIsoWeekDay
from django.utils import timezone

from analytics.models import ChannelHour, CommunityDay, RollupState, SiteDay
from analytics.rollup import day_of
from communities.models import Community, Membership
from hobbies.errors import Invalid

RANGES = (30, 90, 365)
TOP_CHANNELS = 10
TOP_COMMUNITIES = 20
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_range(raw: str | None) -> int:
    """The `days` query parameter: 30 (the default), 90 or 365."""
    if raw is None or raw == "":
        return RANGES[0]
    if raw.strip() not in {str(n) for n in RANGES}:
        raise Invalid("The range is the last 30, 90 or 365 days (days=30, 90 or 365).")
    return int(raw)


@dataclass(frozen=True)
class DayRow:
    day: dt.date
    messages: int = 0
    active_members: int = 0
    monthly_active_members: int = 0
    new_members: int = 0
    reports: int = 0
    moderation_actions: int = 0


@dataclass(frozen=True)
class Figures:
    span: int
    first: dt.date
    last: dt.date
    days: list[DayRow]
    channels: list[dict[str, Any]]
    heat: list[list[int]]
    ran_at: dt.datetime | None
    communities: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_messages(self) -> int:
        return sum(d.messages for d in self.days)

    @property
    def total_new_members(self) -> int:
        return sum(d.new_members for d in self.days)

    @property
    def total_reports(self) -> int:
        return sum(d.reports for d in self.days)

    @property
    def total_actions(self) -> int:
        return sum(d.moderation_actions for d in self.days)

    @property
    def latest_monthly_active(self) -> int:
        return self.days[-1].monthly_active_members if self.days else 0

    def heat_rows(self) -> list[tuple[str, list[int]]]:
        return list(zip(WEEKDAYS, self.heat, strict=True))


def _span(days: int) -> tuple[dt.date, dt.date]:
    last = timezone.now().astimezone(dt.UTC).date()
    return last - dt.timedelta(days=days - 1), last


def _figures(
    days: int,
    hours: QuerySet[ChannelHour],
    community_days: QuerySet[Any],
    active: QuerySet[Any],
    memberships: QuerySet[Membership],
    channel_fields: tuple[str, ...],
    communities: list[dict[str, Any]] | None = None,
) -> Figures:
    first, last = _span(days)
    hours = hours.filter(day__gte=first, day__lte=last).order_by()
    per_day = dict(hours.values_list("day").annotate(n=Sum("messages")))
    channels = list(
        hours.values(*channel_fields)
        .annotate(messages=Sum("messages"))
        .order_by("-messages", "channel__name")[:TOP_CHANNELS]
    )
    heat = [[0] * 24 for _ in WEEKDAYS]
    by_hour = hours.annotate(w=ExtractIsoWeekDay("day")).values_list("w", "hour")
    for weekday, hour, n in by_hour.annotate(n=Sum("messages")):
        heat[weekday - 1][hour] = n
    mod = {
        row["day"]: row
        for row in community_days.filter(day__gte=first, day__lte=last)
        .order_by()
        .values("day")
        .annotate(r=Sum("reports"), a=Sum("moderation_actions"))
    }
    act = {
        day: (daily, monthly)
        for day, daily, monthly in active.filter(day__gte=first, day__lte=last).values_list(
            "day", "active_members", "monthly_active_members"
        )
    }
    since = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
    joined = dict(
        memberships.filter(joined_at__gte=since)
        .annotate(d=day_of("joined_at"))
        .order_by()
        .values_list("d")
        .annotate(n=Count("id"))
    )
    rows = []
    day = first
    while day <= last:
        daily, monthly = act.get(day, (0, 0))
        rows.append(
            DayRow(
                day=day,
                messages=per_day.get(day, 0),
                active_members=daily,
                monthly_active_members=monthly,
                new_members=joined.get(day, 0),
                reports=mod.get(day, {}).get("r", 0),
                moderation_actions=mod.get(day, {}).get("a", 0),
            )
        )
        day += dt.timedelta(days=1)
    state = RollupState.objects.filter(id=1).values_list("ran_at", flat=True).first()
    return Figures(
        span=days,
        first=first,
        last=last,
        days=rows,
        channels=channels,
        heat=heat,
        ran_at=state,
        communities=communities or [],
    )


def community_figures(community: Community, *, days: int) -> Figures:
    """A community's figures over the last `days` days (today included)."""
    rows = CommunityDay.objects.filter(community=community)
    return _figures(
        days,
        ChannelHour.objects.filter(community=community),
        rows,
        rows,
        Membership.objects.filter(community=community),
        ("channel_id", "channel__name"),
    )


def site_figures(*, days: int) -> Figures:
    """Every community's figures together (active members counted once across communities),
    with the busiest communities, over the last `days` days."""
    first, last = _span(days)
    busiest = list(
        ChannelHour.objects.filter(day__gte=first, day__lte=last)
        .order_by()
        .values("community_id", "community__name", "community__slug")
        .annotate(messages=Sum("messages"))
        .order_by("-messages", "community__name")[:TOP_COMMUNITIES]
    )
    return _figures(
        days,
        ChannelHour.objects.all(),
        CommunityDay.objects.all(),
        SiteDay.objects.all(),
        Membership.objects.all(),
        ("channel_id", "channel__name", "community__name"),
        busiest,
    )
