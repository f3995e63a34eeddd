"""Pieces every app's admin shares."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.http import HttpRequest

from hobbies.errors import DomainError

T = TypeVar("T")


def report(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    done: int,
    errors: list[str],
    summary: str = "{done} done.",
) -> None:
    """Tell the admin user how an action went: how many done, and each refusal."""
    if done:
        modeladmin.message_user(request, summary.format(done=done), messages.SUCCESS)
    for error in errors:
        modeladmin.message_user(request, error, messages.ERROR)


def each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    items: Iterable[T],
    act: Callable[[T], object],
    *,
    label: Callable[[T], str] = str,
    summary: str = "{done} done.",
) -> None:
    """An admin action: `act` (a service call) on each selected item, then `report` how many
    went through and, for each the service refused, why (the rest still go through)."""
    done, errors = 0, []
    for item in items:
        try:
            act(item)
            done += 1
        except DomainError as exc:
            errors.append(f"{label(item)}: {exc.detail}")
    report(modeladmin, request, done, errors, summary)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by services only: admins read them, nobody edits them here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
