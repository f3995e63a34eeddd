"""Moderators' pages (the queue, the audit log, a removed message), the report form, and the
moderation JSON API. Every action goes through `chat.moderation_api.perform`, as the socket's
moderation frames do."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.selectors import me
from chat import moderation_api, selectors
from chat.models import Report
from chat.payloads import author_payload, message_payload
from chat.screening import queue_counts
from chat.views import api_view
from communities import selectors as community_selectors
from communities.models import AuditEntry, Ban, Community
from hobbies.errors import Invalid, NotFound
from hobbies.http import domain_errors, request_data, safe_next
from hobbies.parsing import parse_id

DONE = {
    "message.remove": "The message was removed.",
    "message.restore": "The message was restored.",
    "message.report": "Thanks: the moderators will look at it.",
    "report.resolve": "Reports resolved.",
    "member.timeout": "The member is timed out.",
    "member.timeout_end": "The timeout has ended.",
    "member.ban": "The user is banned.",
    "member.unban": "The ban was lifted.",
    "member.cleanup": "Their messages were removed.",
    "channel.slow_mode": "Slow mode saved.",
    "community.filter": "Word filter saved.",
    "held.approve": "The message was approved and posted.",
    "held.reject": "The message was rejected.",
}


# --- Pages ----------------------------------------------------------------------------------


@login_required
@require_POST
@domain_errors
def moderation_action(request: HttpRequest, slug: str) -> HttpResponse:
    """Every moderator's form posts here with `action`; back to `next` (or the queue)."""
    user = me(request)
    community, _ = community_selectors.community_for_moderator(user, slug)
    action = request.POST.get("action", "")
    data = {**request.POST.dict(), "community": community.slug}
    moderation_api.perform(user, action, data, text=True)
    messages.success(request, DONE.get(action, "Done."))
    target = request.POST.get("next", "")
    return redirect(safe_next(request, target) if target else f"/c/{community.slug}/moderation/")


@login_required
@require_GET
@domain_errors
def queue_page(request: HttpRequest, slug: str) -> HttpResponse:
    user = me(request)
    community, _ = community_selectors.community_for_moderator(user, slug)
    return render(
        request,
        "chat/moderation_queue.html",
        {
            "community": community,
            "reported": selectors.reported_messages(community),
            "held": selectors.held_messages(community),
            "counts": queue_counts(community.id),
            "outcomes": Report.Outcome.choices,
            "bans": Ban.objects.active().filter(community=community).select_related("user"),
        },
    )


@login_required
@require_GET
@domain_errors
def audit_page(request: HttpRequest, slug: str) -> HttpResponse:
    user = me(request)
    community, _ = community_selectors.community_for_moderator(user, slug)
    before = parse_id(request.GET.get("before"))
    entries = selectors.audit_log(community, before=before)
    return render(
        request,
        "chat/moderation_log.html",
        {"community": community, "entries": entries, "older": entries[-1].id if entries else 0},
    )


@login_required
@require_GET
@domain_errors
def removed_message_page(request: HttpRequest, slug: str, message_id: int) -> HttpResponse:
    """A message as its community's moderators see it: its text (removed or not), the reason,
    and its edit history."""
    message = selectors.message_for_moderator(me(request), message_id)
    if message.channel.community.slug != slug:
        raise NotFound("No such message.")
    return render(
        request,
        "chat/moderation_message.html",
        {
            "community": message.channel.community,
            "message": message,
            "revisions": list(message.revisions.all()),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
@domain_errors
def report_page(request: HttpRequest, message_id: int) -> HttpResponse:
    """The report form (the chat page opens the same as a dialog)."""
    user = me(request)
    message = selectors.message_for_member(user, message_id)
    if request.method == "POST":
        data = {**request.POST.dict(), "message": message.id}
        moderation_api.perform(user, "message.report", data, text=True)
        messages.success(request, DONE["message.report"])
        return redirect(message.channel.get_absolute_url())
    return render(
        request,
        "chat/report.html",
        {
            "message": message,
            "reasons": Report.Reason.choices,
            "community": message.channel.community,
        },
    )


# --- JSON API -------------------------------------------------------------------------------


@require_http_methods(["POST"])
@api_view
def api_moderation(request: HttpRequest) -> dict[str, Any]:
    """`{"action": ACTION, ...fields}`: the socket's moderation frames, over HTTP."""
    data, text = request_data(request)
    action = data.get("action")
    if not isinstance(action, str):
        raise Invalid("action must be text.")
    return moderation_api.perform(me(request), action, data, text=text)


def _moderated(request: HttpRequest, slug: str) -> Community:
    community, _ = community_selectors.community_for_moderator(me(request), slug)
    return community


@require_http_methods(["GET"])
@api_view
def api_queue(request: HttpRequest, slug: str) -> dict[str, Any]:
    community = _moderated(request, slug)
    return {
        "counts": queue_counts(community.id),
        "reported": [
            {
                "message": message_payload(item["message"]),
                "reports": item["count"],
                "reasons": [r.reason for r in item["reports"]],
                "notes": [r.note for r in item["reports"] if r.note],
                "context": [message_payload(m) for m in item["context"]],
            }
            for item in selectors.reported_messages(community)
        ],
        "held": [
            {
                "id": h.id,
                "channel": h.channel_id,
                "author": author_payload(h.author),
                "body": h.body,
                "matched": h.matched,
                "created_at": h.created_at,
            }
            for h in selectors.held_messages(community)
        ],
    }


def audit_payload(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "action": entry.action,
        "actor": author_payload(entry.actor) if entry.actor else None,
        "target": author_payload(entry.target) if entry.target else None,
        "message": entry.message_id,
        "reason": entry.reason,
        "detail": entry.detail,
        "undo": entry.undo or None,
        "created_at": entry.created_at,
    }


@require_http_methods(["GET"])
@api_view
def api_audit(request: HttpRequest, slug: str) -> dict[str, Any]:
    community = _moderated(request, slug)
    before = parse_id(request.GET.get("before"))
    return {"entries": [audit_payload(e) for e in selectors.audit_log(community, before=before)]}


@require_http_methods(["GET"])
@api_view
def api_message_moderation(request: HttpRequest, message_id: int) -> dict[str, Any]:
    """A message's text and edit history for its community's moderators, removed or not."""
    message = selectors.message_for_moderator(me(request), message_id)
    return {
        "id": message.id,
        "channel": message.channel_id,
        "author": author_payload(message.author),
        "body": message.body,
        "removed": message.removed,
        "deleted": message.is_deleted,
        "removal_reason": message.removal_reason,
        "removed_by": author_payload(message.deleted_by) if message.deleted_by else None,
        "revisions": [
            {"body": r.body, "replaced_at": r.replaced_at} for r in message.revisions.all()
        ],
    }
