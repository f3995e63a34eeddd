"""Fixed-window rate limits kept in the cache (per process locally, shared through Redis)."""

import time

from django.conf import settings
from django.core.cache import cache

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
        raise RateLimited(f"Too many requests; try again in {window} seconds.")
