"""What leaves one socket: a bounded outbox with back-pressure.

A frame goes straight to the connection when nothing waits ahead of it and the client keeps up;
otherwise it queues. A client that falls too far behind (too many frames queued, or a transport
backlog that does not drain in time) is closed with `CLOSE_TOO_SLOW`: it reconnects and catches
up with `since`, so nothing is lost, and one slow reader never holds the others back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from django.conf import settings

from chat.transport import Connection, Frame
from hobbies import metrics

logger = logging.getLogger("chat.consumers")

CLOSE_TOO_SLOW = 4008
DRAIN_POLL_SECONDS = 0.02


class Outbox:
    def __init__(
        self,
        connection: Connection,
        send_text: Callable[[str], Coroutine[Any, Any, None]],
        close: Callable[[int], Coroutine[Any, Any, None]],
        label: str,
    ) -> None:
        self.connection = connection
        self._send_text = send_text
        self._close = close
        self._label = label
        # Made only when a frame has to wait: an idle socket keeps neither a queue nor a task.
        self._queue: deque[Frame] | None = None
        self.closed = False
        self._writer: asyncio.Task[None] | None = None

    def put(self, frame: Frame) -> None:
        if self.closed:
            return
        if (
            not self._queue
            and self.connection.backlog() <= settings.CHAT_SOCKET_MAX_BUFFER_BYTES
            and self.connection.write(frame)
        ):
            return
        if self._queue is None:
            self._queue = deque()
        elif len(self._queue) >= settings.CHAT_SOCKET_MAX_PENDING:
            self.close_too_slow(f"{len(self._queue)} frames pending")
            return
        self._queue.append(frame)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def put_many(self, frames: list[Frame]) -> None:
        """Frames in order (a replay): written in one go when nothing waits ahead of them."""
        if (
            frames
            and not self.closed
            and not self._queue
            and self.connection.backlog() <= settings.CHAT_SOCKET_MAX_BUFFER_BYTES
            and self.connection.write_many(frames)
        ):
            return
        for frame in frames:
            self.put(frame)

    def close_too_slow(self, why: str) -> None:
        logger.warning("closing socket of %s: too slow (%s)", self._label, why)
        metrics.SOCKETS_TOO_SLOW.inc()
        self.close_with(CLOSE_TOO_SLOW)

    def close_with(self, code: int) -> None:
        """Drop what is queued and close the socket with `code`."""
        self.stop()
        asyncio.get_running_loop().create_task(self._close(code))

    def stop(self) -> None:
        self.closed = True
        self._queue = None
        if self._writer is not None:
            self._writer.cancel()

    async def _write_loop(self) -> None:
        """Writes what waits, in order, and ends when nothing does."""
        limit = settings.CHAT_SOCKET_MAX_BUFFER_BYTES
        while self._queue and not self.closed:
            if self.connection.backlog() > limit and not await self._drained(limit):
                self.close_too_slow(f"{self.connection.backlog()} bytes unread")
                return
            frame = self._queue.popleft()
            if not self.connection.write(frame):
                await self._send_text(frame.text)
        self._queue = None

    async def _drained(self, limit: int) -> bool:
        """Wait for the transport to hand the client what it holds; False if it never does."""
        deadline = time.monotonic() + settings.CHAT_SOCKET_DRAIN_SECONDS
        while self.connection.backlog() > limit // 2:
            if time.monotonic() > deadline or self.closed:
                return False
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        return True
