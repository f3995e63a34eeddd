"""The embedded default's channel layer: Channels' in-memory layer, with its sweep made cheap.

`InMemoryChannelLayer` sweeps every channel and every group membership for expiry on each
`group_send` and each `receive`: two walks over all of them per message, which grow with the
number of people online (a group per user). Here the sweep runs at most once a second, and a
group's members are sent to one after another instead of through a task each. What expires and
when stays as Channels defines it, give or take that second.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

SWEEP_SECONDS = 1.0


class LocalChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._swept_at = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = now
        super()._clean_expired()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if not isinstance(message, dict):
            raise TypeError("a channel layer message is a dict")
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            # As Channels does: a full channel misses the message.
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)
