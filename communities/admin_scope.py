"""The admin's scope: community moderators given admin access see and act on their own
communities only; site moderators and superusers on all.

Every admin of a model that belongs to a community uses `CommunityScopedAdmin`, which asks the
one role policy (`communities.policy.moderated_community_ids`, `can_moderate`) for its lists,
its foreign-key choices, its list filters (`ScopedRelatedFilter` lists only what the scoped
list holds), its actions (they run on the scoped list) and its object pages (another
community's object is a 404, as if it did not exist).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import ForeignKey, Model, QuerySet
from django.forms import ModelChoiceField
from django.http import Http404, HttpRequest

from communities import policy
from communities.models import Community

# Lists the scoped list's own values only, so another community's name never shows up there.
ScopedRelatedFilter = admin.RelatedOnlyFieldListFilter


def community_id_of(obj: Model, path: str) -> int | None:
    """Follow `path` ("community", "channel__community", "pk") from `obj` to a community id."""
    if path == "pk":
        return int(obj.pk) if obj.pk is not None else None
    *hops, last = path.split("__")
    target: Any = obj
    for hop in hops:
        target = getattr(target, hop, None)
        if target is None:
            return None
    value = getattr(target, f"{last}_id", None)
    return int(value) if value is not None else None


class CommunityScopedAdmin(admin.ModelAdmin):
    """`community_path`: the lookup from this model to its community ("pk" for communities).

    Records here change only through services: every field is read-only and an object's page
    is for viewing, unless `edits_through_form` (its `save_model` calls a service). Nothing is
    added or deleted here unless the admin says so. Actions ask for the change permission
    (`permissions=["change"]`) and run on the scoped list.
    """

    community_path = "community"
    edits_through_form = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if self.edits_through_form:
            return super().get_readonly_fields(request, obj)
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _in_scope(self, queryset: QuerySet[Any], request: HttpRequest, path: str) -> QuerySet[Any]:
        ids = policy.moderated_community_ids(request.user)
        return queryset if ids is None else queryset.filter(**{f"{path}__in": ids})

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return self._in_scope(super().get_queryset(request), request, self.community_path)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        """Another community's object, like a missing one, is a 404 (not a redirect that would
        tell them apart)."""
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj

    def _may_moderate(self, request: HttpRequest, obj: Model | None) -> bool:
        if obj is None:
            return True
        community_id = community_id_of(obj, self.community_path)
        return community_id is not None and policy.can_moderate(request.user, community_id)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) and self._may_moderate(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and not self.edits_through_form:
            return False  # the page is for viewing; the actions make the changes
        return super().has_change_permission(request, obj) and self._may_moderate(request, obj)

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        related = db_field.related_model
        if not isinstance(field, ModelChoiceField) or field.queryset is None or related == "self":
            return field
        if related is Community:
            field.queryset = self._in_scope(field.queryset, request, "pk")
        elif any(f.name == "community" for f in related._meta.get_fields()):
            field.queryset = self._in_scope(field.queryset, request, "community")
        return field
