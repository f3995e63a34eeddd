"""Who opened a WebSocket: its session and user, from the session cookie, as for a request.

Channels' cookie, session and auth middleware do the same, but each copies the connection's
scope (three dicts of twenty-odd keys) and keeps a session wrapper per connection, about 2 KB
that an idle socket holds for as long as it stays open. Sockets never write the session, so
here the session and the user are added to the scope the server made for this connection.
The user is resolved at once by Channels' `get_user` (the backend's user, verified against the
session's auth hash; an anonymous user otherwise), exactly as its auth middleware would.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.auth import get_user
from django.conf import settings
from django.http.cookie import parse_cookie


def _cookie_header(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return str(value.decode("latin1"))
    return ""


class SocketAuthMiddleware:
    """Adds `session` and `user` to a WebSocket scope (other scopes pass through)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            key = parse_cookie(_cookie_header(scope)).get(settings.SESSION_COOKIE_NAME)
            scope["session"] = self.store(key)
            scope["user"] = await get_user(scope)
        return await self.app(scope, receive, send)
