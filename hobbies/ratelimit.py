"""Rate limits kept in the cache (per process locally, shared through Redis): fixed windows of
actions (`hit`), and budgets of work spent in amounts known only afterwards (`Budget`)."""

import math
import time

from django.conf import settings

from hobbies import metrics
from hobbies.cache import cache
from hobbies.errors import RateLimited


def hit(scope: str, key: str, rate: tuple[int, int]) -> None:
    """Count one action of `key` in `scope`; raise `RateLimited` past `rate` (count, seconds)."""
    if not settings.RATE_LIMITS_ENABLED:
        return
    limit, window = rate
    bucket = int(time.time() // window)
    cache_key = f"rl:{scope}:{key}:{bucket}"
    if cache.add(cache_key, 1, timeout=window + 1):
        count = 1
    else:
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.set(cache_key, 1, timeout=window + 1)
            count = 1
    if count > limit:
        retry = max(1, math.ceil(bucket * window + window - time.time()))
        metrics.RATE_LIMITED.labels(what=scope).inc()
        raise RateLimited(f"Too many requests; try again in {window} seconds.", retry_after=retry)


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
