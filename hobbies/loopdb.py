"""PostgreSQL from the event loop: connections for the round trips a socket's send makes.

A thread that waits on PostgreSQL has to take the GIL back after every round trip. With a pool
of such threads and the event loop all asking for it, a send whose statements cost PostgreSQL
0.3 ms waited about 3 ms for each of its three round trips, and its result waited as long again
for the event loop to get the GIL back (docs/performance.md, eighth round). On these
connections the event loop sends the statements itself (psycopg's async connections) and runs
the Python between them; no other thread is involved.

Each event loop has its own connections, at most `CHAT_DB_THREADS` in use at once, opened with
the parameters Django's own connection uses (its adapters, time zone, role and isolation level)
and kept in autocommit, so the statements that `hobbies.queries` compiles run here unchanged,
with their values bound on the client. Only on PostgreSQL with client-side binding (`usable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.db import connections
from psycopg import AsyncClientCursor, AsyncConnection
from psycopg.pq import TransactionStatus


def usable(alias: str) -> bool:
    """Whether the database `alias` can be reached from the event loop: PostgreSQL with the
    values bound on the client (Django's default there), as `hobbies.queries` sends them."""
    connection = connections[alias]
    options = connection.settings_dict.get("OPTIONS") or {}
    return connection.vendor == "postgresql" and not options.get("server_side_binding")


class _Pool:
    """The connections of one event loop to one database: the idle ones, and a limit on how
    many are in use at once."""

    def __init__(self, alias: str, size: int) -> None:
        self.alias = alias
        self.idle: list[AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(size)

    async def open(self) -> AsyncConnection[Any]:
        database = connections[self.alias]
        params = database.get_connection_params()
        params["cursor_factory"] = AsyncClientCursor
        connection = await AsyncConnection.connect(**params, autocommit=True)
        try:
            zone = database.timezone_name
            if zone and connection.info.parameter_status("TimeZone") != zone:
                await connection.execute(database.ops.set_time_zone_sql(), [zone])
            role = database.settings_dict["OPTIONS"].get("assume_role")
            if role:
                await connection.execute(database.ops.compose_sql("SET ROLE %s", [role]))  # type: ignore[attr-defined]
            level = database.settings_dict["OPTIONS"].get("isolation_level")
            if level is not None:
                await connection.set_isolation_level(level)
        except BaseException:
            await connection.close()
            raise
        return connection


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Pool]] = (
    weakref.WeakKeyDictionary()
)
_pools_lock = threading.Lock()


def _pool(alias: str) -> _Pool:
    loop = asyncio.get_running_loop()
    with _pools_lock:
        of_loop = _pools.setdefault(loop, {})
        pool = of_loop.get(alias)
        if pool is None:
            pool = of_loop[alias] = _Pool(alias, settings.CHAT_DB_THREADS)
        return pool


@contextlib.asynccontextmanager
async def connection(alias: str, *, fresh: bool = False) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection of this event loop to `alias`, in autocommit, for the block. It goes back
    to the loop's idle connections only if the block leaves it idle (no transaction open, not
    broken); else it is closed, so a block that fails or is cancelled halfway through a
    transaction leaves nothing behind (PostgreSQL rolls back what a closed connection left
    open). `fresh`: a new connection, not an idle one."""
    pool = _pool(alias)
    await pool.slots.acquire()
    try:
        conn = pool.idle.pop() if pool.idle and not fresh else await pool.open()
        kept = False
        try:
            yield conn
            kept = conn.info.transaction_status == TransactionStatus.IDLE and not conn.closed
        finally:
            if kept:
                pool.idle.append(conn)
            else:
                with contextlib.suppress(Exception):
                    await conn.close()
    finally:
        pool.slots.release()


async def close() -> None:
    """Close this event loop's idle connections (a test database is about to be dropped)."""
    with _pools_lock:
        pools = list(_pools.pop(asyncio.get_running_loop(), {}).values())
    for pool in pools:
        while pool.idle:
            with contextlib.suppress(Exception):
                await pool.idle.pop().close()
