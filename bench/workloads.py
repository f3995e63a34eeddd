"""The production-path workloads beside the fan-out benchmark, on both paths.

- `senders`: N sockets, each sending into a channel of its own at a fixed rate; sends/s
  achieved and the ack latency each sender sees (sends of different channels must not wait for
  each other).
- `replay`: a probe sends into a channel (ack latency), a watcher receives it (delivery latency)
  and pings (round trip), first alone, then while another socket resumes 1,000 messages behind
  in another channel `--replay-rate` times a second (0: back to back); how much the replays
  raise the others' p99.
- `history`: a channel of 1,000,000 messages (inserted in SQL), then pages of 50 of history at
  random places over HTTP, first read (rendered and stored) and read again (stored).
- `memory`: the server's resident memory per idle, authenticated, subscribed socket, with 2,000
  of them; beside it the naive Channels app under the same daphne (the server's own floor).

Every workload starts its own servers on free 127.0.0.1 ports (`app`: the embedded default;
`app-pg`: PostgreSQL at BENCH_POSTGRES_URL and Redis at BENCH_REDIS_URL) and prints one table;
results go to `bench/results/workloads-<UTC time>.json` with the commit measured.

    .venv/bin/python bench/workloads.py                       # all four, both paths
    .venv/bin/python bench/workloads.py --only senders --servers app-pg
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import psycopg
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.typing import Origin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fanout import (
    BENCH_DIR,
    HOST,
    PYTHON,
    RESULTS_DIR,
    ROOT,
    CpuWindow,
    ServerProcess,
    free_port,
    machine,
    percentile,
    postgres_database,
    revision,
    run_step,
    scratch_dir,
    wait_until_quiet,
)

WORKLOADS = ("senders", "replay", "history", "memory")
PATHS = ("app", "app-pg")
PG_DATABASE = f"bench_workloads_{os.getpid()}"


def stats(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    return {
        "n": len(ordered),
        "p50": round(percentile(ordered, 0.5), 2),
        "p99": round(percentile(ordered, 0.99), 2),
        "max": round(ordered[-1], 2),
    }


# --- Servers --------------------------------------------------------------------------------


@dataclass
class App:
    name: str
    server: ServerProcess
    env: dict[str, str]
    data: dict[str, Any]

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.server.port}/ws/"

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.server.port}"

    def stop(self) -> None:
        self.server.stop()
        if self.name == "app-pg":
            postgres_database(PG_DATABASE, create=False)


# --rate-limits: the servers count rate limits (the benchmarks turn them off otherwise).
COUNT_RATE_LIMITS = False


async def start_app(
    name: str, workdir: Path, *, users: int, channels: int = 0, messages: int = 0
) -> App:
    """A migrated, filled database and the app serving it (one daphne process)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hobbies.settings",
        "DATABASE_URL": f"sqlite:///{workdir}/{name}-{time.time_ns()}.sqlite3",
        "HOBBIES_VAR_DIR": str(workdir),
        "RATE_LIMITS_ENABLED": "0",
        "REDIS_URL": "",
        "DJANGO_DEBUG": "0",
        "CHAT_MAX_SOCKETS_PER_USER": "100",
    }
    if COUNT_RATE_LIMITS:
        # Counted as in production, with limits no sender reaches.
        env["RATE_LIMITS_ENABLED"] = "1"
        env["RATE_LIMIT_MESSAGES_USER"] = env["RATE_LIMIT_MESSAGES_CHANNEL"] = "100000/10"
    port = free_port()
    if name == "app-pg":
        env["DATABASE_URL"] = postgres_database(PG_DATABASE, create=True)
        env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        env["CHANNEL_LAYER_PREFIX"] = f"bench-{os.getpid()}-{port}"
    run_step([PYTHON, "manage.py", "migrate", "--noinput"], env)
    made = run_step(
        [
            PYTHON,
            str(BENCH_DIR / "setup_app.py"),
            f"--users={users}",
            f"--channels={channels}",
            f"--messages={messages}",
        ],
        env,
    )
    data = json.loads(made.strip().splitlines()[-1])
    command = [PYTHON, "-m", "daphne", "-b", HOST, "-p", str(port), "hobbies.asgi:application"]
    server = ServerProcess.start(name, port, command, env, workdir)
    await server.wait_ready()
    print(f"[{name}] server pid {server.process.pid} on {HOST}:{port}", file=sys.stderr)
    return App(name, server, env, data)


# --- A socket of the app's protocol -----------------------------------------------------------


@dataclass
class Client:
    connection: ClientConnection
    acks: dict[str, float] = field(default_factory=dict)  # client_id -> sent at
    ack_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pongs: asyncio.Queue[float] = field(default_factory=asyncio.Queue)
    subscribed: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    new_messages: int = 0
    on_message: Callable[[dict[str, Any], float], None] | None = None
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, app: App, session: str) -> Client:
        connection = await connect(
            app.ws_url,
            origin=Origin(app.origin),
            additional_headers=Headers({"Cookie": f"sessionid={session}"}),
            compression=None,
            ping_interval=None,
            max_size=1 << 24,
            open_timeout=60,
            close_timeout=2,
        )
        client = cls(connection)
        client.reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.connection:
                now = time.time()
                frame = json.loads(text)
                kind = frame.get("type")
                if kind == "message.new":
                    self.new_messages += 1
                    if self.on_message is not None:
                        self.on_message(frame["message"], now)
                elif kind == "message.ack":
                    sent = self.acks.pop(frame.get("client_id"), None)
                    if sent is not None:
                        self.ack_ms.append(1000 * (now - sent))
                elif kind == "pong":
                    self.pongs.put_nowait(now)
                elif kind == "subscribed":
                    self.subscribed.put_nowait(frame)
                elif kind == "error" and len(self.errors) < 20:
                    self.errors.append(text if isinstance(text, str) else repr(text))

    async def subscribe(self, channel: int, seq: int | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "subscribe", "channel": channel}
        if seq is not None:
            frame["seq"] = seq
        await self.connection.send(json.dumps(frame))
        return await asyncio.wait_for(self.subscribed.get(), 60)

    async def send(self, channel: int, body: str) -> None:
        client_id = str(uuid.uuid4())
        self.acks[client_id] = time.time()
        await self.connection.send(
            json.dumps(
                {
                    "type": "message.send",
                    "channel": channel,
                    "client_id": client_id,
                    "body": body,
                    "reply_to": None,
                }
            )
        )

    async def ping(self) -> float:
        sent = time.time()
        await self.connection.send('{"type":"ping"}')
        return 1000 * (await asyncio.wait_for(self.pongs.get(), 30) - sent)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


async def open_many(app: App, sessions: list[str], concurrency: int = 50) -> list[Client]:
    gate = asyncio.Semaphore(concurrency)

    async def one(session: str) -> Client:
        async with gate:
            return await Client.open(app, session)

    return list(await asyncio.gather(*(one(session) for session in sessions)))


async def every(interval: float, duration: float, call: Callable[[int], Awaitable[Any]]) -> None:
    """`call(n)` on a fixed schedule for `duration` seconds (a late call goes out at once)."""
    start = time.monotonic()
    for n in range(round(duration / interval)):
        delay = start + n * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await call(n)


async def wait_for_acks(clients: list[Client], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(c.acks for c in clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


# --- Workloads ------------------------------------------------------------------------------


async def senders(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    app = await start_app(name, workdir, users=args.senders + 1, channels=args.senders)
    clients: list[Client] = []
    try:
        rooms, sessions = app.data["rooms"], app.data["sessions"][1:]
        clients = await open_many(app, sessions)
        for client, room in zip(clients, rooms, strict=True):
            await client.subscribe(room)
        for client, room in zip(clients, rooms, strict=True):  # warm-up, not measured
            await client.send(room, "warm-up")
        await wait_for_acks(clients, 30)
        for client in clients:
            client.ack_ms.clear()
        await asyncio.sleep(1)
        cpu = CpuWindow(app.server.process.pid)
        started = time.time()

        async def sender(client: Client, room: int) -> None:
            # Spread the senders' schedules over one interval.
            await asyncio.sleep(random.random() / args.sender_rate)
            await every(
                1 / args.sender_rate,
                args.duration,
                lambda n: client.send(room, f"sender {room} message {n}"),
            )

        await asyncio.gather(*(sender(c, r) for c, r in zip(clients, rooms, strict=True)))
        await wait_for_acks(clients, 30)
        elapsed = time.time() - started
        window = cpu.close(0.0)
        acks = [ms for c in clients for ms in c.ack_ms]
        return {
            "workload": "senders",
            "server": name,
            "senders": len(clients),
            "offered_per_s": args.senders * args.sender_rate,
            "acked_per_s": round(len(acks) / elapsed, 1),
            "unacked": sum(len(c.acks) for c in clients),
            "errors": [e for c in clients for e in c.errors][:5],
            "ack_ms": stats(acks),
            **window,
        }
    finally:
        for client in clients:
            await client.close()
        app.stop()


async def replay(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    behind = args.replay_size
    app = await start_app(name, workdir, users=4, channels=1, messages=behind + 10)
    clients: list[Client] = []
    try:
        general, room = app.data["channel"], app.data["rooms"][0]
        probe, watcher, replayer = clients = await open_many(app, app.data["sessions"][1:4])
        await probe.subscribe(room)
        await watcher.subscribe(room)
        head = (await replayer.subscribe(general))["last_seq"]
        delivered: list[float] = []

        def watched(message: dict[str, Any], at: float) -> None:
            body = message.get("body", "")
            if body.startswith("probe "):
                delivered.append(1000 * (at - float(body.split()[1])))

        watcher.on_message = watched

        async def probe_phase(replaying: bool) -> dict[str, Any]:
            delivered.clear()
            probe.ack_ms.clear()
            pings: list[float] = []
            replays: list[float] = []
            stop = asyncio.Event()

            async def replay_loop() -> None:
                interval = 1 / args.replay_rate if args.replay_rate else 0.0
                next_at = time.monotonic()
                while not stop.is_set():
                    next_at += interval
                    before = replayer.new_messages
                    started = time.monotonic()
                    reply = await replayer.subscribe(general, seq=head - behind)
                    got = replayer.new_messages - before
                    if reply.get("truncated") or got < behind:
                        raise RuntimeError(f"replay gave {got} messages: {reply}")
                    replays.append(1000 * (time.monotonic() - started))
                    if next_at > time.monotonic():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), next_at - time.monotonic())

            async def pinger() -> None:
                while not stop.is_set():
                    pings.append(await watcher.ping())
                    await asyncio.sleep(0.05)

            tasks = [asyncio.create_task(pinger())]
            if replaying:
                tasks.append(asyncio.create_task(replay_loop()))
            cpu = CpuWindow(app.server.process.pid)
            await every(
                1 / args.probe_rate,
                args.duration,
                lambda n: probe.send(room, f"probe {time.time()} {n}"),
            )
            stop.set()
            await asyncio.gather(*tasks)
            await wait_for_acks([probe], 30)
            await asyncio.sleep(0.5)
            return {
                "ack_ms": stats(probe.ack_ms),
                "delivery_ms": stats(delivered),
                "ping_ms": stats(pings),
                "replays": len(replays),
                "replay_ms": stats(replays),
                **cpu.close(0.0),
            }

        alone = await probe_phase(False)
        beside = await probe_phase(True)
        return {
            "workload": "replay",
            "server": name,
            "replay_size": behind,
            "alone": alone,
            "with_replays": beside,
            "p99_rise_ms": {
                key: round((beside[key]["p99"] or 0) - (alone[key]["p99"] or 0), 2)
                for key in ("ack_ms", "delivery_ms", "ping_ms")
            },
            "errors": [e for c in clients for e in c.errors][:5],
        }
    finally:
        for client in clients:
            await client.close()
        app.stop()


def fill_history(database_url: str, channel: int, author: int, count: int) -> tuple[int, int]:
    """`count` plain messages in `channel`, inserted in SQL after its existing ones."""
    with psycopg.connect(database_url, autocommit=True) as db:
        (last_seq,) = db.execute(
            "SELECT last_seq FROM chat_channel WHERE id = %s", [channel]
        ).fetchone()  # type: ignore[misc]
        db.execute(
            """
            INSERT INTO chat_message (channel_id, author_id, client_id, seq, body, body_html,
                created_at, external_id, version, payload_version, payload_json, removed,
                removal_reason)
            SELECT %(channel)s, %(author)s, gen_random_uuid(), %(base)s + g,
                'history ' || g || ': the light over the harbour at dusk',
                '<p>history ' || g || ': the light over the harbour at dusk</p>',
                now() - (%(count)s - g) * interval '1 second', '', 0, -1, '', false, ''
            FROM generate_series(1, %(count)s) AS g
            """,
            {"channel": channel, "author": author, "base": last_seq, "count": count},
        )
        first, last = db.execute(
            "SELECT min(id), max(id) FROM chat_message WHERE channel_id = %s", [channel]
        ).fetchone()  # type: ignore[misc]
        db.execute(
            "UPDATE chat_channel SET last_seq = %s, last_message_id = %s WHERE id = %s",
            [last_seq + count, last, channel],
        )
        # As a channel that grew over months looks: vacuumed (visibility map and hint bits set)
        # and analysed, not a million rows autovacuum is about to start on mid-measurement.
        db.execute("VACUUM (ANALYZE) chat_message")
    return first, last


def get_page(http: HTTPConnection, path: str, session: str) -> float:
    started = time.perf_counter()
    http.request("GET", path, headers={"Cookie": f"sessionid={session}"})
    response = http.getresponse()
    body = response.read()
    if response.status != 200 or len(json.loads(body)["messages"]) != 50:
        raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
    return 1000 * (time.perf_counter() - started)


async def history(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if name != "app-pg":
        raise RuntimeError("history is measured on PostgreSQL (app-pg) only")
    app = await start_app(name, workdir, users=2, messages=1)
    try:
        channel, session = app.data["channel"], app.data["sessions"][1]
        with psycopg.connect(app.env["DATABASE_URL"]) as db:
            (author,) = db.execute(  # type: ignore[misc]
                "SELECT author_id FROM chat_message WHERE channel_id = %s", [channel]
            ).fetchone()
        started = time.monotonic()
        first, last = await asyncio.to_thread(
            fill_history, app.env["DATABASE_URL"], channel, author, args.history_messages
        )
        print(f"[{name}] {args.history_messages} messages in {time.monotonic() - started:.0f}s")
        rng = random.Random(7)
        befores = [rng.randint(first + 60, last) for _ in range(args.pages)]
        http = HTTPConnection(HOST, app.server.port, timeout=30)
        url = f"/api/channels/{channel}/messages/?before="
        for before in befores[:5]:  # warm-up: connections, caches (then read again below)
            await asyncio.to_thread(get_page, http, url + str(before), session)
        cpu = CpuWindow(app.server.process.pid)
        first_read = [
            await asyncio.to_thread(get_page, http, url + str(b), session) for b in befores
        ]
        again = [await asyncio.to_thread(get_page, http, url + str(b), session) for b in befores]
        window = cpu.close(0.0)
        newest = [
            await asyncio.to_thread(get_page, http, f"/api/channels/{channel}/messages/", session)
            for _ in range(args.pages)
        ]
        http.close()
        return {
            "workload": "history",
            "server": name,
            "messages": args.history_messages + 1,
            "pages": args.pages,
            "first_read_ms": stats(first_read),
            "stored_ms": stats(again),
            "newest_ms": stats(newest),
            **window,
        }
    finally:
        app.stop()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def memory(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    count = args.sockets
    if name == "naive":  # the floor: daphne and Channels with a consumer that does nothing
        port = free_port()
        command = [PYTHON, "-m", "daphne", "-b", HOST, "-p", str(port)]
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.naive_settings"}
        server = ServerProcess.start(
            name, port, [*command, "bench.naive_app:application"], env, workdir
        )
        await server.wait_ready()
        sockets: list[ClientConnection] = []
        try:
            await asyncio.sleep(1)
            before = rss_kb(server.process.pid)
            gate = asyncio.Semaphore(50)

            async def one() -> ClientConnection:
                async with gate:
                    return await connect(
                        f"ws://{HOST}:{port}/", compression=None, ping_interval=None
                    )

            sockets = list(await asyncio.gather(*(one() for _ in range(count))))
            await asyncio.sleep(3)
            after = rss_kb(server.process.pid)
        finally:
            for socket in sockets:
                with contextlib.suppress(Exception):
                    await socket.close()
            server.stop()
    else:
        app = await start_app(name, workdir, users=count + 1)
        clients: list[Client] = []
        try:
            general, sessions = app.data["channel"], app.data["sessions"][1:]
            warm = await open_many(app, sessions[:20])  # first-use costs, not per socket
            for client in warm:
                await client.subscribe(general)
            await asyncio.sleep(2)
            before = rss_kb(app.server.process.pid)
            clients = await open_many(app, sessions[20:])
            for client in clients:
                await client.subscribe(general)
            clients += warm
            await asyncio.sleep(args.settle)
            after = rss_kb(app.server.process.pid)
            count = len(clients) - len(warm)
        finally:
            for client in clients:
                await client.close()
            app.stop()
    return {
        "workload": "memory",
        "server": name,
        "sockets": count,
        "rss_before_mb": round(before / 1024, 1),
        "rss_after_mb": round(after / 1024, 1),
        "kb_per_socket": round((after - before) / count, 1),
    }


RUNNERS = {"senders": senders, "replay": replay, "history": history, "memory": memory}


# --- Report ---------------------------------------------------------------------------------


def line(row: dict[str, Any]) -> str:
    kind, server = row["workload"], row["server"]
    if kind == "senders":
        ack = row["ack_ms"]
        return (
            f"senders  {server:7} {row['senders']} sockets, offered {row['offered_per_s']:.0f}/s: "
            f"acked {row['acked_per_s']}/s, ack p50 {ack['p50']} p99 {ack['p99']} "
            f"max {ack['max']} ms, unacked {row['unacked']}, srv cpu {row['server_cpu_pct']}%, "
            f"other cpu {row['other_cpu_pct']}%"
        )
    if kind == "replay":
        a, b, rise = row["alone"], row["with_replays"], row["p99_rise_ms"]
        return (
            f"replay   {server:7} p99 alone / with {b['replays']} replays of "
            f"{row['replay_size']} (each p50 {b['replay_ms']['p50']} ms): "
            f"ack {a['ack_ms']['p99']} / {b['ack_ms']['p99']}, "
            f"delivery {a['delivery_ms']['p99']} / {b['delivery_ms']['p99']}, "
            f"ping {a['ping_ms']['p99']} / {b['ping_ms']['p99']} ms; rise {rise}; "
            f"other cpu {a['other_cpu_pct']}% / {b['other_cpu_pct']}%"
        )
    if kind == "history":
        f, s, n = row["first_read_ms"], row["stored_ms"], row["newest_ms"]
        return (
            f"history  {server:7} {row['messages']:,} messages, {row['pages']} pages of 50: "
            f"first read p50 {f['p50']} p99 {f['p99']} ms; stored p50 {s['p50']} "
            f"p99 {s['p99']} ms; newest page p50 {n['p50']} p99 {n['p99']} ms; "
            f"other cpu {row['other_cpu_pct']}%"
        )
    return (
        f"memory   {server:7} {row['sockets']} idle sockets: {row['rss_before_mb']} -> "
        f"{row['rss_after_mb']} MB, {row['kb_per_socket']} KB per socket"
    )


async def run(args: argparse.Namespace) -> int:
    started_at = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    with scratch_dir(args.keep) as workdir:
        for workload in args.only:
            servers = list(args.servers)
            if workload == "memory":
                servers = ["naive", *servers]
            if workload == "history":
                servers = [s for s in servers if s == "app-pg"]
            for server in servers:
                if args.wait_quiet:
                    await wait_until_quiet(args.wait_quiet)
                print(f"[{server}] {workload}", file=sys.stderr)
                try:
                    rows.append(await RUNNERS[workload](server, args, workdir))
                    print(line(rows[-1]), file=sys.stderr)
                except Exception as error:
                    failures[f"{workload}/{server}"] = f"{type(error).__name__}: {error}"
                    print(f"[{server}] {workload} FAILED: {error}", file=sys.stderr)
    report = {
        "started_at": started_at.isoformat(),
        "command": " ".join([Path(PYTHON).name, *sys.argv]),
        "revision": revision(),
        "machine": machine(),
        "settings": vars(args),
        "results": rows,
        "failures": failures,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"workloads-{started_at:%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nworkloads at {report['revision']}, {os.cpu_count()} CPUs")
    for row in rows:
        print(line(row))
    for name, failure in failures.items():
        print(f"{name}: FAILED {failure}")
    print(f"\nwritten {out.relative_to(ROOT)}")
    return 1 if failures else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(WORKLOADS), help="workloads, comma-separated")
    parser.add_argument("--servers", default=",".join(PATHS), help="app, app-pg")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--sender-rate", type=float, default=10.0, help="messages/s per sender")
    parser.add_argument("--replay-size", type=int, default=1000)
    parser.add_argument("--replay-rate", type=float, default=2.0, help="replays/s; 0: back to back")
    parser.add_argument("--probe-rate", type=float, default=10.0)
    parser.add_argument("--history-messages", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--wait-quiet", type=float, default=0.0)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--rate-limits", action="store_true", help="count rate limits (set too high to refuse)"
    )
    args = parser.parse_args(argv)
    args.only = [w for w in args.only.split(",") if w]
    args.servers = [s for s in args.servers.split(",") if s]
    unknown = set(args.only) - set(WORKLOADS) | set(args.servers) - set(PATHS)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    return args


def main() -> int:
    global COUNT_RATE_LIMITS
    os.chdir(ROOT)
    args = parse_args()
    COUNT_RATE_LIMITS = args.rate_limits
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
