"""Moderators' powers over messages: removal and restore, reports and their resolution, held
messages, slow mode, and the clean-up after a spammer.

Each function checks the one policy (`chat.policy`, `communities.policy`), writes its audit log
entry inside its transaction (`communities.services.audit_record`), and tells sockets after
commit. Timeouts and bans are `communities.services` (`membership_timeout`, `membership_ban`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from chat import events, policy, screening
from chat.backends import get_backend
from chat.backends.base import MessagePending
from chat.models import Channel, HeldMessage, Message, Report
from chat.services import _broadcast_message, message_send
from communities.models import AuditEntry, Community
from communities.policy import can_act_on, can_moderate, is_site_moderator
from communities.services import (
    REASON_MAX,
    audit_record,
    membership_ban,
    membership_timeout,
)
from hobbies import metrics
from hobbies.errors import Conflict, Forbidden, Invalid, TooLong

SLOW_MODE_MAX = 6 * 60 * 60
NOTE_MAX = 500


def _clean_reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > REASON_MAX:
        raise TooLong(f"A reason has at most {REASON_MAX} characters.")
    return reason


# --- Removal --------------------------------------------------------------------------------


def _remove(message: Message, by: User, reason: str) -> None:
    message.deleted_at = timezone.now()
    message.deleted_by = by
    message.removed = True
    message.removal_reason = reason
    message.save(update_fields=["deleted_at", "deleted_by", "removed", "removal_reason"])
    get_backend().redact_message(message)
    _broadcast_message(message, "message.deleted")
    metrics.MESSAGE_REMOVALS.inc()


def message_remove(*, message: Message, by: User, reason: str = "") -> Message:
    """Remove a message for everyone: they see "removed by a moderator"; its text and edit
    history stay for the community's moderators until the message is purged."""
    if not policy.can_remove_message(by, message):
        raise Forbidden("Only moderators can remove messages, and not those of their peers.")
    reason = _clean_reason(reason)
    if message.is_deleted:
        raise Conflict("This message is already gone.")
    with transaction.atomic():
        _remove(message, by, reason)
        audit_record(
            community=message.channel.community_id,
            by=by,
            action=AuditEntry.Action.MESSAGE_REMOVE,
            target=message.author,
            message_id=message.id,
            reason=reason,
            undo=AuditEntry.Action.MESSAGE_RESTORE,
            detail={"channel": message.channel_id},
        )
    return message


def message_restore(*, message: Message, by: User) -> Message:
    """Undo a removal: the message shows again, in its place."""
    if not policy.can_remove_message(by, message):
        raise Forbidden("Only moderators can restore messages.")
    if not message.removed:
        raise Conflict("Only a message removed by a moderator can be restored.")
    with transaction.atomic():
        message.deleted_at = None
        message.deleted_by = None
        message.removed = False
        message.removal_reason = ""
        message.save(update_fields=["deleted_at", "deleted_by", "removed", "removal_reason"])
        get_backend().edit_message(message)
        _broadcast_message(message, "message.updated")
        audit_record(
            community=message.channel.community_id,
            by=by,
            action=AuditEntry.Action.MESSAGE_RESTORE,
            target=message.author,
            message_id=message.id,
            detail={"channel": message.channel_id},
        )
    return message


def user_messages_remove(
    *,
    user: User,
    by: User,
    community: Community | None,
    since: datetime | None = None,
    reason: str = "",
    ban: bool = False,
) -> int:
    """Remove every live message of `user` in `community` (every community: site moderators
    only, with `community=None`) written after `since` (None: all), and optionally ban them
    there. One audit entry per community touched. Returns how many were removed."""
    reason = _clean_reason(reason)
    if community is None:
        if not is_site_moderator(by) or not can_act_on(by, 0, user):
            raise Forbidden("Only site moderators clean up across every community.")
    elif not can_moderate(by, community) or not can_act_on(by, community, user):
        raise Forbidden("Only moderators clean up, and not after their peers.")
    messages = Message.objects.live().filter(author=user).select_related("channel")
    if community is not None:
        messages = messages.filter(channel__community=community)
    if since is not None:
        messages = messages.filter(created_at__gte=since)
    with transaction.atomic():
        by_community: dict[int, list[int]] = {}
        for message in messages.select_for_update(of=("self",)).order_by("id"):
            _remove(message, by, reason)
            by_community.setdefault(message.channel.community_id, []).append(message.id)
        touched = by_community if community is None else {community.id: []} | by_community
        for community_id, ids in touched.items():
            audit_record(
                community=community_id,
                by=by,
                action=AuditEntry.Action.CLEANUP,
                target=user,
                reason=reason,
                detail={"messages": ids, "since": since.isoformat() if since else None},
            )
        if ban and community is not None:
            membership_ban(community=community, user=user, by=by, reason=reason)
    return sum(len(ids) for ids in by_community.values())


# --- Reports --------------------------------------------------------------------------------


def report_create(*, message: Message, by: User, reason: str, note: str = "") -> Report:
    """Report a message to the community's moderators; once per member and message."""
    if not policy.can_report_message(by, message):
        raise Forbidden("You cannot report your own message.")
    if reason not in Report.Reason.values:
        raise Invalid("Pick a reason: " + ", ".join(Report.Reason.values) + ".")
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise TooLong(f"A note has at most {NOTE_MAX} characters.")
    if message.is_deleted:
        raise Invalid("This message is already gone.")
    community_id = message.channel.community_id
    with transaction.atomic():
        if Report.objects.filter(message=message, reporter=by).exists():
            raise Conflict("You already reported this message.")
        report = Report.objects.create(
            message=message, reporter=by, community_id=community_id, reason=reason, note=note
        )
        screening.queue_broadcast_on_commit(community_id)
    metrics.REPORTS.inc()
    return report


def report_resolve(
    *,
    message: Message,
    by: User,
    outcome: str,
    reason: str = "",
    until: datetime | None = None,
) -> int:
    """Resolve every open report of a message: remove it, warn, time out or ban its author, or
    dismiss. The reporters are told (a `report.resolved` frame now, a notice on their next
    page). Returns how many reports were resolved."""
    community = message.channel.community
    if not policy.can_review(by, community.id):
        raise Forbidden("Only moderators resolve reports.")
    if outcome not in Report.Outcome.values:
        raise Invalid("Resolve with " + ", ".join(Report.Outcome.values) + ".")
    reason = _clean_reason(reason)
    with transaction.atomic():
        reports = list(
            Report.objects.select_for_update().filter(message=message, resolved_at__isnull=True)
        )
        if not reports:
            raise Conflict("This message has no open reports.")
        if outcome == Report.Outcome.REMOVE and not message.is_deleted:
            message_remove(message=message, by=by, reason=reason)
        elif outcome == Report.Outcome.WARN:
            member_warn(community=community, user=message.author, by=by, reason=reason)
        elif outcome == Report.Outcome.TIMEOUT:
            if until is None:
                raise Invalid("A timeout needs an end.")
            membership_timeout(
                community=community, user=message.author, by=by, until=until, reason=reason
            )
        elif outcome == Report.Outcome.BAN:
            membership_ban(
                community=community, user=message.author, by=by, until=until, reason=reason
            )
        now = timezone.now()
        for report in reports:
            report.outcome, report.resolved_by, report.resolved_at = outcome, by, now
            report.save(update_fields=["outcome", "resolved_by", "resolved_at"])
            _tell_reporter(report)
        audit_record(
            community=community,
            by=by,
            action=AuditEntry.Action.REPORT_RESOLVE,
            target=message.author,
            message_id=message.id,
            reason=reason,
            detail={"outcome": outcome, "reports": len(reports)},
        )
        screening.queue_broadcast_on_commit(community.id)
    return len(reports)


def _tell_reporter(report: Report) -> None:
    payload = {
        "type": "report.resolved",
        "report": report.id,
        "message": report.message_id,
        "outcome": report.outcome,
        "detail": f"Thanks for your report: {report.get_outcome_display().lower()}.",
    }
    events.broadcast_on_commit(events.user_key(report.reporter_id), lambda: payload)


def report_notices_take(*, user: User, community: Community) -> list[str]:
    """The outcomes of the user's resolved reports not yet shown on a page, marked shown."""
    reports = list(
        Report.objects.filter(
            reporter=user, community=community, resolved_at__isnull=False, notified_at__isnull=True
        )
    )
    if reports:
        Report.objects.filter(id__in=[r.id for r in reports], notified_at__isnull=True).update(
            notified_at=timezone.now()
        )
    return [
        f"Your report was handled by a moderator: {r.get_outcome_display().lower()}."
        for r in reports
    ]


def member_warn(*, community: Community, user: User, by: User, reason: str) -> None:
    """Warn a member: an audit entry, and a `warning` frame to their sockets."""
    if not can_moderate(by, community) or not can_act_on(by, community, user):
        raise Forbidden("Only moderators warn members, and not their peers.")
    reason = _clean_reason(reason)
    with transaction.atomic():
        audit_record(
            community=community, by=by, action=AuditEntry.Action.WARN, target=user, reason=reason
        )
        payload = {
            "type": "warning",
            "community": community.id,
            "detail": reason or "A moderator warned you about a message.",
        }
        events.broadcast_on_commit(events.user_key(user.id), lambda: payload)


# --- Held messages --------------------------------------------------------------------------


def held_decide(*, held: HeldMessage, by: User, approve: bool) -> HeldMessage:
    """Approve a held message (it is sent now and takes the next position in its channel) or
    reject it. The author is told either way (`held.decided`)."""
    channel = held.channel
    if not policy.can_review(by, channel.community_id):
        raise Forbidden("Only moderators review held messages.")
    with transaction.atomic():
        locked = HeldMessage.objects.select_for_update().get(id=held.id)
        if locked.kind != HeldMessage.Kind.REVIEW:
            raise Conflict("The messaging service's channel flow decides this message.")
        if locked.status != HeldMessage.Status.PENDING:
            raise Conflict("This message was already reviewed.")
        status = HeldMessage.Status.APPROVED if approve else HeldMessage.Status.REJECTED
        if approve:
            try:
                sent = message_send(
                    channel=channel,
                    author=held.author,
                    body=held.body,
                    client_id=held.client_id,
                    reply_to=held.reply_to_id,
                    screen=False,
                )
                locked.message = sent.message
            except MessagePending:
                # Approved here, now held by the messaging service's channel flow: the row is
                # that flow's now (kind `flow`, pending), decided by its outcome.
                locked.refresh_from_db()
                status = HeldMessage.Status.PENDING
        locked.status = status
        locked.decided_by, locked.decided_at = by, timezone.now()
        locked.save(update_fields=["status", "decided_by", "decided_at", "message"])
        audit_record(
            community=channel.community_id,
            by=by,
            action=AuditEntry.Action.HELD_APPROVE if approve else AuditEntry.Action.HELD_REJECT,
            target=held.author,
            message_id=locked.message_id,
            detail={"channel": channel.id, "held": held.id, "matched": held.matched},
        )
        payload: dict[str, Any] = {
            "type": "held.decided",
            "held": held.id,
            "client_id": str(held.client_id),
            "channel": channel.id,
            "approved": approve,
            "message": locked.message_id,
        }
        events.broadcast_on_commit(events.user_key(held.author_id), lambda: payload)
        screening.queue_broadcast_on_commit(channel.community_id)
    return locked


# --- Channel settings -----------------------------------------------------------------------


def channel_slow_mode_set(*, channel: Channel, by: User, seconds: int) -> Channel:
    """One message per `seconds` per member (0: off; at most 6 hours); moderators are exempt."""
    if not policy.can_manage_channel(by, channel):
        raise Forbidden("Only moderators set slow mode.")
    if not 0 <= seconds <= SLOW_MODE_MAX:
        raise Invalid(f"Slow mode is 0 (off) to {SLOW_MODE_MAX} seconds.")
    with transaction.atomic():
        before = channel.slow_mode_seconds
        channel.slow_mode_seconds = seconds
        channel.save(update_fields=["slow_mode_seconds"])
        audit_record(
            community=channel.community_id,
            by=by,
            action=AuditEntry.Action.SLOW_MODE,
            detail={
                "channel": channel.id,
                "name": channel.name,
                "seconds": seconds,
                "before": before,
            },
        )
        payload = {"type": "channel.updated", "channel": channel.id, "slow_mode": seconds}
        events.broadcast_on_commit(events.channel_key(channel.id), lambda: payload)
    return channel
