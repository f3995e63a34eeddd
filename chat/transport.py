"""The socket's side of the server: frames encoded once, written straight to each connection.

ASGI makes every WebSocket send a message to the server, which frames it again for each socket
(under daphne: autobahn's `sendMessage`, over a hundred microseconds a frame). For the fan-out
path that is the whole cost, so a `Frame` keeps its WebSocket wire bytes, built once per event,
and a `Connection` writes them straight to the connection's transport when the server is one we
know (daphne with autobahn, no compression negotiated). Any other server gets the ordinary ASGI
send, and everything still works, only slower.

The connection also tells how many bytes the server still holds for the client (its backlog):
ASGI has no back-pressure for WebSocket sends, and daphne buffers without bound, so the consumer
waits for the backlog to drain and closes a socket that never does.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

SCOPE_KEY = "hobbies.connection"
TEXT_OPCODE = 0x81  # FIN + text frame


def text_frame(payload: bytes) -> bytes:
    """An unfragmented, unmasked WebSocket text frame (server to client, RFC 6455 §5.2)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", TEXT_OPCODE, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", TEXT_OPCODE, 126, length)
    else:
        header = struct.pack("!BBQ", TEXT_OPCODE, 127, length)
    return header + payload


class Frame:
    """One outgoing text frame, shared by every socket it goes to."""

    __slots__ = ("_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = text_frame(self.text.encode())
        return self._wire


class Connection:
    """What the consumer may do with its connection beyond ASGI."""

    def __init__(self, protocol: Any = None) -> None:
        transport = getattr(protocol, "transport", None)
        known = (
            hasattr(protocol, "STATE_OPEN")
            and hasattr(protocol, "send_state")
            and hasattr(transport, "dataBuffer")
        )
        self._protocol = protocol if known else None
        self._transport = transport if known else None
        # Twisted's TCP and UNIX transports can also be written to without their buffer.
        self._through = known and hasattr(transport, "writeSomeData") and hasattr(transport, "TLS")

    @property
    def direct(self) -> bool:
        """True when frames can be written straight to the transport."""
        return self._protocol is not None

    def backlog(self) -> int:
        """Bytes written for this client and not yet handed to the network."""
        transport = self._transport
        if transport is None:
            return 0
        return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)

    def write(self, frame: Frame) -> bool:
        """Write the frame's wire bytes now; False if the connection is not open for it."""
        return self.write_wire(frame.wire)

    def write_many(self, frames: list[Frame]) -> bool:
        """Write the frames, in order, in one go (a replay); False if the connection is not
        open for them."""
        return self.write_wire(b"".join(frame.wire for frame in frames))

    def write_wire(self, wire: bytes) -> bool:
        protocol = self._protocol
        if (
            protocol is None
            or protocol.state != protocol.STATE_OPEN
            or protocol.send_state != protocol.SEND_STATE_GROUND
            or protocol._perMessageCompress is not None
        ):
            return False
        transport = self._transport
        if (
            self._through
            and not transport.TLS  # type: ignore[union-attr]
            and transport.connected  # type: ignore[union-attr]
            and not transport.disconnecting  # type: ignore[union-attr]
            and self.backlog() == 0
        ):
            # Nothing waits ahead of it: hand it to the kernel now, as asyncio's transports do,
            # instead of registering the socket for writability and writing on the next turn
            # of the loop (two epoll_ctl calls and a wake-up per frame per socket). Whatever the
            # kernel does not take, and any error, is left to Twisted as before.
            sent = transport.writeSomeData(wire)  # type: ignore[union-attr]
            if isinstance(sent, int) and sent > 0:
                if sent == len(wire):
                    return True
                wire = wire[sent:]
        transport.write(wire)  # type: ignore[union-attr]
        return True


class InboundLimit:
    """Stops reading from a client while the frames it sent wait unread past `limit` bytes.

    daphne puts every incoming frame on the application's queue at once, and the queue has no
    bound, so a client that sends faster than the consumer handles frames would grow the server
    without limit. Here the connection's transport stops reading when the queued frames pass
    `limit` bytes, and reads again when the consumer has taken them down to half: the client's
    sends wait in TCP, in its own memory.
    """

    def __init__(self, protocol: Any, limit: int) -> None:
        self._protocol = protocol
        self._limit = limit
        self._queued = 0
        self._paused = False
        self._on_message = protocol.onMessage
        protocol.onMessage = self._message  # this connection's protocol only

    def _message(self, payload: bytes, is_binary: bool) -> None:
        self._queued += len(payload)
        self._on_message(payload, is_binary)
        if self._queued > self._limit:
            # Again at every frame: Twisted resumes reading when its write buffer drains.
            self._paused = True
            self._protocol.transport.pauseProducing()

    def taken(self, message: dict[str, Any]) -> None:
        """The consumer took `message` off the queue."""
        if message.get("type") != "websocket.receive":
            return
        # The frame's size as it arrived: daphne hands text frames on decoded from UTF-8.
        data = message.get("bytes")
        if data is None:
            data = (message.get("text") or "").encode()
        self._queued = max(0, self._queued - len(data))
        if self._paused and self._queued <= self._limit // 2:
            self._paused = False
            transport = self._protocol.transport
            if transport is not None:
                transport.resumeProducing()

    def receive(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> Any:
        async def bounded() -> dict[str, Any]:
            message = await receive()
            self.taken(message)
            return message

        return bounded


def connection_for(send: Any) -> Connection:
    # daphne hands the application `partial(server.handle_reply, protocol)`, the protocol being
    # autobahn's WebSocketServerProtocol over a Twisted transport.
    if isinstance(send, functools.partial) and send.args:
        return Connection(send.args[0])
    return Connection()


class ConnectionMiddleware:
    """Puts the connection's `Connection` into the WebSocket scope, and bounds what the client
    may have queued for the consumer (`InboundLimit`)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            connection = connection_for(send)
            # Added to the scope the server made for this connection, not to a copy: an idle
            # socket keeps every copy for as long as it is open.
            scope[SCOPE_KEY] = connection
            protocol = connection._protocol
            if protocol is not None and hasattr(protocol, "onMessage"):
                limit = InboundLimit(protocol, settings.CHAT_SOCKET_MAX_INBOUND_BYTES)
                receive = limit.receive(receive)
        return await self.app(scope, receive, send)
