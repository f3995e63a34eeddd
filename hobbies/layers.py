"""The embedded default's channel layer: Channels' in-memory layer, with its sweep made cheap.

`InMemoryChannelLayer` sweeps every channel and every group membership for expiry on each
`group_send` and each `receive`: two walks over all of them per message, which grow with the
number of people online (a group per user). Here the sweep runs at most once a second, and a
group's members are sent to one after another instead of through a task each. What expires and
when stays as Channels defines it, give or take that second.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any

import channels_redis.core
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from redis.commands.core import AsyncScript

logger = logging.getLogger(__name__)

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
        await self._send_to_group(group, message, left_out="")

    async def group_send_others(self, group: str, message: dict[str, Any], left_out: str) -> None:
        """Send `message` to every channel in `group` but `left_out` (the sender's own)."""
        await self._send_to_group(group, message, left_out=left_out)

    async def _send_to_group(self, group: str, message: dict[str, Any], *, left_out: str) -> None:
        if not isinstance(message, dict):
            raise TypeError("a channel layer message is a dict")
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            if channel == left_out:
                continue
            # As Channels does: a full channel misses the message.
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)


# KEYS[1]: the group. ARGV: the message before and after the member's name, now, the oldest
# member time kept, the oldest message time kept, the queue's expiry, its capacity, the key
# prefix, the channel left out. Returns {queued, full}.
# Called with the layer's connection of the running event loop; redis-py loads it into Redis
# again if Redis restarted and forgot it.
_SEND_OTHERS = AsyncScript(
    None,  # type: ignore[arg-type]  # always called with the client to run on
    b"""
local function packed(name)
  local n = #name
  if n < 32 then return string.char(0xa0 + n) .. name end
  if n < 256 then return string.char(0xd9, n) .. name end
  return string.char(0xda, math.floor(n / 256), n % 256) .. name
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[4])
local queued, full = 0, 0
for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if name ~= ARGV[9] then
    local bang = string.find(name, '!', 1, true)
    local key = ARGV[8] .. (bang and string.sub(name, 1, bang) or name)
    redis.call('ZREMRANGEBYSCORE', key, 0, ARGV[5])
    if redis.call('ZCOUNT', key, '-inf', '+inf') < tonumber(ARGV[7]) then
      redis.call('ZADD', key, ARGV[3], ARGV[1] .. packed(name) .. ARGV[2])
      redis.call('EXPIRE', key, ARGV[6])
      queued = queued + 1
    else
      full = full + 1
    end
  end
end
return {queued, full}
""",
)


class RedisChannelLayer(channels_redis.core.RedisChannelLayer):  # type: ignore[misc]
    """channels-redis' layer, with `group_send_others`: a group send that leaves one channel
    out (the sender's own) and costs one round trip to Redis.

    channels-redis' `group_send` makes four round trips (drop expired members, read the group,
    drop expired messages, then a script that queues the message for each member), and the
    sender's own channel gets the message too and must receive it (three more round trips) only
    to drop it. Here one script does all of it in Redis, in the storage format channels-redis
    reads: each member's queue is the sorted set `prefix + channel` (up to its `!` for a
    process's channel), scored by time, holding the serialized message with the member's name
    under `__asgi_channel__`. The message is serialized once; the script puts each member's
    name in its place.

    Where that cannot be done in one script (several Redis hosts, per-channel capacities,
    encrypted messages), it is channels-redis' `group_send` (the left-out channel then gets it
    too; the hub skips its own events by their `origin`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Stands in for a member's name in the serialized message; never a channel's name.
        self._member_mark = "member." + uuid.uuid4().hex

    def _one_script_fits(self) -> bool:
        return (
            self.ring_size == 1
            and not self.channel_capacity
            and getattr(self._serializer, "crypter", None) is None
        )

    async def group_send_others(self, group: str, message: dict[str, Any], left_out: str) -> None:
        """Send `message` to every channel in `group` but `left_out`."""
        if not isinstance(message, dict):
            raise TypeError("a channel layer message is a dict")
        if not self._one_script_fits():
            await self.group_send(group, message)
            return
        self.require_valid_group_name(group)
        serialized = self.serialize({"__asgi_channel__": [self._member_mark], **message})
        mark = _packed_str(self._member_mark)
        at = serialized.find(mark)  # the first key: found before anything in the message
        if at < 0:
            await self.group_send(group, message)
            return
        now = time.time()
        queued, full = await _SEND_OTHERS(
            keys=[self._group_key(group)],
            args=[
                serialized[:at],
                serialized[at + len(mark) :],
                now,
                int(now) - self.group_expiry,
                int(now) - int(self.expiry),
                int(self.expiry),
                self.capacity,
                self.prefix,
                left_out,
            ],
            client=self.connection(0),
        )
        if full:
            logger.info("%s of %s channels over capacity in group %s", full, queued + full, group)


def _packed_str(text: str) -> bytes:
    """A short string as MessagePack writes it (as the script above does)."""
    data = text.encode()
    if len(data) < 32:
        return bytes([0xA0 + len(data)]) + data
    if len(data) < 256:
        return bytes([0xD9, len(data)]) + data
    return bytes([0xDA, len(data) // 256, len(data) % 256]) + data
