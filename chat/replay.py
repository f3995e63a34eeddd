"""Subscriptions and their catch-up: what a socket missed, and live frames that race the replay.

On `subscribe` the socket listens first, then reads what committed after the client's `since`:
whatever commits after the read arrives live, and whatever committed before it is in the replay.
Live frames that arrive while the replay is read wait in the subscription, and the ones the
replay already covered are dropped when they are let through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from chat.hub import encode
from chat.models import Channel
from chat.payloads import message_payload
from chat.selectors import messages_since
from chat.transport import Frame


@dataclass
class Subscription:
    community_id: int
    # Newest id the subscribe covered (replayed, or already committed when it said `subscribed`).
    covered_id: int = 0
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
        return not (meta.get("kind") == "message.new" and meta["id"] <= self.covered_id)

    def covered(self, last_id: int) -> list[tuple[Frame, dict[str, Any]]]:
        """The replay is out up to `last_id`: stop holding, and return what was held."""
        self.covered_id = last_id
        held, self.pending = self.pending or [], None
        return held


@dataclass(frozen=True)
class Replay:
    frames: list[str]
    last_id: int
    truncated: bool


def replay(channel: Channel, since: int | None) -> Replay:
    """The frames of messages newer than `since` (none for a first subscribe), and the newest id
    they cover. More than `CHAT_REPLAY_LIMIT` is not replayed: `truncated` tells the client to
    reload history instead."""
    last_id = Channel.objects.values_list("last_message_id", flat=True).get(id=channel.id)
    if since is None or since >= last_id:
        return Replay([], last_id, False)
    rows, truncated = messages_since(channel, since, settings.CHAT_REPLAY_LIMIT)
    if truncated:
        return Replay([], last_id, True)
    frames = [encode({"type": "message.new", "message": message_payload(m)}) for m in rows]
    return Replay(frames, max([last_id, *(m.id for m in rows)]), False)
