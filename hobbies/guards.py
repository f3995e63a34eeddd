"""What the ASGI application refuses before Django or the chat consumer see a request.

- `OriginValidator`: a WebSocket handshake whose `Origin` is not one of ours (scheme, host and
  port all compared) is refused with HTTP 403, so a page on another site cannot open a socket
  with our users' cookies.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

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
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)
