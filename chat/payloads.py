"""The MESSAGE object of the protocol and API, with its HTML from the one message partial."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import User
from chat.models import Attachment, HeldMessage, Message

MESSAGE_PARTIAL = "chat/_message.html"
EXCERPT_LENGTH = 140


def author_payload(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "display_name": user.display_name}


def reactions_summary(message: Message) -> list[dict[str, Any]]:
    """Reactions grouped by emoji, in the order each emoji was first used."""
    if message.is_deleted:
        return []  # a removed message keeps its reactions for a restore, hidden meanwhile
    grouped: dict[str, list[int]] = {}
    for reaction in message.reactions.all():
        grouped.setdefault(reaction.emoji, []).append(reaction.user_id)
    return [{"emoji": e, "count": len(users), "users": users} for e, users in grouped.items()]


def reply_summary(message: Message) -> dict[str, Any] | None:
    parent = message.reply_to
    if parent is None:
        return None
    deleted = parent.is_deleted
    return {
        "id": parent.id,
        "author": author_payload(parent.author),
        "excerpt": "" if deleted else parent.body[:EXCERPT_LENGTH],
        "deleted": deleted,
    }


def attachment_payload(attachment: Attachment) -> dict[str, Any]:
    """An attachment as the MESSAGE object lists it; URLs lead to our permission-checked views."""
    is_image = attachment.is_image
    return {
        "id": str(attachment.id),
        "name": attachment.name,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "is_image": is_image,
        "url": reverse("attachment_download", args=[attachment.id]),
        "thumbnail_url": reverse("attachment_thumbnail", args=[attachment.id])
        if is_image
        else None,
        "width": attachment.width,
        "height": attachment.height,
        "thumbnail_width": attachment.thumbnail_width,
        "thumbnail_height": attachment.thumbnail_height,
    }


def attachments_summary(message: Message) -> list[dict[str, Any]]:
    if message.is_deleted:
        return []
    return [attachment_payload(a) for a in message.attachments.all()]


def render_message(
    message: Message,
    reactions: list[dict[str, Any]] | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> str:
    if reactions is None:
        reactions = reactions_summary(message)
    if attachments is None:
        attachments = attachments_summary(message)
    return render_to_string(
        MESSAGE_PARTIAL,
        {
            "message": message,
            "reactions": reactions,
            "reply": reply_summary(message),
            "attachments": attachments,
        },
    ).strip()


def message_payload(
    message: Message,
    *,
    reactions: list[dict[str, Any]] | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The MESSAGE object. `reactions` and `attachments`, when the caller has them in hand (a
    message just written has no reactions yet), spare reading them again."""
    if reactions is None:
        reactions = reactions_summary(message)
    if attachments is None:
        attachments = attachments_summary(message)
    deleted = message.is_deleted
    return {
        "id": message.id,
        "seq": message.seq,
        "channel": message.channel_id,
        "author": author_payload(message.author),
        "body": "" if deleted else message.body,
        "html": render_message(message, reactions, attachments),
        "created_at": message.created_at,
        "edited_at": message.edited_at,
        "deleted": deleted,
        "removed": message.removed,
        "reply_to": reply_summary(message),
        "reactions": reactions,
        "attachments": attachments,
    }


def flow_status_payload(held: HeldMessage, message: dict[str, Any] | None) -> dict[str, Any]:
    """`message.status`: where a channel flow is with one of the author's messages (pushed to
    the author when it decides, and the answer when their page asks). `message` is the MESSAGE
    object once it was sent."""
    return {
        "type": "message.status",
        "channel": held.channel_id,
        "client_id": str(held.client_id),
        "held": held.id,
        "status": str(held.status),
        "detail": held.detail,
        "message": message,
    }
