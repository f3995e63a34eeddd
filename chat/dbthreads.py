"""Synchronous work of sockets (the database, the cache), on a pool of threads.

Channels' `database_sync_to_async` runs every call of a process in one thread, so the sends of
all sockets queued behind each other's round trips to the database. Here each call takes a
thread from a pool of `CHAT_DB_THREADS` (each keeps its connection between calls; on
PostgreSQL it is borrowed from the process's connection pool and given back at the thread's
next check), so sends to different channels proceed in parallel; sends to one channel still
commit in order under the channel's row lock, and one socket's frames are still handled one
after another.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import close_old_connections, connections

P = ParamSpec("P")
R = TypeVar("R")

# How often a pool thread looks at its connection (its age, and with CONN_HEALTH_CHECKS a
# `SELECT 1`; with the connection pool, CONN_MAX_AGE is 0, so the connection goes back to the
# pool then). Channels does it around every call, which costs a round trip per frame.
CHECK_SECONDS = 10.0
_checked = threading.local()


class _PooledDatabaseCall(SyncToAsync[P, R]):
    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - getattr(_checked, "at", 0.0) > CHECK_SECONDS:
            close_old_connections()
            _checked.at = now
        try:
            return super().thread_handler(loop, *args, **kwargs)
        except Exception:
            # A failed call may have left the connection broken: look at it before the next.
            close_old_connections()
            raise


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.CHAT_DB_THREADS, thread_name_prefix="db")


def db(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`func` as a coroutine function that runs in the pool, on a connection checked at most
    every `CHECK_SECONDS` and after any failure."""
    return _PooledDatabaseCall(func, thread_sensitive=False, executor=_pool())


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
