"""The app's cache (rate limits, presence, health marks): one backend instance per process.

`django.core.cache.cache` keeps a backend instance per asyncio context (Django stores cache
connections in context-local storage), so under ASGI every socket's task made its own Redis
connection pool and kept a Redis connection open for as long as the socket stayed open: about
12 KB per idle socket, and a connection per socket on the Redis server. This module makes the
backend once and shares it; redis-py's connection pool is safe to share between threads.

`RedisCache` (the backend on the production path) also keeps one `redis.Redis` client per
connection pool: Django's makes a new one for every cache call, which copies redis-py's table of
response callbacks each time (about a quarter of a millisecond of CPU per call, four calls per
message sent before rate limits took one).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from functools import cache as once
from typing import Any, cast

import redis
import redis.asyncio
from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.core.signals import setting_changed
from django.dispatch import receiver


class _ReusingClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, redis.Redis] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        django_client: Any = self  # its helpers are not in the type stubs
        index = django_client._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            pool = django_client._get_connection_pool(write)
            client = self._clients.setdefault(index, django_client._client(connection_pool=pool))
        return client


class RedisCache(DjangoRedisCache):
    """Django's Redis cache with one client per connection pool (`redis.Redis` is thread-safe)."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _ReusingClient


def redis_client() -> redis.Redis | None:
    """The cache's Redis client for writes, when the cache is Redis (for a Lua script)."""
    backend = _backend()
    if isinstance(backend, DjangoRedisCache):
        django_cache: Any = backend
        return cast(redis.Redis, django_cache._cache.get_client(write=True))
    return None


def async_redis_client() -> redis.asyncio.Redis | None:
    """The running event loop's own client of the cache's Redis server (the one written to),
    when the cache is Redis: for a Lua script from the event loop (rate limits). One per event
    loop, made on first use."""
    backend = _backend()
    if not isinstance(backend, DjangoRedisCache):
        return None
    loop = asyncio.get_running_loop()
    with _async_lock:
        client = _async_clients.get(loop)
        if client is None:
            django_client: Any = cast(Any, backend)._cache
            options = {k: v for k, v in django_client._pool_options.items() if k != "parser_class"}
            client = _async_clients[loop] = redis.asyncio.Redis.from_url(
                django_client._servers[0], **options
            )
        return client


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
    weakref.WeakKeyDictionary()
)
_async_lock = threading.Lock()


async def close_async_client() -> None:
    """Close the running event loop's client, if it has one (its loop is about to end)."""
    with _async_lock:
        client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


@once
def _backend() -> BaseCache:
    return caches.create_connection("default")


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":  # tests point the cache elsewhere
        _backend.cache_clear()
        with _async_lock:
            _async_clients.clear()


class _Shared:
    def __getattr__(self, name: str) -> Any:
        return getattr(_backend(), name)


cache = cast(BaseCache, _Shared())
