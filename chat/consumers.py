"""The one WebSocket per browser tab: `/ws/`. The protocol is in docs/protocol.md.

The consumer is thin: it checks each frame's shape, calls the permission-checked fetch and the
service function, and maps domain errors to `error` frames. Live events reach it through the
process-local hub (`chat.hub`), already encoded, and leave through one bounded outbox per socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.models import User
from chat import hub as hub_module
from chat.events import channel_key, community_key, user_key
from chat.hub import encode, frame_event, hub
from chat.models import Channel
from chat.payloads import author_payload, message_payload, payload_of
from chat.presence import presence_clear, presence_touch
from chat.selectors import channel_for_member, message_for_member, messages_since
from chat.services import (
    message_delete,
    message_edit,
    message_send,
    reaction_add,
    reaction_remove,
    read_mark,
)
from chat.session import session_hash
from chat.transport import SCOPE_KEY, Connection, Frame
from hobbies.errors import DomainError, Invalid, NotFound, RateLimited, TooLong

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_SLOW = 4008
CLOSE_LOGGED_OUT = 4001
TYPING_INTERVAL = 2.0
FRAME_BURST = 60
FRAME_RATE = 20.0  # frames per second, refilled continuously
DRAIN_POLL_SECONDS = 0.02


@dataclass
class Subscription:
    community_id: int
    # Newest id the subscribe covered (replayed, or already committed when it said `subscribed`).
    covered_id: int = 0
    # Live frames that arrive while the replay is being read wait here, in order.
    pending: list[tuple[Frame, dict[str, Any]]] | None = field(default_factory=list)
    last_typing: float = 0.0


class ChatConsumer(AsyncWebsocketConsumer):
    # Sockets never listen on the channel layer themselves: the process's hub does, once.
    channel_layer_alias = "hub-only"

    user: User
    user_id: int
    session_hash: str

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        session = self.scope.get("session")
        self.user, self.user_id = user, user.id
        self.session_hash = (
            session_hash(session.session_key) if session and session.session_key else ""
        )
        self.subscriptions: dict[str, Subscription] = {}
        self.outbox: deque[Frame] = deque()
        self.connection: Connection = self.scope.get(SCOPE_KEY) or Connection()
        self.wake = asyncio.Event()
        self.closed = False
        self.tokens, self.tokens_at = float(FRAME_BURST), time.monotonic()
        await self.accept()
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())
        self.me, self.community_ids = await database_sync_to_async(self._profile)()
        await hub.attach(user_key(self.user_id), self)
        if await sync_to_async(presence_touch)(self.user_id):
            await self._announce_presence(online=True)

    def _profile(self) -> tuple[dict[str, Any], list[int]]:
        ids = list(self.user.memberships.values_list("community_id", flat=True))
        return author_payload(self.user), ids

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "subscriptions"):
            return
        self.closed = True
        self.writer.cancel()
        keys = [user_key(self.user_id), *self.subscriptions]
        keys += {community_key(s.community_id) for s in self.subscriptions.values()}
        self.subscriptions.clear()
        await hub.detach_all(keys, self)
        if hub.listeners(user_key(self.user_id)) == 0:
            await sync_to_async(presence_clear)(self.user_id)
            await self._announce_presence(online=False)

    async def _announce_presence(self, *, online: bool) -> None:
        for community_id in self.community_ids:
            payload = {
                "type": "presence",
                "community": community_id,
                "user": self.me,
                "online": online,
            }
            await hub_module.publish(frame_event(community_key(community_id), payload))

    # --- Outgoing ----------------------------------------------------------------------------

    def _enqueue(self, frame: Frame) -> None:
        if self.closed:
            return
        # Straight to the connection when nothing waits ahead of it and the client keeps up.
        if (
            not self.outbox
            and self.connection.backlog() <= settings.CHAT_SOCKET_MAX_BUFFER_BYTES
            and self.connection.write(frame)
        ):
            return
        if len(self.outbox) >= settings.CHAT_SOCKET_MAX_PENDING:
            self._too_slow(f"{len(self.outbox)} frames pending")
            return
        self.outbox.append(frame)
        self.wake.set()

    def _too_slow(self, why: str) -> None:
        # The client cannot keep up: close, and let it reconnect and catch up with `since`.
        logger.warning("closing socket of user %s: too slow (%s)", self.user_id, why)
        self.closed = True
        self.outbox.clear()
        asyncio.get_running_loop().create_task(self.close(code=CLOSE_TOO_SLOW))

    def _reply(self, payload: dict[str, Any]) -> None:
        self._enqueue(Frame(encode(payload)))

    async def _write_loop(self) -> None:
        limit = settings.CHAT_SOCKET_MAX_BUFFER_BYTES
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox and not self.closed:
                if self.connection.backlog() > limit and not await self._drained(limit):
                    self._too_slow(f"{self.connection.backlog()} bytes unread")
                    return
                frame = self.outbox.popleft()
                if not self.connection.write(frame):
                    await self.base_send({"type": "websocket.send", "text": frame.text})

    async def _drained(self, limit: int) -> bool:
        """Wait for the transport to hand the client what it holds; False if it never does."""
        deadline = time.monotonic() + settings.CHAT_SOCKET_DRAIN_SECONDS
        while self.connection.backlog() > limit // 2:
            if time.monotonic() > deadline or self.closed:
                return False
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        return True

    # Called by the hub, synchronously, for every event on a key this socket listens to.
    def deliver(self, key: str, frame: Frame, meta: dict[str, Any]) -> None:
        if key[0] == "c":
            sub = self.subscriptions.get(key)
            if sub is None:
                return
            if sub.pending is not None:
                sub.pending.append((frame, meta))
                return
            if meta.get("kind") == "message.new" and meta["id"] <= sub.covered_id:
                return  # the subscribe already covered it
            # Live messages are never dropped for being older than one sent before: two server
            # processes may publish a channel's messages in the other order than they committed.
        self._enqueue(frame)

    def control(self, key: str, event: dict[str, Any]) -> None:
        action = event.get("action")
        if action == "kick":
            ckey = channel_key(event["channel"])
            sub = self.subscriptions.pop(ckey, None)
            if sub is not None:
                self._reply(
                    {"type": "unsubscribed", "channel": event["channel"], "reason": "removed"}
                )
                asyncio.get_running_loop().create_task(self._release(ckey, sub.community_id))
        elif action == "close" and event.get("session") == self.session_hash:
            self.closed = True
            self.outbox.clear()
            self.subscriptions.clear()
            asyncio.get_running_loop().create_task(self.close(code=CLOSE_LOGGED_OUT))

    async def _release(self, ckey: str, community_id: int) -> None:
        await hub.detach(ckey, self)
        if not any(s.community_id == community_id for s in self.subscriptions.values()):
            await hub.detach(community_key(community_id), self)

    # --- Incoming ----------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closed:
            return
        ref: Any = None
        try:
            if text_data is None:
                raise Invalid("Frames are JSON text.")
            # Characters first (cheap, and never more than bytes), then UTF-8 bytes.
            limit = settings.CHAT_FRAME_MAX_BYTES
            if len(text_data) > limit or len(text_data.encode()) > limit:
                raise TooLong(f"A frame has at most {settings.CHAT_FRAME_MAX_BYTES} bytes.")
            try:
                frame = json.loads(text_data)
            except ValueError:
                raise Invalid("Frames are JSON objects.") from None
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                raise Invalid("Frames are JSON objects with a string `type`.")
            kind = frame["type"]
            ref = frame.get("client_id") if kind == "message.send" else kind
            if not isinstance(ref, (str, int)) or isinstance(ref, bool):
                ref = kind
            handler = self.handlers.get(kind)
            if handler is None:
                raise Invalid(f"Unknown frame type {kind[:40]!r}.")
            self._spend_token()
            await handler(self, frame)
        except DomainError as exc:
            self._reply({"type": "error", "code": exc.code, "detail": exc.detail, "ref": ref})
        except Exception:
            logger.exception("socket frame failed for user %s", self.user_id)
            self._reply(
                {
                    "type": "error",
                    "code": "internal",
                    "detail": "Something broke; try again.",
                    "ref": ref,
                }
            )

    def _spend_token(self) -> None:
        if not settings.RATE_LIMITS_ENABLED:
            return
        now = time.monotonic()
        self.tokens = min(FRAME_BURST, self.tokens + (now - self.tokens_at) * FRAME_RATE)
        self.tokens_at = now
        if self.tokens < 1:
            raise RateLimited("Slow down: too many frames.")
        self.tokens -= 1

    async def on_subscribe(self, frame: dict[str, Any]) -> None:
        since = frame.get("since")
        if since is not None and (
            not isinstance(since, int) or isinstance(since, bool) or since < 0
        ):
            raise Invalid("since is a message id or null.")
        channel = await database_sync_to_async(channel_for_member)(self.user, frame.get("channel"))
        ckey = channel_key(channel.id)
        sub = Subscription(community_id=channel.community_id)
        self.subscriptions[ckey] = sub
        # Listen first, then read: whatever commits after the read arrives live, and whatever
        # committed before it is in the replay; `covered_id` drops the overlap.
        await hub.attach(ckey, self)
        await hub.attach(community_key(channel.community_id), self)
        replay, last_id, truncated = await database_sync_to_async(self._replay)(channel, since)
        if self.subscriptions.get(ckey) is not sub:
            return  # unsubscribed or removed meanwhile
        for frame_text in replay:
            self._enqueue(Frame(frame_text))
        reply: dict[str, Any] = {"type": "subscribed", "channel": channel.id, "last_id": last_id}
        if truncated:
            reply["truncated"] = True
        self._reply(reply)
        sub.covered_id = last_id
        pending, sub.pending = sub.pending or [], None
        for queued, meta in pending:
            self.deliver(ckey, queued, meta)

    def _replay(self, channel: Channel, since: int | None) -> tuple[list[str], int, bool]:
        last_id = Channel.objects.values_list("last_message_id", flat=True).get(id=channel.id)
        if since is None or since >= last_id:
            return [], last_id, False
        rows, truncated = messages_since(channel, since, settings.CHAT_REPLAY_LIMIT)
        if truncated:
            return [], last_id, True
        frames = [encode({"type": "message.new", "message": message_payload(m)}) for m in rows]
        return frames, max([last_id, *(m.id for m in rows)]), False

    async def on_unsubscribe(self, frame: dict[str, Any]) -> None:
        ckey = channel_key(_int(frame.get("channel"), "channel"))
        sub = self.subscriptions.pop(ckey, None)
        if sub is None:
            raise NotFound("Not subscribed to that channel.")
        await self._release(ckey, sub.community_id)
        self._reply({"type": "unsubscribed", "channel": int(ckey[2:]), "reason": "requested"})

    async def on_send(self, frame: dict[str, Any]) -> None:
        client_id = frame.get("client_id")
        payload = await database_sync_to_async(self._send)(frame)
        self._reply({"type": "message.ack", "client_id": str(client_id), "message": payload})

    def _send(self, frame: dict[str, Any]) -> dict[str, Any]:
        channel = channel_for_member(self.user, frame.get("channel"))
        reply_to = frame.get("reply_to")
        message, _ = message_send(
            channel=channel,
            author=self.user,
            body=frame.get("body"),
            client_id=frame.get("client_id"),
            reply_to=None if reply_to is None else _int(reply_to, "reply_to"),
            attachments=frame.get("attachments"),
        )
        return payload_of(message)

    async def on_edit(self, frame: dict[str, Any]) -> None:
        await database_sync_to_async(self._on_message)(frame, message_edit, body=frame.get("body"))

    async def on_delete(self, frame: dict[str, Any]) -> None:
        await database_sync_to_async(self._on_message)(frame, message_delete)

    async def on_reaction_add(self, frame: dict[str, Any]) -> None:
        await database_sync_to_async(self._on_reaction)(frame, reaction_add)

    async def on_reaction_remove(self, frame: dict[str, Any]) -> None:
        await database_sync_to_async(self._on_reaction)(frame, reaction_remove)

    def _on_message(self, frame: dict[str, Any], action: Callable[..., Any], **kwargs: Any) -> None:
        message = message_for_member(self.user, frame.get("message"))
        action(message=message, by=self.user, **kwargs)

    def _on_reaction(self, frame: dict[str, Any], action: Callable[..., Any]) -> None:
        message = message_for_member(self.user, frame.get("message"))
        action(message=message, user=self.user, emoji=frame.get("emoji"))

    async def on_typing(self, frame: dict[str, Any]) -> None:
        cid = _int(frame.get("channel"), "channel")
        sub = self.subscriptions.get(channel_key(cid))
        if sub is None:
            raise NotFound("Subscribe to the channel first.")
        now = time.monotonic()
        if now - sub.last_typing < TYPING_INTERVAL:
            return
        sub.last_typing = now
        await hub_module.publish(
            frame_event(channel_key(cid), {"type": "typing", "channel": cid, "user": self.me})
        )

    async def on_read(self, frame: dict[str, Any]) -> None:
        marker = await database_sync_to_async(self._read)(frame)
        self._reply({"type": "read", "channel": frame.get("channel"), "message": marker})

    def _read(self, frame: dict[str, Any]) -> int:
        channel = channel_for_member(self.user, frame.get("channel"))
        return read_mark(channel=channel, user=self.user, message_id=frame.get("message"))

    async def on_ping(self, frame: dict[str, Any]) -> None:
        self._reply({"type": "pong"})
        if await sync_to_async(presence_touch)(self.user_id):
            await self._announce_presence(online=True)

    handlers: dict[str, Callable[[ChatConsumer, dict[str, Any]], Awaitable[None]]] = {
        "subscribe": on_subscribe,
        "unsubscribe": on_unsubscribe,
        "message.send": on_send,
        "message.edit": on_edit,
        "message.delete": on_delete,
        "reaction.add": on_reaction_add,
        "reaction.remove": on_reaction_remove,
        "typing": on_typing,
        "read": on_read,
        "ping": on_ping,
    }


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} must be an id.")
    return value
