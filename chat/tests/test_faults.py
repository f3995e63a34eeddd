"""Delivery under faults: two server processes on PostgreSQL and a Redis this test runs itself.

Readers reconnect at random (churn), one server is killed (SIGKILL) between committing a message
and publishing it and then started again, and Redis is restarted mid-stream with nothing kept.
Senders retry with the same client id until acknowledged. Readers follow the protocol's rule
(docs/protocol.md, "Nothing missed"): resume from the last position held with none missing
below it, fill a gap after a short grace, fetch what a `head` frame says is missing. At the end
every reader holds exactly the committed messages of its channels, in order, none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from django.db import connection

from chat.models import Channel, Message
from chat.services import channel_create
from chat.tests.live import LiveServer, free_port, session_key
from communities.services import membership_join
from conftest import say
from hobbies.errors import RateLimited

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="two server processes share one PostgreSQL"
    ),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

READERS = 12
SENDERS = 4
SEND_SECONDS = 12.0
SEND_INTERVAL = 0.12
GRACE = 1.0
CRASH_MARKER = "crash-here-" + uuid.uuid4().hex[:8]


def headers(session: str, server: LiveServer) -> dict[str, str]:
    return {"Cookie": f"sessionid={session}", "Origin": server.url}


class Redis:
    """A Redis of the test's own, with nothing persisted: a restart forgets every group."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


class Reader:
    """A client that follows the protocol's rule for positions."""

    def __init__(self, name: str, session: str, channels: list[int], servers: list[LiveServer]):
        self.name, self.session, self.channels, self.servers = name, session, channels, servers
        self.contiguous = dict.fromkeys(channels, 0)
        self.held: dict[int, dict[int, int]] = {c: {} for c in channels}  # seq → id above it
        self.messages: dict[int, dict[int, int]] = {c: {} for c in channels}  # seq → id
        self.ws: Any = None
        self.stopped = False
        self.stats = {"frames": 0, "wire_duplicates": 0, "reconnects": 0, "refills": 0, "heads": 0}
        self._fill_at: dict[int, float] = {}
        # For a failure's message: what this reader last saw, and from which server.
        self.port = 0
        self.last_frame_at = 0.0
        self.odd_frames: list[dict[str, Any]] = []  # errors and unsubscribes

    def describe(self) -> str:
        return json.dumps(
            {
                "contiguous": self.contiguous,
                "held": {c: sorted(h) for c, h in self.held.items() if h},
                "connected_to": self.port if self.ws is not None else None,
                "silent_for": round(time.monotonic() - self.last_frame_at, 1),
                "stats": self.stats,
                "errors_and_unsubscribes": self.odd_frames[-10:],
            }
        )

    def server(self) -> LiveServer:
        alive = [s for s in self.servers if s.alive()] or self.servers
        return random.choice(alive)

    async def run(self) -> None:
        while not self.stopped:
            server = self.server()
            self.port = server.port
            try:
                self.ws = await websockets.connect(
                    server.ws_url,
                    additional_headers={
                        "Cookie": f"sessionid={self.session}",
                        "Origin": server.url,
                    },
                    open_timeout=3,
                )
                for channel in self.channels:
                    await self.subscribe(channel)
                await self.listen()
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
                pass
            self.ws = None
            if not self.stopped:
                self.stats["reconnects"] += 1
                await asyncio.sleep(random.uniform(0.05, 0.3))

    async def subscribe(self, channel: int) -> None:
        seq = self.contiguous[channel]
        await self.ws.send(json.dumps({"type": "subscribe", "channel": channel, "seq": seq}))

    async def listen(self) -> None:
        while not self.stopped:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), timeout=0.25)
            except TimeoutError:
                await self.fill_gaps()
                continue
            frame = json.loads(raw)
            self.stats["frames"] += 1
            self.last_frame_at = time.monotonic()
            kind = frame["type"]
            if kind in ("error", "unsubscribed"):
                self.odd_frames.append(frame)
            if kind == "message.new":
                self.note(
                    frame["message"]["channel"], frame["message"]["seq"], frame["message"]["id"]
                )
            elif kind == "subscribed" and not frame.get("truncated"):
                self.covered(frame["channel"], frame["last_seq"])
            elif kind == "head" and frame["seq"] > self.contiguous[frame["channel"]]:
                self.stats["heads"] += 1
                self._fill_at.setdefault(frame["channel"], time.monotonic())
            await self.fill_gaps()

    def note(self, channel: int, seq: int, message_id: int) -> None:
        if seq in self.messages[channel]:
            self.stats["wire_duplicates"] += 1
            assert self.messages[channel][seq] == message_id
            return
        self.messages[channel][seq] = message_id
        if seq > self.contiguous[channel]:
            self.held[channel][seq] = message_id
        self.advance(channel)

    def covered(self, channel: int, last_seq: int) -> None:
        self.contiguous[channel] = max(self.contiguous[channel], last_seq)
        self.advance(channel)

    def advance(self, channel: int) -> None:
        held = self.held[channel]
        for seq in [s for s in held if s <= self.contiguous[channel]]:
            del held[seq]
        while self.contiguous[channel] + 1 in held:
            self.contiguous[channel] += 1
            del held[self.contiguous[channel]]
        if held:
            self._fill_at.setdefault(channel, time.monotonic() + GRACE)
        else:
            self._fill_at.pop(channel, None)

    async def fill_gaps(self) -> None:
        now = time.monotonic()
        for channel, at in list(self._fill_at.items()):
            if at <= now:
                del self._fill_at[channel]
                self.stats["refills"] += 1
                await self.subscribe(channel)

    async def drop(self) -> None:
        """Reconnect churn: the network drops this reader's socket."""
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()


class Sender:
    """Sends numbered messages, retrying each with the same client id until acknowledged."""

    def __init__(self, name: str, session: str, channel: int, servers: list[LiveServer]):
        self.name, self.session, self.channel, self.servers = name, session, channel, servers
        self.acked: list[int] = []
        self.retries = 0

    async def send_one(self, body: str) -> None:
        client_id = str(uuid.uuid4())
        while True:
            alive = [s for s in self.servers if s.alive()] or self.servers
            server = random.choice(alive)
            try:
                async with websockets.connect(
                    server.ws_url,
                    additional_headers={
                        "Cookie": f"sessionid={self.session}",
                        "Origin": server.url,
                    },
                    open_timeout=3,
                ) as ws:
                    await ws.send(json.dumps({"type": "message.send", "channel": self.channel,
                                              "client_id": client_id, "body": body}))  # fmt: skip
                    deadline = time.monotonic() + 5
                    while time.monotonic() < deadline:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
                        if frame["type"] == "message.ack" and frame["client_id"] == client_id:
                            self.acked.append(frame["message"]["id"])
                            return
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
                pass
            self.retries += 1
            await asyncio.sleep(0.2)


@pytest.fixture
def redis() -> Iterator[Redis]:
    server = Redis()
    server.start()
    yield server
    server.stop()


def test_every_reader_ends_with_every_committed_message_once_in_order(
    redis, make_user, alice, community, general
):
    gear = channel_create(community=community, name="gear", by=alice)
    channels = [general.id, gear.id]
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "CHANNEL_LAYER_PREFIX": f"faults-{uuid.uuid4().hex[:8]}",
        "RATE_LIMITS_ENABLED": "0",
        "CHAT_HEAD_INTERVAL": "0.5",
        "CHAT_HUB_CANARY_SECONDS": "1",
        "CRASH_MARKER": CRASH_MARKER,
        "DJANGO_ALLOW_ASYNC_UNSAFE": "",
    }
    servers = [LiveServer(app="chat.tests.crash_app:application", **env) for _ in range(2)]
    people = [make_user(f"reader{n}") for n in range(READERS)]
    people += [make_user(f"sender{n}") for n in range(SENDERS)]
    for person in people:
        membership_join(community=community, user=person)
    sessions = {person.username: session_key(person) for person in people}
    try:
        for server in servers:
            server.start()
        try:
            counts = asyncio.run(
                scenario(servers, redis, sessions, channels, env["CHANNEL_LAYER_PREFIX"])
            )
        except AssertionError:
            for server in servers:  # shown with the failure
                print(f"--- server on port {server.port}:\n{server.output()[-20000:]}")
            raise
        # The hubs saw the layer go, and (within seconds of Redis answering again) come back.
        deadline = time.monotonic() + 30
        logs = ""
        while time.monotonic() < deadline and "channel layer back; closing" not in logs:
            time.sleep(0.5)
            logs = "".join(server.output() for server in servers)
    finally:
        for server in servers:
            server.close()
    print("\nfaults:", json.dumps(counts, sort_keys=True))
    assert counts["unacknowledged"] == 0
    # The faults happened: a server died after a commit, and the hubs saw the layer go and
    # come back (then closed their sockets so clients resumed).
    assert counts["crashed"] == 1
    assert "the channel layer stopped delivering" in logs
    assert "channel layer back; closing" in logs


async def scenario(servers, redis, sessions, channels, prefix) -> dict[str, Any]:
    readers = [
        Reader(f"reader{n}", sessions[f"reader{n}"], channels, servers) for n in range(READERS)
    ]
    senders = [
        Sender(f"sender{n}", sessions[f"sender{n}"], channels[n % 2], servers)
        for n in range(SENDERS)
    ]
    tasks = [asyncio.create_task(r.run()) for r in readers]
    await asyncio.sleep(1.5)  # everyone connected and subscribed

    async def send_all(sender: Sender) -> None:
        n = 0
        end = time.monotonic() + SEND_SECONDS
        while time.monotonic() < end:
            n += 1
            await sender.send_one(f"{sender.name} #{n}")
            await asyncio.sleep(SEND_INTERVAL)

    async def churn() -> None:
        end = time.monotonic() + SEND_SECONDS
        while time.monotonic() < end:
            await asyncio.sleep(random.uniform(0.2, 0.6))
            await random.choice(readers).drop()

    crashed = []

    async def faults() -> None:
        await asyncio.sleep(3)
        # Kill a server between commit and broadcast: the sender's retry lands on the other.
        await senders[0].send_one(f"{CRASH_MARKER} one message")
        victim = next(s for s in servers if not s.alive())
        crashed.append(victim.port)
        await asyncio.sleep(1)
        await asyncio.to_thread(victim.start)
        await asyncio.sleep(3)
        # Redis restarts with nothing kept: every group membership and queued event is gone.
        redis.stop()
        await asyncio.sleep(1.5)
        redis.start()

    await asyncio.gather(*(send_all(s) for s in senders), churn(), faults())
    heads = await asyncio.to_thread(current_heads, channels)
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        if all(r.contiguous == heads for r in readers):
            break
        await asyncio.sleep(0.25)
    for reader in readers:
        reader.stopped = True
        await reader.drop()
    ended = await asyncio.gather(*tasks, return_exceptions=True)
    assert not [e for e in ended if e is not None], f"a reader broke: {ended}"

    committed = await asyncio.to_thread(committed_ids, channels)
    acked = {i for s in senders for i in s.acked}
    for reader in readers:
        for channel in channels:
            shown = [reader.messages[channel][seq] for seq in sorted(reader.messages[channel])]
            assert shown == committed[channel], (
                f"{reader.name} in channel {channel} (head {heads}): {reader.describe()}"
            )
            assert len(set(shown)) == len(shown)
    return {
        "committed": sum(len(ids) for ids in committed.values()),
        "acknowledged": len(acked),
        "unacknowledged": len(acked - {i for ids in committed.values() for i in ids}),
        "sender_retries": sum(s.retries for s in senders),
        "readers": len(readers),
        "reader_reconnects": sum(r.stats["reconnects"] for r in readers),
        "gap_refills": sum(r.stats["refills"] for r in readers),
        "head_frames_acted_on": sum(r.stats["heads"] for r in readers),
        "wire_duplicates_dropped": sum(r.stats["wire_duplicates"] for r in readers),
        "frames": sum(r.stats["frames"] for r in readers),
        "crashed": len(crashed),
        "layer_prefix": prefix,
    }


def current_heads(channels: list[int]) -> dict[int, int]:
    try:
        return dict(Channel.objects.filter(id__in=channels).values_list("id", "last_seq"))
    finally:
        connection.close()


def committed_ids(channels: list[int]) -> dict[int, list[int]]:
    try:
        return {
            channel: list(
                Message.objects.filter(channel_id=channel)
                .order_by("seq")
                .values_list("id", flat=True)
            )
            for channel in channels
        }
    finally:
        connection.close()


def test_rate_limits_keep_counting_across_a_redis_restart(redis, settings, alice, general):
    """The rate limit is counted by a script Redis keeps in memory: a restarted Redis has
    forgotten it (and every count), and sends go on being counted, not failing."""
    url = f"redis://127.0.0.1:{redis.port}/0"
    settings.CACHES = {
        "default": {"BACKEND": "hobbies.cache.RedisCache", "LOCATION": url, "KEY_PREFIX": "rl"}
    }
    settings.RATE_LIMIT_MESSAGES_USER = (2, 3600)
    say(general, alice, "one")
    redis.stop()
    redis.start()
    say(general, alice, "two, after the restart")
    say(general, alice, "three: the count started again with the restart")
    with pytest.raises(RateLimited):
        say(general, alice, "four is over the limit")
    assert general.messages.count() == 3
