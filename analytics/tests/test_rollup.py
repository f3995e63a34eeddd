"""The rollup against direct counts over the raw tables, on a generated year."""

from __future__ import annotations

import datetime as dt
import io
import random
from collections import defaultdict

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analytics.models import ChannelHour, CommunityDay, MemberDay, RollupState, SiteDay
from analytics.rollup import MODERATION_ACTIONS, SETTLE, stats_rollup
from chat.models import Message, Report
from communities.models import AuditEntry

from .conftest import add_messages

pytestmark = pytest.mark.django_db


def snapshot() -> dict[str, set[tuple]]:
    """Every figure the rollup stores, without row ids."""
    return {
        "hours": set(
            ChannelHour.objects.values_list("community_id", "channel_id", "day", "hour", "messages")
        ),
        "members": set(MemberDay.objects.values_list("community_id", "user_id", "day", "messages")),
        "communities": set(
            CommunityDay.objects.values_list(
                "community_id",
                "day",
                "active_members",
                "monthly_active_members",
                "reports",
                "moderation_actions",
            )
        ),
        "site": set(SiteDay.objects.values_list("day", "active_members", "monthly_active_members")),
    }


def utc(stamp: dt.datetime) -> dt.datetime:
    return stamp.astimezone(dt.UTC)


def expected(through: dt.date) -> dict[str, set[tuple]]:
    """The same figures counted straight from messages, reports and the audit log, in Python."""
    hours: dict[tuple, int] = defaultdict(int)
    members: dict[tuple, int] = defaultdict(int)
    authors: dict[tuple, set[int]] = defaultdict(set)
    site_authors: dict[dt.date, set[int]] = defaultdict(set)
    rows = Message.objects.values_list(
        "channel__community_id", "channel_id", "author_id", "created_at"
    )
    for community, channel, author, created in rows:
        t = utc(created)
        hours[(community, channel, t.date(), t.hour)] += 1
        members[(community, author, t.date())] += 1
        authors[(community, t.date())].add(author)
        site_authors[t.date()].add(author)
    days = CommunityDay  # noqa: F841 - named for readers: the rows below mirror it
    community_rows: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    communities = {c for c, _ in authors}
    first = min(d for _, d in authors)
    site = set()
    day = first
    while day <= through:
        window = [day - dt.timedelta(days=i) for i in range(30)]
        for community in communities:
            monthly = set().union(*(authors.get((community, d), set()) for d in window))
            if monthly:
                community_rows[(community, day)][0] = len(authors.get((community, day), set()))
                community_rows[(community, day)][1] = len(monthly)
        monthly_site = set().union(*(site_authors.get(d, set()) for d in window))
        if monthly_site:
            site.add((day, len(site_authors.get(day, set())), len(monthly_site)))
        day += dt.timedelta(days=1)
    for community, created in Report.objects.values_list("community_id", "created_at"):
        community_rows[(community, utc(created).date())][2] += 1
    audit = AuditEntry.objects.filter(action__in=MODERATION_ACTIONS)
    for community, created in audit.values_list("community_id", "created_at"):
        community_rows[(community, utc(created).date())][3] += 1
    return {
        "hours": {(*k, n) for k, n in hours.items()},
        "members": {(*k, n) for k, n in members.items()},
        "communities": {(*k, *v) for k, v in community_rows.items()},
        "site": site,
    }


def test_a_year_rolls_up_to_the_direct_counts(make_year):
    year = make_year()
    result = stats_rollup(now=year.now)
    assert result.messages == Message.objects.count() == 3000
    assert result.reports == 120
    assert result.actions == AuditEntry.objects.filter(action__in=MODERATION_ACTIONS).count() > 0
    got = snapshot()
    want = expected(year.now.date())
    assert got["hours"] == want["hours"]
    assert got["members"] == want["members"]
    assert got["communities"] == want["communities"]
    assert got["site"] == want["site"]
    # Monthly active members are distinct people, not a sum of daily counts.
    assert any(mau < sum_dau for _, _, _, mau, sum_dau in _mau_vs_sums())


def _mau_vs_sums():
    rows = {
        (c, d): (dau, mau)
        for c, d, dau, mau in CommunityDay.objects.values_list(
            "community_id", "day", "active_members", "monthly_active_members"
        )
    }
    for (c, d), (dau, mau) in rows.items():
        sum_dau = sum(rows.get((c, d - dt.timedelta(days=i)), (0, 0))[0] for i in range(30))
        yield c, d, dau, mau, sum_dau


def test_monthly_rollups_then_new_data_equal_a_rebuild_and_rerunning_changes_nothing(make_year):
    year = make_year()
    start = year.now - dt.timedelta(days=365)
    # Run once a month through the year, as a timer would (only older rows are settled).
    for month in range(1, 13):
        stats_rollup(now=start + dt.timedelta(days=30 * month))
    stats_rollup(now=year.now)
    # Then more messages arrive, are edited, removed: counted once, on the day they were sent.
    add_messages(year, 200, year.now - dt.timedelta(minutes=4), year.now, random.Random(3))
    later = year.now + dt.timedelta(minutes=10)
    result = stats_rollup(now=later)
    assert result.messages == 200
    Message.objects.filter(id__in=Message.objects.order_by("-id").values("id")[:5]).update(
        deleted_at=later, removed=True
    )
    incremental = snapshot()
    state = RollupState.objects.get()

    again = stats_rollup(now=later)
    assert (again.messages, again.reports, again.actions) == (0, 0, 0)
    assert snapshot() == incremental
    assert RollupState.objects.get().message_id == state.message_id

    rebuilt = stats_rollup(rebuild=True, now=later)
    assert rebuilt.summary().startswith(
        "Rebuilt from scratch: counted 3200 messages, 120 reports and "
        f"{rebuilt.actions} moderation actions; active members computed for "
    )
    assert snapshot() == incremental
    assert incremental == expected(later.date())


def test_rows_not_yet_settled_wait_for_the_next_run(make_year):
    year = make_year(messages=50)
    newest = Message.objects.order_by("-id").first()
    result = stats_rollup(now=newest.created_at + SETTLE - dt.timedelta(seconds=1))
    assert result.messages == 49
    assert stats_rollup(now=newest.created_at + SETTLE).messages == 1
    assert sum(ChannelHour.objects.values_list("messages", flat=True)) == 50
    assert year.now


def test_since_counts_the_days_again_and_the_command_says_what_it_did(make_year):
    year = make_year(messages=600)
    stats_rollup(now=year.now)
    before = snapshot()
    since = (year.now - dt.timedelta(days=40)).date()
    ChannelHour.objects.filter(day__gte=since).update(messages=999)  # damage to be repaired
    out = io.StringIO()
    call_command("rollup_stats", "--since", since.isoformat(), stdout=out)
    assert f"active members computed for {since} to" in out.getvalue()
    after = snapshot()
    assert after["hours"] == before["hours"]
    assert after["members"] == before["members"]
    assert {r for r in after["communities"] if r[1] <= year.now.date()} == before["communities"]
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("rollup_stats", "--since", "last week")
    out = io.StringIO()
    call_command("rollup_stats", stdout=out)
    assert out.getvalue().startswith("Counted 0 messages, 0 reports and 0 moderation actions")
