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
from typing import Any

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
        protocol = self._protocol
        if (
            protocol is None
            or protocol.state != protocol.STATE_OPEN
            or protocol.send_state != protocol.SEND_STATE_GROUND
            or protocol._perMessageCompress is not None
        ):
            return False
        self._transport.write(frame.wire)  # type: ignore[union-attr]
        return True


def connection_for(send: Any) -> Connection:
    # daphne hands the application `partial(server.handle_reply, protocol)`, the protocol being
    # autobahn's WebSocketServerProtocol over a Twisted transport.
    if isinstance(send, functools.partial) and send.args:
        return Connection(send.args[0])
    return Connection()


class ConnectionMiddleware:
    """Puts the connection's `Connection` into the WebSocket scope."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            scope = {**scope, SCOPE_KEY: connection_for(send)}
        return await self.app(scope, receive, send)
