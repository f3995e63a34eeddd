"""The channel page, its plain-form actions, and the JSON API (session auth)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.selectors import me
from chat import attachments, moderation, policy, screening, selectors, services, storage
from chat.models import Attachment
from chat.payloads import render_message
from chat.presence import online_ids
from chat.replay import stored_payloads_page
from communities import selectors as community_selectors
from communities.policy import can_moderate, is_moderator_role, role_with
from hobbies import metrics
from hobbies.errors import DomainError, HeldForReview, Invalid, NotFound
from hobbies.http import domain_errors, request_data
from hobbies.parsing import (
    clean_text,
    optional_id,
    parse_count,
    parse_form_text,
    parse_id,
    parse_text,
    parse_uuid,
    parse_uuid_list,
)

# --- Pages ----------------------------------------------------------------------------------


@domain_errors
def community_page(request: HttpRequest, slug: str) -> HttpResponse:
    """A community's home: members go on to its first channel, others see how to join."""
    user = me(request)
    item = community_selectors.community_for_viewer(user, slug)
    membership = community_selectors.membership_of(user, item)
    context: dict[str, Any] = {
        "community": item,
        "membership": membership,
        "can_moderate": can_moderate(user, item),
    }
    if membership is not None:
        channels = selectors.channels_for_user(user, item.id)
        if channels and request.GET.get("about") is None:
            general = next((c for c in channels if c["name"] == "general"), channels[0])
            return redirect(general["url"])
        context["channels"] = channels
        context["archived_channels"] = selectors.channels_for_user(user, item.id, archived=True)
        context["join_requests"] = community_selectors.pending_request_count(user, item)
    elif user.is_authenticated:
        context["pending_request"] = community_selectors.join_request_pending(item, user)
    context["member_count"] = item.memberships.count()
    return render(request, "communities/community.html", context)


@login_required
@require_POST
@domain_errors
def channel_new(request: HttpRequest, slug: str) -> HttpResponse:
    """Create a channel, from the community's manage page."""
    user = me(request)
    item, _ = community_selectors.community_for_moderator(user, slug)
    channel = services.channel_create(
        community=item,
        name=request.POST.get("name", ""),
        topic=parse_form_text(request.POST.get("topic"), "A topic"),
        kind=request.POST.get("kind", "open"),
        by=user,
    )
    messages.success(request, f"#{channel.name} was created.")
    return redirect("community_manage", slug=slug)


@login_required
@domain_errors
def channel_page(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    user = me(request)
    channel = selectors.channel_by_name_for_member(user, slug, name)
    community = channel.community
    membership = community_selectors.membership_of(user, community)
    role = role_with(user, membership)
    rows, has_more = selectors.messages_page(channel, limit=settings.CHAT_PAGE_SIZE)
    member = selectors.channel_member(user, channel)
    last_read = member.last_read_id if member else 0
    divider_before = next((m.id for m in rows if m.id > last_read and m.author_id != user.id), None)
    members = list(community_selectors.community_members(community))
    online = online_ids(m.user_id for m in members)
    all_channels = selectors.channels_for_user(user)
    for notice in moderation.report_notices_take(user=user, community=community):
        messages.info(request, notice)
    timeout_until = membership.timeout_until if membership is not None else None
    if timeout_until is not None and timeout_until <= timezone.now():
        timeout_until = None
    context = {
        "channel": channel,
        "community": community,
        "membership": membership,
        "messages_html": [(m.id, render_message(m)) for m in rows],
        "has_more": has_more,
        "last_read_id": last_read,
        "divider_before": divider_before,
        "last_id": rows[-1].id if rows else 0,
        "last_seq": rows[-1].seq if rows else 0,
        "channels": [c for c in all_channels if c["community"]["id"] == community.id],
        "members": members,
        "online": online,
        "max_length": settings.CHAT_MESSAGE_MAX_LENGTH,
        "can_post": policy.can_post(user, channel, role=role) and policy.is_writable(channel),
        "can_moderate": is_moderator_role(role),
        "join_requests": (
            community_selectors.pending_request_count(user, community)
            if is_moderator_role(role)
            else None
        ),
        "queue": screening.queue_counts(community.id) if is_moderator_role(role) else None,
        "timeout_until": timeout_until,
        "new_client_id": uuid.uuid4(),
        "reply_to": request.GET.get("reply_to", ""),
    }
    return render(request, "chat/channel.html", context)


@login_required
@require_POST
@domain_errors
def channel_post(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """The plain-form way to post (no JavaScript needed)."""
    user = me(request)
    channel = selectors.channel_by_name_for_member(user, slug, name)
    try:
        screening.check_participation(user, channel.community_id)  # before any upload
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect(channel.get_absolute_url() + "#composer")
    largest = settings.ATTACHMENT_MAX_PER_MESSAGE * settings.ATTACHMENT_MAX_BYTES
    if _content_length(request) > largest + FORM_OVERHEAD:
        messages.error(request, "These files are too large to send together.")
        return redirect(channel.get_absolute_url() + "#composer")
    reply_to = request.POST.get("reply_to", "")
    uploaded: list[Attachment] = []
    try:
        # Files sent with the form (no JavaScript), and ids of files uploaded beforehand.
        files = [f for f in request.FILES.getlist("files") if f.name]
        ids = parse_uuid_list(request.POST.getlist("attachments"), "attachments")
        attachments.attachment_ids_check([*ids, *(uuid.uuid4() for _ in files)])
        for upload in files:
            # One by one, so that those made before a failure are known and removed.
            uploaded.append(attachments.attachment_upload_direct(uploader=user, file=upload))  # noqa: PERF401
        client_id = request.POST.get("client_id")
        services.message_send(
            channel=channel,
            author=user,
            body=request.POST.get("body", ""),
            client_id=parse_uuid(client_id, "client_id") if client_id else uuid.uuid4(),
            reply_to=parse_id(reply_to),
            attachments=[*ids, *(a.id for a in uploaded)],
        )
    except HeldForReview as exc:
        messages.info(request, exc.detail)
    except DomainError as exc:
        metrics.send_failed(exc.code)
        for attachment in uploaded:
            attachments.attachment_delete(attachment=attachment, by=user)
        messages.error(request, exc.detail)
    return redirect(channel.get_absolute_url() + "#composer")


@login_required
@domain_errors
def channel_settings(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """Topic, name, archiving, deletion and members of a channel; private channels are joined
    by invitation here."""
    user = me(request)
    channel = selectors.channel_for_settings(user, slug, name)
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "add":
            target = community_selectors.member_of(
                channel.community, parse_id(request.POST.get("user"))
            )
            services.channel_member_add(channel=channel, user=target, by=user)
            messages.success(
                request, f"\u2068{target.display_name}\u2069 can now read #{channel.name}."
            )
        elif action == "remove":
            target = community_selectors.member_of(
                channel.community, parse_id(request.POST.get("user"))
            )
            services.channel_member_remove(channel=channel, user=target, by=user)
            messages.success(
                request, f"\u2068{target.display_name}\u2069 was removed from #{channel.name}."
            )
            if target == user:
                return redirect(channel.community.get_absolute_url())
        elif action == "topic":
            services.channel_update(
                channel=channel,
                by=user,
                topic=parse_form_text(request.POST.get("topic"), "A topic"),
            )
            messages.success(request, "Topic saved.")
        elif action == "rename":
            services.channel_rename(
                channel=channel, by=user, name=parse_form_text(request.POST.get("name"), "A name")
            )
            messages.success(request, f"Renamed to #{channel.name}.")
        elif action in ("archive", "unarchive"):
            if action == "archive":
                services.channel_archive(channel=channel, by=user)
                messages.success(request, f"#{channel.name} is archived: read-only and hidden.")
            else:
                services.channel_unarchive(channel=channel, by=user)
                messages.success(request, f"#{channel.name} is open again.")
        elif action == "delete":
            typed = clean_text(request.POST.get("confirm"), max_length=60).lstrip("#")
            if typed != channel.name:
                raise Invalid(f"Type the channel's name, {channel.name}, to delete it.")
            services.channel_delete(channel=channel, by=user)
            messages.success(request, f"#{typed} was deleted.")
            return redirect("community_manage", slug=slug)
        else:
            raise Invalid("Unknown action.")
        return redirect("channel_settings", slug=slug, name=channel.name)
    members = selectors.channel_members(channel)
    member_ids = {m.user_id for m in members}
    return render(
        request,
        "chat/channel_settings.html",
        {
            "channel": channel,
            "community": channel.community,
            "members": members,
            "candidates": [
                m
                for m in community_selectors.community_members(channel.community)
                if m.user_id not in member_ids
            ],
            "can_moderate": policy.can_manage_channel(user, channel),
            "can_delete": policy.can_delete_channel(user, channel),
        },
    )


# --- JSON API -------------------------------------------------------------------------------


def api_view(
    view: Callable[..., dict[str, Any] | tuple[dict[str, Any], int] | HttpResponse],
) -> Callable[..., HttpResponse]:
    """JSON in, JSON out; a domain error becomes `{"error": {"code", "detail"}}` with its status.
    A view may also return a response it made itself (JSON already encoded)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return JsonResponse(
                {"error": {"code": "unauthenticated", "detail": "Log in first."}}, status=401
            )
        try:
            result = view(request, *args, **kwargs)
        except DomainError as exc:
            return JsonResponse(
                {"error": {"code": exc.code, "detail": exc.detail, **exc.extra}},
                status=exc.status,
            )
        if isinstance(result, HttpResponse):
            return result
        body, status = result if isinstance(result, tuple) else (result, 200)
        return JsonResponse(body, status=status)

    return wrapper


MAX_PAGE_SIZE = 200


def _query_int(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name, "")
    return None if raw == "" else parse_count(raw, name)


@require_http_methods(["GET"])
@api_view
def api_channels(request: HttpRequest) -> dict[str, Any]:
    return {"channels": selectors.channels_for_user(me(request))}


@require_http_methods(["GET", "POST"])
@api_view
def api_messages(
    request: HttpRequest, channel_id: int
) -> tuple[dict[str, Any], int] | HttpResponse:
    channel = selectors.channel_for_member(me(request), channel_id)
    if request.method == "POST":
        data, _ = request_data(request, lists=["attachments"])
        try:
            sent = services.message_send(
                channel=channel,
                author=me(request),
                body=parse_text(data.get("body"), "body", default=""),
                client_id=parse_uuid(data.get("client_id"), "client_id"),
                reply_to=optional_id(data.get("reply_to"), "reply_to"),
                attachments=parse_uuid_list(data.get("attachments"), "attachments"),
            )
        except DomainError as exc:
            if not isinstance(exc, HeldForReview):  # held, not refused
                metrics.send_failed(exc.code)
            raise
        return {"message": sent.payload}, 201 if sent.created else 200
    before, after = _query_int(request, "before"), _query_int(request, "after")
    if before is not None and after is not None:
        raise Invalid("Give before or after, not both.")
    limit = _query_int(request, "limit")
    if limit is None:
        limit = settings.CHAT_PAGE_SIZE
    elif not 1 <= limit <= MAX_PAGE_SIZE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE_SIZE}.")
    # Served from the stored renderings, as replays are: a read, not a render per message, and
    # the stored JSON goes out as it is.
    page, has_more = stored_payloads_page(channel, before=before, after=after, limit=limit)
    messages = ",".join(payload for _, _, payload in page)
    body = f'{{"messages":[{messages}],"has_more":{"true" if has_more else "false"}}}'
    return HttpResponse(body, content_type="application/json")


# --- Attachments ----------------------------------------------------------------------------

FORM_OVERHEAD = 256 * 1024  # multipart boundaries, headers and the form's other fields


def _content_length(request: HttpRequest) -> int:
    raw = request.META.get("CONTENT_LENGTH") or "0"
    return int(raw) if raw.isascii() and raw.isdigit() else 0


def _attachment_body(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": str(attachment.id),
        "name": attachment.name,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "status": attachment.status,
        "is_image": attachment.is_image,
        "width": attachment.width,
        "height": attachment.height,
    }


@require_http_methods(["POST"])
@api_view
def api_attachment_start(request: HttpRequest) -> tuple[dict[str, Any], int]:
    data, _ = request_data(request, lists=["attachments"])
    attachment, target = attachments.attachment_start(
        uploader=me(request),
        name=parse_text(data.get("name"), "name"),
        size=parse_count(data.get("size"), "size"),
        content_type=parse_text(data.get("content_type"), "content_type", default=""),
    )
    upload = {"method": "POST", "url": target.url, "fields": target.fields, "file_field": "file"}
    return {"attachment": _attachment_body(attachment), "upload": upload}, 201


@csrf_exempt  # the signed token in the form stands in for the CSRF token, like an S3 policy
@require_http_methods(["POST"])
@api_view
def api_attachment_upload(
    request: HttpRequest, attachment_id: uuid.UUID
) -> tuple[dict[str, Any], int]:
    """The local upload target (the S3 path uploads to the bucket instead)."""
    user = me(request)
    attachment = attachments.attachment_for_uploader(user, attachment_id)
    # Refuse an oversized body before Django reads it into a temporary file.
    if _content_length(request) > attachment.size + FORM_OVERHEAD:
        raise Invalid(f"The file has more than the {attachment.size} bytes announced.")
    token = request.POST.get("token", "")
    if storage.is_s3() or not storage.upload_token_valid(
        token, attachment_id=attachment.id, key=attachment.key
    ):
        raise Invalid("This upload link is invalid or has expired; start the upload again.")
    upload = request.FILES.get("file")
    if upload is None:
        raise Invalid("Send the file in the `file` field of a multipart form.")
    attachments.attachment_upload(
        attachment=attachment, by=user, file=upload, size=upload.size or 0
    )
    return {"attachment": _attachment_body(attachment)}, 201


@require_http_methods(["POST"])
@api_view
def api_attachment_confirm(request: HttpRequest, attachment_id: uuid.UUID) -> dict[str, Any]:
    user = me(request)
    attachment = attachments.attachment_for_uploader(user, attachment_id)
    attachment = attachments.attachment_confirm(attachment=attachment, by=user)
    return {"attachment": _attachment_body(attachment)}


@require_http_methods(["DELETE"])
@api_view
def api_attachment_delete(request: HttpRequest, attachment_id: uuid.UUID) -> dict[str, Any]:
    user = me(request)
    attachment = attachments.attachment_for_uploader(user, attachment_id)
    attachments.attachment_delete(attachment=attachment, by=user)
    return {"deleted": str(attachment_id)}


@login_required
@require_GET
@domain_errors
def attachment_download(request: HttpRequest, attachment_id: uuid.UUID) -> HttpResponse:
    """The file, for members of the message's channel; images show inline, the rest downloads."""
    attachment = selectors.attachment_for_member(me(request), attachment_id)
    return _served(
        attachment.key,
        filename=attachment.name,
        content_type=attachment.content_type,
        inline=attachment.is_image,
    )


@login_required
@require_GET
@domain_errors
def attachment_thumbnail(request: HttpRequest, attachment_id: uuid.UUID) -> HttpResponse:
    attachment = selectors.attachment_for_member(me(request), attachment_id)
    if not attachment.is_image:
        raise NotFound("This attachment has no thumbnail.")
    stem = attachment.name.rsplit(".", 1)[0] or "thumbnail"
    return _served(
        attachment.thumbnail_key,
        filename=f"{stem}.webp",
        content_type="image/webp",
        inline=True,
    )


def _served(key: str, **kwargs: Any) -> HttpResponse:
    # A FileResponse streams rather than subclassing HttpResponse; the views' wrappers treat
    # both alike.
    return cast(HttpResponse, storage.download_response(key, **kwargs))
