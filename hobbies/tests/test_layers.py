"""The embedded default's channel layer delivers as Channels' in-memory layer does, and still
expires what it should."""

from __future__ import annotations

import asyncio

import pytest

from hobbies import layers
from hobbies.layers import LocalChannelLayer


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
