"""Django admin for channels and message moderation (through the chat services), scoped to the
communities the admin user moderates (`communities.admin_scope`)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from chat import moderation, overview, services
from chat.models import Attachment, Channel, HeldMessage, Message, MessageRevision, Report
from communities.admin_scope import CommunityScopedAdmin, ScopedRelatedFilter
from hobbies.admin_base import ReadOnlyAdmin, each, report
from hobbies.errors import DomainError


@admin.register(Channel)
class ChannelAdmin(CommunityScopedAdmin):
    """Channels are made and changed on the site, by community moderators; read here."""

    list_display = ["name", "community", "kind", "topic", "slow_mode_seconds", "last_message_id"]
    list_filter = ["kind", ("community", ScopedRelatedFilter)]
    search_fields = ["name", "topic", "community__name"]
    list_select_related = ["community"]


class RevisionInline(admin.TabularInline):
    model = MessageRevision
    extra = 0
    can_delete = False
    readonly_fields = ["body", "replaced_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AttachmentInline(admin.TabularInline):
    """A deleted message's files stay listed here until `purge_attachments` removes them."""

    model = Attachment
    extra = 0
    can_delete = False
    fields = ["name", "content_type", "size", "uploader", "created_at"]
    readonly_fields = ["name", "content_type", "size", "uploader", "created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(CommunityScopedAdmin):
    """Search by text, author or channel; filter by community, date, removed. "Delete" leaves
    a tombstone and removal keeps the text: both are actions, through the services."""

    community_path = "channel__community"
    list_display = [
        "id",
        "channel",
        "author",
        "short_body",
        "created_at",
        "edited_at",
        "deleted_at",
        "removed",
    ]
    list_filter = [
        "removed",
        ("deleted_at", admin.EmptyFieldListFilter),
        ("channel__community", ScopedRelatedFilter),
        "created_at",
    ]
    search_fields = ["body", "author__username", "channel__name"]
    list_select_related = ["channel__community", "author"]
    inlines = [RevisionInline, AttachmentInline]
    actions = ["delete_messages", "remove_messages", "restore_messages"]

    @admin.display(description="Body")
    def short_body(self, obj: Message) -> str:
        if obj.removed:
            return f"(removed) {obj.body[:70]}"
        return obj.body[:80] if not obj.is_deleted else "(deleted)"

    @admin.action(
        description="Delete the selected messages (leave a tombstone)", permissions=["change"]
    )
    def delete_messages(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        by: Any = request.user
        each(
            self,
            request,
            queryset.select_related("channel__community"),
            lambda m: services.message_delete(message=m, by=by),
            label=lambda m: f"#{m.id}",
            summary="{done} message(s) deleted.",
        )

    @admin.action(
        description="Remove the selected messages as a moderator (text kept)",
        permissions=["change"],
    )
    def remove_messages(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        by: Any = request.user
        each(
            self,
            request,
            queryset.select_related("channel__community", "author"),
            lambda m: moderation.message_remove(message=m, by=by),
            label=lambda m: f"#{m.id}",
            summary="{done} message(s) removed.",
        )

    @admin.action(description="Restore the selected removed messages", permissions=["change"])
    def restore_messages(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        by: Any = request.user
        each(
            self,
            request,
            queryset.select_related("channel__community", "author"),
            lambda m: moderation.message_restore(message=m, by=by),
            label=lambda m: f"#{m.id}",
        )


@admin.register(Report)
class ReportAdmin(CommunityScopedAdmin):
    """Open reports first. Resolving one resolves every open report of its message (as the
    queue does); warnings, timeouts and bans take a length and are given on the queue page."""

    list_display = ["message", "community", "reporter", "reason", "created_at", "outcome"]
    list_filter = ["reason", "outcome", ("community", ScopedRelatedFilter)]
    list_select_related = ["message__author", "community", "reporter"]

    def get_ordering(self, request: HttpRequest) -> Any:
        return [F("resolved_at").asc(nulls_first=True), "-created_at"]

    actions = ["resolve_remove", "resolve_dismiss"]

    def _resolve(self, request: HttpRequest, queryset: QuerySet[Report], outcome: str) -> None:
        done, errors, seen = 0, [], set()
        reports = queryset.filter(resolved_at__isnull=True)
        for item in reports.select_related("message__channel__community", "message__author"):
            if item.message_id in seen:
                continue
            seen.add(item.message_id)
            try:
                done += moderation.report_resolve(
                    message=item.message,
                    by=request.user,  # type: ignore[arg-type]
                    outcome=outcome,
                )
            except DomainError as exc:
                errors.append(f"{item}: {exc.detail}")
        report(self, request, done, errors)

    @admin.action(description="Resolve: remove the reported messages", permissions=["change"])
    def resolve_remove(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        self._resolve(request, queryset, Report.Outcome.REMOVE)

    @admin.action(description="Resolve: dismiss the reports", permissions=["change"])
    def resolve_dismiss(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        self._resolve(request, queryset, Report.Outcome.DISMISS)


@admin.register(HeldMessage)
class HeldMessageAdmin(CommunityScopedAdmin):
    """Messages held back: by the word filter for review (approve: sent now, or reject), or by
    the messaging service's channel flow (its outcome decides them; the actions refuse them)."""

    community_path = "channel__community"
    list_display = [
        "channel",
        "author",
        "body",
        "kind",
        "matched",
        "status",
        "detail",
        "created_at",
        "decided_by",
    ]
    list_filter = ["kind", "status", ("channel__community", ScopedRelatedFilter)]
    list_select_related = ["channel", "author", "decided_by"]
    actions = ["approve", "reject"]

    def _decide(self, request: HttpRequest, queryset: QuerySet[HeldMessage], approve: bool) -> None:
        by: Any = request.user
        each(
            self,
            request,
            queryset.select_related("channel__community", "author"),
            lambda h: moderation.held_decide(held=h, by=by, approve=approve),
        )

    @admin.action(description="Approve the selected held messages", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[HeldMessage]) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Reject the selected held messages", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[HeldMessage]) -> None:
        self._decide(request, queryset, approve=False)


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdmin):
    """Uploads, sent or not; removed only by `manage.py purge_attachments`."""

    list_display = ["name", "content_type", "size", "uploader", "message", "status", "created_at"]
    list_filter = ["status", "content_type"]
    search_fields = ["name", "uploader__username"]
    list_select_related = ["uploader", "message"]
    readonly_fields = [f.name for f in Attachment._meta.fields]


def moderation_overview_view(request: HttpRequest) -> TemplateResponse:
    """The admin's moderation overview (linked from the admin index), scoped like the lists."""
    context = {
        **admin.site.each_context(request),
        "title": "Moderation overview",
        "overview": overview.moderation_overview(request.user),
    }
    return TemplateResponse(request, "admin/moderation_overview.html", context)
