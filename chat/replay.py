"""Subscriptions and their catch-up: what a socket missed, and live frames that race the replay.

On `subscribe` the socket listens first, then reads what committed after the client's resume
point (`seq`: the highest position it holds with none missing below; or, from older clients,
`since`: a message id): whatever commits after the read arrives live, and whatever committed
before it is in the replay. Live frames that arrive while the replay is read wait in the
subscription, and the ones the replay already covered are dropped when they are let through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from chat.hub import encode
from chat.models import Channel, Message
from chat.payloads import message_payload
from chat.selectors import StoredRow, stored_after, stored_page
from chat.transport import Frame


@dataclass
class Subscription:
    community_id: int
    # Newest position the subscribe covered (replayed, or committed when it said `subscribed`).
    covered_seq: int = 0
    # Live frames that arrive while the replay is being read wait here, in order.
    pending: list[tuple[Frame, dict[str, Any]]] | None = field(default_factory=list)
    last_typing: float = 0.0

    def admit(self, frame: Frame, meta: dict[str, Any]) -> bool:
        """Whether a live frame goes out now: held while the replay is read, dropped if the
        replay covered it. Live messages are never dropped for being older than one sent
        before: two server processes may publish a channel's messages out of commit order."""
        if self.pending is not None:
            self.pending.append((frame, meta))
            return False
        return not (meta.get("kind") == "message.new" and meta["seq"] <= self.covered_seq)

    def covered(self, last_seq: int) -> list[tuple[Frame, dict[str, Any]]]:
        """The replay is out up to `last_seq`: stop holding, and return what was held."""
        self.covered_seq = last_seq
        held, self.pending = self.pending or [], None
        return held


@dataclass(frozen=True)
class Replay:
    frames: list[str]
    last_id: int
    last_seq: int
    truncated: bool


def replay(channel: Channel, *, seq: int | None = None, since: int | None = None) -> Replay:
    """The frames of messages after position `seq` (or after message id `since`); none for a
    first subscribe. More than `CHAT_REPLAY_LIMIT` is not replayed: `truncated` tells the client
    to reload history instead."""
    last_id, last_seq = Channel.objects.values_list("last_message_id", "last_seq").get(
        id=channel.id
    )
    if (seq is None and since is None) or (seq or 0) >= last_seq or (since or 0) >= last_id:
        return Replay([], last_id, last_seq, False)
    rows, truncated = stored_payloads_after(
        channel, seq=seq, since=since, limit=settings.CHAT_REPLAY_LIMIT
    )
    if truncated:
        return Replay([], last_id, last_seq, True)
    frames = ['{"type":"message.new","message":' + payload + "}" for _, _, payload in rows]
    newest_id, newest_seq = (rows[-1][0], rows[-1][1]) if rows else (0, 0)
    return Replay(frames, max(last_id, newest_id), max(last_seq, newest_seq), False)


def stored_payloads_after(
    channel: Channel, *, seq: int | None, since: int | None, limit: int
) -> tuple[list[tuple[int, int, str]], bool]:
    """(id, seq, MESSAGE JSON) of the messages after `seq` (or id `since`), in order: the
    stored renderings where still valid, the others rendered now and stored for next time."""
    rows, truncated = stored_after(channel, seq=seq, since=since, limit=limit)
    return with_stored_payloads(rows), truncated


def stored_payloads_page(
    channel: Channel, *, before: int | None, after: int | None, limit: int
) -> tuple[list[tuple[int, int, str]], bool]:
    """A history page (the one `selectors.messages_page` reads) as (id, seq, MESSAGE JSON),
    served from the stored renderings like a replay."""
    rows, has_more = stored_page(channel, before=before, after=after, limit=limit)
    return with_stored_payloads(rows), has_more


def with_stored_payloads(rows: list[StoredRow]) -> list[tuple[int, int, str]]:
    """(id, seq, MESSAGE JSON) of `rows`: the stored renderings where still valid, the others
    rendered now and stored for next time."""
    stale = [row.id for row in rows if row.payload_version != row.version]
    fresh: dict[int, str] = {}
    if stale:
        rendered = list(Message.objects.with_related().filter(id__in=stale))
        for message in rendered:
            fresh[message.id] = encode(message_payload(message))
            # Stored with the version it was read at: if the message changes meanwhile, the
            # version moves on and this rendering is never served.
            message.payload_json, message.payload_version = fresh[message.id], message.version
        Message.objects.bulk_update(rendered, ["payload_json", "payload_version"])
    return [(r.id, r.seq, fresh.get(r.id, r.payload_json)) for r in rows]
