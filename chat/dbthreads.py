"""Database work of sockets, on a pool of threads.

Channels' `database_sync_to_async` runs every call of a process in one thread, so the sends of
all sockets queued behind each other's round trips to the database. Here each call takes a
thread from a pool of `CHAT_DB_THREADS` (each with its own kept connection), so sends to
different channels proceed in parallel; sends to one channel still commit in order under the
channel's row lock, and one socket's frames are still handled one after another.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, ParamSpec, TypeVar

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.CHAT_DB_THREADS, thread_name_prefix="db")


def db(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`func` as a coroutine function that runs in the pool (closing stale connections around
    each call, as Channels does)."""
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=_pool())  # type: ignore[return-value]


def close_connections() -> None:
    """Close the connection each pool thread keeps (a test database is about to be dropped)."""
    workers = settings.CHAT_DB_THREADS
    # Each task waits for all the others, so every one runs on a thread of its own.
    barrier = threading.Barrier(workers, timeout=5)

    def close() -> None:
        connections.close_all()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()

    for done in [_pool().submit(close) for _ in range(workers)]:
        done.result()
