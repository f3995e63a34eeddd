"""The one WebSocket per browser tab: `/ws/`. The protocol is in docs/protocol.md.

The consumer is thin: it checks each frame's shape, calls the permission-checked fetch and the
service function, and maps domain errors to `error` frames. Live events reach it through the
process-local hub (`chat.hub`), already encoded, and leave through one bounded outbox per socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.models import User
from chat import hub as hub_module
from chat import moderation_api
from chat.backends.base import MessagePending
from chat.dbthreads import db
from chat.events import channel_key, community_key, user_key
from chat.hub import encode, frame_event, hub
from chat.models import Channel
from chat.outbox import Outbox
from chat.payloads import author_payload, flow_status_payload, message_payload
from chat.presence import presence_clear, presence_touch
from chat.replay import Replay, Subscription, replay
from chat.selectors import (
    channel_for_member,
    channel_for_sender,
    held_for_author,
    message_for_member,
)
from chat.services import (
    Sent,
    message_delete,
    message_edit,
    message_send,
    message_send_from_loop,
    reaction_add,
    reaction_remove,
    read_mark,
)
from chat.session import session_hash
from chat.transport import SCOPE_KEY, Connection, Frame
from hobbies import logs, metrics
from hobbies.errors import DomainError, HeldForReview, Invalid, NotFound, RateLimited, TooLong
from hobbies.parsing import (
    optional_id,
    parse_count,
    parse_id,
    parse_text,
    parse_uuid,
    parse_uuid_list,
    require_id,
)
from hobbies.ratelimit import Budget

logger = logging.getLogger(__name__)


def replay_budget() -> Budget:
    """Messages replayed to one user, over all their sockets and the server's processes."""
    return Budget("replay", settings.CHAT_REPLAY_BUDGET)


CLOSE_UNAUTHENTICATED = 4401
CLOSE_LOGGED_OUT = 4001
CLOSE_RECONNECT = 4012
CLOSE_REVOKED = 4403
CLOSE_TOO_MANY_SOCKETS = 4429
TYPING_INTERVAL = 2.0
FRAME_BURST = 60
FRAME_RATE = 20.0  # frames per second, refilled continuously


class ChatConsumer(AsyncWebsocketConsumer):
    # Sockets never listen on the channel layer themselves: the process's hub does, once.
    channel_layer_alias = "hub-only"

    user: User
    user_id: int
    session_hash: str

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch, without the `aclose_old_connections()` it awaits before every
        handler: a hop through the process's one thread for synchronous code, which Django's
        views share, for every frame a client sends, so a slow page held up every socket of the
        process. This consumer's synchronous work runs in `chat.dbthreads`' pool, which checks
        its connections itself, and the sign-in read at connect (Channels' `get_user`) closes
        its own."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            metrics.AUTH_FAILURES.inc()
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        session = self.scope.get("session")
        self.user, self.user_id = user, user.id
        self.session_hash = (
            session_hash(session.session_key) if session and session.session_key else ""
        )
        self.subscriptions: dict[str, Subscription] = {}
        # Every hub key this socket listens to, so that closing detaches from all of them.
        self.attached: set[str] = set()
        # While one of this socket's sends is in flight, its own new messages wait, so that the
        # ack (which replaces the page's pending copy) always comes before the echo.
        self.sending = 0
        self.own_held: list[tuple[str, Frame, dict[str, Any]]] = []
        self.tokens, self.tokens_at = float(FRAME_BURST), time.monotonic()
        self.checked_at = -math.inf
        await self.accept()
        self.connection_id = logs.new_id()
        logs.connection_id.set(self.connection_id)
        logs.user_id.set(self.user_id)
        metrics.socket_opened()
        self.outbox = Outbox(
            self.scope.get(SCOPE_KEY) or Connection(),
            send_text=lambda text: self.base_send({"type": "websocket.send", "text": text}),
            close=lambda code: self.close(code=code),
            label=f"user {self.user_id}",
        )
        if hub.listeners(user_key(self.user_id)) >= settings.CHAT_MAX_SOCKETS_PER_USER:
            # Counted and attached with no await between, so two connects cannot both pass.
            self.outbox.close_with(CLOSE_TOO_MANY_SOCKETS)
            return
        # Listen first, then read the account: a deactivation that commits after the read
        # arrives as a control event, one that committed before it is in the read.
        try:
            await self._listen(user_key(self.user_id))
            self.me, self.community_ids = await db(self._profile)()
        except Exception:
            # The layer or the database failed (a restart): the client tries again.
            logger.exception("socket could not be opened for user %s", self.user_id)
            self.me, self.community_ids = {}, []
            self.outbox.close_with(CLOSE_RECONNECT)
            return
        if not await self._still_allowed():
            return
        logger.info("socket opened")
        if await db(presence_touch)(self.user_id):
            self._announce_presence(online=True)

    async def _refuse(self, code: int) -> None:
        """Open, then close with `code`: a socket refused before the handshake completes shows
        the browser only 1006, which it retries for ever; a close code tells it why."""
        await self.accept()
        await self.close(code=code)

    def _profile(self) -> tuple[dict[str, Any], list[int]]:
        ids = list(self.user.memberships.values_list("community_id", flat=True))
        return author_payload(self.user), ids

    async def _still_allowed(self) -> bool:
        """Whether the account is still active with the password it had when the socket
        opened; if not, the socket closes with `CLOSE_REVOKED`. Read at most once every
        `CHAT_AUTH_RECHECK_SECONDS` (deactivations and password changes close sockets at once
        through a control event; this catches changes that sent none, such as bulk updates)."""
        now = time.monotonic()
        if now < self.checked_at + settings.CHAT_AUTH_RECHECK_SECONDS:
            return True
        self.checked_at = now
        allowed = await db(
            User.objects.filter(pk=self.user_id, is_active=True, password=self.user.password).exists
        )()
        if not allowed:
            self._revoke()
        return allowed

    def _revoke(self) -> None:
        self.subscriptions.clear()
        self.outbox.close_with(CLOSE_REVOKED)

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "subscriptions"):
            return
        metrics.socket_closed()
        logger.info("socket closed (code %s)", code)
        self.outbox.stop()
        self.subscriptions.clear()
        keys, self.attached = self.attached, set()
        await hub.detach_all(keys, self)
        if hub.listeners(user_key(self.user_id)) == 0:
            await db(presence_clear)(self.user_id)
            self._announce_presence(online=False)

    def _announce_presence(self, *, online: bool) -> None:
        for community_id in self.community_ids:
            payload = {
                "type": "presence",
                "community": community_id,
                "user": self.me,
                "online": online,
            }
            hub_module.publish_soon(frame_event(community_key(community_id), payload))

    # --- Outgoing ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.outbox.closed

    def _reply(self, payload: dict[str, Any]) -> None:
        self.outbox.put(Frame(encode(payload)))

    # Called by the hub, synchronously, for every event on a key this socket listens to.
    def deliver(self, key: str, frame: Frame, meta: dict[str, Any]) -> None:
        if self.sending and meta.get("author") == self.user_id and key[0] == "c":
            self.own_held.append((key, frame, meta))
            return
        if key[0] == "c":
            sub = self.subscriptions.get(key)
            if sub is None or not sub.admit(frame, meta):
                return
        self.outbox.put(frame)

    def control(self, key: str, event: dict[str, Any]) -> None:
        action = event.get("action")
        if action == "kick":
            ckey = channel_key(event["channel"])
            sub = self.subscriptions.pop(ckey, None)
            if sub is not None:
                # `deleted`: the channel is gone; else the user was taken out of it.
                reason = event.get("reason") or "removed"
                self._reply({"type": "unsubscribed", "channel": event["channel"], "reason": reason})
                asyncio.get_running_loop().create_task(self._release(ckey, sub.community_id))
        elif action == "close" and event.get("reason") == "revoked":
            self._revoke()
        elif action == "close" and event.get("session") == self.session_hash:
            self.subscriptions.clear()
            self.outbox.close_with(CLOSE_LOGGED_OUT)
        elif action == "reconnect":
            # The hub lost events (channel layer restarted): resume from the database.
            self.subscriptions.clear()
            self.outbox.close_with(CLOSE_RECONNECT)

    async def _listen(self, key: str) -> None:
        await hub.attach(key, self)
        self.attached.add(key)

    async def _release(self, ckey: str, community_id: int) -> None:
        """Stop listening to a channel no longer subscribed, and to its community if no other
        subscription of this socket is in it. Each is decided when it is reached: a subscribe
        may run while this waits."""
        if ckey in self.attached and ckey not in self.subscriptions:
            self.attached.discard(ckey)
            await hub.detach(ckey, self)
        mkey = community_key(community_id)
        if mkey in self.attached and not any(
            s.community_id == community_id for s in self.subscriptions.values()
        ):
            self.attached.discard(mkey)
            await hub.detach(mkey, self)

    # --- Incoming ----------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closed:
            return
        ref: Any = None
        kind_sent = False
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
            kind_sent = kind == "message.send"
            ref = frame.get("client_id") if kind == "message.send" else kind
            if not isinstance(ref, (str, int)) or isinstance(ref, bool):
                ref = kind
            handler = self.handlers.get(kind)
            if handler is None:
                raise Invalid(f"Unknown frame type {kind[:40]!r}.")
            self._spend_token()
            if not await self._still_allowed():
                return
            await handler(self, frame)
        except DomainError as exc:
            if kind_sent and not isinstance(exc, HeldForReview):  # held, not refused
                metrics.send_failed(exc.code)
            error = {"type": "error", "code": exc.code, "detail": exc.detail, "ref": ref}
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                error["retry_after"] = exc.retry_after
            self._reply({**error, **exc.extra})
        except Exception:
            if kind_sent:
                metrics.send_failed("internal")
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
            metrics.RATE_LIMITED.labels(what="socket_frames").inc()
            raise RateLimited("Slow down: too many frames.", retry_after=1)
        self.tokens -= 1

    async def on_subscribe(self, frame: dict[str, Any]) -> None:
        seq, since = frame.get("seq"), frame.get("since")
        seq = None if seq is None else parse_count(seq, "seq", text=False)
        since = None if since is None else parse_count(since, "since", text=False)
        resumes = seq is not None or since is not None
        channel = await db(self._subscribe_target)(parse_id(frame.get("channel")), resumes)
        ckey = channel_key(channel.id)
        sub = Subscription(community_id=channel.community_id)
        self.subscriptions[ckey] = sub
        try:
            # Listen first, then read (see chat.replay).
            await self._listen(ckey)
            await self._listen(community_key(channel.community_id))
            caught_up: Replay = await db(self._replay)(channel, seq, since)
        except Exception:
            # Half a subscription (not listening, or holding live frames for a replay that
            # never came) would stay silent for ever. Closing instead makes the client resume
            # every channel from what it holds (the layer or the database failed: a restart).
            logger.exception("subscribe to channel %s failed; closing the socket", channel.id)
            self.subscriptions.clear()
            self.outbox.close_with(CLOSE_RECONNECT)
            return
        if self.subscriptions.get(ckey) is not sub:
            return  # unsubscribed or removed meanwhile
        self.outbox.put_many([Frame(text) for text in caught_up.frames])
        reply: dict[str, Any] = {
            "type": "subscribed",
            "channel": channel.id,
            "last_id": caught_up.last_id,
            "last_seq": caught_up.last_seq,
        }
        if caught_up.truncated:
            reply["truncated"] = True
        self._reply(reply)
        for queued, meta in sub.covered(caught_up.last_seq):
            self.deliver(ckey, queued, meta)

    def _subscribe_target(self, channel_id: int | None, resumes: bool) -> Channel:
        channel = channel_for_member(self.user, channel_id)
        if resumes:
            replay_budget().check(str(self.user_id))
        return channel

    def _replay(self, channel: Channel, seq: int | None, since: int | None) -> Replay:
        caught_up = replay(channel, seq=seq, since=since)
        metrics.REPLAYS.inc()
        metrics.REPLAY_FRAMES.inc(len(caught_up.frames))
        # What the replay read: every message it sent, or the limit when it sent none.
        cost = settings.CHAT_REPLAY_LIMIT if caught_up.truncated else len(caught_up.frames)
        replay_budget().spend(str(self.user_id), cost)
        return caught_up

    async def on_unsubscribe(self, frame: dict[str, Any]) -> None:
        ckey = channel_key(require_id(frame.get("channel"), "channel", text=False))
        sub = self.subscriptions.pop(ckey, None)
        if sub is None:
            raise NotFound("Not subscribed to that channel.")
        await self._release(ckey, sub.community_id)
        self._reply({"type": "unsubscribed", "channel": int(ckey[2:]), "reason": "requested"})

    async def on_send(self, frame: dict[str, Any]) -> None:
        client_id = frame.get("client_id")
        self.sending += 1
        try:
            try:
                sent = await self._send_from_loop(frame)
                payload = sent.payload if sent is not None else await db(self._send)(frame)
            except MessagePending as flow:
                # Stored for its author only, until the channel flow decides (docs/chime.md).
                self._reply(
                    {
                        "type": "message.ack",
                        "client_id": str(client_id),
                        "status": "pending",
                        "held": flow.held,
                        "detail": flow.detail,
                        "message": None,
                    }
                )
                return
            self._reply(
                {
                    "type": "message.ack",
                    "client_id": str(client_id),
                    "status": "sent",
                    "message": payload,
                }
            )
        finally:
            self.sending -= 1
            if not self.sending and self.own_held:
                held, self.own_held = self.own_held, []
                for key, queued, meta in held:
                    self.deliver(key, queued, meta)

    async def _send_from_loop(self, frame: dict[str, Any]) -> Sent | None:
        """A plain message, sent from the event loop where it can be (`message_send_from_loop`);
        None: `_send` sends it, in the pool."""
        channel_id, client_id, body, reply_to, attachments = _send_fields(frame)
        if reply_to is not None or attachments:
            return None
        return await message_send_from_loop(
            author=self.user, channel_id=channel_id, body=body, client_id=client_id
        )

    def _send(self, frame: dict[str, Any]) -> dict[str, Any]:
        channel_id, client_id, body, reply_to, attachments = _send_fields(frame)
        channel, sender = channel_for_sender(self.user, channel_id, client_id)
        sent = message_send(
            channel=channel,
            author=self.user,
            body=body,
            client_id=client_id,
            reply_to=reply_to,
            attachments=attachments,
            sender=sender,
        )
        return sent.payload

    async def on_status(self, frame: dict[str, Any]) -> None:
        """Where a channel flow is with one of this user's messages (`message.status`)."""
        client_id = parse_uuid(frame.get("client_id"), "client_id")
        self._reply(await db(self._status)(client_id))

    def _status(self, client_id: uuid.UUID) -> dict[str, Any]:
        held = held_for_author(self.user, client_id)
        sent = None
        if held.message_id is not None:
            sent = message_payload(message_for_member(self.user, held.message_id))
        return flow_status_payload(held, sent)

    async def on_edit(self, frame: dict[str, Any]) -> None:
        body = parse_text(frame.get("body"), "body")
        await db(self._on_message)(frame, message_edit, body=body)

    async def on_delete(self, frame: dict[str, Any]) -> None:
        await db(self._on_message)(frame, message_delete)

    async def on_reaction_add(self, frame: dict[str, Any]) -> None:
        await db(self._on_reaction)(frame, reaction_add)

    async def on_reaction_remove(self, frame: dict[str, Any]) -> None:
        await db(self._on_reaction)(frame, reaction_remove)

    def _on_message(self, frame: dict[str, Any], action: Callable[..., Any], **kwargs: Any) -> None:
        message = message_for_member(self.user, parse_id(frame.get("message")))
        action(message=message, by=self.user, **kwargs)

    def _on_reaction(self, frame: dict[str, Any], action: Callable[..., Any]) -> None:
        emoji = parse_text(frame.get("emoji"), "emoji")
        message = message_for_member(self.user, parse_id(frame.get("message")))
        action(message=message, user=self.user, emoji=emoji)

    async def on_typing(self, frame: dict[str, Any]) -> None:
        cid = require_id(frame.get("channel"), "channel", text=False)
        sub = self.subscriptions.get(channel_key(cid))
        if sub is None:
            raise NotFound("Subscribe to the channel first.")
        now = time.monotonic()
        if now - sub.last_typing < TYPING_INTERVAL:
            return
        sub.last_typing = now
        hub_module.publish_soon(
            frame_event(channel_key(cid), {"type": "typing", "channel": cid, "user": self.me})
        )

    async def on_read(self, frame: dict[str, Any]) -> None:
        channel_id = parse_id(frame.get("channel"))
        message_id = require_id(frame.get("message"), "message", text=False)
        marker = await db(self._read)(channel_id, message_id)
        self._reply({"type": "read", "channel": channel_id, "message": marker})

    def _read(self, channel_id: int | None, message_id: int) -> int:
        channel = channel_for_member(self.user, channel_id)
        return read_mark(channel=channel, user=self.user, message_id=message_id)

    async def on_ping(self, frame: dict[str, Any]) -> None:
        self._reply({"type": "pong"})
        if await db(presence_touch)(self.user_id):
            self._announce_presence(online=True)

    async def on_moderation(self, frame: dict[str, Any]) -> None:
        """The moderation frames (`chat.moderation_api.ACTIONS`), answered with `done`."""
        result = await db(moderation_api.perform)(self.user, frame["type"], frame, text=False)
        self._reply({"type": "done", **result})

    handlers: dict[str, Callable[[ChatConsumer, dict[str, Any]], Awaitable[None]]] = {
        "subscribe": on_subscribe,
        "unsubscribe": on_unsubscribe,
        "message.send": on_send,
        "message.status": on_status,
        "message.edit": on_edit,
        "message.delete": on_delete,
        "reaction.add": on_reaction_add,
        "reaction.remove": on_reaction_remove,
        "typing": on_typing,
        "read": on_read,
        "ping": on_ping,
        **dict.fromkeys(moderation_api.ACTIONS, on_moderation),
    }


def _send_fields(
    frame: dict[str, Any],
) -> tuple[int | None, uuid.UUID, str, int | None, list[uuid.UUID]]:
    """A `message.send` frame's channel, client_id, body, reply target and attachments (checked
    in the order they always were, so the same field is reported first)."""
    client_id = parse_uuid(frame.get("client_id"), "client_id")
    reply_to = optional_id(frame.get("reply_to"), "reply_to", text=False)
    body = parse_text(frame.get("body"), "body", default="")
    attachments = parse_uuid_list(frame.get("attachments"), "attachments")
    return parse_id(frame.get("channel")), client_id, body, reply_to, attachments
