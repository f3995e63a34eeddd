"""Fixtures shared by every test: users, communities and channels made through the services,
and sockets connected to the real ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connections
from django.test import Client

from accounts.models import User
from accounts.services import site_roles_set, user_create
from chat.dbthreads import close_connections
from chat.hub import hub
from chat.models import Channel, Message
from chat.services import message_send
from communities.models import Community
from communities.services import community_create, membership_join
from hobbies import loopdb
from hobbies.cache import close_async_client

PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - test accounts only


@pytest.fixture(autouse=True)
def _clean_cache() -> None:
    """Forget rate-limit counters and presence between tests.

    On Redis, `cache.clear()` would flush the whole database, which other processes share (the
    channel layer, other test runs): delete only this cache's own keys there.
    """
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        client = backend._cache.get_client(write=True)
        keys = list(client.scan_iter(match=backend.make_key("*"), count=1000))
        if keys:
            client.delete(*keys)
    else:
        backend.clear()


@pytest.fixture(autouse=True)
def _layer_receive_state_of_this_test() -> None:
    """Each async test runs its own event loop, but channels-redis keeps one layer per process
    with asyncio locks bound to the loop that first used them. A test whose loop ends while the
    layer still holds one (its backup cleaner never ran) would leave the next tests' hubs unable
    to receive: start every test with the layer's receive state as new. (A server has one loop;
    this is only the tests' concern.)"""
    layer = get_channel_layer()
    if hasattr(layer, "receive_clean_locks"):
        layer.receive_clean_locks = type(layer.receive_clean_locks)()
        layer.receive_count = 0
        layer.receive_lock = None
        layer.receive_event_loop = None
        layer.receive_buffer.clear()
        layer.receive_cleaners = []


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str | None = None, **kwargs: Any) -> User:
        return user_create(
            username=username or f"user{uuid.uuid4().hex[:8]}", password=PASSWORD, **kwargs
        )

    return make


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice", display_name="Alice Adams")


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("bob", display_name="Bob Brown")


@pytest.fixture
def mallory(make_user: Callable[..., User]) -> User:
    """A logged-in user who belongs to nothing of alice's and bob's."""
    return make_user("mallory")


@pytest.fixture
def community(alice: User, bob: User) -> Community:
    community = community_create(
        name="Photography", slug="photography", tags=["photography"], by=alice
    )
    membership_join(community=community, user=bob)
    return community


@pytest.fixture
def general(community: Community) -> Channel:
    return Channel.objects.get(community=community, name="general")


@pytest.fixture
def carol(make_user: Callable[..., User], community: Community) -> User:
    """A plain member of the community (alice owns it, bob is a member too)."""
    user = make_user("carol", display_name="Carol Chen")
    membership_join(community=community, user=user)
    return user


@pytest.fixture
def superuser(make_user: Callable[..., User]) -> User:
    """A site admin: staff and superuser."""
    user = make_user("root", display_name="Site Admin")
    site_roles_set(user=user, roles={"admin"})
    return user


@pytest.fixture
def site_moderator(make_user: Callable[..., User]) -> User:
    """Staff in the site moderators group: moderates every community, in the admin too."""
    user = make_user("warden", display_name="Site Moderator")
    site_roles_set(user=user, roles={"moderator"})
    return user


@pytest.fixture
def staff_viewer(make_user: Callable[..., User]) -> User:
    """Staff who may view every admin page but moderates nothing.

    No site role gives this (both include moderation): an admin would tick "staff status" and the
    view permissions on the user's admin page. It shows what the services refuse in the admin.
    """
    user = make_user("viewer", display_name="Staff Viewer")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return user


@pytest.fixture
def no_rate_limits(settings: Any) -> None:
    """For tests that build many messages at once."""
    settings.RATE_LIMITS_ENABLED = False


@pytest.fixture(autouse=True)
def _test_settings(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    # Nothing a test stores (`doctor`'s probe included) lands in the checkout's var/.
    settings.ATTACHMENTS_ROOT = tmp_path / "attachments"
    # A fast hash for test accounts; the password validators still run as in production.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def say(channel: Channel, author: User, body: str, reply_to: int | None = None) -> Message:
    """Post a message through the service, as a client with a fresh client_id would."""
    sent = message_send(
        channel=channel, author=author, body=body, client_id=uuid.uuid4(), reply_to=reply_to
    )
    assert sent.created
    return sent.message


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


class Socket:
    """A WebSocket client of the real ASGI app (auth, Origin check, routing, consumer)."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    async def send(self, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        await self.communicator.send_to(text_data=text)

    async def recv(self, timeout: float = 3) -> dict[str, Any]:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def recv_type(self, kind: str, timeout: float = 3) -> dict[str, Any]:
        """The next frame of `kind`, skipping presence, typing, read and head noise."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == kind:
                return frame
            # `head` is advisory: a loaded machine may send one before a slow publish lands.
            if frame["type"] not in ("presence", "typing", "read", "head"):
                raise AssertionError(f"expected {kind}, got {frame}")

    async def until(self, kind: str, timeout: float = 3) -> list[dict[str, Any]]:
        """Every frame up to and including the next one of `kind`."""
        frames = [await self.recv(timeout)]
        while frames[-1]["type"] != kind:
            frames.append(await self.recv(timeout))
        return frames

    async def nothing(self, timeout: float = 0.3) -> bool:
        """True if no frame other than presence arrives within `timeout`.

        (`receive_nothing` waits without cancelling the application, unlike a timed-out receive.)
        """
        while not await self.communicator.receive_nothing(timeout):
            frame = await self.recv()
            if frame["type"] != "presence":
                return False
        return True

    async def subscribe(self, channel_id: int, since: int | None = None) -> dict[str, Any]:
        await self.send({"type": "subscribe", "channel": channel_id, "since": since})
        return await self.recv_type("subscribed")

    async def closed_with(self, timeout: float = 3) -> int | None:
        """The close code the server closes this socket with (frames before it are skipped)."""
        while True:
            output = await self.communicator.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output.get("code")

    async def close(self) -> None:
        await self.communicator.disconnect()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    """`await connect(user)` opens a socket as that user; all are closed after the test."""
    from hobbies.asgi import application

    opened: list[Socket] = []

    async def open_socket(
        user: User | None,
        origin: str = "http://testserver",
        expect: bool = True,
        client: Client | None = None,
        host: str = "testserver",
        scheme: str = "ws",
    ) -> Any:
        """`client`: open the socket with that logged-in client's session cookie. `host` and
        `scheme` are how the handshake reached the server (its Host header, `ws` or `wss`)."""
        headers = [(b"host", host.encode())] if host else []
        if origin:
            headers.append((b"origin", origin.encode()))
        if user is not None or client is not None:
            client = client or await database_sync_to_async(client_for)(user)
            headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
        communicator = WebsocketCommunicator(application, "/ws/", headers=headers)
        communicator.scope["scheme"] = scheme  # read when the application starts
        connected, code = await communicator.connect()
        if not expect:
            await communicator.disconnect()
            return connected, code
        assert connected, f"socket refused: {code}"
        socket = Socket(communicator)
        opened.append(socket)
        return socket

    yield open_socket
    for socket in opened:
        with contextlib.suppress(Exception, asyncio.CancelledError):  # closed by the test
            await asyncio.wait_for(socket.close(), 5)
    await hub.shutdown()
    # Connections persist between frames (CONN_MAX_AGE); close the ones the sockets' database
    # threads opened, so the test database can be dropped at the end of the run.
    await asyncio.to_thread(close_connections)
    await loopdb.close()  # and the event loop's own (plain sends on PostgreSQL)
    await close_async_client()
    await database_sync_to_async(connections.close_all)()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for a module of browser tests."""
    from chat.tests.live import chromium

    with chromium() as launched:
        yield launched
