"""Pieces every app's admin shares."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest


def report(
    modeladmin: admin.ModelAdmin, request: HttpRequest, done: int, errors: list[str]
) -> None:
    """Tell the admin user how an action went: how many done, and each refusal."""
    if done:
        modeladmin.message_user(request, f"{done} done.", messages.SUCCESS)
    for error in errors:
        modeladmin.message_user(request, error, messages.ERROR)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by services only: admins read them, nobody edits them here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
