"""Django admin for communities, members and roles, join requests, bans and timeouts, and the
audit log.

Every change made here goes through the same service functions as the site, so admin edits keep
the same rules (owner kept, channels joined, sockets told, audit entries written). Community
moderators given admin access see their own communities only (`communities.admin_scope`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from communities import services
from communities.admin_scope import CommunityScopedAdmin, ScopedRelatedFilter
from communities.models import AuditEntry, Ban, Community, JoinRequest, Membership, Tag
from hobbies.admin_base import each
from hobbies.errors import Conflict


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
class CommunityAdmin(CommunityScopedAdmin):
    community_path = "pk"
    edits_through_form = True
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

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return admin.ModelAdmin.has_add_permission(self, request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


class TimedOutFilter(admin.SimpleListFilter):
    title = "timeout"
    parameter_name = "timed_out"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Timed out now")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> Any:
        if self.value() == "yes":
            return queryset.filter(timeout_until__gt=timezone.now())
        return queryset


@admin.register(Membership)
class MembershipAdmin(CommunityScopedAdmin):
    """Members and their roles (roles change on the community's manage page), and timeouts."""

    list_display = ["user", "community", "role", "joined_at", "timeout_until"]
    list_filter = ["role", TimedOutFilter, ("community", ScopedRelatedFilter)]
    search_fields = ["user__username", "community__name"]
    list_select_related = ["user", "community"]
    actions = ["remove_members", "end_timeouts", "ban_members"]

    @admin.action(
        description="Ban the selected members (no end; lift it from Bans)", permissions=["change"]
    )
    def ban_members(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        by: Any = request.user
        each(
            self,
            request,
            queryset.select_related("community", "user"),
            lambda m: services.membership_ban(community=m.community, user=m.user, by=by),
        )

    @admin.action(description="End the selected members' timeouts", permissions=["change"])
    def end_timeouts(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        by: Any = request.user
        each(
            self,
            request,
            queryset.select_related("community", "user"),
            lambda m: services.membership_timeout_end(community=m.community, user=m.user, by=by),
        )

    @admin.action(
        description="Remove the selected members from their community", permissions=["change"]
    )
    def remove_members(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        by: Any = request.user
        each(
            self,
            request,
            queryset.select_related("community", "user"),
            lambda m: services.membership_remove(community=m.community, user=m.user, by=by),
        )


@admin.register(JoinRequest)
class JoinRequestAdmin(CommunityScopedAdmin):
    list_display = ["user", "community", "status", "created_at", "decided_by"]
    list_filter = ["status", ("community", ScopedRelatedFilter)]
    list_select_related = ["user", "community", "decided_by"]
    actions = ["approve", "reject"]

    def _decide(self, request: HttpRequest, queryset: QuerySet[JoinRequest], approve: bool) -> None:
        by: Any = request.user
        each(
            self,
            request,
            queryset.select_related("community", "user"),
            lambda r: services.join_request_decide(request=r, by=by, approve=approve),
        )

    @admin.action(description="Approve the selected requests", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[JoinRequest]) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Reject the selected requests", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[JoinRequest]) -> None:
        self._decide(request, queryset, approve=False)


admin.site.register(Tag)


@admin.register(AuditEntry)
class AuditEntryAdmin(CommunityScopedAdmin):
    """Each community's moderation log, written by the services; read here."""

    list_display = ["created_at", "community", "actor", "action", "target", "reason"]
    list_filter = ["action", ("community", ScopedRelatedFilter), "created_at"]
    search_fields = ["actor__username", "target__username", "reason"]
    list_select_related = ["community", "actor", "target"]


@admin.register(Ban)
class BanAdmin(CommunityScopedAdmin):
    """Bans are made on the site (the queue, the manage page); here they are read and lifted."""

    list_display = ["user", "community", "until", "reason", "created_by", "created_at", "lifted_at"]
    list_filter = [("community", ScopedRelatedFilter), ("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "reason"]
    list_select_related = ["user", "community", "created_by"]
    actions = ["lift_bans"]

    @admin.action(description="Lift the selected bans", permissions=["change"])
    def lift_bans(self, request: HttpRequest, queryset: QuerySet[Ban]) -> None:
        by: Any = request.user

        def lift(ban: Ban) -> None:
            if ban.lifted_at is not None:
                raise Conflict("This ban was already lifted.")
            services.membership_unban(community=ban.community, user=ban.user, by=by)

        each(self, request, queryset.select_related("community", "user"), lift)
