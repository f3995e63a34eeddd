"""The app's cache (rate limits, presence, health marks): one backend instance per process.

`django.core.cache.cache` keeps a backend instance per asyncio context (Django stores cache
connections in context-local storage), so under ASGI every socket's task made its own Redis
connection pool and kept a Redis connection open for as long as the socket stayed open: about
12 KB per idle socket, and a connection per socket on the Redis server. This module makes the
backend once and shares it; redis-py's connection pool is safe to share between threads.
"""

from __future__ import annotations

from functools import cache as once
from typing import Any, cast

from django.core.cache import BaseCache, caches
from django.core.signals import setting_changed
from django.dispatch import receiver


@once
def _backend() -> BaseCache:
    return caches.create_connection("default")


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":  # tests point the cache elsewhere
        _backend.cache_clear()


class _Shared:
    def __getattr__(self, name: str) -> Any:
        return getattr(_backend(), name)


cache = cast(BaseCache, _Shared())
