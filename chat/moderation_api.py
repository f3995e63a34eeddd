"""The moderation actions as the edge sees them: one parser and fetch per action, shared by the
socket (a frame's `type`), the JSON API (`POST /api/moderation/` with `action`) and the pages'
forms (`action` field). Each parses its fields with `hobbies.parsing`, fetches with the
permission-checked selectors, and calls one service; the services check the policy again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.models import User
from chat import moderation, selectors
from chat.models import HeldMessage
from communities import selectors as community_selectors
from communities import services as community_services
from communities.models import Community
from communities.policy import can_moderate
from hobbies.errors import Invalid, NotFound
from hobbies.parsing import parse_count, parse_id, parse_text

Data = Mapping[str, Any]
WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "all": None}


def _text(data: Data, name: str) -> str:
    return parse_text(data.get(name), name, default="")


def _count(data: Data, name: str, text: bool) -> int | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    return parse_count(value, name, text=text)


def _community(user: User, data: Data, text: bool) -> Community:
    """The community named by `community` (its slug, or its id in frames) that the user
    moderates; anyone else gets `NotFound` or `Forbidden` from the fetch."""
    value = data.get("community")
    if isinstance(value, str) and not value.isdigit():
        community, _ = community_selectors.community_for_moderator(user, value)
        return community
    found = Community.objects.filter(id=parse_id(value) or 0).first()
    if found is None or not can_moderate(user, found):
        raise NotFound("No such community.")
    return found


def _user(data: Data) -> User:
    target = User.objects.filter(id=parse_id(data.get("user")) or 0).first()
    if target is None:
        raise NotFound("No such user.")
    return target


def _minutes(data: Data, text: bool) -> timedelta:
    minutes = _count(data, "minutes", text)
    if minutes is None:
        raise Invalid("minutes: how long the timeout lasts (10 to 40320).")
    return timedelta(minutes=minutes)


def _days(data: Data, text: bool) -> timedelta | None:
    days = _count(data, "days", text)
    return timedelta(days=days) if days else None


def remove(user: User, data: Data, text: bool) -> dict[str, Any]:
    message = selectors.message_for_moderator(user, parse_id(data.get("message")))
    moderation.message_remove(message=message, by=user, reason=_text(data, "reason"))
    return {"message": message.id}


def restore(user: User, data: Data, text: bool) -> dict[str, Any]:
    message = selectors.message_for_moderator(user, parse_id(data.get("message")))
    moderation.message_restore(message=message, by=user)
    return {"message": message.id}


def report(user: User, data: Data, text: bool) -> dict[str, Any]:
    message = selectors.message_for_member(user, parse_id(data.get("message")))
    created = moderation.report_create(
        message=message, by=user, reason=_text(data, "reason"), note=_text(data, "note")
    )
    return {"message": message.id, "report": created.id}


def resolve(user: User, data: Data, text: bool) -> dict[str, Any]:
    message = selectors.message_for_moderator(user, parse_id(data.get("message")))
    outcome = _text(data, "outcome")
    now = timezone.now()
    until = None
    if outcome == "timeout":
        until = now + _minutes(data, text)
    elif outcome == "ban":
        days = _days(data, text)
        until = now + days if days else None
    count = moderation.report_resolve(
        message=message, by=user, outcome=outcome, reason=_text(data, "reason"), until=until
    )
    return {"message": message.id, "resolved": count, "outcome": outcome}


def timeout(user: User, data: Data, text: bool) -> dict[str, Any]:
    community = _community(user, data, text)
    target = community_selectors.member_of(community, parse_id(data.get("user")))
    until = timezone.now() + _minutes(data, text)
    community_services.membership_timeout(
        community=community, user=target, by=user, until=until, reason=_text(data, "reason")
    )
    return {"user": target.id, "until": until.isoformat()}


def timeout_end(user: User, data: Data, text: bool) -> dict[str, Any]:
    community = _community(user, data, text)
    target = community_selectors.member_of(community, parse_id(data.get("user")))
    community_services.membership_timeout_end(community=community, user=target, by=user)
    return {"user": target.id}


def ban(user: User, data: Data, text: bool) -> dict[str, Any]:
    community = _community(user, data, text)
    target = _user(data)
    days = _days(data, text)
    until = timezone.now() + days if days else None
    community_services.membership_ban(
        community=community, user=target, by=user, until=until, reason=_text(data, "reason")
    )
    return {"user": target.id, "until": until.isoformat() if until else None}


def unban(user: User, data: Data, text: bool) -> dict[str, Any]:
    community = _community(user, data, text)
    target = _user(data)
    community_services.membership_unban(community=community, user=target, by=user)
    return {"user": target.id}


def cleanup(user: User, data: Data, text: bool) -> dict[str, Any]:
    """`community` omitted (or "*"): every community (site moderators only)."""
    everywhere = data.get("community") in (None, "", "*")
    community = None if everywhere else _community(user, data, text)
    window = _text(data, "window") or "all"
    if window not in WINDOWS:
        raise Invalid("window is hour, day or all.")
    span = WINDOWS[window]
    ban_too = data.get("ban") in (True, "1", "on", "true")
    removed = moderation.user_messages_remove(
        user=_user(data),
        by=user,
        community=community,
        since=timezone.now() - span if span else None,
        reason=_text(data, "reason"),
        ban=ban_too,
    )
    return {"removed": removed}


def slow_mode(user: User, data: Data, text: bool) -> dict[str, Any]:
    channel = selectors.channel_for_moderator(user, parse_id(data.get("channel")))
    seconds = _count(data, "seconds", text) or 0
    moderation.channel_slow_mode_set(channel=channel, by=user, seconds=seconds)
    return {"channel": channel.id, "seconds": seconds}


def word_filter(user: User, data: Data, text: bool) -> dict[str, Any]:
    community = _community(user, data, text)
    community_services.community_filter_set(
        community=community,
        by=user,
        blocked_words=_text(data, "blocked"),
        held_words=_text(data, "held"),
    )
    return {"blocked": community.blocked_words, "held": community.held_words}


def _decide(approve: bool) -> Callable[[User, Data, bool], dict[str, Any]]:
    def decide(user: User, data: Data, text: bool) -> dict[str, Any]:
        held = selectors.held_for_moderator(user, parse_id(data.get("held")))
        decided: HeldMessage = moderation.held_decide(held=held, by=user, approve=approve)
        return {"held": held.id, "message": decided.message_id}

    return decide


ACTIONS: dict[str, Callable[[User, Data, bool], dict[str, Any]]] = {
    "message.remove": remove,
    "message.restore": restore,
    "message.report": report,
    "report.resolve": resolve,
    "member.timeout": timeout,
    "member.timeout_end": timeout_end,
    "member.ban": ban,
    "member.unban": unban,
    "member.cleanup": cleanup,
    "channel.slow_mode": slow_mode,
    "community.filter": word_filter,
    "held.approve": _decide(True),
    "held.reject": _decide(False),
}


def perform(user: User, action: str, data: Data, *, text: bool) -> dict[str, Any]:
    """Run one moderation action for `user`. `text`: the values came from a form (digits as
    text); frames and JSON bodies carry JSON numbers."""
    handler = ACTIONS.get(action)
    if handler is None:
        raise Invalid(f"Unknown action {action[:40]!r}.")
    if not user.is_authenticated:
        raise NotFound("Log in first.")
    return {"action": action, **handler(user, data, text)}
