"""The subscriber side of the fan-out benchmark: many WebSocket clients in one asyncio process.

`fanout.py` starts this as a subprocess (so that receiving does not steal the publisher's event
loop) and drives it with one JSON object per line:

    stdin  <- {"cmd": "go"}                      measurement starts (CPU time is counted from here)
    stdin  <- {"cmd": "sent", "count": K}        the publisher sent K measured messages
    stdout -> {"event": "ready", ...}            every connection is open (and subscribed)
    stdout -> {"event": "result", ...}           after the drain (per-message first/last
                                                 latency included; all latencies in a file)

Every measured message body reads `bench <seq> <send time.time()>`; the receipt time is taken
with `time.time()` as soon as the frame is read, so latency is send-to-receipt on one clock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

BODY_PREFIX = "bench"
WARMUP_PREFIX = "warmup"
MAX_FRAME_BYTES = 1 << 20


def format_body(prefix: str, seq: int, sent_at: float) -> str:
    return f"{prefix} {seq} {sent_at:.6f}"


def parse_frame(text: str | bytes) -> tuple[int, float] | None:
    """Return `(seq, sent_at)` of a measured message frame, or None for any other frame.

    Understands the app's `message.new` event and the publisher's own `message.send` frame, which
    the bare server relays unchanged.
    """
    frame = json.loads(text)
    kind = frame.get("type")
    if kind == "message.new":
        body = frame["message"]["body"]
    elif kind == "message.send":
        body = frame["body"]
    else:
        return None
    prefix, _, rest = body.partition(" ")
    if prefix != BODY_PREFIX:
        return None
    seq, _, sent_at = rest.partition(" ")
    return int(seq), float(sent_at)


@dataclass
class Target:
    """Where and how to connect; shared by the publisher and the subscribers."""

    url: str
    origin: str | None = None
    # One cookie header value per connection ("" for none); the app needs one session each.
    cookies: list[str] = field(default_factory=list)
    # The app wants `{"type": "subscribe", ...}` and answers `subscribed`; bare/naive do not.
    channel: int | None = None

    async def open(self, cookie: str, *, subscribe: bool) -> ClientConnection:
        headers = {"Cookie": cookie} if cookie else None
        connection = await connect(
            self.url,
            origin=Origin(self.origin) if self.origin else None,
            additional_headers=headers,
            compression=None,
            ping_interval=None,
            max_size=MAX_FRAME_BYTES,
            open_timeout=30,
            close_timeout=2,
        )
        if subscribe and self.channel is not None:
            await connection.send(
                json.dumps({"type": "subscribe", "channel": self.channel, "since": None})
            )
            async with asyncio.timeout(30):
                while True:
                    reply = json.loads(await connection.recv())
                    if reply.get("type") == "subscribed":
                        break
                    if reply.get("type") == "error":
                        await connection.close()
                        raise RuntimeError(f"subscribe refused: {reply}")
        return connection


@dataclass
class Tally:
    """What all connections of this process received."""

    latencies: array[float] = field(default_factory=lambda: array("d"))
    received: int = 0
    duplicates: int = 0
    first_receipt: float = 0.0
    last_receipt: float = 0.0
    last_progress: float = field(default_factory=time.monotonic)
    # Per message: latency to the first and to the last subscriber of this process.
    spans: dict[int, list[float]] = field(default_factory=dict)


async def receive(connection: ClientConnection, tally: Tally) -> None:
    seen: set[int] = set()
    try:
        async for text in connection:
            received_at = time.time()
            parsed = parse_frame(text)
            if parsed is None:
                continue
            seq, sent_at = parsed
            if seq in seen:
                tally.duplicates += 1
                continue
            seen.add(seq)
            latency = received_at - sent_at
            tally.latencies.append(latency)
            span = tally.spans.get(seq)
            if span is None:
                tally.spans[seq] = [latency, latency]
            elif latency > span[1]:
                span[1] = latency
            elif latency < span[0]:
                span[0] = latency
            tally.received += 1
            if not tally.first_receipt:
                tally.first_receipt = received_at
            tally.last_receipt = received_at
            tally.last_progress = time.monotonic()
    except ConnectionClosed:
        pass  # counted in `run` as `closed_early`


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def read_command(loop: asyncio.AbstractEventLoop, expected: str) -> dict[str, Any]:
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if not line:
        raise SystemExit("subscribers: stdin closed")
    command: dict[str, Any] = json.loads(line)
    if command.get("cmd") != expected:
        raise SystemExit(f"subscribers: expected {expected!r}, got {command}")
    return command


async def open_all(target: Target, concurrency: int) -> tuple[list[ClientConnection], list[str]]:
    gate = asyncio.Semaphore(concurrency)

    async def open_one(cookie: str) -> ClientConnection:
        async with gate:
            return await target.open(cookie, subscribe=True)

    outcomes = await asyncio.gather(
        *(open_one(cookie) for cookie in target.cookies), return_exceptions=True
    )
    connections = [c for c in outcomes if isinstance(c, ClientConnection)]
    errors = [repr(e) for e in outcomes if isinstance(e, BaseException)]
    return connections, errors


async def run(config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    target = Target(**config["target"])
    latencies_path = Path(config["latencies_path"])
    quiet = float(config["drain_quiet"])
    drain_max = float(config["drain_max"])

    connections, errors = await open_all(target, int(config["connect_concurrency"]))
    tally = Tally()
    receivers = [asyncio.create_task(receive(c, tally)) for c in connections]
    emit({"event": "ready", "connected": len(connections), "errors": errors[:5]})

    await read_command(loop, "go")
    cpu_start = time.process_time()

    command = await read_command(loop, "sent")
    expected = int(command["count"]) * len(connections)
    drain_start = time.monotonic()
    while tally.received < expected:
        now = time.monotonic()
        if now - tally.last_progress > quiet and now - drain_start > quiet:
            break
        if now - drain_start > drain_max:
            break
        await asyncio.sleep(0.05)
    cpu_seconds = time.process_time() - cpu_start

    closed_early = sum(1 for c in connections if c.close_code is not None)
    for task in receivers:
        task.cancel()
    await asyncio.gather(*receivers, return_exceptions=True)
    with contextlib.suppress(Exception):
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)

    with latencies_path.open("wb") as file:
        tally.latencies.tofile(file)
    emit(
        {
            "event": "result",
            "connected": len(connections),
            "received": tally.received,
            "duplicates": tally.duplicates,
            "closed_early": closed_early,
            "first_receipt": tally.first_receipt,
            "last_receipt": tally.last_receipt,
            "cpu_seconds": cpu_seconds,
            "spans": tally.spans,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="JSON file written by fanout.py")
    args = parser.parse_args()
    asyncio.run(run(json.loads(args.config.read_text())))


if __name__ == "__main__":
    main()
