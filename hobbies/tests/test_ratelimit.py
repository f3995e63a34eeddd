"""Rate limits counted from the event loop (`hit_all_async`) and from threads (`hit_all`) are
one count."""

from __future__ import annotations

import pytest
from django.conf import settings

from hobbies import ratelimit
from hobbies.cache import async_redis_client, close_async_client
from hobbies.errors import RateLimited

LIMITS = [("test-user", "7", (3, 3600)), ("test-channel", "9", (5, 3600))]


async def _hits(count: int) -> list[str]:
    outcomes = []
    try:
        for _ in range(count):
            try:
                await ratelimit.hit_all_async(LIMITS)
                outcomes.append("ok")
            except RateLimited as refused:
                outcomes.append(f"refused {refused.retry_after is not None}")
    finally:
        await close_async_client()
    return outcomes


@pytest.fixture
def counted(settings):
    settings.RATE_LIMITS_ENABLED = True


async def test_the_loop_counts_against_the_same_limits_as_threads(counted):
    ratelimit.hit_all(LIMITS)  # one counted from a thread's side
    assert await _hits(3) == ["ok", "ok", "refused True"]
    with pytest.raises(RateLimited):
        ratelimit.hit_all(LIMITS)


async def test_a_refused_action_does_not_use_up_the_later_limits(counted):
    """Past the first limit, the second is not counted: another user of the channel still has
    its whole allowance."""
    await _hits(6)
    other = [("test-user", "8", (3, 3600)), ("test-channel", "9", (5, 3600))]
    for _ in range(2):
        ratelimit.hit_all(other)  # channel at 3 + 2 = 5: still within
    with pytest.raises(RateLimited):
        ratelimit.hit_all(other)


async def test_nothing_is_counted_when_rate_limits_are_off(settings):
    settings.RATE_LIMITS_ENABLED = False
    assert await _hits(10) == ["ok"] * 10


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")
async def test_on_redis_the_loop_has_its_own_client(counted):
    client = async_redis_client()
    assert client is not None
    assert await client.ping()
    await close_async_client()
