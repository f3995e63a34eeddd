"""The moderation overview in the admin: what waits for moderators and what they did this
week, over the communities the user moderates (`communities.policy.moderated_community_ids`).

A fixed number of queries however many rows: counts and the newest few of each list, and the
week's actions and messages grouped in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from chat.models import HeldMessage, Message, Report
from communities.models import AuditEntry
from communities.policy import Actor, moderated_community_ids

SHOWN = 20
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Overview:
    open_reports: int
    reports: list[Report]
    pending_held: int
    held: list[HeldMessage]
    actions_by_moderator: list[dict[str, Any]]
    busiest_channels: list[dict[str, Any]]
    since: Any


def _scoped(queryset: QuerySet[Any], path: str, user: Actor) -> QuerySet[Any]:
    ids = moderated_community_ids(user)
    return queryset if ids is None else queryset.filter(**{f"{path}__in": ids})


def moderation_overview(user: Actor) -> Overview:
    since = timezone.now() - WEEK
    reports = _scoped(Report.objects.filter(resolved_at__isnull=True), "community", user)
    held = _scoped(
        HeldMessage.objects.filter(kind=HeldMessage.Kind.REVIEW, status=HeldMessage.Status.PENDING),
        "channel__community",
        user,
    )
    actions = (
        _scoped(AuditEntry.objects.filter(created_at__gte=since), "community", user)
        .values("actor__username")
        .annotate(actions=Count("id"))
        .order_by("-actions", "actor__username")
    )
    channels = (
        _scoped(Message.objects.filter(created_at__gte=since), "channel__community", user)
        .values("channel_id", "channel__name", "channel__community__name")
        .annotate(messages=Count("id"))
        .order_by("-messages", "channel_id")[:10]
    )
    return Overview(
        open_reports=reports.count(),
        reports=list(
            reports.select_related(
                "message__author", "message__channel", "community", "reporter"
            ).order_by("-created_at")[:SHOWN]
        ),
        pending_held=held.count(),
        held=list(held.select_related("author", "channel__community").order_by("-id")[:SHOWN]),
        actions_by_moderator=list(actions),
        busiest_channels=list(channels),
        since=since,
    )
