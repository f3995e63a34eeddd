"""Django admin for channels and message moderation (through the chat services)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from chat import moderation, services
from chat.models import Attachment, Channel, HeldMessage, Message, MessageRevision, Report
from hobbies.admin_base import ReadOnlyAdmin
from hobbies.errors import DomainError


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "community", "kind", "topic", "last_message_id"]
    list_filter = ["kind", "community"]
    search_fields = ["name", "topic", "community__name"]
    readonly_fields = ["community", "name", "kind", "topic", "last_message_id", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # channels are made on the site, by community moderators

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "channel",
        "author",
        "short_body",
        "created_at",
        "edited_at",
        "deleted_at",
    ]
    list_filter = [("deleted_at", admin.EmptyFieldListFilter), "channel__community"]
    search_fields = ["body", "author__username"]
    list_select_related = ["channel", "author"]
    readonly_fields = [f.name for f in Message._meta.fields]
    inlines = [RevisionInline, AttachmentInline]
    actions = ["delete_messages", "remove_messages"]

    @admin.display(description="Body")
    def short_body(self, obj: Message) -> str:
        return obj.body[:80] if not obj.is_deleted else "(deleted)"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # "delete" leaves a tombstone: use the action

    @admin.action(description="Delete the selected messages (leave a tombstone)")
    def delete_messages(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        done, errors = 0, []
        for message in queryset.select_related("channel__community"):
            try:
                services.message_delete(message=message, by=request.user)  # type: ignore[arg-type]
                done += 1
            except DomainError as exc:
                errors.append(f"#{message.id}: {exc.detail}")
        if done:
            self.message_user(request, f"{done} message(s) deleted.", messages.SUCCESS)
        for error in errors:
            self.message_user(request, error, messages.ERROR)

    @admin.action(description="Remove the selected messages as a moderator (text kept)")
    def remove_messages(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        done, errors = 0, []
        for message in queryset.select_related("channel__community", "author"):
            try:
                moderation.message_remove(message=message, by=request.user)  # type: ignore[arg-type]
                done += 1
            except DomainError as exc:
                errors.append(f"#{message.id}: {exc.detail}")
        if done:
            self.message_user(request, f"{done} message(s) removed.", messages.SUCCESS)
        for error in errors:
            self.message_user(request, error, messages.ERROR)


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = ["message", "reporter", "reason", "created_at", "outcome", "resolved_by"]
    list_filter = ["reason", "outcome", "community"]


@admin.register(HeldMessage)
class HeldMessageAdmin(ReadOnlyAdmin):
    list_display = ["channel", "author", "matched", "status", "created_at", "decided_by"]
    list_filter = ["status"]


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdmin):
    """Uploads, sent or not; removed only by `manage.py purge_attachments`."""

    list_display = ["name", "content_type", "size", "uploader", "message", "status", "created_at"]
    list_filter = ["status", "content_type"]
    search_fields = ["name", "uploader__username"]
    list_select_related = ["uploader", "message"]
    readonly_fields = [f.name for f in Attachment._meta.fields]
