"""Rate limits kept in the cache (per process locally, shared through Redis): fixed windows of
actions (`hit`), and budgets of work spent in amounts known only afterwards (`Budget`)."""

import math
import time
from collections.abc import Sequence

from django.conf import settings
from redis.commands.core import AsyncScript, Script

from hobbies import metrics
from hobbies.cache import async_redis_client, cache, redis_client
from hobbies.errors import RateLimited

Rate = tuple[int, int]  # (count, seconds)

# Counts each key in turn and stops at the first over its limit (its 1-based index; 0: none),
# so a refused action is not counted against the limits after it: a member past their own
# limit does not use up their channel's.
_COUNT_SOURCE = b"""
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[2 * i]) end
  if count > tonumber(ARGV[2 * i - 1]) then return i end
end
return 0
"""
# Each always called with the client to run on; redis-py loads the script into Redis again if
# Redis restarted and forgot it.
_COUNT_SCRIPT = Script(None, _COUNT_SOURCE)  # type: ignore[arg-type]
_COUNT_SCRIPT_ASYNC = AsyncScript(None, _COUNT_SOURCE)  # type: ignore[arg-type]


def hit(scope: str, key: str, rate: Rate) -> None:
    """Count one action of `key` in `scope`; raise `RateLimited` past `rate` (count, seconds)."""
    hit_all([(scope, key, rate)])


def hit_all(limits: Sequence[tuple[str, str, Rate]]) -> None:
    """Count one action against each `(scope, key, rate)` in order, stopping at (and raising
    `RateLimited` for) the first one past its rate. On Redis, one round trip for all of them."""
    if not settings.RATE_LIMITS_ENABLED or not limits:
        return
    now = time.time()
    keys = _keys(limits, now)
    client = redis_client()
    if client is not None:
        over = int(_COUNT_SCRIPT(keys=_cache_keys(keys), args=_script_args(limits), client=client))
    else:
        over = 0
        for index, (cache_key, (_, _, (limit, window))) in enumerate(
            zip(keys, limits, strict=True), 1
        ):
            if _count_local(cache_key, window) > limit:
                over = index
                break
    _refuse_past(limits, over, now)


async def hit_all_async(limits: Sequence[tuple[str, str, Rate]]) -> None:
    """`hit_all` from the event loop: on Redis the same script, through the loop's own client
    (`hobbies.cache.async_redis_client`); on the local-memory cache (no I/O) `hit_all`."""
    if not settings.RATE_LIMITS_ENABLED or not limits:
        return
    client = async_redis_client()
    if client is None:
        hit_all(limits)
        return
    now = time.time()
    keys = _cache_keys(_keys(limits, now))
    over = int(await _COUNT_SCRIPT_ASYNC(keys=keys, args=_script_args(limits), client=client))
    _refuse_past(limits, over, now)


def _keys(limits: Sequence[tuple[str, str, Rate]], now: float) -> list[str]:
    return [f"rl:{scope}:{key}:{int(now // window)}" for scope, key, (_, window) in limits]


def _cache_keys(keys: list[str]) -> list[str]:
    return [cache.make_and_validate_key(k) for k in keys]


def _script_args(limits: Sequence[tuple[str, str, Rate]]) -> list[int]:
    args: list[int] = []
    for _, _, (limit, window) in limits:
        args += [limit, window + 1]
    return args


def _refuse_past(limits: Sequence[tuple[str, str, Rate]], over: int, now: float) -> None:
    """`RateLimited` for the limit at (1-based) index `over`, if any."""
    if over:
        scope, _, (_, window) = limits[over - 1]
        retry = max(1, math.ceil(int(now // window) * window + window - time.time()))
        metrics.RATE_LIMITED.labels(what=scope).inc()
        raise RateLimited(f"Too many requests; try again in {window} seconds.", retry_after=retry)


def _count_local(cache_key: str, window: int) -> int:
    if cache.add(cache_key, 1, timeout=window + 1):
        return 1
    try:
        return int(cache.incr(cache_key))
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=window + 1)
        return 1


class Budget:
    """At most `rate` = (amount, seconds) units of work per key, e.g. replayed messages per user
    per minute, over a sliding window: the previous fixed window's count, weighted by how much
    of it still overlaps the last `seconds`, plus the current one's. Counts only grow with the
    cache's atomic `incr`, so every socket and process shares one budget without races.

    `check` before the work (refuses once the budget is spent, with a retry hint) and `spend`
    after it, with what it cost: the last piece of work may overdraw, and later ones wait.
    """

    def __init__(self, scope: str, rate: tuple[int, int]) -> None:
        self.scope = scope
        self.limit, self.window = rate

    def _keys(self, key: str, now: float) -> tuple[str, str, float]:
        number = int(now // self.window)
        elapsed = now - number * self.window
        return (
            f"rb:{self.scope}:{key}:{number}",
            f"rb:{self.scope}:{key}:{number - 1}",
            elapsed,
        )

    def check(self, key: str) -> None:
        if not settings.RATE_LIMITS_ENABLED:
            return
        current_key, previous_key, elapsed = self._keys(key, time.time())
        counts = cache.get_many([current_key, previous_key])
        current, previous = counts.get(current_key, 0), counts.get(previous_key, 0)
        weight = 1 - elapsed / self.window
        if previous * weight + current < self.limit:
            return
        if current < self.limit:
            # Wait for the previous window's share to fall below what is left.
            wait = self.window * (1 - (self.limit - current) / previous) - elapsed
        else:
            # Wait for this window to end, then for its share to fall below the limit.
            wait = self.window - elapsed + self.window * (1 - self.limit / current)
        retry = max(1, math.ceil(wait))
        metrics.RATE_LIMITED.labels(what=self.scope).inc()
        raise RateLimited(f"Too much at once; try again in {retry} seconds.", retry_after=retry)

    def spend(self, key: str, amount: int) -> None:
        if not settings.RATE_LIMITS_ENABLED or amount <= 0:
            return
        current_key, _, _ = self._keys(key, time.time())
        cache.add(current_key, 0, timeout=2 * self.window + 1)
        try:
            cache.incr(current_key, amount)
        except ValueError:  # expired between add and incr
            cache.set(current_key, amount, timeout=2 * self.window + 1)
