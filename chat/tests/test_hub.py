"""The hub's own checks: messages never published, removals whose kick never came, and a
channel layer that stops delivering."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db.models import F
from django.test import AsyncClient

from chat.events import channel_key, community_key, user_key
from chat.hub import channel_layer, frame_event, group_name, hub
from chat.models import Channel, ChannelMember
from chat.services import channel_create
from conftest import say

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


async def forget_groups(layer) -> None:
    """What a Redis restart does to the layer: every group membership is gone."""
    if hasattr(layer, "groups"):  # the in-memory layer
        layer.groups.clear()
        return
    redis = layer.connection(0)
    keys = [key async for key in redis.scan_iter(match=f"{layer.prefix}:group:*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def fast_checks(settings):
    settings.CHAT_HEAD_INTERVAL = 0.1
    settings.CHAT_HUB_CANARY_SECONDS = 0.3


async def test_a_message_committed_but_not_published_is_announced_by_a_head_frame(
    fast_checks, connect, alice, bob, general
):
    b = await connect(bob)
    subscribed = await b.subscribe(general.id)
    # Committed, then its broadcast lost (a process killed between commit and publish).
    await db(Channel.objects.filter(id=general.id).update)(last_seq=subscribed["last_seq"] + 1)
    head = await b.recv_type("head", timeout=5)
    assert head == {"type": "head", "channel": general.id, "seq": subscribed["last_seq"] + 1}
    # Once: the head frame is not repeated while nothing new commits.
    assert await b.nothing(timeout=0.5)


async def test_published_messages_bring_no_head_frames(fast_checks, connect, alice, bob, general):
    b = await connect(bob)
    await b.subscribe(general.id)
    await db(say)(general, alice, "live")
    frame = await b.recv()
    while frame["type"] == "head":  # a publish slower than the check (a loaded machine)
        frame = await b.recv()
    assert frame["message"]["body"] == "live"
    # Once the hub has seen it published, the head check has nothing to say.
    assert await b.nothing(timeout=0.6)


async def test_a_member_taken_out_whose_kick_never_came_is_unsubscribed_by_the_check(
    fast_checks, connect, bob, carol, general
):
    b, c = await connect(bob), await connect(carol)
    await b.subscribe(general.id)
    await c.subscribe(general.id)
    # What taking Carol out commits, its kick lost (a process killed between commit and publish).
    await db(ChannelMember.objects.filter(channel=general, user=carol).delete)()
    await db(Channel.objects.filter(id=general.id).update)(removals=F("removals") + 1)
    told = await c.recv_type("unsubscribed", timeout=5)
    assert told == {"type": "unsubscribed", "channel": general.id, "reason": "removed"}
    # Bob, still a member, keeps his subscription and hears nothing of it.
    assert await b.nothing(timeout=0.5)
    await b.send({"type": "typing", "channel": general.id})
    assert (await c.nothing(timeout=0.5)) and (await b.recv_type("typing"))["channel"] == general.id


async def test_a_channel_deleted_without_a_kick_is_unsubscribed_by_the_check(
    fast_checks, connect, bob, general
):
    b = await connect(bob)
    await b.subscribe(general.id)
    await db(Channel.objects.filter(id=general.id).delete)()
    told = await b.recv_type("unsubscribed", timeout=5)
    assert told == {"type": "unsubscribed", "channel": general.id, "reason": "deleted"}


async def test_a_channel_deleted_while_its_members_are_checked_is_reported_deleted(
    connect, bob, general
):
    """The check read the channel's head before the delete and its members after it (they
    went with it): the subscription ends as deleted, not as its member removed."""
    b = await connect(bob)
    await b.subscribe(general.id)
    await db(Channel.objects.filter(id=general.id).delete)()
    await hub.check_members({general.id: channel_key(general.id)})
    told = await b.recv_type("unsubscribed", timeout=5)
    assert told == {"type": "unsubscribed", "channel": general.id, "reason": "deleted"}


async def test_a_layer_that_forgets_the_hub_closes_sockets_so_they_resume(
    fast_checks, connect, bob, general
):
    b = await connect(bob)
    await b.subscribe(general.id)
    assert await hub.canary()
    await forget_groups(channel_layer())
    closed = await b.communicator.receive_output(timeout=5)
    while closed["type"] != "websocket.close":
        closed = await b.communicator.receive_output(timeout=5)
    assert closed["code"] == 4012
    assert hub.layer_ok


async def test_sockets_closed_to_resume_leave_nothing_listening(fast_checks, connect, bob, general):
    """A socket the hub closes after a layer outage stops listening everywhere it listened:
    nothing is left delivering to it, and its keys' groups can be left."""
    b = await connect(bob)
    await b.subscribe(general.id)
    assert await hub.canary()
    await forget_groups(channel_layer())
    assert await b.closed_with(timeout=5) == 4012
    await b.close()
    for key in (channel_key(general.id), community_key(general.community_id), user_key(bob.id)):
        assert hub.listeners(key) == 0, key


def refuse_group_add(monkeypatch, key: str, times: int) -> list[str]:
    """The layer fails its next `times` group_add calls for `key` as a Redis that just
    restarted does (a pooled connection closed by the server); returns the calls seen."""
    layer = channel_layer()
    real = layer.group_add
    calls: list[str] = []

    async def group_add(group: str, channel: str) -> None:
        if group == group_name(key):
            calls.append(group)
            if len(calls) <= times:
                raise ConnectionError("Connection closed by server.")
        await real(group, channel)

    monkeypatch.setattr(layer, "group_add", group_add)
    return calls


async def test_a_layer_connection_lost_once_is_retried_and_the_subscription_is_live(
    connect, monkeypatch, alice, bob, general
):
    calls = refuse_group_add(monkeypatch, channel_key(general.id), times=1)
    b = await connect(bob)
    await b.subscribe(general.id)
    assert len(calls) == 2
    await db(say)(general, alice, "heard after the retry")
    assert (await b.recv_type("message.new"))["message"]["body"] == "heard after the retry"


async def test_a_subscribe_the_layer_refuses_closes_the_socket_so_the_client_resumes(
    connect, monkeypatch, alice, bob, general
):
    """Half a subscription would be silent for ever: the socket closes (4012, the code clients
    reconnect and resume on) and listens nowhere; the next socket subscribes and hears."""
    refuse_group_add(monkeypatch, channel_key(general.id), times=2)
    b = await connect(bob)
    await b.send({"type": "subscribe", "channel": general.id, "seq": 0})
    assert await b.closed_with(timeout=5) == 4012
    await b.close()
    for key in (channel_key(general.id), community_key(general.community_id), user_key(bob.id)):
        assert hub.listeners(key) == 0, key
    again = await connect(bob)
    await again.subscribe(general.id)
    await db(say)(general, alice, "after the layer came back")
    assert (await again.recv_type("message.new"))["message"]["body"] == "after the layer came back"


async def test_a_replay_that_fails_closes_the_socket_so_the_client_resumes(
    connect, monkeypatch, alice, bob, general
):
    """A subscribe whose catch-up read fails would otherwise hold every live frame of the
    channel for a replay that never comes."""
    await db(say)(general, alice, "before")

    def broken(*args, **kwargs):
        raise OSError("the database went away")

    monkeypatch.setattr("chat.consumers.replay", broken)
    b = await connect(bob)
    await b.send({"type": "subscribe", "channel": general.id, "seq": 0})
    assert await b.closed_with(timeout=5) == 4012
    await b.close()
    assert hub.listeners(channel_key(general.id)) == 0


async def test_readyz_answers_at_once_while_a_socket_is_idle(connect, bob, general):
    """The hub's blocking receive on Redis used to hold the one receive a process may run."""
    b = await connect(bob)
    await b.subscribe(general.id)
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 200
    assert response.json()["channel_layer"] == "ok"


async def test_a_burst_of_sends_reaches_sockets_whole_and_in_order(
    settings, connect, alice, bob, general
):
    # A send's database thread hands its broadcast to the event loop and returns without
    # waiting; the loop publishes them one after another, in the order they were committed.
    settings.RATE_LIMITS_ENABLED = False
    b = await connect(bob)
    await b.subscribe(general.id)

    def burst() -> None:
        for n in range(30):
            say(general, alice, f"burst {n}")

    await db(burst)()
    received = [(await b.recv_type("message.new", timeout=5))["message"] for _ in range(30)]
    assert [m["body"] for m in received] == [f"burst {n}" for n in range(30)]
    seqs = [m["seq"] for m in received]
    assert seqs == list(range(seqs[0], seqs[0] + 30))


async def test_an_event_the_layer_brings_back_to_its_own_process_is_not_delivered_twice(
    settings, monkeypatch, connect, alice, bob, general
):
    """Where the layer cannot leave the sender out (several Redis hosts, encrypted messages),
    the process's own events come back to it; its sockets had them already."""
    settings.RATE_LIMITS_ENABLED = False
    b = await connect(bob)
    await b.subscribe(general.id)
    layer = channel_layer()

    async def to_everyone(group: str, message: dict, left_out: str) -> None:
        await layer.group_send(group, message)

    monkeypatch.setattr(layer, "group_send_others", to_everyone)
    await db(say)(general, alice, "once")
    assert (await b.recv_type("message.new", timeout=5))["message"]["body"] == "once"
    # Another process's event, after it on the layer: by the time it arrives, the layer has
    # brought "once" back too, and it was not delivered again.
    key = channel_key(general.id)
    await layer.group_send(group_name(key), frame_event(key, {"type": "marker"}))
    await b.recv_type("marker", timeout=5)
    assert await b.nothing(timeout=0.3)


async def test_a_burst_reaches_local_sockets_at_once_and_goes_out_in_a_call_per_channel(
    settings, monkeypatch, connect, alice, bob, community, general
):
    """This process's sockets get each message when it is handed over, in order, without
    waiting for the channel layer (here its first call hangs). Meanwhile the rest wait to be
    published; then each channel's go to the other processes in one layer call, in order, and
    not back to this one."""
    settings.RATE_LIMITS_ENABLED = False
    other = await db(channel_create)(community=community, name="random", by=alice)
    b = await connect(bob)
    await b.subscribe(general.id)
    await b.subscribe(other.id)
    layer = channel_layer()
    send, release = layer.group_send_others, asyncio.Event()
    calls: list[tuple[str, int]] = []

    async def group_send_others(group: str, message: dict, left_out: str) -> None:
        if group in (group_name(channel_key(general.id)), group_name(channel_key(other.id))):
            calls.append((group, len(message.get("events", [message]))))
            if len(calls) == 1:
                await release.wait()  # a slow layer call: the rest of the burst waits behind it
        await send(group, message, left_out)

    monkeypatch.setattr(layer, "group_send_others", group_send_others)

    def burst() -> None:
        for n in range(20):
            say(general if n % 2 == 0 else other, alice, f"burst {n}")

    await db(burst)()
    received = [(await b.recv_type("message.new", timeout=5))["message"] for _ in range(20)]
    for channel, first in ((general, 0), (other, 1)):
        bodies = [m["body"] for m in received if m["channel"] == channel.id]
        assert bodies == [f"burst {n}" for n in range(first, 20, 2)]
    assert sum(count for _, count in calls) < 20  # (the layer's first call still hangs)
    release.set()
    for _ in range(100):
        if sum(count for _, count in calls) == 20:
            break
        await asyncio.sleep(0.05)
    # The first calls (one held), then one per channel for everything committed meanwhile: a
    # few calls, not one per message.
    assert sum(count for _, count in calls) == 20
    assert len(calls) <= 4
    assert await b.nothing(timeout=0.5)  # nothing was delivered twice
