"""The socket protocol against real daphne processes: slow readers, and several processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websockets
from django.db import connection
from websockets.exceptions import ConnectionClosed

from chat.models import ChannelMember
from chat.tests.live import LiveServer, session_key

pytestmark = pytest.mark.django_db(transaction=True)

# Big messages, so that a few hundred fill the kernel's socket buffers and the server's own.
BIG_BODY = "The quick brown fox jumps over the lazy dog. " * 800  # ~36 kB, ~75 kB per frame


@pytest.fixture
def servers() -> Iterator[list[LiveServer]]:
    started: list[LiveServer] = []
    yield started
    for server in started:
        server.close()


def start(servers: list[LiveServer], **env: str) -> LiveServer:
    server = LiveServer(RATE_LIMITS_ENABLED="0", **env).start()
    servers.append(server)
    return server


async def open_socket(server: LiveServer, session: str, **options: Any) -> Any:
    return await websockets.connect(
        server.ws_url,
        additional_headers={"Cookie": f"sessionid={session}", "Origin": server.url},
        **options,
    )


async def frames_until(ws: Any, kind: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        seen.append(frame)
        if frame["type"] == kind:
            return seen


def test_a_reader_that_falls_behind_is_closed_and_catches_up(servers, alice, bob, general):
    server = start(
        servers,
        CHAT_SOCKET_MAX_BUFFER_BYTES="65536",
        CHAT_SOCKET_DRAIN_SECONDS="1",
        CHAT_MESSAGE_MAX_LENGTH="40000",
    )
    alice_session, bob_session = session_key(alice), session_key(bob)
    total = 200

    async def scenario() -> tuple[bool, int, list[int], list[int]]:
        # Bob's socket reads nothing for now, through a small receive buffer.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", server.port))
        bob_ws = await open_socket(server, bob_session, sock=raw, max_queue=1)
        await bob_ws.send(json.dumps({"type": "subscribe", "channel": general.id, "since": None}))
        await frames_until(bob_ws, "subscribed")
        alice_ws = await open_socket(server, alice_session)
        sent = []
        for i in range(total):
            client_id = str(uuid.uuid4())
            await alice_ws.send(
                json.dumps(
                    {
                        "type": "message.send",
                        "channel": general.id,
                        "client_id": client_id,
                        "body": f"{i} {BIG_BODY}",
                        "reply_to": None,
                    }
                )
            )
            ack = (await frames_until(alice_ws, "message.ack"))[-1]
            sent.append(ack["message"]["id"])
        # Now Bob reads what reached him, until the server's close.
        received, closed_by_server = [], False
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(bob_ws.recv(), timeout=10))
                if frame["type"] == "message.new":
                    received.append(frame["message"]["id"])
        except TimeoutError:
            raise AssertionError(
                f"nothing for 10 s after {len(received)} frames, socket {bob_ws.state.name}; "
                f"the server's log ends:\n{server.output()[-5000:]}"
            ) from None
        except ConnectionClosed:
            # Either the 4008 close frame arrived, or (more often, with so much unread) the
            # server gave up on the closing handshake and dropped the connection.
            closed_by_server = True
        # He reconnects from the newest id he has, and gets the rest.
        before_reconnect = len(received)
        since = received[-1] if received else 0
        bob_again = await open_socket(server, bob_session)
        await bob_again.send(
            json.dumps({"type": "subscribe", "channel": general.id, "since": since})
        )
        for frame in await frames_until(bob_again, "subscribed"):
            if frame["type"] == "message.new":
                received.append(frame["message"]["id"])
        await bob_again.close()
        await alice_ws.close()
        return closed_by_server, before_reconnect, sent, received

    closed_by_server, before_reconnect, sent, received = asyncio.run(scenario())
    assert closed_by_server
    assert "too slow" in server.output(), server.output()
    assert "Traceback" not in server.output(), server.output()
    assert before_reconnect < len(sent), "the slow socket was never cut off"
    assert len(received) == len(set(received)), "duplicates"
    assert received == sent, "a message was lost or reordered"


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="several processes share events through Redis"
)
def test_a_message_sent_to_one_process_reaches_sockets_on_another(servers, alice, bob, general):
    first, second = start(servers), start(servers)
    alice_session, bob_session = session_key(alice), session_key(bob)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        alice_ws = await open_socket(first, alice_session)
        bob_ws = await open_socket(second, bob_session)
        for ws in (alice_ws, bob_ws):
            await ws.send(json.dumps({"type": "subscribe", "channel": general.id, "since": None}))
            await frames_until(ws, "subscribed")
        await alice_ws.send(
            json.dumps(
                {
                    "type": "message.send",
                    "channel": general.id,
                    "client_id": str(uuid.uuid4()),
                    "body": "across processes",
                    "reply_to": None,
                }
            )
        )
        on_bob = (await frames_until(bob_ws, "message.new"))[-1]
        # And the other way round: Bob posts on the second process, Alice hears it on the first.
        await bob_ws.send(
            json.dumps(
                {
                    "type": "message.send",
                    "channel": general.id,
                    "client_id": str(uuid.uuid4()),
                    "body": "and back",
                    "reply_to": None,
                }
            )
        )
        on_alice = await frames_until(alice_ws, "message.new")
        while on_alice[-1]["message"]["body"] != "and back":
            on_alice += await frames_until(alice_ws, "message.new")
        await alice_ws.close()
        await bob_ws.close()
        return on_bob, on_alice[-1]

    on_bob, on_alice = asyncio.run(scenario())
    assert on_bob["message"]["body"] == "across processes"
    assert on_bob["message"]["author"]["username"] == "alice"
    assert on_alice["message"]["body"] == "and back"


async def subscribe(ws: Any, channel_id: int) -> None:
    await ws.send(json.dumps({"type": "subscribe", "channel": channel_id, "since": None}))
    await frames_until(ws, "subscribed")


def remove_on_manage_page(server: LiveServer, session: str, slug: str, user_id: int) -> int:
    """What an owner's "Remove" button on the manage page does: a form POST with its CSRF
    token, on `server`."""
    http = requests.Session()
    http.cookies.set("sessionid", session)
    page = http.get(f"{server.url}/c/{slug}/manage/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    response = http.post(
        f"{server.url}/c/{slug}/manage/",
        data={"csrfmiddlewaretoken": token[1], "action": "remove", "user": str(user_id)},
        allow_redirects=False,
        timeout=10,
    )
    return int(response.status_code)


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="several processes share events through Redis"
)
@pytest.mark.parametrize("how", ["removed", "banned"])
def test_a_member_removed_on_one_process_stops_receiving_on_another(
    servers, alice, bob, carol, community, general, how
):
    """Alice (the owner) acts on the first process: the manage page's Remove button, or a
    `member.ban` frame. Bob's socket is on the second process, with Carol's. As soon as Alice's
    action is answered, she and Carol post: Bob is told (`unsubscribed`, and `restriction` for
    a ban) and hears neither message, while Carol, on his process, hears both."""
    first, second = start(servers), start(servers)
    alice_session, bob_session = session_key(alice), session_key(bob)
    carol_session = session_key(carol)

    def send(text: str) -> str:
        return json.dumps(
            {
                "type": "message.send",
                "channel": general.id,
                "client_id": str(uuid.uuid4()),
                "body": text,
                "reply_to": None,
            }
        )

    async def scenario() -> tuple[list[dict[str, Any]], list[str]]:
        alice_ws = await open_socket(first, alice_session)
        bob_ws = await open_socket(second, bob_session)
        carol_ws = await open_socket(second, carol_session)
        for ws in (alice_ws, bob_ws, carol_ws):
            await subscribe(ws, general.id)
        if how == "removed":
            status = await asyncio.to_thread(
                remove_on_manage_page, first, alice_session, community.slug, bob.id
            )
            assert status == 302
        else:
            await alice_ws.send(
                json.dumps({"type": "member.ban", "community": community.id, "user": bob.id})
            )
            await frames_until(alice_ws, "done")
        # Posted from both processes, without waiting for Bob to hear of his removal.
        await carol_ws.send(send("from his own process"))
        await alice_ws.send(send("from the other process"))
        # Carol's socket is on Bob's process: once she has both messages, that process's hub
        # has handed them to every local socket it was going to. Bob's ping is answered after
        # anything it queued for him; then he waits a little more for a straggler.
        heard_by_carol: list[str] = []
        while len(heard_by_carol) < 2:
            frame = (await frames_until(carol_ws, "message.new"))[-1]
            heard_by_carol.append(frame["message"]["body"])
        await bob_ws.send(json.dumps({"type": "ping"}))
        on_bob = await frames_until(bob_ws, "pong")
        with contextlib.suppress(TimeoutError):
            while True:
                on_bob.append(json.loads(await asyncio.wait_for(bob_ws.recv(), timeout=2)))
        # Nor can he subscribe again.
        await bob_ws.send(json.dumps({"type": "subscribe", "channel": general.id, "since": None}))
        on_bob += await frames_until(bob_ws, "error")
        for ws in (alice_ws, bob_ws, carol_ws):
            await ws.close()
        return on_bob, heard_by_carol

    on_bob, heard_by_carol = asyncio.run(scenario())
    assert sorted(heard_by_carol) == ["from his own process", "from the other process"]
    told = [f for f in on_bob if f["type"] in ("unsubscribed", "restriction")]
    expected: list[dict[str, Any]] = [
        {"type": "unsubscribed", "channel": general.id, "reason": "removed"}
    ]
    if how == "banned":
        expected.append(
            {"type": "restriction", "community": community.id, "kind": "ban", "until": None}
        )
    assert told == expected, on_bob
    # Nothing of the community follows (presence included): only his own answers.
    kinds = [f["type"] for f in on_bob]
    assert "message.new" not in kinds, on_bob
    after = kinds[kinds.index("unsubscribed") + 1 :]
    assert set(after) <= {"restriction", "pong", "error"}, on_bob
    assert on_bob[-1]["code"] == ("not_found" if how == "removed" else "banned"), on_bob


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="several processes share events through Redis"
)
def test_a_removal_whose_kick_was_lost_still_ends_the_subscription(
    servers, alice, bob, carol, community, general
):
    """The process where Alice removes Bob dies between the commit and the kick's publish, as
    the fault tests kill one. The database is the record: Bob's process finds the removal in
    its own check, ends his subscription, and Carol's next message does not reach him."""
    first = LiveServer(
        app="chat.tests.crash_app:application", RATE_LIMITS_ENABLED="0", CRASH_ACTION="kick"
    ).start()
    servers.append(first)
    second = start(servers, CHAT_HEAD_INTERVAL="0.5")
    alice_session, bob_session = session_key(alice), session_key(bob)
    carol_session = session_key(carol)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        bob_ws = await open_socket(second, bob_session)
        carol_ws = await open_socket(second, carol_session)
        for ws in (bob_ws, carol_ws):
            await subscribe(ws, general.id)
        with contextlib.suppress(requests.ConnectionError):
            await asyncio.to_thread(
                remove_on_manage_page, first, alice_session, community.slug, bob.id
            )
        told = await frames_until(bob_ws, "unsubscribed")
        await carol_ws.send(
            json.dumps(
                {
                    "type": "message.send",
                    "channel": general.id,
                    "client_id": str(uuid.uuid4()),
                    "body": "after the removal",
                    "reply_to": None,
                }
            )
        )
        await frames_until(carol_ws, "message.new")
        await bob_ws.send(json.dumps({"type": "ping"}))
        after = await frames_until(bob_ws, "pong")
        for ws in (bob_ws, carol_ws):
            await ws.close()
        return told, after

    told, after = asyncio.run(scenario())
    assert not first.alive(), "the removing process was to die before publishing the kick"
    assert not ChannelMember.objects.filter(channel=general, user=bob).exists()
    assert told[-1] == {"type": "unsubscribed", "channel": general.id, "reason": "removed"}
    assert "message.new" not in [f["type"] for f in after], after
    assert f"user {bob.id} may no longer see channel {general.id}" in second.output()
    assert "Traceback" not in second.output(), second.output()


def test_a_flood_of_frames_is_read_no_faster_than_it_is_handled(servers, bob):
    """20,000 frames of 60 kB (1.2 GB) on one socket: the server stops reading while the frames
    it has wait for the consumer, so its memory stays flat; every frame is still answered."""
    server = start(servers)
    session = session_key(bob)
    count, frame = 20_000, json.dumps({"type": "unsubscribe", "channel": 1, "pad": "x" * 60_000})

    async def scenario() -> tuple[int, int, int]:
        ws = await open_socket(server, session, max_size=2**20)
        answered = 0

        async def read() -> None:
            nonlocal answered
            async for message in ws:
                if json.loads(message)["type"] == "error":
                    answered += 1

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, server.rss())
                await asyncio.sleep(0.02)

        base = peak = server.rss()
        reader, sampler = asyncio.create_task(read()), asyncio.create_task(sample())
        for _ in range(count):
            await ws.send(frame)
        while answered < count:
            await asyncio.sleep(0.05)
        sampler.cancel()
        await ws.close()
        await reader
        return base, max(peak, server.rss()), answered

    base, peak, answered = asyncio.run(scenario())
    grew = (peak - base) / 2**20
    print(f"\n{count} x 60 kB frames on one socket: daphne {base / 2**20:.0f} MB -> peak "
          f"{peak / 2**20:.0f} MB (+{grew:.1f} MB)")  # fmt: skip
    assert answered == count
    assert grew < 64, f"daphne grew {grew:.0f} MB"


def test_frames_over_the_limit_are_answered_and_far_over_it_close(servers, bob):
    """Up to daphne's `--websocket-max-message-size` (1 MiB) a frame over
    CHAT_FRAME_MAX_BYTES gets `too_long` and the socket stays usable; past it, daphne drops the
    connection (1009, or a reset while the client still sends)."""
    server = start(servers)
    session = session_key(bob)

    async def scenario() -> tuple[str, str, bool]:
        ws = await open_socket(server, session, max_size=2**20)
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 200_000}))
        code = (await frames_until(ws, "error"))[-1]["code"]
        await ws.send(json.dumps({"type": "ping"}))
        after = (await frames_until(ws, "pong"))[-1]["type"]
        closed = False
        try:
            await ws.send(json.dumps({"type": "ping", "pad": "x" * 2_000_000}))
            await asyncio.wait_for(ws.recv(), timeout=10)
        except ConnectionClosed:
            closed = True
        return code, after, closed

    assert asyncio.run(scenario()) == ("too_long", "pong", True)


def test_a_signed_out_socket_opens_and_closes_with_4401(servers):
    """Browsers see only 1006 for a refused handshake, and retry; 4401 makes the page say
    "signed out"."""
    server = start(servers)

    async def scenario() -> int | None:
        ws = await websockets.connect(server.ws_url, additional_headers={"Origin": server.url})
        try:
            await asyncio.wait_for(ws.recv(), timeout=10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        return None

    assert asyncio.run(scenario()) == 4401


def sessions_opened() -> int:
    """How many connections PostgreSQL has accepted to this database so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the pool is PostgreSQL's")
def test_requests_borrow_pooled_database_connections_instead_of_opening_their_own(
    servers, alice, general
):
    """Under ASGI each request's code runs in a thread of its own: without the pool, every
    request opened a database connection (and a PostgreSQL backend) of its own."""
    server = start(servers)
    cookies = {"sessionid": session_key(alice)}
    url = f"{server.url}/api/channels/{general.id}/messages/"
    requests.get(url, cookies=cookies, timeout=10).raise_for_status()  # the pool opens
    time.sleep(1.5)  # (PostgreSQL counts sessions at most once a second)
    before = sessions_opened()
    for _ in range(30):
        response = requests.get(url, cookies=cookies, timeout=10)
        assert response.status_code == 200
        assert response.json()["messages"] == []
    time.sleep(1.5)
    assert sessions_opened() - before < 5
