"""What a moderator's settings do to the send path: timeouts, slow mode and the word filter.

`message_send` calls `screen_send` after its own checks and before it writes; edits, reactions
and the form's uploads call `check_participation`. Moderators' review queue counts are pushed
from here too (`queue_broadcast_on_commit`), since a held message starts there.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import User
from chat import events
from chat.models import Channel, HeldMessage, Message, Report
from communities.models import Community, Membership
from communities.policy import Actor, check_not_timed_out, is_moderator_role
from hobbies.errors import Blocked, HeldForReview, SlowMode


@lru_cache(maxsize=256)
def _pattern(words: str) -> re.Pattern[str] | None:
    """One regular expression for a filter list: whole words or phrases, without case."""
    parts = [re.escape(w).replace(r"\ ", r"\s+") for w in words.split("\n") if w]
    if not parts:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", re.IGNORECASE)


def filter_match(words: str, text: str) -> str | None:
    """The first filtered word or phrase in `text`, if any."""
    pattern = _pattern(words)
    found = pattern.search(text) if pattern is not None else None
    return found.group(0) if found is not None else None


def check_participation(
    user: Actor, community_id: int, known: tuple[str | None, datetime | None] | None = None
) -> str | None:
    """Raise `TimedOut` while the user's timeout runs here; else return their role (`known`:
    their membership's role and timeout, already read)."""
    return check_not_timed_out(user, community_id, known)


def screen_send(
    *,
    channel: Channel,
    author: User,
    text: str,
    client_id: uuid.UUID,
    reply_to: int | None,
) -> bool:
    """Refuse a send the community's rules stop, or hold it for review (`HeldForReview`);
    whether slow mode applies to this send (checked again under the lock).

    In order: a running timeout (`TimedOut`), a blocked word (`Blocked`), slow mode
    (`SlowMode`, moderators exempt), a held word (moderators exempt). One query for a member
    of a channel without slow mode: their role and timeout (none when the channel was fetched
    with them, by `channel_for_member`).
    """
    role = check_participation(author, channel.community_id, channel.viewer_standing)
    community: Community = channel.community
    blocked = filter_match(community.blocked_words, text)
    if blocked is not None:
        raise Blocked(f"Your message was not sent: “{blocked}” is not allowed in this community.")
    if is_moderator_role(role):
        return False
    if channel.slow_mode_seconds:
        slow_mode_check(channel=channel, author=author)
    held_word = filter_match(community.held_words, text)
    if held_word is not None:
        with transaction.atomic():
            held, created = HeldMessage.objects.get_or_create(
                author=author,
                client_id=client_id,
                defaults={
                    "channel": channel,
                    "body": text,
                    "reply_to_id": reply_to,
                    "matched": held_word[:100],
                },
            )
            if created:
                queue_broadcast_on_commit(channel.community_id)
        raise HeldForReview(
            "Your message is pending review: a moderator will approve or reject it.", held.id
        )
    return bool(channel.slow_mode_seconds)


def screen_needs_database(channel: Channel, text: str) -> bool:
    """Whether `screen_send` may read or write the database for this send (slow mode, or a
    held word); if not, it only reads what the channel was fetched with."""
    community: Community = channel.community
    return bool(channel.slow_mode_seconds) or filter_match(community.held_words, text) is not None


def slow_mode_check(*, channel: Channel, author: User) -> None:
    """`SlowMode` if the author's last message in the channel is more recent than its slow
    mode allows. `message_send` asks again under the channel's row lock, so two sends at once
    cannot both pass."""
    last = (
        Message.objects.filter(author_id=author.id, channel_id=channel.id)
        .order_by("-id")
        .values_list("created_at", flat=True)
        .first()
    )
    if last is not None:
        until = last + timedelta(seconds=channel.slow_mode_seconds)
        if until > timezone.now():
            wait = max(1, int((until - timezone.now()).total_seconds() + 0.999))
            raise SlowMode(f"Slow mode: you can post again in {wait} s.", until=until)


# --- The moderators' queue count ------------------------------------------------------------


def queue_counts(community_id: int) -> dict[str, int]:
    """Open reports (messages reported, and reports) and held messages of a community."""
    reports = Report.objects.filter(community_id=community_id, resolved_at__isnull=True).aggregate(
        messages=Count("message", distinct=True), reports=Count("id")
    )
    held = HeldMessage.objects.filter(
        channel__community_id=community_id,
        kind=HeldMessage.Kind.REVIEW,
        status=HeldMessage.Status.PENDING,
    ).count()
    return {"reports": reports["reports"], "reported": reports["messages"], "held": held}


def queue_broadcast_on_commit(community_id: int) -> None:
    """After commit, tell the community's moderators (on their user keys) the queue's counts,
    counted once from the committed state."""
    moderator_ids = list(
        Membership.objects.filter(
            Q(role=Membership.Role.MODERATOR) | Q(role=Membership.Role.OWNER),
            community_id=community_id,
        ).values_list("user_id", flat=True)
    )
    built: list[dict[str, Any]] = []

    def build() -> dict[str, Any]:
        if not built:
            counts = queue_counts(community_id)
            built.append({"type": "moderation.queue", "community": community_id, **counts})
        return built[0]

    for user_id in moderator_ids:
        events.broadcast_on_commit(events.user_key(user_id), build)
