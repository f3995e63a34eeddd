"""Messaging backends: where messages are mirrored beyond our database.

The database is always the record (ids, replay, history). A backend is told of every chat change
inside the same transaction, so a failing remote call rolls the change back. `local` does nothing
more; `chime` mirrors users, channels, memberships, moderators, bans and messages to Amazon
Chime SDK messaging (`chat/backends/chime.py`, docs/chime.md).

`inbound()` marks changes that came *from* the messaging service (the Chime bridge storing
what another Chime client did): inside it the services run as usual, but `get_backend()` is the
local backend, so nothing is sent back to where it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chat.backends.base import MessagingBackend
from chat.backends.chime import ChimeBackend
from chat.backends.local import LocalBackend

KNOWN = ("local", "chime")
_LOCAL = LocalBackend()
_inbound: ContextVar[bool] = ContextVar("messaging_inbound", default=False)


@cache
def configured_backend() -> MessagingBackend:
    name = settings.MESSAGING_BACKEND
    if name == "local":
        return _LOCAL
    if name == "chime":
        return ChimeBackend()
    raise ImproperlyConfigured(
        f"MESSAGING_BACKEND={name!r} is not known (try {' or '.join(map(repr, KNOWN))})."
    )


def get_backend() -> MessagingBackend:
    if _inbound.get():
        return _LOCAL
    return configured_backend()


@contextmanager
def inbound() -> Iterator[None]:
    """Apply a change that came from the messaging service without sending it back."""
    token = _inbound.set(True)
    try:
        yield
    finally:
        _inbound.reset(token)
