"""Reads about accounts."""

from __future__ import annotations

from typing import cast

from django.http import HttpRequest

from accounts.models import User


def me(request: HttpRequest) -> User:
    """The requesting user, typed as ours (anonymous users have `is_authenticated` False)."""
    return cast(User, request.user)
