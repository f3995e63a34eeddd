"""What the ASGI application refuses before Django or the chat consumer see a request.

- `OriginValidator`: a WebSocket handshake whose `Origin` is not one of ours (scheme, host and
  port all compared) is refused with HTTP 403, so a page on another site cannot open a socket
  with our users' cookies.
- Request bodies over `body_limit(path)` are refused with 413 before they are read: by
  `LimitedWebRequest` under daphne, which otherwise reads the whole body, then queues all of it
  for the application at once; and by `BodyLimit` in front of Django for any ASGI server.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from daphne import http_protocol
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from hobbies import metrics

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def parse_origin(value: str) -> Origin | None:
    """`scheme://host[:port]` as (scheme, lowercased host, port); None if it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (
        scheme not in DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin1")
    return None


def secure(scope: dict[str, Any]) -> bool:
    """Whether the client connected over TLS: `wss`, or the proxy says so (as for HTTP)."""
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        name, expected = proxy
        wanted = name.removeprefix("HTTP_").lower().replace("_", "-").encode()
        value = header(scope, wanted)
        return value is not None and value.split(",")[0].strip() == expected
    return False


def own_origin(scope: dict[str, Any]) -> Origin | None:
    """The site's origin as this handshake reached it: its Host (one of `ALLOWED_HOSTS`), with
    the scheme the connection implies."""
    host = header(scope, b"host")
    if not host:
        return None
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    return parse_origin(f"{'https' if secure(scope) else 'http'}://{host}")


def allowed_origins(scope: dict[str, Any]) -> set[Origin]:
    if settings.WEBSOCKET_ALLOWED_ORIGINS:
        return {o for o in map(parse_origin, settings.WEBSOCKET_ALLOWED_ORIGINS) if o}
    origins = {o for o in map(parse_origin, settings.CSRF_TRUSTED_ORIGINS) if o}
    own = own_origin(scope)
    if own is not None:
        origins.add(own)
    return origins


def origin_allowed(scope: dict[str, Any]) -> bool:
    value = header(scope, b"origin")
    origin = parse_origin(value) if value else None
    return origin is not None and origin in allowed_origins(scope)


class OriginValidator:
    """Refuses (HTTP 403) a WebSocket handshake from an origin that is not ours.

    Ours: `WEBSOCKET_ALLOWED_ORIGINS` when set; otherwise the site's own origin as the handshake
    reached it (see `own_origin`) and the `CSRF_TRUSTED_ORIGINS`.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            metrics.ORIGIN_REFUSALS.inc()
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)


# --- Request bodies -------------------------------------------------------------------------

# The local storage's upload endpoint takes a whole attachment (chat.storage, `upload`).
UPLOAD_PATH = re.compile(r"^/api/attachments/[0-9a-fA-F-]{32,36}/upload/$")
UPLOAD_FORM_BYTES = 64 * 1024  # the multipart envelope and the upload's signed fields
TOO_LARGE_BODY = b"Request body too large.\n"
TOO_LARGE_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(TOO_LARGE_BODY)).encode()),
    (b"connection", b"close"),
]


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may have."""
    if UPLOAD_PATH.match(path):
        return max(settings.REQUEST_MAX_BYTES, settings.ATTACHMENT_MAX_BYTES + UPLOAD_FORM_BYTES)
    return int(settings.REQUEST_MAX_BYTES)


class LimitedWebRequest(http_protocol.WebRequest):  # type: ignore[misc]
    """daphne's request, refusing a body over the limit as soon as its size shows.

    Twisted reads the whole body before daphne hands the request to the application, and daphne
    then queues all of it at once, so an ASGI middleware would see it only once it is all in
    memory. Here a `Content-Length` over the limit is answered with 413 before a byte of the body
    is read, and a chunked body is cut off once it passes the limit; the connection closes.
    """

    refused = False
    limit = 0
    received = 0

    def gotLength(self, length: int | None) -> None:
        path = bytes(getattr(self.channel, "_path", b"") or b"").split(b"?")[0]
        self.limit = body_limit(path.decode("latin1"))
        if length is not None and length > self.limit:
            self.refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.received += len(data)
        if self.received > self.limit:
            self.refuse()
            return
        super().handleContentChunk(data)

    def process(self) -> Any:
        if self.refused:
            return None
        return super().process()

    def refuse(self) -> None:
        self.refused = True
        self.content = BytesIO()
        # Not "100 Continue" after all: the client need not send the body.
        self.requestHeaders.removeHeader(b"expect")
        head = b"".join(k + b": " + v + b"\r\n" for k, v in TOO_LARGE_HEADERS)
        transport = self.channel.transport if self.channel is not None else None
        if transport is not None:
            transport.write(b"HTTP/1.1 413 Content Too Large\r\n" + head + b"\r\n" + TOO_LARGE_BODY)
            self.channel.loseConnection()


def install_daphne_body_limit() -> None:
    """Make daphne build `LimitedWebRequest`s (its HTTP factory looks the class up by name)."""
    http_protocol.WebRequest = LimitedWebRequest


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BodyLimit:
    """Refuses (413) an HTTP request whose body is over `body_limit`, whatever the server: by its
    `Content-Length` before reading, or, as the body arrives, once it passes the limit."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> Any:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit(scope.get("path", ""))
        declared = header(scope, b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
            return await too_large(send)
        received = 0
        over = False
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}  # Django stops reading: RequestAborted
            return message

        async def watched_send(message: dict[str, Any]) -> None:
            nonlocal started
            if over and not started:
                return  # the 413 below answers instead
            started = True
            await send(message)

        result = await self.app(scope, limited_receive, watched_send)
        if over and not started:
            await too_large(send)
        return result


async def too_large(send: Send) -> None:
    await send({"type": "http.response.start", "status": 413, "headers": TOO_LARGE_HEADERS})
    await send({"type": "http.response.body", "body": TOO_LARGE_BODY})
