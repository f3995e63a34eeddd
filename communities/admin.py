"""Django admin for communities, members and join requests.

Every change made here goes through the same service functions as the site, so admin edits keep
the same rules (owner kept, channels joined, sockets told).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from communities import services
from communities.models import AuditEntry, Ban, Community, JoinRequest, Membership, Tag
from hobbies.admin_base import ReadOnlyAdmin, report
from hobbies.errors import DomainError


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "joined_at"]
    readonly_fields = ["user", "role", "joined_at"]
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Community)
class CommunityAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "visibility", "created_at"]
    list_filter = ["visibility", "tags"]
    search_fields = ["name", "slug", "description"]
    readonly_fields = ["invite_code", "created_by", "created_at"]
    fields = [
        "name",
        "slug",
        "description",
        "tags",
        "visibility",
        "invite_code",
        "created_by",
        "created_at",
    ]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Community | None = None) -> list[str]:
        fields = list(self.readonly_fields)
        return [*fields, "name", "slug"] if obj is not None else fields

    def save_model(self, request: HttpRequest, obj: Community, form: Any, change: bool) -> None:
        tags = [t.name for t in form.cleaned_data.get("tags", [])]
        if change:
            services.community_update(
                community=obj,
                by=request.user,  # type: ignore[arg-type]
                description=obj.description,
                tags=tags,
                visibility=obj.visibility,
            )
        else:
            created = services.community_create(
                name=obj.name,
                slug=obj.slug,
                description=obj.description,
                tags=tags,
                visibility=obj.visibility,
                by=request.user,  # type: ignore[arg-type]
            )
            obj.pk = created.pk

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Tags were saved by the service.
        return None

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "community", "role", "joined_at"]
    list_filter = ["role", "community"]
    search_fields = ["user__username", "community__name"]
    readonly_fields = ["user", "community", "role", "joined_at"]
    actions = ["remove_members"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Remove the selected members from their community")
    def remove_members(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        done, errors = 0, []
        for membership in queryset.select_related("community", "user"):
            try:
                services.membership_remove(
                    community=membership.community,
                    user=membership.user,
                    by=request.user,  # type: ignore[arg-type]
                )
                done += 1
            except DomainError as exc:
                errors.append(f"{membership}: {exc.detail}")
        report(self, request, done, errors)


@admin.register(JoinRequest)
class JoinRequestAdmin(admin.ModelAdmin):
    list_display = ["user", "community", "status", "created_at", "decided_by"]
    list_filter = ["status", "community"]
    readonly_fields = [
        "user",
        "community",
        "message",
        "status",
        "created_at",
        "decided_by",
        "decided_at",
    ]
    actions = ["approve", "reject"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def _decide(self, request: HttpRequest, queryset: QuerySet[JoinRequest], approve: bool) -> None:
        done, errors = 0, []
        for join_request in queryset.select_related("community", "user"):
            try:
                services.join_request_decide(request=join_request, by=request.user, approve=approve)  # type: ignore[arg-type]
                done += 1
            except DomainError as exc:
                errors.append(f"{join_request}: {exc.detail}")
        report(self, request, done, errors)

    @admin.action(description="Approve the selected requests")
    def approve(self, request: HttpRequest, queryset: QuerySet[JoinRequest]) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Reject the selected requests")
    def reject(self, request: HttpRequest, queryset: QuerySet[JoinRequest]) -> None:
        self._decide(request, queryset, approve=False)


admin.site.register(Tag)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Each community's moderation log, written by the services."""

    list_display = ["created_at", "community", "actor", "action", "target", "reason"]
    list_filter = ["action", "community"]
    list_select_related = ["community", "actor", "target"]


@admin.register(Ban)
class BanAdmin(ReadOnlyAdmin):
    """Bans are made and lifted on the site (the services); here they are read."""

    list_display = ["user", "community", "until", "reason", "created_by", "lifted_at"]
    list_filter = ["community"]
