"""A bare `websockets` broadcast server: the floor the other servers are measured against.

Subscribers connect to `/`; every frame the publisher sends on `/publish` is relayed unchanged to
every subscriber with `websockets.broadcast` (no parsing, one buffered write per connection).

    python bench/bare_server.py --port 8765     # always binds 127.0.0.1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from websockets.asyncio.server import ServerConnection, broadcast, serve

subscribers: set[ServerConnection] = set()


async def handler(connection: ServerConnection) -> None:
    if connection.request is not None and connection.request.path == "/publish":
        async for frame in connection:
            broadcast(subscribers, frame)
        return
    subscribers.add(connection)
    try:
        await connection.wait_closed()
    finally:
        subscribers.discard(connection)


async def serve_until_stopped(port: int, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.cancel)
    async with serve(
        handler, "127.0.0.1", port, compression=None, ping_interval=None, max_size=1 << 20
    ):
        # Bounded even if whoever started us forgets to stop us.
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(stop, max_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    asyncio.run(serve_until_stopped(args.port, args.max_seconds))


if __name__ == "__main__":
    main()
