"""Fan-out benchmark: one publisher, N WebSocket subscribers in one channel, three servers.

    .venv/bin/python bench/fanout.py [--subscribers 200 --rate 50 --duration 10]

Measures, one after another, each started here as a subprocess on a free 127.0.0.1 port and
stopped again before the next one starts:

- bare:  `bench/bare_server.py`, a `websockets` server relaying with `websockets.broadcast`;
- naive: `bench/naive_app.py` under daphne, one `group_send` per message to a group of consumers
         that each `json.dumps` and `send` (in-memory channel layer);
- app:   this app, `daphne hobbies.asgi:application`, embedded defaults (SQLite file in a temp
         folder, in-process channel layer, messages persisted), rate limits off.

The subscribers run in their own process (`bench/subscribers.py`), the publisher in this one. Each
message body carries a sequence number and its `time.time()` at send; subscribers take
`time.time()` at receipt. Reported per server: deliveries/s achieved (unique deliveries divided by
the time from the first send to the last receipt), p50/p99/max send-to-receipt latency, and lost
deliveries (expected minus received after the drain). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from subscribers import BODY_PREFIX, WARMUP_PREFIX, Target, format_body
from websockets.asyncio.client import ClientConnection

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
HOST = "127.0.0.1"  # never anything else: this benchmark only talks to its own servers
SERVERS = ("bare", "naive", "app", "app-pg", "app-pg-2")
PRODUCTION = ("app-pg", "app-pg-2")
APP_COMMAND = "{python} -m daphne -b {host} -p {port} hobbies.asgi:application"
WARMUP_MESSAGES = 5
RESULT_LINE_LIMIT = 1 << 26  # a subscriber's result line lists every message it saw
QUIET_CORES = 0.15  # machine-wide CPU use, in cores, that counts as idle before a measurement
NOISY_PCT = 20.0  # other processes' CPU use during a measurement worth a warning
StreamT = TypeVar("StreamT")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --- Processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def die_with_parent() -> None:
    """In the child, before exec: on Linux ask for SIGTERM when we die, so nothing outlives us."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def machine_busy_seconds() -> float | None:
    """CPU time all processes on this machine have used so far, summed over cores (Linux)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


@dataclass
class CpuWindow:
    """CPU used during a measurement: by the server, and by processes not ours (noise)."""

    server_pid: int
    server: float | None = None
    machine: float | None = None
    publisher: float = field(default_factory=time.process_time)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.server, self.machine = cpu_seconds(self.server_pid), machine_busy_seconds()

    def close(self, client_cpu: float) -> dict[str, float | None]:
        wall = time.monotonic() - self.started
        server_now, machine_now = cpu_seconds(self.server_pid), machine_busy_seconds()
        publisher = time.process_time() - self.publisher
        server = None if server_now is None or self.server is None else server_now - self.server
        other = None
        if server is not None and machine_now is not None and self.machine is not None:
            other = max(0.0, machine_now - self.machine - server - client_cpu - publisher)

        def pct(seconds: float | None) -> float | None:
            return None if seconds is None else round(100 * seconds / wall, 1)

        return {
            "wall_s": round(wall, 2),
            "server_cpu_pct": pct(server),
            "client_cpu_pct": pct(client_cpu),
            "publisher_cpu_pct": pct(publisher),
            "other_cpu_pct": pct(other),
        }


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), or None where unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class ServerProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls, name: str, port: int, command: list[str], env: dict[str, str], workdir: Path
    ) -> ServerProcess:
        log_path = workdir / f"{name}-server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our own Ctrl-C handling stops it, in order
                preexec_fn=die_with_parent,
            )
        return cls(name, port, process, log_path)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} server exited early:\n{self.log_tail()}")
            try:
                _, writer = await asyncio.open_connection(HOST, self.port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        raise RuntimeError(f"{self.name} server not listening after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# --- What to run for each server ------------------------------------------------------------


@dataclass
class Setup:
    command: list[str]
    env: dict[str, str]
    subscribers: Target
    publisher: Target
    publisher_cookies: list[str] = field(default_factory=lambda: [""])


def setup_bare(port: int, subscribers: int) -> Setup:
    command = [PYTHON, str(BENCH_DIR / "bare_server.py"), "--port", str(port)]
    base = f"ws://{HOST}:{port}"
    return Setup(
        command=command,
        env=dict(os.environ),
        subscribers=Target(url=f"{base}/", cookies=[""] * subscribers),
        publisher=Target(url=f"{base}/publish"),
    )


def setup_naive(port: int, subscribers: int) -> Setup:
    command = [PYTHON, "-m", "daphne", "-b", HOST, "-p", str(port), "bench.naive_app:application"]
    base = f"ws://{HOST}:{port}"
    return Setup(
        command=command,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "bench.naive_settings"},
        subscribers=Target(url=f"{base}/", cookies=[""] * subscribers),
        publisher=Target(url=f"{base}/publish"),
    )


def run_step(command: list[str], env: dict[str, str]) -> str:
    """Run a setup command to completion; its stdout, or an error carrying its output's tail."""
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command[1:])} failed ({done.returncode}):\n{tail}")
    return done.stdout


PG_DATABASE = f"bench_fanout_{os.getpid()}"


def postgres_database(name: str, *, create: bool) -> str:
    """Drop database `name` on the PostgreSQL of `BENCH_POSTGRES_URL`, and create it again
    with `create`; its URL."""
    admin = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            connection.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + f"/{name}"


def setup_app(
    port: int,
    subscribers: int,
    workdir: Path,
    app_command: str,
    production: bool = False,
    publishers: int = 1,
) -> Setup:
    """Migrate a fresh database, create the users, community and sessions (the publishers'
    first, then the subscribers').

    The embedded default (a SQLite file, the in-process channel layer), or with `production`
    the production path: a fresh PostgreSQL database and Redis (`BENCH_REDIS_URL`) under a key
    prefix of this run's own.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hobbies.settings",
        "DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3",
        "HOBBIES_VAR_DIR": str(workdir),
        "RATE_LIMITS_ENABLED": "0",
        # The embedded default, whatever the calling shell has set.
        "REDIS_URL": "",
        "DJANGO_DEBUG": "0",
    }
    if production:
        env["DATABASE_URL"] = postgres_database(PG_DATABASE, create=True)
        env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        env["CHANNEL_LAYER_PREFIX"] = f"bench-{os.getpid()}-{port}"
    run_step([PYTHON, "manage.py", "migrate", "--noinput"], env)
    made = run_step(
        [PYTHON, str(BENCH_DIR / "setup_app.py"), "--users", str(subscribers + publishers)], env
    )
    data = json.loads(made.strip().splitlines()[-1])
    cookies = [f"sessionid={key}" for key in data["sessions"]]
    base = f"ws://{HOST}:{port}"
    origin = f"http://{HOST}:{port}"
    command = shlex.split(app_command.format(python=PYTHON, host=HOST, port=port))
    return Setup(
        command=command,
        env=env,
        subscribers=Target(
            url=f"{base}/ws/", origin=origin, cookies=cookies[publishers:], channel=data["channel"]
        ),
        publisher=Target(url=f"{base}/ws/", origin=origin, channel=data["channel"]),
        publisher_cookies=cookies[:publishers],
    )


# --- Publisher ------------------------------------------------------------------------------


@dataclass
class Published:
    sent: int = 0
    first_send: float = 0.0
    last_send: float = 0.0
    acks: int = 0
    ack_latencies: dict[int, float] = field(default_factory=dict)  # by sequence number
    errors: list[str] = field(default_factory=list)


class Publisher:
    """Sends `message.send` frames at a fixed rate and reads the acks (the app sends them)."""

    def __init__(self, connection: ClientConnection, channel: int | None) -> None:
        self.connection = connection
        # Only the app answers with acks; bare and naive just fan out.
        self.expects_acks = channel is not None
        self.channel = channel if channel is not None else 0
        self.published = Published()
        self.pending: dict[str, tuple[int, float]] = {}  # client_id -> (seq, sent_at)
        self.reader = asyncio.create_task(self.read_replies())

    @classmethod
    async def connect(cls, target: Target, cookie: str) -> Publisher:
        return cls(await target.open(cookie, subscribe=False), target.channel)

    async def read_replies(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.connection:
                received_at = time.time()
                frame = json.loads(text)
                kind = frame.get("type")
                if kind == "message.ack":
                    sent = self.pending.pop(frame.get("client_id"), None)
                    if sent is not None:
                        self.published.acks += 1
                        self.published.ack_latencies[sent[0]] = received_at - sent[1]
                elif kind == "error" and len(self.published.errors) < 20:
                    self.published.errors.append(text if isinstance(text, str) else repr(text))

    async def send(self, prefix: str, seq: int) -> float:
        client_id = str(uuid.uuid4())
        sent_at = time.time()
        frame = {
            "type": "message.send",
            "channel": self.channel,
            "client_id": client_id,
            "body": format_body(prefix, seq, sent_at),
            "reply_to": None,
        }
        if prefix == BODY_PREFIX and self.expects_acks:
            self.pending[client_id] = (seq, sent_at)
        await self.connection.send(json.dumps(frame))
        return sent_at

    async def warm_up(self) -> None:
        """A few unmeasured messages, so first-use costs (imports, caches) are not measured."""
        for seq in range(WARMUP_MESSAGES):
            await self.send(WARMUP_PREFIX, seq)
        await asyncio.sleep(1.0)

    async def run(
        self, rate: float, duration: float, start: float, first: int = 0, step: int = 1
    ) -> Published:
        """Send messages `first`, `first + step`, … of the `rate * duration` on a fixed schedule
        from `start` (late sends go out at once)."""
        total = round(rate * duration)
        for seq in range(first, total, step):
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at = await self.send(BODY_PREFIX, seq)
            if not self.published.sent:
                self.published.first_send = sent_at
            self.published.last_send = sent_at
            self.published.sent += 1
        return self.published

    async def wait_for_acks(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline and not self.reader.done():
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


async def publish_all(publishers: list[Publisher], rate: float, duration: float) -> Published:
    """The publishers share one schedule, each sending every K-th message (K publishers), as
    K people talking in one channel would; their figures merged."""
    start = time.monotonic()
    k = len(publishers)
    parts = await asyncio.gather(
        *(p.run(rate, duration, start, first=i, step=k) for i, p in enumerate(publishers))
    )
    merged = Published(
        sent=sum(p.sent for p in parts),
        first_send=min(p.first_send for p in parts if p.sent),
        last_send=max(p.last_send for p in parts),
        acks=sum(p.acks for p in parts),
    )
    for part in parts:
        merged.ack_latencies.update(part.ack_latencies)
        merged.errors.extend(part.errors[: 20 - len(merged.errors)])
    return merged


# --- Subscriber processes -------------------------------------------------------------------


def pipe(stream: StreamT | None) -> StreamT:
    if stream is None:
        raise RuntimeError("subscriber process started without its pipes")
    return stream


class SubscriberPool:
    """One or more `subscribers.py` processes, each holding a slice of the connections."""

    def __init__(self, processes: list[asyncio.subprocess.Process], workdir: Path) -> None:
        self.processes = processes
        self.workdir = workdir

    @classmethod
    async def start(
        cls, name: str, target: Target, procs: int, workdir: Path, args: argparse.Namespace
    ) -> SubscriberPool:
        processes = []
        for index in range(procs):
            cookies = target.cookies[index::procs]
            config = {
                "target": {**asdict(target), "cookies": cookies},
                "latencies_path": str(workdir / f"{name}-latencies-{index}.bin"),
                "connect_concurrency": args.connect_concurrency,
                "drain_quiet": args.drain_quiet,
                "drain_max": args.drain_max,
            }
            config_path = workdir / f"{name}-subscribers-{index}.json"
            config_path.write_text(json.dumps(config))
            stderr = (workdir / f"{name}-subscribers-{index}.log").open("wb")
            processes.append(
                await asyncio.create_subprocess_exec(
                    PYTHON,
                    str(BENCH_DIR / "subscribers.py"),
                    str(config_path),
                    cwd=ROOT,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=stderr,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                    limit=RESULT_LINE_LIMIT,
                )
            )
            stderr.close()
        return cls(processes, workdir)

    async def read_all(self, event: str, timeout: float) -> list[dict[str, Any]]:
        async def read_one(process: asyncio.subprocess.Process) -> dict[str, Any]:
            line = await pipe(process.stdout).readline()
            if not line:
                raise RuntimeError(f"subscriber process exited (see {self.workdir}/*.log)")
            message: dict[str, Any] = json.loads(line)
            if message.get("event") != event:
                raise RuntimeError(f"expected {event!r} from subscribers, got {message}")
            return message

        async with asyncio.timeout(timeout):
            return await asyncio.gather(*(read_one(p) for p in self.processes))

    async def tell(self, command: dict[str, Any]) -> None:
        for process in self.processes:
            stdin = pipe(process.stdin)
            stdin.write((json.dumps(command) + "\n").encode())
            await stdin.drain()

    def latencies(self, name: str) -> array[float]:
        merged = array("d")
        for path in sorted(self.workdir.glob(f"{name}-latencies-*.bin")):
            merged.frombytes(path.read_bytes())
        return merged

    async def stop(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in self.processes:
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


# --- One measurement ------------------------------------------------------------------------


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def merge_spans(results: list[dict[str, Any]]) -> dict[int, tuple[float, float]]:
    """Per message, the lowest first and highest last latency over all subscriber processes."""
    merged: dict[int, tuple[float, float]] = {}
    for result in results:
        for key, (first, last) in result["spans"].items():
            seq = int(key)
            if seq in merged:
                first, last = min(first, merged[seq][0]), max(last, merged[seq][1])
            merged[seq] = (first, last)
    return merged


def summarise(
    name: str,
    args: argparse.Namespace,
    published: Published,
    results: list[dict[str, Any]],
    latencies: array[float],
    cpu: CpuWindow,
) -> dict[str, Any]:
    connected = sum(r["connected"] for r in results)
    received = sum(r["received"] for r in results)
    expected = published.sent * connected
    last_receipt = max((r["last_receipt"] for r in results), default=0.0)
    # Sending K messages at `rate` occupies K / rate seconds; the last one then takes its latency.
    span = last_receipt - published.first_send + 1 / args.rate if received else 0.0
    ordered = sorted(latencies)
    acks = sorted(published.ack_latencies.values())
    spans = merge_spans(results)
    firsts = sorted(first for first, _ in spans.values())
    spreads = sorted(last - first for first, last in spans.values())
    publish_span = published.last_send - published.first_send
    cpu_use = cpu.close(client_cpu=sum(r["cpu_seconds"] for r in results))

    def ms(seconds: float) -> float:
        return round(seconds * 1000, 2)

    return {
        "server": name,
        "subscribers": args.subscribers,
        "connected": connected,
        "rate": args.rate,
        "publishers": args.publishers,
        "duration": args.duration,
        "sent": published.sent,
        "published_per_s": round((published.sent - 1) / publish_span, 1) if publish_span else 0,
        "expected": expected,
        "received": received,
        "lost": expected - received,
        "duplicates": sum(r["duplicates"] for r in results),
        "closed_early": sum(r["closed_early"] for r in results),
        "offered_per_s": round(args.rate * connected, 1),
        "deliveries_per_s": round(received / span, 1) if span > 0 else 0.0,
        "latency_ms": {
            "p50": ms(percentile(ordered, 0.50)),
            "p90": ms(percentile(ordered, 0.90)),
            "p99": ms(percentile(ordered, 0.99)),
            "max": ms(ordered[-1]) if ordered else None,
        },
        "ack_ms": (
            {"p50": ms(percentile(acks, 0.50)), "p99": ms(percentile(acks, 0.99))} if acks else None
        ),
        # Time to the first subscriber, and from the first to the last one, per message.
        "first_ms": {"p50": ms(percentile(firsts, 0.50)), "p99": ms(percentile(firsts, 0.99))},
        "spread_ms": {"p50": ms(percentile(spreads, 0.50)), "p99": ms(percentile(spreads, 0.99))},
        "acks": published.acks,
        "publisher_errors": published.errors,
        **cpu_use,
        # Per message: [seq, ack ms, first receipt ms, last receipt ms] (null where none).
        "messages": [
            [
                seq,
                ms(published.ack_latencies[seq]) if seq in published.ack_latencies else None,
                ms(spans[seq][0]) if seq in spans else None,
                ms(spans[seq][1]) if seq in spans else None,
            ]
            for seq in range(published.sent)
        ],
    }


async def wait_until_quiet(limit: float) -> None:
    """Wait (at most `limit` seconds) for a second in which the machine is nearly idle."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = machine_busy_seconds()
        await asyncio.sleep(1.0)
        after = machine_busy_seconds()
        if before is None or after is None or after - before < QUIET_CORES:
            return
    print(f"machine still busy after {limit:.0f}s; measuring anyway", file=sys.stderr)


async def measure(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if args.wait_quiet:
        await wait_until_quiet(args.wait_quiet)
    port = free_port()
    if name == "bare":
        setup = setup_bare(port, args.subscribers)
    elif name == "naive":
        setup = setup_naive(port, args.subscribers)
    else:
        setup = setup_app(
            port,
            args.subscribers,
            workdir,
            args.app_command,
            production=name in PRODUCTION,
            publishers=args.publishers,
        )

    server = ServerProcess.start(name, port, setup.command, setup.env, workdir)
    print(f"[{name}] server pid {server.process.pid} on {HOST}:{port}", file=sys.stderr)
    # app-pg-2: the publisher on a second process of the same app (same database, Redis and
    # prefix), so every message crosses from one process to the other through Redis.
    second: ServerProcess | None = None
    if name == "app-pg-2":
        port_b = free_port()
        command = shlex.split(args.app_command.format(python=PYTHON, host=HOST, port=port_b))
        second = ServerProcess.start(f"{name}-b", port_b, command, setup.env, workdir)
        print(f"[{name}] publisher's server pid {second.process.pid} on {port_b}", file=sys.stderr)
        setup.publisher = replace(
            setup.publisher, url=f"ws://{HOST}:{port_b}/ws/", origin=f"http://{HOST}:{port_b}"
        )
    pool: SubscriberPool | None = None
    publishers: list[Publisher] = []
    try:
        await server.wait_ready()
        if second is not None:
            await second.wait_ready()
        pool = await SubscriberPool.start(name, setup.subscribers, args.client_procs, workdir, args)
        ready = await pool.read_all("ready", timeout=120)
        connected = sum(r["connected"] for r in ready)
        errors = [e for r in ready for e in r["errors"]]
        print(f"[{name}] {connected}/{args.subscribers} subscribers connected", file=sys.stderr)
        if errors:
            print(f"[{name}] connect errors, e.g. {errors[:3]}", file=sys.stderr)
        if connected == 0:
            raise RuntimeError(f"{name}: no subscriber could connect:\n{server.log_tail()}")

        # The bare and naive servers relay anything sent to /publish: one connection each.
        cookies = setup.publisher_cookies * (args.publishers // len(setup.publisher_cookies))
        for cookie in cookies:
            publishers.append(await Publisher.connect(setup.publisher, cookie))
        for publisher in publishers:
            await publisher.warm_up()
        await asyncio.sleep(args.settle)

        cpu = CpuWindow(server.process.pid)
        await pool.tell({"cmd": "go"})
        print(f"[{name}] publishing {args.rate}/s for {args.duration}s", file=sys.stderr)
        published = await publish_all(publishers, args.rate, args.duration)
        await pool.tell({"cmd": "sent", "count": published.sent})
        results, *_ = await asyncio.gather(
            pool.read_all("result", timeout=args.drain_max + 60),
            *(publisher.wait_for_acks(args.drain_max) for publisher in publishers),
        )
        return summarise(name, args, published, results, pool.latencies(name), cpu)
    finally:
        for publisher in publishers:
            await publisher.close()
        if pool is not None:
            await pool.stop()
        server.stop()
        if second is not None:
            second.stop()
        if name in PRODUCTION:
            postgres_database(PG_DATABASE, create=False)


# --- Report ---------------------------------------------------------------------------------

COLUMNS = (
    ("server", "server", 7),
    ("subs", "connected", 5),
    ("rate", "rate", 6),
    ("sent", "sent", 6),
    ("pub/s", "published_per_s", 7),
    ("offered/s", "offered_per_s", 10),
    ("deliv/s", "deliveries_per_s", 9),
    ("x bare", "vs_bare", 7),
    ("p50 ms", "p50", 8),
    ("p99 ms", "p99", 8),
    ("max ms", "max", 8),
    ("lost", "lost", 7),
    ("srv cpu%", "server_cpu_pct", 9),
    ("cli cpu%", "client_cpu_pct", 9),
    ("other cpu%", "other_cpu_pct", 11),
)


def compare_with_bare(rows: list[dict[str, Any]]) -> None:
    """Each server's deliveries per second as a fraction of the bare server's in this run."""
    bare = next((r for r in rows if r["server"] == "bare"), None)
    for row in rows:
        base = bare["deliveries_per_s"] if bare else None
        row["vs_bare"] = round(row["deliveries_per_s"] / base, 2) if base else None


def table(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], key: str) -> str:
        value = row["latency_ms"].get(key) if key in row["latency_ms"] else row.get(key)
        return "-" if value is None else str(value)

    header = " ".join(title.rjust(width) for title, _, width in COLUMNS)
    body = [" ".join(cell(row, key).rjust(width) for _, key, width in COLUMNS) for row in rows]
    return "\n".join([header, "-" * len(header), *body])


def revision() -> str:
    """The commit measured (with `+dirty` if the work tree has changes), or "" outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }


@contextlib.contextmanager
def scratch_dir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hobbies-fanout-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


async def run(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    if task is not None:  # SIGTERM stops us like Ctrl-C: every `finally` below still runs
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)

    started_at = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    with scratch_dir(args.keep) as workdir:
        for name in args.servers:
            try:
                rows.append(await measure(name, args, workdir))
            except Exception as error:  # report it, and go on to the next server
                failures[name] = f"{type(error).__name__}: {error}"
                print(f"[{name}] FAILED: {failures[name]}", file=sys.stderr)

    compare_with_bare(rows)
    report = {
        "started_at": started_at.isoformat(),
        "command": " ".join([Path(PYTHON).name, *sys.argv]),
        "revision": revision(),
        "machine": machine(),
        "settings": {
            key: getattr(args, key)
            for key in (
                "subscribers",
                "rate",
                "duration",
                "client_procs",
                "drain_quiet",
                "drain_max",
            )
        },
        "results": rows,
        "failures": failures,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"fanout-{started_at:%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    print()
    print(
        f"fan-out: {args.subscribers} subscribers, {args.rate} msg/s from {args.publishers} "
        f"publisher(s) for {args.duration}s, "
        f"{os.cpu_count()} CPUs"
    )
    print(table(rows))
    for row in rows:
        if (row["other_cpu_pct"] or 0) > NOISY_PCT:
            print(
                f"warning: other processes used {row['other_cpu_pct']}% CPU during "
                f"{row['server']}: its figures are not clean"
            )
    for name, failure in failures.items():
        print(f"{name}: FAILED {failure}")
    print(f"\nwritten {out.relative_to(ROOT)}")
    return 1 if failures else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second")
    parser.add_argument(
        "--publishers",
        type=int,
        default=1,
        help="senders sharing the rate (each its own user and socket; the first is the owner)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per server")
    parser.add_argument(
        "--servers", type=lambda s: s.split(","), default=list(SERVERS), help="comma-separated"
    )
    parser.add_argument(
        "--app-command",
        default=APP_COMMAND,
        help="how to serve the app ({python}, {host} and {port} are filled in), e.g. to compare "
        "ASGI servers; always one process on {host}",
    )
    parser.add_argument("--client-procs", type=int, default=1, help="subscriber processes")
    parser.add_argument("--connect-concurrency", type=int, default=20)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds idle before sending")
    parser.add_argument("--drain-quiet", type=float, default=2.0, help="stop after this idle")
    parser.add_argument("--drain-max", type=float, default=15.0, help="longest drain")
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, help="wait up to this long for an idle machine"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder and logs")
    args = parser.parse_args(argv)
    unknown = set(args.servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; choose from {SERVERS}")
    if args.publishers < 1:
        parser.error("need at least one publisher")
    if args.rate <= 0 or args.duration <= 0 or args.duration > 120:
        parser.error("need rate > 0 and 0 < duration <= 120")
    return args


def main() -> int:
    try:
        return asyncio.run(run(parse_args()))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
