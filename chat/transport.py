"""How many bytes a socket's server still holds for the client: the socket's backlog.

ASGI has no back-pressure for WebSocket sends: daphne accepts every frame at once and buffers
what the client has not read yet, without bound. So the consumer asks the transport how much is
waiting, and closes a socket that falls too far behind (the client reconnects and catches up).
Under servers we do not know how to ask, the backlog reads as 0 and the outbox bound still holds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

Backlog = Callable[[], int]
SCOPE_KEY = "transport_backlog"


def no_backlog() -> int:
    return 0


def backlog_probe(send: Any) -> Backlog:
    # daphne hands the application `partial(server.handle_reply, protocol)`; the protocol's
    # transport is a Twisted FileDescriptor that keeps unsent bytes in its write buffers.
    if not isinstance(send, functools.partial) or not send.args:
        return no_backlog
    transport = getattr(send.args[0], "transport", None)
    if transport is None or not hasattr(transport, "dataBuffer"):
        return no_backlog

    def backlog() -> int:
        return (
            len(transport.dataBuffer)
            - getattr(transport, "offset", 0)
            + getattr(transport, "_tempDataLen", 0)
        )

    return backlog


class TransportBacklogMiddleware:
    """Puts a backlog probe for the connection's transport into the WebSocket scope."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            scope = {**scope, SCOPE_KEY: backlog_probe(send)}
        return await self.app(scope, receive, send)
