"""Messaging backends: where messages are mirrored beyond our database.

The database is always the record (ids, replay, history). A backend is told of every chat change
inside the same transaction, so a failing remote call rolls the change back. `local` does nothing
more; a Chime backend mirrors users, channels, memberships and messages to Amazon Chime SDK
messaging.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chat.backends.base import MessagingBackend
from chat.backends.local import LocalBackend


@cache
def get_backend() -> MessagingBackend:
    name = settings.MESSAGING_BACKEND
    if name == "local":
        return LocalBackend()
    raise ImproperlyConfigured(f"MESSAGING_BACKEND={name!r} is not known (try 'local').")
