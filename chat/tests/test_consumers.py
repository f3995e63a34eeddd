"""The WebSocket protocol, through the real ASGI application."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.test import Client

from accounts.models import User
from chat.models import Message
from chat.services import channel_create, channel_member_add, channel_member_remove
from communities.services import community_create, membership_join
from conftest import client_for, say

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


def send_frame(channel_id: int, body: str, client_id: str | None = None, **extra) -> dict:
    return {
        "type": "message.send",
        "channel": channel_id,
        "client_id": client_id or str(uuid.uuid4()),
        "body": body,
        "reply_to": None,
        **extra,
    }


@pytest.fixture
def elsewhere(alice, bob):
    """#general of a second community of alice's and bob's: its messages serve as sentinels.

    Events reach a socket in the order they were published, so once a sentinel published after
    an event arrives, that event would have arrived before it.
    """
    chess = community_create(name="Chess", by=alice)
    membership_join(community=chess, user=bob)
    return chess.channels.get(name="general")


async def next_body(socket) -> str:
    return (await socket.recv_type("message.new"))["message"]["body"]


async def test_message_reaches_other_member_live(connect, alice, bob, general):
    a, b = await connect(alice), await connect(bob)
    await a.subscribe(general.id)
    await b.subscribe(general.id)
    await a.send(send_frame(general.id, "hi **bob**"))
    received = await b.recv_type("message.new")
    assert received["message"]["body"] == "hi **bob**"
    assert "<strong>bob</strong>" in received["message"]["html"]
    assert received["message"]["author"]["username"] == "alice"
    ack = (await a.until("message.ack"))[-1]
    assert ack["message"]["id"] == received["message"]["id"]


async def test_ack_arrives_after_commit(connect, alice, general):
    a = await connect(alice)
    await a.subscribe(general.id)
    client_id = str(uuid.uuid4())
    await a.send(send_frame(general.id, "saved?", client_id))
    frames = await a.until("message.ack")
    ack = frames[-1]
    assert ack["client_id"] == client_id
    row = await db(Message.objects.get)(id=ack["message"]["id"])
    assert row.body == "saved?"
    # The sender's subscription gets its own copy too (for its other tabs), once, before or
    # after the ack.
    await a.send(send_frame(general.id, "sentinel"))
    while not frames or frames[-1].get("message", {}).get("body") != "sentinel":
        frames += await a.until("message.new")
    bodies = [f["message"]["body"] for f in frames if f["type"] == "message.new"]
    assert bodies == ["saved?", "sentinel"]


async def test_a_socket_does_not_wait_for_synchronous_work_elsewhere_in_its_process(
    connect, alice, general
):
    """Django runs views' synchronous code, and Channels its sign-in read, in one thread per
    process. Something slow there (a heavy page) must not hold up what sockets send."""
    a = await connect(alice)
    await a.subscribe(general.id)
    release = threading.Event()
    busy = asyncio.ensure_future(sync_to_async(release.wait)(10))  # that one thread, held
    try:
        await a.send({"type": "ping"})
        assert (await a.recv_type("pong", timeout=2))["type"] == "pong"
        await a.send(send_frame(general.id, "not held up"))
        ack = (await a.until("message.ack", timeout=2))[-1]
        assert ack["message"]["body"] == "not held up"
    finally:
        release.set()
        await busy


async def test_same_client_id_twice_over_socket_is_one_message(connect, alice, bob, general):
    a, b = await connect(alice), await connect(bob)
    await a.subscribe(general.id)
    await b.subscribe(general.id)
    client_id = str(uuid.uuid4())
    await a.send(send_frame(general.id, "once", client_id))
    first = (await a.until("message.ack"))[-1]
    await a.send(send_frame(general.id, "once", client_id))
    acks = [first, (await a.until("message.ack"))[-1]]
    assert acks[0]["message"]["id"] == acks[1]["message"]["id"]
    assert await db(Message.objects.filter(client_id=client_id).count)() == 1
    await a.send(send_frame(general.id, "sentinel"))
    assert [await next_body(b), await next_body(b)] == ["once", "sentinel"]


async def test_same_client_id_twice_over_http_is_one_broadcast(connect, alice, bob, general):
    b = await connect(bob)
    await b.subscribe(general.id)
    client = await db(client_for)(alice)
    data = {"body": "over http", "client_id": str(uuid.uuid4())}
    url = f"/api/channels/{general.id}/messages/"
    first = await db(client.post)(url, data, content_type="application/json")
    second = await db(client.post)(url, data, content_type="application/json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["message"]["id"] == second.json()["message"]["id"]
    await db(say)(general, alice, "sentinel")
    assert [await next_body(b), await next_body(b)] == ["over http", "sentinel"]


async def test_edit_delete_and_reactions_are_pushed(connect, alice, bob, general):
    message = await db(say)(general, alice, "frist")
    a, b = await connect(alice), await connect(bob)
    await a.subscribe(general.id)
    await b.subscribe(general.id)

    await a.send({"type": "message.edit", "message": message.id, "body": "first"})
    updated = (await b.until("message.updated"))[-1]["message"]
    assert (updated["body"], updated["edited_at"] is not None) == ("first", True)

    await b.send({"type": "reaction.add", "message": message.id, "emoji": "👍"})
    reaction = (await a.until("reaction"))[-1]
    assert (reaction["emoji"], reaction["user"], reaction["added"]) == ("👍", bob.id, True)
    assert reaction["message"]["reactions"] == [{"emoji": "👍", "count": 1, "users": [bob.id]}]
    await b.send({"type": "reaction.remove", "message": message.id, "emoji": "👍"})
    removed = (await a.until("reaction"))[-1]
    assert (removed["added"], removed["message"]["reactions"]) == (False, [])

    await b.send({"type": "message.delete", "message": message.id})
    error = (await b.until("error"))[-1]
    assert (error["code"], error["ref"]) == ("forbidden", "message.delete")

    await a.send({"type": "message.delete", "message": message.id})
    deleted = (await b.until("message.deleted"))[-1]["message"]
    assert (deleted["deleted"], deleted["body"]) == (True, "")
    assert "This message was deleted." in deleted["html"]


async def test_announcement_channel_refuses_members(connect, alice, bob, community):
    news = await db(channel_create)(community=community, name="news", kind="announcement", by=alice)
    b = await connect(bob)
    await b.subscribe(news.id)
    await b.send(send_frame(news.id, "may I?"))
    error = await b.recv_type("error")
    assert error["code"] == "forbidden"
    a = await connect(alice)
    await a.send(send_frame(news.id, "Meetup on Saturday"))
    assert (await b.recv_type("message.new"))["message"]["body"] == "Meetup on Saturday"
    assert await db(news.messages.count)() == 1


# --- Reconnecting ---------------------------------------------------------------------------


async def test_replay_since_sends_exactly_the_missed_messages(connect, alice, bob, general):
    seen = await db(say)(general, alice, "seen")
    missed = [(await db(say)(general, alice, f"missed {n}")).id for n in range(4)]
    b = await connect(bob)
    await b.send({"type": "subscribe", "channel": general.id, "since": seen.id})
    replayed = [(await b.recv_type("message.new"))["message"]["id"] for _ in missed]
    subscribed = await b.recv_type("subscribed")
    assert replayed == missed
    assert subscribed == {
        "type": "subscribed",
        "channel": general.id,
        "last_id": missed[-1],
        "last_seq": 5,
    }
    # Live messages follow, without repeats.
    await db(say)(general, alice, "live")
    await db(say)(general, alice, "live too")
    assert [await next_body(b), await next_body(b)] == ["live", "live too"]


async def test_replay_when_up_to_date_sends_nothing(connect, alice, bob, general):
    last = await db(say)(general, alice, "only")
    b = await connect(bob)
    subscribed = await b.subscribe(general.id, since=last.id)  # fails on any message first
    assert subscribed == {
        "type": "subscribed",
        "channel": general.id,
        "last_id": last.id,
        "last_seq": last.seq,
    }
    await db(say)(general, alice, "next")
    assert await next_body(b) == "next"


async def test_replay_over_the_limit_says_truncated(connect, alice, bob, general, settings):
    settings.CHAT_REPLAY_LIMIT = 5
    first = await db(say)(general, alice, "seen")
    for n in range(6):
        last = await db(say)(general, alice, f"missed {n}")
    b = await connect(bob)
    await b.send({"type": "subscribe", "channel": general.id, "since": first.id})
    frame = await b.recv()
    assert frame == {
        "type": "subscribed",
        "channel": general.id,
        "last_id": last.id,
        "last_seq": last.seq,
        "truncated": True,
    }


async def test_resume_by_position_replays_every_missed_position_once(connect, alice, bob, general):
    """A client that holds positions 1..2 and 4 (3 arrived late, or never) resumes with seq=2:
    it gets 3, 4 and 5 in order — the gap is filled, nothing skipped for being older."""
    sent = [await db(say)(general, alice, f"m{n}") for n in range(1, 6)]
    assert [m.seq for m in sent] == [1, 2, 3, 4, 5]
    b = await connect(bob)
    await b.send({"type": "subscribe", "channel": general.id, "seq": 2})
    replayed = [(await b.recv_type("message.new"))["message"]["seq"] for _ in range(3)]
    subscribed = await b.recv_type("subscribed")
    assert replayed == [3, 4, 5]
    assert subscribed["last_seq"] == 5
    await db(say)(general, alice, "live")
    frame = await b.recv_type("message.new")
    assert (frame["message"]["body"], frame["message"]["seq"]) == ("live", 6)


# --- Being removed --------------------------------------------------------------------------


async def test_removed_from_private_channel_stops_receiving(
    connect, alice, bob, community, general
):
    mods = await db(channel_create)(community=community, name="mods", kind="private", by=alice)
    await db(channel_member_add)(channel=mods, user=bob, by=alice)
    b = await connect(bob)
    await b.subscribe(mods.id)
    await b.subscribe(general.id)
    await db(channel_member_remove)(channel=mods, user=bob, by=alice)
    assert await b.recv_type("unsubscribed") == {
        "type": "unsubscribed",
        "channel": mods.id,
        "reason": "removed",
    }
    await db(say)(mods, alice, "after bob left")
    await db(say)(general, alice, "sentinel")
    assert await next_body(b) == "sentinel"
    await b.send({"type": "subscribe", "channel": mods.id, "since": 0})
    assert (await b.recv_type("error"))["code"] == "not_found"


async def test_removed_from_community_by_moderator_stops_receiving(
    connect, alice, bob, general, elsewhere
):
    b = await connect(bob)
    await b.subscribe(general.id)
    await b.subscribe(elsewhere.id)
    moderator = await db(client_for)(alice)
    response = await db(moderator.post)(
        "/c/photography/manage/", {"action": "remove", "user": str(bob.id)}
    )
    assert response.status_code == 302
    unsubscribed = await b.recv_type("unsubscribed")
    assert (unsubscribed["channel"], unsubscribed["reason"]) == (general.id, "removed")
    await db(say)(general, alice, "bob is gone")
    await db(say)(elsewhere, alice, "sentinel")
    assert await next_body(b) == "sentinel"


async def test_logout_closes_that_sessions_socket_only(connect, bob, general):
    client = await db(client_for)(bob)
    this_tab = await connect(bob, client=client)
    other_browser = await connect(bob)
    await this_tab.subscribe(general.id)
    response = await db(client.post)("/accounts/logout/")
    assert response.status_code == 302
    closing = await this_tab.communicator.receive_output(timeout=3)
    assert closing == {"type": "websocket.close", "code": 4001}
    await other_browser.send({"type": "ping"})
    assert (await other_browser.recv_type("pong"))["type"] == "pong"


def deactivate(user) -> None:
    """What the admin's user form does when "active" is unticked."""
    user.is_active = False
    user.save()


async def test_deactivation_closes_every_socket_of_the_user(connect, alice, bob, general):
    first, second = await connect(bob), await connect(bob)  # two browsers, two sessions
    watcher = await connect(alice)
    for socket in (first, second, watcher):
        await socket.subscribe(general.id)
    stale = (await db(client_for)(bob)).cookies["sessionid"].value
    await db(deactivate)(await db(User.objects.get)(pk=bob.pk))
    assert [await first.closed_with(), await second.closed_with()] == [4403, 4403]
    await watcher.send({"type": "ping"})
    assert (await watcher.recv_type("pong"))["type"] == "pong"
    # The page reconnects once and is told it is signed out.
    client = Client()
    client.cookies["sessionid"] = stale
    assert await (await connect(None, client=client)).closed_with() == 4401


async def test_password_change_by_an_admin_closes_every_socket(connect, bob, superuser):
    first, second = await connect(bob), await connect(bob)
    admin = await db(client_for)(superuser)
    response = await db(admin.post)(
        f"/admin/hobbies/user/{bob.pk}/password/",
        {
            "password1": "n3w-horse-staple-battery",
            "password2": "n3w-horse-staple-battery",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content[:300]
    assert [await first.closed_with(), await second.closed_with()] == [4403, 4403]


async def test_other_user_changes_leave_sockets_open(connect, bob):
    socket = await connect(bob)
    user = await db(User.objects.get)(pk=bob.pk)
    user.email = "bob@example.org"
    await db(user.save)()
    await socket.send({"type": "ping"})
    assert (await socket.recv_type("pong"))["type"] == "pong"


async def test_a_deactivation_missed_by_the_sockets_is_seen_on_the_next_frame(
    connect, bob, general, settings
):
    """A change that sends no signal (a bulk update) still stops the socket: the account is
    read again before a frame once `CHAT_AUTH_RECHECK_SECONDS` have passed."""
    settings.CHAT_AUTH_RECHECK_SECONDS = 0
    socket = await connect(bob)
    await socket.subscribe(general.id)
    await db(User.objects.filter(pk=bob.pk).update)(is_active=False)
    await socket.send(send_frame(general.id, "still here?"))
    assert await socket.closed_with() == 4403
    assert not await db(general.messages.exists)()


# --- Presence, typing, read markers ---------------------------------------------------------


async def test_presence_when_a_member_connects(connect, alice, bob, general, community):
    a = await connect(alice)
    await a.subscribe(general.id)
    b = await connect(bob)
    frame = await a.recv()
    while frame["type"] == "presence" and frame["user"]["id"] != bob.id:
        frame = await a.recv()
    assert frame == {
        "type": "presence",
        "community": community.id,
        "user": {"id": bob.id, "username": "bob", "display_name": "Bob Brown"},
        "online": True,
    }
    await b.close()
    frame = await a.recv_type("presence")
    assert (frame["user"]["id"], frame["online"]) == (bob.id, False)


async def test_typing_reaches_other_subscribers(connect, alice, bob, general):
    a, b = await connect(alice), await connect(bob)
    await a.subscribe(general.id)
    await b.subscribe(general.id)
    await a.send({"type": "typing", "channel": general.id})
    frame = await b.recv()
    while frame["type"] == "presence":
        frame = await b.recv()
    assert frame == {
        "type": "typing",
        "channel": general.id,
        "user": {"id": alice.id, "username": "alice", "display_name": "Alice Adams"},
    }


async def test_read_frame_resets_unread(connect, alice, bob, general):
    last = None
    for n in range(3):
        last = await db(say)(general, alice, f"unread {n}")
    client = await db(client_for)(bob)
    [row] = (await db(client.get)("/api/channels/")).json()["channels"]
    assert row["unread"] == 3
    b = await connect(bob)
    await b.send({"type": "read", "channel": general.id, "message": last.id})
    assert await b.recv_type("read") == {"type": "read", "channel": general.id, "message": last.id}
    [row] = (await db(client.get)("/api/channels/")).json()["channels"]
    assert (row["unread"], row["last_read_id"]) == (0, last.id)


async def test_unsubscribe_stops_events(connect, alice, bob, general, elsewhere):
    b = await connect(bob)
    await b.subscribe(general.id)
    await b.subscribe(elsewhere.id)
    await b.send({"type": "unsubscribe", "channel": general.id})
    assert await b.recv_type("unsubscribed") == {
        "type": "unsubscribed",
        "channel": general.id,
        "reason": "requested",
    }
    await db(say)(general, alice, "not for bob's socket")
    await db(say)(elsewhere, alice, "sentinel")
    assert await next_body(b) == "sentinel"


@pytest.mark.parametrize("when", ["before the read", "after the read"])
async def test_message_committed_during_subscribe_arrives_exactly_once(
    connect, alice, bob, general, monkeypatch, when
):
    """Another writer commits while the replay is being read: no gap, no duplicate."""
    from chat import consumers

    seen = await db(say)(general, alice, "seen")
    original = consumers.replay

    def replay_with_concurrent_writer(channel, **resume):
        if when == "before the read":
            say(general, alice, "concurrent")
            return original(channel, **resume)
        result = original(channel, **resume)
        say(general, alice, "concurrent")
        return result

    monkeypatch.setattr(consumers, "replay", replay_with_concurrent_writer)
    b = await connect(bob)
    await b.send({"type": "subscribe", "channel": general.id, "since": seen.id})
    frames = await b.until("subscribed")
    monkeypatch.setattr(consumers, "replay", original)
    await db(say)(general, alice, "sentinel")
    frames += await b.until("message.new")
    while frames[-1].get("message", {}).get("body") != "sentinel":
        frames += await b.until("message.new")
    order = [
        f["message"]["body"] if f["type"] == "message.new" else f["type"]
        for f in frames
        if f["type"] in ("message.new", "subscribed")
    ]
    if when == "before the read":  # in the replay
        assert order == ["concurrent", "subscribed", "sentinel"]
    else:  # live, held back until the replay is out
        assert order == ["subscribed", "concurrent", "sentinel"]


async def test_live_messages_published_out_of_order_all_arrive(connect, bob, general):
    """Two server processes may publish a channel's messages in another order than their ids;
    the socket passes on both rather than taking the older one for a replayed duplicate."""
    from chat.events import channel_key
    from chat.hub import frame_event, publish

    b = await connect(bob)
    covered = (await b.subscribe(general.id))["last_seq"]
    for seq in (covered + 2, covered + 1):
        payload = {"type": "message.new", "message": {"seq": seq, "channel": general.id}}
        meta = {"kind": "message.new", "id": 1000 + seq, "seq": seq}
        await publish(frame_event(channel_key(general.id), payload, meta))
    first = await b.recv_type("message.new")
    second = await b.recv_type("message.new")
    assert [first["message"]["seq"], second["message"]["seq"]] == [covered + 2, covered + 1]


async def test_the_sender_gets_the_ack_before_its_own_message_comes_back(connect, alice, general):
    """The page replaces its pending copy on the ack; the echo must not come first, or the
    message would show twice for a moment."""
    a = await connect(alice)
    await a.subscribe(general.id)
    for n in range(5):
        client_id = str(uuid.uuid4())
        await a.send(
            {"type": "message.send", "channel": general.id, "client_id": client_id, "body": f"#{n}"}
        )
        frames = await a.until("message.new")
        kinds = [f["type"] for f in frames if f["type"] in ("message.ack", "message.new")]
        assert kinds == ["message.ack", "message.new"]
