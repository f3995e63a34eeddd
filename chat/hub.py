"""The process-local fan-out hub.

Each server process owns one hub with one channel-layer channel. When at least one local socket
listens to a key (`c:<channel id>`, `m:<community id>`, `u:<user id>`), the hub's channel is in
that key's group, so every event reaches each process once. The event carries a frame already
encoded as JSON text; the hub hands that same string to each local socket. No per-recipient
channel-layer message and no per-recipient `json.dumps`.

The channel layer is only a wake-up; the database is the record. Two loops keep the hub honest
when the layer is not:

- **Heads** (every `CHAT_HEAD_INTERVAL` seconds): one query reads the newest position of every
  channel with local listeners. A channel whose head stays ahead of the newest position this
  process has seen published (a message committed by a process that died before publishing, or
  published while the layer was down) gets a `head` frame, and its clients fetch what they miss.
  The same query reads each channel's removal count: where it moved (or the channel is new
  here), one more query checks which local listeners may still see the channel, and the others'
  subscriptions end as a `kick` would end them (a channel gone ends them all), so a removal
  whose kick was lost stops reaching its member within an interval or two.
- **Canary** (every `CHAT_HUB_CANARY_SECONDS`): the hub sends an event to a group only it is in
  and waits for it. If it does not come back (Redis down or restarted, so the hub's group
  memberships are gone), the hub forgets its groups and, once the layer works again, closes
  every local socket with 4012: clients reconnect, are authorized afresh and resume from their
  last position, so nothing published meanwhile (messages, kicks, log-outs) is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol, cast

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder

from chat.dbthreads import db
from chat.selectors import channel_heads, channel_members_present
from chat.transport import Frame
from hobbies import metrics

logger = logging.getLogger(__name__)

GROUP_REFRESH_SECONDS = 3600
LAYER_CALL_SECONDS = 5.0
PUBLISH_BATCH = 100  # at most this many events of one key in one layer call
PUBLISH_AT_ONCE = 8  # layer calls in flight from one process's publisher


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
        # Newest position seen published per channel key, and each key's head at the last poll.
        self._published: dict[str, int] = {}
        self._polled: dict[str, int] = {}
        # Each channel key's removal count at the last check (see `check_heads`).
        self._removals: dict[str, int] = {}
        self._canary_group = ""
        self._canary_waiting: dict[str, asyncio.Future[None]] = {}
        # False from a failed canary until the layer answers again and sockets were closed.
        self.layer_ok = True
        self.last_canary_at = 0.0

    async def _ensure_started(self) -> str:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new event loop (a new server, or a new test): start over on it.
            self._reset_state()
            self._loop = loop
            self._lock = asyncio.Lock()
            self._channel_name = await channel_layer().new_channel("hub.")
            self._canary_group = f"hub.canary.{uuid.uuid4().hex}"
            self._tasks = [
                loop.create_task(self._receive_loop(self._channel_name)),
                loop.create_task(self._refresh_loop()),
                loop.create_task(self._heads_loop()),
                loop.create_task(self._canary_loop()),
            ]
        return self._channel_name or ""

    async def shutdown(self) -> None:
        """Stop listening (server shutdown, end of a test)."""
        tasks = self._tasks
        self._reset_state()
        # Each wait is bounded: a Redis that stops answering must not hold the shutdown.
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, LAYER_CALL_SECONDS)
        # channels-redis releases a channel's receive lock when the task that cleans the
        # message's backup queue ends: let those end on this loop, or the lock stays held,
        # bound to a loop that is gone, and the next loop's hub can never receive.
        cleaners = list(getattr(channel_layer(), "receive_cleaners", ()))
        if cleaners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(*cleaners, return_exceptions=True), LAYER_CALL_SECONDS
                )

    def _reset_state(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self._listeners = {}
        self._joined = set()
        self._channel_name = None
        self._loop = None
        self._published = {}
        self._polled = {}
        self._removals = {}
        self._canary_waiting = {}
        self.layer_ok = True

    async def attach(self, key: str, listener: Listener) -> None:
        """Start handing `key`'s events to `listener`; returns once the process is subscribed.
        All or nothing: when the layer refuses, the listener is left out and the error raised."""
        await self._ensure_started()
        listeners = self._listeners.setdefault(key, set())
        added = listener not in listeners
        listeners.add(listener)
        try:
            await self._sync_group(key)
        except BaseException:
            if added:
                listeners.discard(listener)
                if not listeners and self._listeners.get(key) is listeners:
                    del self._listeners[key]
            raise

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
        # Bounded: a Redis that stops answering must not hold every other socket's attach.
        async with self._lock:
            wanted = key in self._listeners
            if wanted and key not in self._joined:
                try:
                    await asyncio.wait_for(
                        layer.group_add(group_name(key), self._channel_name), LAYER_CALL_SECONDS
                    )
                except TimeoutError:
                    raise
                except Exception:
                    # Once more: a connection the layer's pool kept from before a Redis restart
                    # fails once ("closed by server"); the retry takes a new one.
                    await asyncio.wait_for(
                        layer.group_add(group_name(key), self._channel_name), LAYER_CALL_SECONDS
                    )
                self._joined.add(key)
            elif not wanted and key in self._joined:
                self._joined.discard(key)
                with contextlib.suppress(Exception):  # it expires by itself (`group_expiry`)
                    await asyncio.wait_for(
                        layer.group_discard(group_name(key), self._channel_name),
                        LAYER_CALL_SECONDS,
                    )

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
            if event.get("origin") == channel_name:
                continue  # this process's own: its sockets had it when it was handed over
            self.dispatch(event)

    def origin_on(self, loop: asyncio.AbstractEventLoop) -> str | None:
        """This hub's name on the channel layer, if it listens on `loop`: what the events this
        process publishes from there carry, so that it skips them when the layer brings them
        back."""
        return self._channel_name if self._loop is loop else None

    def dispatch(self, event: dict[str, Any]) -> None:
        if event.get("type") == "hub.batch":  # several events of one key, in order
            for each in event["events"]:
                self.dispatch(each)
            return
        self.received += 1
        if event.get("type") == "hub.canary":
            waiting = self._canary_waiting.pop(str(event.get("token")), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
            return
        key = event.get("key", "")
        meta = event.get("meta") or {}
        seq = meta.get("seq")
        if meta.get("kind") == "message.new" and isinstance(seq, int):
            self._published[key] = max(seq, self._published.get(key, 0))
        listeners = self._listeners.get(key)
        if not listeners:
            return
        if event.get("type") == "hub.frame":
            # One Frame per event: its wire bytes are built once, for every local socket.
            frame = Frame(event["frame"])
            for listener in tuple(listeners):
                try:
                    listener.deliver(key, frame, meta)
                except Exception:
                    logger.exception("hub: delivery to a socket failed")
            # One latency sample per event per process, taken once its sockets have the frame.
            committed_at = meta.get("at")
            if isinstance(committed_at, float):
                metrics.delivered(committed_at=committed_at, frames=len(listeners))
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
            for group in [*(group_name(key) for key in self._joined), self._canary_group]:
                with contextlib.suppress(Exception):
                    await layer.group_add(group, self._channel_name)

    # --- Heads: gaps the layer never reported -----------------------------------------------

    async def _heads_loop(self) -> None:
        while True:
            await asyncio.sleep(settings.CHAT_HEAD_INTERVAL)
            try:
                await self.check_heads()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("hub: reading channel heads failed")

    async def check_heads(self) -> None:
        """Tell local sockets of each channel whose head stayed ahead of what was published
        here for a whole interval (so not merely in flight). And, the database being the
        record of who may listen, end the local subscriptions of a channel that is gone, or of
        members taken out of one, whether or not their kick arrived."""
        keys = {int(key[2:]): key for key in self._listeners if key.startswith("c:")}
        if not keys:
            return
        heads = await db(channel_heads)(list(keys))
        recheck: dict[int, str] = {}
        for channel_id, key in keys.items():
            found = heads.get(channel_id)
            if found is None:
                self._kick_local(key, channel_id, "deleted")
                continue
            head = found.seq
            behind = head > self._published.get(key, 0)
            if behind and self._polled.get(key) == head:
                self._published[key] = head
                frame = Frame(encode({"type": "head", "channel": channel_id, "seq": head}))
                self.dispatch_local(key, frame, {"kind": "head", "seq": head})
            self._polled[key] = head
            # A count not seen before (a channel new here, or members taken out since the last
            # check): this process's listeners of the channel are checked once.
            if self._removals.get(key) != found.removals:
                recheck[channel_id] = key
                self._removals[key] = found.removals
        for key in self._removals.keys() - keys.values():
            del self._removals[key]
        if recheck:
            await self.check_members(recheck)

    async def check_members(self, keys: dict[int, str]) -> None:
        """End the subscriptions of local listeners of these channels (id -> key) who may no
        longer see them."""
        pairs = {
            (channel_id, listener.user_id)
            for channel_id, key in keys.items()
            for listener in self._listeners.get(key, ())
        }
        present = await db(channel_members_present)(pairs)
        missing = pairs - present
        if not missing:
            return
        # A channel deleted since its head was read (its members went with it) is reported as
        # deleted, as the check above would have.
        channel_ids = {channel_id for channel_id, _ in missing}
        still_there = await db(channel_heads)(list(channel_ids))
        for channel_id in channel_ids - still_there.keys():
            self._kick_local(keys[channel_id], channel_id, "deleted")
        for channel_id, user_id in missing:
            if channel_id not in still_there:
                continue
            logger.warning(
                "hub: user %s may no longer see channel %s; ending the subscription here",
                user_id,
                channel_id,
            )
            self._kick_local(keys[channel_id], channel_id, "removed", user_id=user_id)

    def _kick_local(
        self, key: str, channel_id: int, reason: str, *, user_id: int | None = None
    ) -> None:
        """What a `kick` control event does, for this process's listeners of `key` (of one
        user, or all of them)."""
        event = control_event(key, "kick", channel=channel_id, reason=reason)
        for listener in tuple(self._listeners.get(key, ())):
            if user_id is not None and listener.user_id != user_id:
                continue
            try:
                listener.control(key, event)
            except Exception:
                logger.exception("hub: control event for a socket failed")

    def dispatch_local(self, key: str, frame: Frame, meta: dict[str, Any]) -> None:
        for listener in tuple(self._listeners.get(key, ())):
            try:
                listener.deliver(key, frame, meta)
            except Exception:
                logger.exception("hub: delivery to a socket failed")

    # --- Canary: is the layer still delivering to us? ---------------------------------------

    async def _canary_loop(self) -> None:
        layer = channel_layer()
        with contextlib.suppress(Exception):
            await layer.group_add(self._canary_group, self._channel_name)
        while True:
            await asyncio.sleep(settings.CHAT_HUB_CANARY_SECONDS)
            if not self.layer_ok:
                # Groups may be gone (a restarted Redis forgets them): join the canary's again.
                with contextlib.suppress(Exception):
                    await layer.group_add(self._canary_group, self._channel_name)
            if await self.canary():
                if not self.layer_ok:
                    self._recovered()
            elif self.layer_ok:
                logger.warning("hub: the channel layer stopped delivering; sockets will reconnect")
                self.layer_ok = False
                # What this process had joined is unknown now: join again on the next attach.
                self._joined.clear()

    async def canary(self) -> bool:
        """Send an event to a group only this hub is in and wait for it to come back."""
        token = uuid.uuid4().hex
        waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._canary_waiting[token] = waiting
        try:
            await channel_layer().group_send(
                self._canary_group, {"type": "hub.canary", "token": token}
            )
            await asyncio.wait_for(waiting, timeout=settings.CHAT_HUB_CANARY_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception:
            return False
        finally:
            self._canary_waiting.pop(token, None)
        self.last_canary_at = time.monotonic()
        return True

    def _recovered(self) -> None:
        """The layer delivers again: every local socket reconnects and resumes."""
        self.layer_ok = True
        self._joined.clear()
        sockets = {listener for listeners in self._listeners.values() for listener in listeners}
        logger.warning("hub: channel layer back; closing %d sockets to resync", len(sockets))
        for listener in sockets:
            with contextlib.suppress(Exception):
                listener.control("", {"type": "hub.control", "action": "reconnect"})


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


def batch_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Events of one key as one: each hub that receives it dispatches them in order."""
    if len(events) == 1:
        return events[0]
    origin = {"origin": events[0]["origin"]} if "origin" in events[0] else {}
    return {"type": "hub.batch", "key": events[0]["key"], "events": events, **origin}


async def publish(event: dict[str, Any]) -> None:
    """Send `event` to the hubs listening to its key. One this process's hub published (its
    `origin`) does not go back to it, where the layer can leave it out (`group_send_others`)."""
    layer = channel_layer()
    origin = event.get("origin")
    send_others = getattr(layer, "group_send_others", None)
    if origin and send_others is not None:
        await send_others(group_name(event["key"]), event, origin)
    else:
        await layer.group_send(group_name(event["key"]), event)


class _Publisher:
    """A server process's outgoing events, published by one task of its event loop: the events
    of each key in the order they were handed over.

    A send's database thread hands its event over and returns: waiting for the event loop to
    run the publish (behind the fan-out of the messages before it) held every send of a busy
    channel for milliseconds after its commit. Nothing is lost by not waiting: the database
    already holds the change, and a publish that fails is caught up by the hub's heads check and
    by clients' `since`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: deque[dict[str, Any]] = deque()
        self.task: asyncio.Task[None] | None = None

    def put(self, event: dict[str, Any]) -> None:  # in the loop's thread
        origin = hub.origin_on(self.loop)
        if origin is not None:
            # This process's own sockets get it now, not after a trip through the layer (which
            # under load took tens of milliseconds); the hub skips it when the layer brings it
            # back, and the other processes' hubs get it from the layer.
            event = {**event, "origin": origin}
            hub.dispatch(event)
        self.pending.append(event)
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        # Everything handed over while the last calls ran goes now: one layer call per key
        # carries that key's events in order (up to `PUBLISH_BATCH`), and the calls of
        # different keys run side by side, `PUBLISH_AT_ONCE` at most. One call per event, one
        # after another, capped a process at about one event per layer round trip: under
        # load that was 150 a second, and a busy channel's messages queued for seconds.
        at_once = asyncio.Semaphore(PUBLISH_AT_ONCE)
        while self.pending:
            by_key: dict[str, list[dict[str, Any]]] = {}
            while self.pending:
                event = self.pending.popleft()
                by_key.setdefault(event["key"], []).append(event)
            await asyncio.gather(*(self._publish(events, at_once) for events in by_key.values()))

    async def _publish(self, events: list[dict[str, Any]], at_once: asyncio.Semaphore) -> None:
        for start in range(0, len(events), PUBLISH_BATCH):
            event = batch_event(events[start : start + PUBLISH_BATCH])
            async with at_once:
                try:
                    await asyncio.wait_for(publish(event), LAYER_CALL_SECONDS)
                except Exception:
                    _publish_failed(event)


_publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Publisher] = (
    weakref.WeakKeyDictionary()
)
_publishers_lock = threading.Lock()


def _serving_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop of this thread (code on the loop itself), or the one that
    handed this thread its work (a socket's database call or a view run in a thread), if there
    is one."""
    with contextlib.suppress(RuntimeError):
        return asyncio.get_running_loop()
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    if loop.is_closed() or not loop.is_running():
        return None
    return cast(asyncio.AbstractEventLoop, loop)


def _publish_failed(event: dict[str, Any]) -> None:
    # The database already holds the change; clients catch up on reconnect (`since`).
    logger.exception("hub: could not publish %s to %s", event.get("type"), event.get("key"))


def _publisher(loop: asyncio.AbstractEventLoop) -> _Publisher:
    with _publishers_lock:
        publisher = _publishers.get(loop)
        if publisher is None:
            publisher = _publishers[loop] = _Publisher(loop)
        return publisher


def publish_soon(event: dict[str, Any]) -> None:
    """Publish from the event loop without waiting: after the events of its key handed over
    before it, by the loop's one publisher task. A thousand sockets connecting at once (a
    restart) then make a few layer calls at a time, not a thousand at once."""
    _publisher(asyncio.get_running_loop()).put(event)


def publish_sync(event: dict[str, Any]) -> None:
    """Publish from synchronous code (a service's on-commit hook). In a server process this
    hands the event to the event loop's publisher and returns at once; elsewhere (a management
    command, a test without a loop) it publishes and waits."""
    loop = _serving_loop()
    if loop is not None:
        try:
            loop.call_soon_threadsafe(_publisher(loop).put, event)
            return
        except RuntimeError:  # the loop closed meanwhile
            pass
    try:
        async_to_sync(publish)(event)
    except Exception:
        _publish_failed(event)
