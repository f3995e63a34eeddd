"""Broadcast after commit: the one way services tell sockets about a change.

A client is told of a change only once the database holds it, so no one ever sees a change that
was rolled back, and a reconnecting client finds everything it was told about.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import transaction

from chat import hub


def broadcast_on_commit(
    key: str, build: Callable[[], dict[str, Any]], meta: dict[str, Any] | None = None
) -> None:
    """After the current transaction commits, send the frame `build()` returns to `key`.

    The payload is built (and encoded, once) after commit, so it shows the committed state.
    """

    transaction.on_commit(lambda: broadcast_committed(key, build, meta), robust=True)


def broadcast_committed(
    key: str, build: Callable[[], dict[str, Any]], meta: dict[str, Any] | None = None
) -> None:
    """Send the frame `build()` returns to `key` now: for a change committed outside Django's
    transactions (`hobbies.queries.locked_write_async`, on the event loop)."""
    # The commit time rides with the event: the hub measures commit -> socket from it.
    hub.publish_sync(hub.frame_event(key, build(), {**(meta or {}), "at": time.time()}))


def control_on_commit(key: str, action: str, **data: Any) -> None:
    """After commit, ask the sockets listening to `key` to act (`close`, `kick`)."""
    transaction.on_commit(
        lambda: hub.publish_sync(hub.control_event(key, action, **data)), robust=True
    )


def sockets_close_on_commit(user_id: int) -> None:
    """After commit, close every socket of the user, in every server process (code 4403): the
    account was deactivated, its password changed, or the user was banned."""
    control_on_commit(user_key(user_id), "close", reason="revoked")


def channel_key(channel_id: int) -> str:
    return f"c:{channel_id}"


def community_key(community_id: int) -> str:
    return f"m:{community_id}"


def user_key(user_id: int) -> str:
    return f"u:{user_id}"
