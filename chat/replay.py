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
from chat.models import Channel
from chat.payloads import message_payload
from chat.selectors import messages_after
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
    rows, truncated = messages_after(
        channel, seq=seq, since=since, limit=settings.CHAT_REPLAY_LIMIT
    )
    if truncated:
        return Replay([], last_id, last_seq, True)
    frames = [encode({"type": "message.new", "message": message_payload(m)}) for m in rows]
    newest = rows[-1] if rows else None
    return Replay(
        frames,
        max(last_id, newest.id if newest else 0),
        max(last_seq, newest.seq if newest else 0),
        False,
    )
