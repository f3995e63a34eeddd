"""The process-local fan-out hub.

Each server process owns one hub with one channel-layer channel. When at least one local socket
listens to a key (`c:<channel id>`, `m:<community id>`, `u:<user id>`), the hub's channel is in
that key's group, so every event reaches each process once. The event carries a frame already
encoded as JSON text; the hub hands that same string to each local socket. No per-recipient
channel-layer message and no per-recipient `json.dumps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder

from chat.transport import Frame

logger = logging.getLogger(__name__)

GROUP_REFRESH_SECONDS = 3600


class Listener(Protocol):
    """A local socket, as the hub sees it."""

    user_id: int
    session_hash: str

    def deliver(self, key: str, frame: Frame, meta: dict[str, Any]) -> None: ...

    def control(self, key: str, event: dict[str, Any]) -> None: ...


def group_name(key: str) -> str:
    return "hub." + key.replace(":", ".")


def encode(payload: dict[str, Any]) -> str:
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


class Hub:
    def __init__(self) -> None:
        self._listeners: dict[str, set[Listener]] = {}
        self._joined: set[str] = set()
        self._channel_name: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock: asyncio.Lock | None = None
        self.received = 0

    async def _ensure_started(self) -> str:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new event loop (a new server, or a new test): start over on it.
            self._reset_state()
            self._loop = loop
            self._lock = asyncio.Lock()
            self._channel_name = await channel_layer().new_channel("hub.")
            self._tasks = [
                loop.create_task(self._receive_loop(self._channel_name)),
                loop.create_task(self._refresh_loop()),
            ]
        return self._channel_name or ""

    async def shutdown(self) -> None:
        """Stop listening (server shutdown, end of a test)."""
        tasks = self._tasks
        self._reset_state()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _reset_state(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self._listeners = {}
        self._joined = set()
        self._channel_name = None
        self._loop = None

    async def attach(self, key: str, listener: Listener) -> None:
        """Start handing `key`'s events to `listener`; returns once the process is subscribed."""
        await self._ensure_started()
        self._listeners.setdefault(key, set()).add(listener)
        await self._sync_group(key)

    async def detach(self, key: str, listener: Listener) -> None:
        listeners = self._listeners.get(key)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[key]
            await self._sync_group(key)

    async def detach_all(self, keys: Iterable[str], listener: Listener) -> None:
        for key in list(keys):
            await self.detach(key, listener)

    def listeners(self, key: str) -> int:
        return len(self._listeners.get(key, ()))

    async def _sync_group(self, key: str) -> None:
        if self._lock is None or self._channel_name is None:
            return
        layer = channel_layer()
        async with self._lock:
            wanted = key in self._listeners
            if wanted and key not in self._joined:
                await layer.group_add(group_name(key), self._channel_name)
                self._joined.add(key)
            elif not wanted and key in self._joined:
                self._joined.discard(key)
                await layer.group_discard(group_name(key), self._channel_name)

    async def _receive_loop(self, channel_name: str) -> None:
        layer = channel_layer()
        while True:
            try:
                event = await layer.receive(channel_name)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("hub: channel layer receive failed; retrying")
                await asyncio.sleep(1)
                continue
            self.dispatch(event)

    def dispatch(self, event: dict[str, Any]) -> None:
        self.received += 1
        key = event.get("key", "")
        listeners = self._listeners.get(key)
        if not listeners:
            return
        if event.get("type") == "hub.frame":
            # One Frame per event: its wire bytes are built once, for every local socket.
            frame, meta = Frame(event["frame"]), event.get("meta") or {}
            for listener in tuple(listeners):
                try:
                    listener.deliver(key, frame, meta)
                except Exception:
                    logger.exception("hub: delivery to a socket failed")
        elif event.get("type") == "hub.control":
            for listener in tuple(listeners):
                try:
                    listener.control(key, event)
                except Exception:
                    logger.exception("hub: control event for a socket failed")

    async def _refresh_loop(self) -> None:
        # Redis forgets group members after `group_expiry`; say again that we are listening.
        layer = channel_layer()
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            if self._channel_name is None:
                continue
            for key in list(self._joined):
                with contextlib.suppress(Exception):
                    await layer.group_add(group_name(key), self._channel_name)


def channel_layer() -> Any:
    layer = get_channel_layer()
    if layer is None:
        raise ImproperlyConfigured("CHANNEL_LAYERS must define a 'default' layer.")
    return layer


hub = Hub()


# --- Publishing -----------------------------------------------------------------------------


def frame_event(
    key: str, payload: dict[str, Any], meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"type": "hub.frame", "key": key, "frame": encode(payload), "meta": meta or {}}


def control_event(key: str, action: str, **data: Any) -> dict[str, Any]:
    return {"type": "hub.control", "key": key, "action": action, **data}


async def publish(event: dict[str, Any]) -> None:
    layer = channel_layer()
    await layer.group_send(group_name(event["key"]), event)


def publish_sync(event: dict[str, Any]) -> None:
    try:
        async_to_sync(publish)(event)
    except Exception:
        # The database already holds the change; clients catch up on reconnect (`since`).
        logger.exception("hub: could not publish %s to %s", event.get("type"), event.get("key"))
