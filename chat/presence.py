"""Who is online: a short-lived cache entry per user, refreshed by each socket's pings."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from hobbies.cache import cache


def _key(user_id: int) -> str:
    return f"presence:{user_id}"


def presence_touch(user_id: int) -> bool:
    """Mark the user online for the presence TTL; True if they were not online before."""
    if cache.add(_key(user_id), 1, timeout=settings.CHAT_PRESENCE_TTL):
        return True
    cache.touch(_key(user_id), timeout=settings.CHAT_PRESENCE_TTL)
    return False


def presence_clear(user_id: int) -> None:
    cache.delete(_key(user_id))


def online_ids(user_ids: Iterable[int]) -> set[int]:
    keys = {_key(uid): uid for uid in user_ids}
    return {keys[k] for k in cache.get_many(list(keys))}
