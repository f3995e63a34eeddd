"""The Chime bridge: what other Chime clients do reaches our channels (`manage.py chime_bridge`).

One long-running worker opens the Chime messaging session WebSocket as the bridge user (an
AppInstanceAdmin, so it hears every channel of the AppInstance), and maps each event onto our
channels through the ordinary services, inside `chat.backends.inbound()` so nothing is sent back:

- CREATE_CHANNEL_MESSAGE from someone else: `message_send(..., external_id=<Chime id>)`, so it
  gets the next `seq` under the channel lock and is broadcast after commit (chat.events) like any
  message. Our own sends carry `"origin": "hobbies"` in their Metadata and are skipped; the rest
  are deduplicated by Chime message id (`Message.external_id`, and a client_id derived from it).
- UPDATE / REDACT / DELETE_CHANNEL_MESSAGE: `message_edit` / `message_delete` by the author.
- CREATE_CHANNEL_MESSAGE of one of ours that a channel flow held (PENDING): the flow sent it,
  so it is released (`message_flow_resolve`).
- DELETE_CHANNEL_MEMBERSHIP of one of our members: Chime sends no ban event, only the removal
  a ban makes, so the bridge asks DescribeChannelBan. A ban made by someone other than the
  bridge user (a moderator on another Chime client) becomes the community's ban
  (`membership_ban_external`, no app actor), which mirrors to the other channels as any ban;
  otherwise, in a private channel, the member left it (`channel_member_remove`). Other
  membership and channel changes made outside the app are drift: logged and counted, and
  `chime_sync` puts Chime back in line with the database (the record).

Channel flows: Chime tells a flow's DENIED or FAILED outcome only to the sender's sessions, and
the bridge is not the sender, so it also asks: every pending flow message is polled with
GetChannelMessageStatus as its author, first after `CHIME_FLOW_POLL_SECONDS`, then with the
interval doubling up to `FLOW_POLL_MAX`; a message still pending `CHIME_FLOW_TIMEOUT_SECONDS`
after it was sent is given up as FAILED (and deleted from Chime should its flow send it later).
The pending messages are rows (`HeldMessage`), so a restarted bridge polls them again.

Reconnects: close codes 1001, 1006, 1011 to 1014 and 4001 to 4999 except 4002, 4003 and 4401 are
retried with full-jitter backoff (the Chime SDK's rule); each connection asks for the endpoint
again and presigns with fresh credentials. After every (re)connection the bridge pages
ListChannelMessages (NextToken) of each channel that had messages since its cursor, so what
happened while it was away is stored too. Health (connected, last event, lag) is a cache entry
that `manage.py chime_bridge --health` and `doctor` read.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from accounts.models import User
from chat.backends import inbound
from chat.backends.base import MessagingUnavailable
from chat.backends.chime import ORIGIN, ChannelBan, ChimeBackend, session_url
from chat.chime_admin import import_ban, importable, made_in_chime, pages
from chat.models import Channel, ChannelMember, HeldMessage, Message
from chat.services import (
    channel_member_remove,
    message_delete,
    message_edit,
    message_flow_resolve,
    message_send,
)
from hobbies import metrics
from hobbies.cache import cache
from hobbies.errors import DomainError

logger = logging.getLogger(__name__)

HEALTH_KEY = "chime-bridge:health"
CURSOR_KEY = "chime-bridge:cursor"
HEALTH_TTL = 120
CURSOR_MARGIN = timedelta(seconds=10)
FIRST_CATCH_UP = timedelta(hours=1)
BACKOFF_MAX = 30.0
SETTLE_SECONDS = 2.0
CLIENT_ID_NAMESPACE = uuid.UUID("6f1d3b52-93a4-4a8e-9d8c-2d3c5c0b7a11")
FLOW_POLL_MAX = 30.0
FLOW_SCAN_SECONDS = 0.5  # how often the pending flow messages are looked at
FLOW_BATCH = 100


def retryable(code: int) -> bool:
    """The Chime SDK's reconnect rule for messaging session close codes."""
    return (
        code in (1001, 1006)
        or 1011 <= code <= 1014
        or (code > 4000 and code not in (4002, 4003, 4401))
    )


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def health() -> dict[str, Any] | None:
    """What the running bridge last said about itself (None: no bridge has run lately)."""
    found: dict[str, Any] | None = cache.get(HEALTH_KEY)
    return found


@dataclass
class Stats:
    events: int = 0
    stored: int = 0
    duplicates: int = 0
    drift: int = 0
    reconnects: int = 0
    flow_polls: int = 0
    flow_resolved: int = 0
    bans_imported: int = 0
    last_event: datetime | None = None
    lag: float | None = None


class Bridge:
    def __init__(self, backend: ChimeBackend | None = None) -> None:
        self.backend = backend or ChimeBackend()
        self.config = self.backend.config
        self.stats = Stats()
        self.connected = False
        self.stop = threading.Event()
        self.ws: ClientConnection | None = None
        self.later: list[tuple[float, str, dict[str, Any]]] = []
        # Pending flow messages: held id -> (when to ask next, the interval after that).
        self.flow_due: dict[int, tuple[float, float]] = {}
        self.flow_scan_at = 0.0

    # --- health and cursor ----------------------------------------------------------------

    def report(self) -> None:
        metrics.bridge_connected(self.connected)
        metrics.BRIDGE_LAG.set(self.stats.lag or 0)
        cache.set(
            HEALTH_KEY,
            {
                "connected": self.connected,
                "updated": datetime.now(UTC).isoformat(),
                "last_event": self.stats.last_event.isoformat() if self.stats.last_event else None,
                "lag_seconds": self.stats.lag,
                "events": self.stats.events,
                "stored": self.stats.stored,
                "reconnects": self.stats.reconnects,
                "drift": self.stats.drift,
                "flow_polls": self.stats.flow_polls,
                "flow_resolved": self.stats.flow_resolved,
                "bans_imported": self.stats.bans_imported,
            },
            HEALTH_TTL,
        )

    def cursor(self) -> datetime:
        saved = _parse_time(cache.get(CURSOR_KEY))
        return saved if saved is not None else datetime.now(UTC) - FIRST_CATCH_UP

    def advance(self, at: datetime | None) -> None:
        if at is not None and at > self.cursor():
            cache.set(CURSOR_KEY, at.isoformat(), None)

    # --- events ---------------------------------------------------------------------------

    def handle(self, raw: str) -> None:
        frame = json.loads(raw)
        kind = frame.get("Headers", {}).get("x-amz-chime-event-type", "")
        payload = json.loads(frame["Payload"]) if frame.get("Payload") else {}
        if kind == "SESSION_ESTABLISHED":
            return
        self.stats.events += 1
        self.stats.last_event = datetime.now(UTC)
        close_old_connections()
        try:
            with inbound():
                if kind == "CREATE_CHANNEL_MESSAGE":
                    created = _parse_time(payload.get("CreatedTimestamp"))
                    if created is not None:  # lag: from Chime accepting it to us handling it
                        self.stats.lag = (datetime.now(UTC) - created).total_seconds()
                    self.store(payload["ChannelArn"], payload)
                elif kind == "UPDATE_CHANNEL_MESSAGE":
                    self.edited(payload)
                elif kind in ("REDACT_CHANNEL_MESSAGE", "DELETE_CHANNEL_MESSAGE"):
                    self.deleted(payload)
                elif kind in ("CREATE_CHANNEL_MEMBERSHIP", "DELETE_CHANNEL_MEMBERSHIP"):
                    # Our own membership changes come back before their transaction commits:
                    # look at them once the database has settled.
                    self.later.append((time.monotonic() + SETTLE_SECONDS, kind, payload))
                elif kind in ("UPDATE_CHANNEL", "DELETE_CHANNEL"):
                    self.drift(kind, payload)
        except DomainError as exc:
            logger.warning("chime bridge: %s refused here: %s", kind, exc.detail)
        except Exception:
            logger.exception("chime bridge: %s could not be applied", kind)
        self.report()

    def _channel(self, arn: str) -> Channel | None:
        pk = self.config.channel_pk(arn)
        return Channel.objects.select_related("community").filter(pk=pk).first() if pk else None

    def store(self, channel_arn: str, payload: dict[str, Any]) -> Message | None:
        """Store a Chime message we did not send; None when it is ours, known or unmapped."""
        message_id = str(payload["MessageId"])
        created = _parse_time(payload.get("CreatedTimestamp"))
        try:
            origin = json.loads(payload.get("Metadata") or "{}").get("origin")
        except ValueError:
            origin = None
        channel = self._channel(channel_arn)
        author_pk = self.config.user_pk(payload.get("Sender", {}).get("Arn", ""))
        if origin == ORIGIN and channel is not None:
            self.flow_sent(channel, message_id)
        if origin == ORIGIN or channel is None or payload.get("Redacted"):
            self.advance(created)
            return None
        if Message.objects.filter(channel=channel, external_id=message_id).exists():
            self.stats.duplicates += 1
            self.advance(created)
            return None
        author = User.objects.filter(pk=author_pk, is_active=True).first() if author_pk else None
        if author is None:
            self.drift("CREATE_CHANNEL_MESSAGE from an unknown sender", payload)
            return None
        sent = message_send(
            channel=channel,
            author=author,
            body=str(payload.get("Content") or ""),
            client_id=uuid.uuid5(CLIENT_ID_NAMESPACE, message_id),
            screen=False,
            external_id=message_id,
        )
        self.stats.stored += int(sent.created)
        self.advance(created)
        return sent.message

    # --- channel flows --------------------------------------------------------------------

    def flow_sent(self, channel: Channel, message_id: str) -> None:
        """One of our messages reached the channel: if a channel flow held it, release it; if
        we gave up on it meanwhile, take it back out of Chime."""
        held = HeldMessage.objects.filter(
            channel=channel, kind=HeldMessage.Kind.FLOW, external_id=message_id
        ).first()
        if held is None:
            return
        if held.status == HeldMessage.Status.PENDING:
            self._flow_resolve(held, "SENT", "")
        elif held.status == HeldMessage.Status.FAILED and held.message_id is None:
            self.backend.delete_message_id(channel.pk, message_id)

    def _flow_resolve(self, held: HeldMessage, outcome: str, detail: str) -> None:
        decided = message_flow_resolve(held=held, outcome=outcome, detail=detail)
        self.flow_due.pop(held.id, None)
        self.stats.flow_resolved += 1
        logger.info("chime bridge: flow message %s is %s", held.id, decided.status)
        if outcome == "SENT" and decided.status == HeldMessage.Status.FAILED:
            # Sent in Chime but refused here: other Chime clients must not keep it either.
            self.backend.delete_message_id(held.channel_id, held.external_id)

    def poll_flows(self, *, force: bool = False) -> int:
        """Ask Chime where its channel flows are with our pending messages (as their authors),
        each on its own backoff; give up on those pending past `CHIME_FLOW_TIMEOUT_SECONDS`.
        Returns how many were asked. `force`: ask every pending one now."""
        now = time.monotonic()
        if not force and now < self.flow_scan_at:
            return 0
        self.flow_scan_at = now + FLOW_SCAN_SECONDS
        close_old_connections()
        pending = list(
            HeldMessage.objects.filter(
                kind=HeldMessage.Kind.FLOW, status=HeldMessage.Status.PENDING
            ).order_by("id")[:FLOW_BATCH]
        )
        known = {held.id for held in pending}
        self.flow_due = {k: v for k, v in self.flow_due.items() if k in known}
        first = settings.CHIME_FLOW_POLL_SECONDS
        give_up = timezone.now() - timedelta(seconds=settings.CHIME_FLOW_TIMEOUT_SECONDS)
        asked = 0
        for held in pending:
            due_at, interval = self.flow_due.get(held.id, (now + first, first))
            if not force and due_at > now:
                self.flow_due[held.id] = (due_at, interval)
                continue
            self.flow_due[held.id] = (now + interval, min(interval * 2, FLOW_POLL_MAX))
            asked += 1
            try:
                self._poll_one(held, timed_out=held.created_at < give_up)
            except DomainError as exc:
                logger.warning("chime bridge: flow status of %s: %s", held.id, exc.detail)
            except Exception:
                logger.exception("chime bridge: flow status of %s could not be applied", held.id)
        self.stats.flow_polls += asked
        return asked

    def _poll_one(self, held: HeldMessage, *, timed_out: bool) -> None:
        found = self.backend.message_status(
            channel_id=held.channel_id, author_id=held.author_id, external_id=held.external_id
        )
        if found.status in ("SENT", "DENIED", "FAILED"):
            with inbound():
                self._flow_resolve(held, found.status, found.detail)
        elif timed_out:
            minutes = max(1, round(settings.CHIME_FLOW_TIMEOUT_SECONDS / 60))
            with inbound():
                self._flow_resolve(
                    held, "FAILED", f"no answer from the checks in {minutes} min; send it again"
                )
            self.backend.delete_message_id(held.channel_id, held.external_id)

    def _known(self, payload: dict[str, Any]) -> Message | None:
        channel = self._channel(str(payload.get("ChannelArn", "")))
        if channel is None:
            return None
        return (
            Message.objects.select_related("channel__community", "author")
            .filter(channel=channel, external_id=str(payload.get("MessageId", "")))
            .first()
        )

    def edited(self, payload: dict[str, Any]) -> None:
        message = self._known(payload)
        if message is None or message.is_deleted:
            return
        try:
            origin = json.loads(payload.get("Metadata") or "{}").get("origin")
        except ValueError:
            origin = None
        content = str(payload.get("Content") or "")
        if origin == ORIGIN or not content or content == message.body:
            return
        message_edit(message=message, by=message.author, body=content)

    def deleted(self, payload: dict[str, Any]) -> None:
        message = self._known(payload)
        if message is not None and not message.is_deleted:
            message_delete(message=message, by=message.author)

    def member_left(self, payload: dict[str, Any]) -> None:
        channel = self._channel(str(payload.get("ChannelArn", "")))
        user_pk = self.config.user_pk(payload.get("Member", {}).get("Arn", ""))
        if channel is None or user_pk is None:
            return
        member = ChannelMember.objects.select_related("user").filter(
            channel=channel, user_id=user_pk
        )
        found = member.first()
        if found is None:
            return  # our own removal (or the mirror of our own ban), back from Chime
        # Chime sends no event for a ban: the removal it makes is all we hear. Ask.
        ban = self.backend.channel_ban(channel.pk, user_pk)
        if ban is not None and made_in_chime(ban, self.config):
            self.banned_in_chime(channel, found.user, ban, payload)
            return
        with inbound():
            if channel.kind == Channel.Kind.PRIVATE:
                channel_member_remove(channel=channel, user=found.user, by=found.user)
            else:
                self.drift("DELETE_CHANNEL_MEMBERSHIP of an open channel", payload)

    def banned_in_chime(
        self, channel: Channel, user: User, ban: ChannelBan, payload: dict[str, Any]
    ) -> None:
        """A moderator on another Chime client banned one of our members: it becomes the
        community's ban, through the ban service and *not* inbound, so, as for any ban here,
        the user's sockets are told, they leave every channel of the community, and the other
        channels get their Chime ban (the bridge user's: never imported back)."""
        if not importable(user, channel):
            self.drift("a Chime ban of a moderator, an owner or site staff", payload)
            return
        import_ban(channel, user, ban)
        self.stats.bans_imported += 1
        logger.info(
            "chime bridge: user %s banned in Chime on channel %s: banned from community %s",
            user.pk,
            channel.pk,
            channel.community_id,
        )

    def settle(self, *, force: bool = False) -> None:
        """Apply the membership events whose settling time has come."""
        now = time.monotonic()
        due = [item for item in self.later if force or item[0] <= now]
        self.later = [item for item in self.later if not (force or item[0] <= now)]
        for _, kind, payload in due:
            close_old_connections()
            try:
                if kind == "CREATE_CHANNEL_MEMBERSHIP":
                    with inbound():
                        self.member_added(payload)
                else:
                    self.member_left(payload)  # inbound, unless it was a ban (see there)
            except DomainError as exc:
                logger.warning("chime bridge: %s refused here: %s", kind, exc.detail)
            except Exception:
                logger.exception("chime bridge: %s could not be applied", kind)

    def member_added(self, payload: dict[str, Any]) -> None:
        """Our own additions come back here; one made elsewhere is drift."""
        channel = self._channel(str(payload.get("ChannelArn", "")))
        user_pk = self.config.user_pk(payload.get("Member", {}).get("Arn", ""))
        if channel is None or user_pk is None:
            return
        if not ChannelMember.objects.filter(channel=channel, user_id=user_pk).exists():
            self.drift("CREATE_CHANNEL_MEMBERSHIP made outside the app", payload)

    def drift(self, what: str, payload: dict[str, Any]) -> None:
        self.stats.drift += 1
        logger.warning(
            "chime bridge: %s on %s (left for chime_sync)", what, payload.get("ChannelArn", "?")
        )

    # --- catching up ----------------------------------------------------------------------

    def catch_up(self) -> int:
        """Store every message Chime holds since our cursor that we have not (paginated)."""
        since = self.cursor() - CURSOR_MARGIN
        api, bridge = self.backend.api, self.config.bridge_user_arn
        stored = 0
        channels = pages(
            lambda **kw: api.call(api.messaging, "list_channels", **kw),
            "Channels",
            AppInstanceArn=self.config.app_instance_arn,
            Privacy="PRIVATE",
            ChimeBearer=bridge,
        )
        for summary in list(channels):
            last = _parse_time(summary.get("LastMessageTimestamp"))
            if (
                last is None
                or last < since
                or self.config.channel_pk(summary["ChannelArn"]) is None
            ):
                continue
            for item in pages(
                lambda **kw: api.call(api.messaging, "list_channel_messages", **kw),
                "ChannelMessages",
                ChannelArn=summary["ChannelArn"],
                NotBefore=since,
                SortOrder="ASCENDING",
                MaxResults=50,
                ChimeBearer=bridge,
            ):
                close_old_connections()
                try:
                    with inbound():
                        stored += self.store(summary["ChannelArn"], item) is not None
                except DomainError as exc:
                    logger.warning("chime bridge: catch-up message refused: %s", exc.detail)
        return stored

    # --- the session ----------------------------------------------------------------------

    def connect_once(self) -> ClientConnection:
        api = self.backend.api
        endpoint = api.call(api.messaging, "get_messaging_session_endpoint")["Endpoint"]["Url"]
        return connect(
            session_url(api, endpoint, str(uuid.uuid4())), open_timeout=10, close_timeout=2
        )

    def run(self) -> int:
        """Until `stop` is set: connect, catch up, handle events; reconnect on retryable
        closes. Returns 0 when stopped, 1 after a close code that must not be retried."""
        backoff = 0.5
        while not self.stop.is_set():
            try:
                with self.connect_once() as ws:
                    self.ws = ws
                    self.connected = True
                    self.report()
                    first = ws.recv(timeout=10)
                    self.handle(str(first))
                    self.catch_up()
                    backoff = 0.5
                    while not self.stop.is_set():
                        if self.later:
                            self.settle()
                        self.poll_flows()
                        try:
                            raw = ws.recv(timeout=0.5 if self.later else 1)
                        except TimeoutError:
                            self.report()
                            continue
                        self.handle(str(raw))
                    return 0
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                if self.stop.is_set():
                    return 0
                if not retryable(code):
                    logger.error("chime bridge: session closed with %s, not retrying", code)
                    self.connected = False
                    self.report()
                    return 1
                logger.warning("chime bridge: session closed with %s; reconnecting", code)
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, MessagingUnavailable):
                logger.warning("chime bridge: cannot reach the session; retrying", exc_info=True)
            finally:
                self.connected = False
                self.ws = None
                self.report()
            self.stats.reconnects += 1
            self.report()
            self.stop.wait(random.uniform(0, backoff))  # noqa: S311 (jitter, not secrets)
            backoff = min(backoff * 2, BACKOFF_MAX)
        return 0

    def kill(self) -> None:
        """Stop at once (tests: the bridge dies; `run` returns)."""
        self.stop.set()
        ws = self.ws
        if ws is not None:
            ws.close()


def health_problem(found: dict[str, Any] | None, *, stale_after: float = 60.0) -> str:
    """Why the bridge looks unhealthy, or "" when it is fine."""
    if found is None:
        return "no bridge has reported (is `manage.py chime_bridge` running?)"
    updated = _parse_time(found.get("updated"))
    if updated is None or (datetime.now(UTC) - updated).total_seconds() > stale_after:
        return f"the bridge last reported at {found.get('updated')}"
    if not found.get("connected"):
        return "the bridge is not connected to the Chime messaging session"
    return ""
