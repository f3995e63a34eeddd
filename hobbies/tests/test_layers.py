"""The embedded default's channel layer delivers as Channels' in-memory layer does, and still
expires what it should."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from django.conf import settings

from hobbies import layers
from hobbies.layers import LocalChannelLayer, RedisChannelLayer


def test_a_group_send_reaches_every_member_once() -> None:
    async def run() -> list[list[dict[str, object]]]:
        layer = LocalChannelLayer()
        names = [await layer.new_channel() for _ in range(3)]
        for name in names[:2]:
            await layer.group_add("room", name)
        await layer.group_send("room", {"type": "hello", "n": 1})
        await layer.group_send("room", {"type": "hello", "n": 2})
        got = []
        for name in names[:2]:
            got.append([await layer.receive(name), await layer.receive(name)])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(names[2]), 0.05)
        return got

    got = asyncio.run(run())
    assert got == [[{"type": "hello", "n": 1}, {"type": "hello", "n": 2}]] * 2


def test_expired_messages_and_memberships_are_still_swept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def run() -> tuple[bool, bool]:
        layer = LocalChannelLayer(expiry=60, group_expiry=60)
        name = await layer.new_channel()
        await layer.group_add("room", name)
        await layer.send(name, {"type": "old"})
        # An hour later (the sweep's clock and Channels' own):
        later = layers.time.monotonic() + 3600
        monkeypatch.setattr(layers.time, "monotonic", lambda: later)
        wall = layers.time.time() + 3600
        monkeypatch.setattr("channels.layers.time.time", lambda: wall)
        layer._clean_expired()
        return name in layer.channels, name in layer.groups.get("room", {})

    still_queued, still_member = asyncio.run(run())
    assert not still_queued
    assert not still_member


def test_a_full_channel_does_not_stop_the_others() -> None:
    async def run() -> dict[str, object]:
        layer = LocalChannelLayer(capacity=1)
        full, other = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("room", full)
        await layer.group_add("room", other)
        await layer.send(full, {"type": "filler"})
        await layer.group_send("room", {"type": "news"})
        return await layer.receive(other)

    assert asyncio.run(run()) == {"type": "news"}


def test_the_embedded_layer_can_leave_the_sender_out() -> None:
    async def run() -> tuple[dict[str, object], bool]:
        layer = LocalChannelLayer()
        mine, theirs = await layer.new_channel(), await layer.new_channel()
        for name in (mine, theirs):
            await layer.group_add("room", name)
        await layer.group_send_others("room", {"type": "news"}, mine)
        got = await layer.receive(theirs)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(mine), 0.05)
        return got, True

    assert asyncio.run(run()) == ({"type": "news"}, True)


needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


def redis_layer(prefix: str, **config: Any) -> RedisChannelLayer:
    return RedisChannelLayer(
        hosts=[{"address": settings.REDIS_URL}], prefix=prefix, expiry=60, **config
    )


@needs_redis
def test_the_redis_layer_sends_to_every_member_but_the_sender_in_one_round_trip() -> None:
    """Two processes (a layer each) and a plain channel in a group: what `group_send_others`
    queues, channels-redis' own `receive` reads, unchanged, on every member but the one left
    out."""
    prefix = f"test{uuid.uuid4().hex[:8]}"
    message = {"type": "hub.frame", "frame": "é" * 300 + '{"x":1}', "meta": {"seq": 7, "at": 1.5}}

    async def run() -> tuple[list[Any], bool, int]:
        here, there = redis_layer(prefix), redis_layer(prefix)
        mine, theirs = await here.new_channel("hub."), await there.new_channel("hub.")
        plain = "plain." + "p" * 40  # a name long enough for MessagePack's longer header
        for name in (mine, theirs, plain):
            await here.group_add("room", name)
        calls = 0
        execute = type(here.connection(0)).execute_command

        async def counting(client: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return await execute(client, *args, **kwargs)

        await here.group_send_others("nobody", message, mine)  # Redis learns the script once
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(type(here.connection(0)), "execute_command", counting)
            await here.group_send_others("room", message, mine)
            sent_calls = calls
        got = [
            await asyncio.wait_for(there.receive(theirs), 5),
            await asyncio.wait_for(here.receive(plain), 5),
        ]
        try:
            await asyncio.wait_for(here.receive(mine), 0.3)
            left_out = False
        except TimeoutError:
            left_out = True
        await here.flush()
        return got, left_out, sent_calls

    got, left_out, calls = asyncio.run(run())
    assert got == [message, message]
    assert left_out
    assert calls == 1


@needs_redis
def test_a_full_member_does_not_stop_the_others_on_redis() -> None:
    prefix = f"test{uuid.uuid4().hex[:8]}"

    async def run() -> dict[str, Any]:
        # Three processes, each with its own queue of at most one message.
        layer, second, third = (redis_layer(prefix, capacity=1) for _ in range(3))
        full, other, mine = [await each.new_channel() for each in (layer, second, third)]
        for name in (full, other, mine):
            await layer.group_add("room", name)
        await layer.send(full, {"type": "filler"})
        await third.group_send_others("room", {"type": "news"}, mine)
        got = await asyncio.wait_for(second.receive(other), 5)
        assert await asyncio.wait_for(layer.receive(full), 5) == {"type": "filler"}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(full), 0.3)  # the news did not fit
        await layer.flush()
        return got

    assert asyncio.run(run()) == {"type": "news"}
