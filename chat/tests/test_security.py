"""What an outsider or a hostile client can do: nothing beyond a clear error.

Mallory belongs to nothing of alice's. Carol is a member of the community but not of its private
channel. Neither learns anything, or writes anything, through any endpoint or frame.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat.models import ChannelMember, Message, MessageRevision, Reaction
from chat.services import channel_create
from chat.tests.hostile import HOSTILE_BODIES, inert_problems
from communities.services import membership_join
from conftest import client_for, say

db = database_sync_to_async
MISSING_ID = 10**9


@pytest.fixture
def targets(alice, bob, carol, community, general):
    """A message in #general (mallory is an outsider) and one in private #mods (carol too)."""
    mods = channel_create(community=community, name="mods", kind="private", by=alice)
    return {
        "general": (general, say(general, alice, "members only")),
        "mods": (mods, say(mods, alice, "moderators only")),
    }


def written_state() -> tuple:
    return (
        Message.objects.count(),
        sorted(Message.objects.values_list("id", "body", "edited_at", "deleted_at")),
        MessageRevision.objects.count(),
        Reaction.objects.count(),
        sorted(ChannelMember.objects.values_list("id", "last_read_id")),
    )


def socket_frames(channel_id: int, message_id: int) -> list[dict]:
    return [
        {"type": "subscribe", "channel": channel_id, "since": 0},
        {
            "type": "message.send",
            "channel": channel_id,
            "client_id": str(uuid.uuid4()),
            "body": "let me in",
            "reply_to": None,
        },
        {"type": "message.edit", "message": message_id, "body": "defaced"},
        {"type": "message.delete", "message": message_id},
        {"type": "reaction.add", "message": message_id, "emoji": "💩"},
        {"type": "reaction.remove", "message": message_id, "emoji": "💩"},
        {"type": "read", "channel": channel_id, "message": message_id},
        {"type": "typing", "channel": channel_id},
    ]


# --- IDOR: every frame and endpoint ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_outsider_frames_get_not_found_and_write_nothing(connect, mallory, carol, targets):
    before = await db(written_state)()
    for user, target in ((mallory, "general"), (carol, "mods")):
        channel, message = targets[target]
        socket = await connect(user)
        for frame in socket_frames(channel.id, message.id):
            await socket.send(frame)
            reply = await socket.recv_type("error")
            assert reply["code"] == "not_found", (user, frame)
            assert "members only" not in json.dumps(reply)
            assert "moderators only" not in json.dumps(reply)
        assert await socket.nothing()
    assert await db(written_state)() == before


@pytest.mark.django_db(transaction=True)
async def test_hidden_channel_answers_like_a_missing_one_over_the_socket(
    connect, carol, mallory, targets
):
    for user, target in ((mallory, "general"), (carol, "mods")):
        channel, message = targets[target]
        socket = await connect(user)
        for real, missing in zip(
            socket_frames(channel.id, message.id),
            socket_frames(MISSING_ID, MISSING_ID),
            strict=True,
        ):
            await socket.send(real)
            answer_real = await socket.recv_type("error")
            await socket.send(missing)
            answer_missing = await socket.recv_type("error")
            if real["type"] == "message.send":  # the ref is the client's own client_id
                answer_real.pop("ref"), answer_missing.pop("ref")
            assert answer_real == answer_missing


def http_requests(community_slug: str, channel) -> list[tuple[str, str, dict]]:
    api = f"/api/channels/{channel.id}/messages/"
    page = f"/c/{community_slug}/{channel.name}/"
    return [
        ("get", api, {}),
        ("get", api + "?before=999999", {}),
        ("post", api, {"body": "let me in", "client_id": str(uuid.uuid4())}),
        ("get", page, {}),
        ("post", page + "post/", {"body": "let me in", "client_id": str(uuid.uuid4())}),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "target"), [("mallory", "general"), ("carol", "mods")])
def test_outsider_http_gets_404_and_writes_nothing(request, targets, who, target):
    channel, message = targets[target]
    client = client_for(request.getfixturevalue(who))
    before = written_state()
    for method, url, data in http_requests("photography", channel):
        if method == "post" and url.startswith("/api/"):
            response = client.post(url, data, content_type="application/json")
        else:
            response = getattr(client, method)(url, data)
        assert response.status_code == 404, url
        text = response.content.decode()
        assert message.body not in text
        if url.startswith("/api/"):
            assert response.json()["error"]["code"] == "not_found"
    assert written_state() == before
    listed = [c["id"] for c in client.get("/api/channels/").json()["channels"]]
    assert channel.id not in listed


@pytest.mark.django_db
def test_private_channel_answers_like_a_missing_one_over_http(targets, carol):
    mods, _ = targets["mods"]
    client = client_for(carol)
    real = client.get(f"/api/channels/{mods.id}/messages/")
    missing = client.get(f"/api/channels/{MISSING_ID}/messages/")
    assert (real.status_code, real.json()) == (missing.status_code, missing.json())
    page = client.get("/c/photography/mods/")
    no_page = client.get("/c/photography/no-such-channel/")
    assert page.status_code == no_page.status_code == 404


# --- Who may open a socket ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_socket_refused_from_other_sites_and_to_anonymous(connect, bob):
    for user, origin in (
        (bob, "http://evil.example"),
        (bob, ""),
        (bob, "http://testserver.evil.example"),
        (None, "http://evil.example"),
    ):
        connected, _ = await connect(user, origin=origin, expect=False)
        assert connected is False, (user, origin)


@pytest.mark.django_db(transaction=True)
async def test_anonymous_socket_is_opened_then_closed_as_signed_out(connect, bob):
    """Refusing before the handshake completes shows the browser only 1006, which it retries
    for ever; an open socket closed with 4401 tells the page to say "signed out"."""
    socket = await connect(None)
    assert await socket.closed_with() == 4401
    client, stale = await db(client_for)(bob), Client()
    stale.cookies["sessionid"] = client.cookies["sessionid"].value
    await db(client.logout)()
    socket = await connect(None, client=stale)  # a session cookie that is no longer valid
    assert await socket.closed_with() == 4401


@pytest.mark.django_db(transaction=True)
async def test_socket_from_our_origin_is_accepted(connect, bob):
    socket = await connect(bob, origin="http://localhost", host="localhost")
    await socket.send({"type": "ping"})
    assert (await socket.recv_type("pong"))["type"] == "pong"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("scheme", "host", "origin", "accepted"),
    [
        ("ws", "127.0.0.1:8000", "http://127.0.0.1:8000", True),
        ("ws", "127.0.0.1:8000", "http://127.0.0.1:8000/", True),
        ("ws", "LocalHost:8000", "http://localhost:8000", True),
        ("ws", "localhost:8000", "http://LOCALHOST:8000", True),
        ("ws", "localhost", "http://localhost:80", True),
        ("wss", "127.0.0.1", "https://127.0.0.1", True),
        ("wss", "127.0.0.1:8443", "https://127.0.0.1:8443", True),
        # Another scheme or port is another origin, even on an allowed host.
        ("ws", "127.0.0.1:8000", "https://127.0.0.1:8000", False),
        ("ws", "127.0.0.1", "https://127.0.0.1", False),
        ("ws", "localhost:8000", "http://LOCALHOST:9999", False),
        ("ws", "localhost:8000", "http://localhost", False),
        ("wss", "127.0.0.1", "http://127.0.0.1", False),
        # Another allowed host is another site.
        ("ws", "127.0.0.1:8000", "http://localhost:8000", False),
        # A Host we do not serve (DNS rebinding) is refused even from its own page.
        ("ws", "evil.example", "http://evil.example", False),
        ("ws", "", "http://127.0.0.1", False),
        ("ws", "127.0.0.1", "null", False),
        ("ws", "127.0.0.1", "http://user@127.0.0.1", False),
        ("ws", "127.0.0.1", "http://127.0.0.1/page", False),
        ("ws", "127.0.0.1", "ftp://127.0.0.1", False),
    ],
)
async def test_socket_origin_must_match_scheme_host_and_port(
    connect, bob, scheme, host, origin, accepted
):
    connected, code = await connect(bob, origin=origin, host=host, scheme=scheme, expect=False)
    assert connected is accepted, code


@pytest.mark.django_db(transaction=True)
async def test_configured_websocket_origins_replace_the_default(connect, bob, settings):
    settings.WEBSOCKET_ALLOWED_ORIGINS = ["https://chat.example.org"]
    for origin, accepted in (
        ("https://chat.example.org", True),
        ("https://CHAT.example.org:443", True),
        ("http://chat.example.org", False),
        ("https://chat.example.org:8443", False),
        ("http://testserver", False),
    ):
        connected, _ = await connect(bob, origin=origin, expect=False)
        assert connected is accepted, origin


# --- Hostile frames -------------------------------------------------------------------------


def bad_frames(channel_id: int, message_id: int, own_id: int) -> list[tuple[str | dict, str]]:
    def send(**fields):
        return {"type": "message.send", "channel": channel_id, "body": "hi",
                "client_id": str(uuid.uuid4()), "reply_to": None, **fields}  # fmt: skip

    return [
        ("{not json", "invalid"),
        ("[1, 2, 3]", "invalid"),
        ('"ping"', "invalid"),
        ("null", "invalid"),
        ('{"channel": 1}', "invalid"),
        ('{"type": 5}', "invalid"),
        ('{"type": "dance"}', "invalid"),
        (json.dumps({"type": "ping", "pad": "x" * (64 * 1024)}), "too_long"),
        ({"type": "subscribe", "channel": "abc"}, "not_found"),
        ({"type": "subscribe", "channel": None}, "not_found"),
        ({"type": "subscribe", "channel": channel_id, "since": -1}, "invalid"),
        ({"type": "subscribe", "channel": channel_id, "since": "0"}, "invalid"),
        ({"type": "subscribe", "channel": channel_id, "since": True}, "invalid"),
        (send(body=123), "invalid"),
        (send(body=None), "invalid"),
        (send(body=""), "invalid"),
        (send(body="x" * 4001), "too_long"),
        (send(client_id="nope"), "invalid"),
        (send(client_id=None), "invalid"),
        (send(reply_to="1"), "invalid"),
        (send(reply_to=MISSING_ID), "not_found"),
        (send(channel=[channel_id]), "not_found"),
        ({"type": "message.edit", "message": own_id, "body": {"x": 1}}, "invalid"),
        ({"type": "message.edit", "message": message_id, "body": "not mine"}, "forbidden"),
        ({"type": "message.edit", "message": "first", "body": "x"}, "not_found"),
        ({"type": "message.edit", "message": own_id}, "invalid"),
        ({"type": "reaction.add", "message": message_id, "emoji": "abc"}, "invalid"),
        ({"type": "reaction.add", "message": message_id, "emoji": ["👍"]}, "invalid"),
        ({"type": "read", "channel": channel_id, "message": "last"}, "invalid"),
        ({"type": "unsubscribe", "channel": "abc"}, "invalid"),
        ({"type": "unsubscribe", "channel": channel_id}, "not_found"),
        ({"type": "typing", "channel": True}, "invalid"),
    ]


@pytest.mark.django_db(transaction=True)
async def test_bad_frames_get_error_frames_and_the_socket_stays_usable(
    connect, alice, bob, general
):
    message = await db(say)(general, alice, "target")
    own = await db(say)(general, bob, "mine")
    before = await db(written_state)()
    socket = await connect(bob)
    for frame, code in bad_frames(general.id, message.id, own.id):
        await socket.send(frame)
        reply = await socket.recv_type("error")
        assert reply["code"] == code, (frame, reply)
        assert reply["detail"]
        await socket.send({"type": "ping"})
        assert (await socket.recv_type("pong"))["type"] == "pong"
    await socket.communicator.send_to(bytes_data=b'{"type": "ping"}')
    assert (await socket.recv_type("error"))["code"] == "invalid"
    client_id = str(uuid.uuid4())
    await socket.send({"type": "message.send", "channel": general.id, "client_id": client_id,
                       "body": "", "reply_to": None})  # fmt: skip
    assert (await socket.recv_type("error"))["ref"] == client_id
    assert await db(written_state)() == before


@pytest.mark.django_db(transaction=True)
async def test_frame_size_counts_bytes_not_characters(connect, bob, settings):
    settings.CHAT_FRAME_MAX_BYTES = 1000
    socket = await connect(bob)
    # 600 characters, 1200 bytes in UTF-8.
    await socket.send(json.dumps({"type": "ping", "pad": "é" * 600}, ensure_ascii=False))
    assert (await socket.recv_type("error"))["code"] == "too_long"


# --- Rate limits ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_frame_flood_is_rate_limited(connect, bob):
    socket = await connect(bob)
    # A frame the consumer answers without touching the database, so the flood is quick.
    flood = 200
    for _ in range(flood):
        await socket.send({"type": "unsubscribe", "channel": 1})
    codes = [(await socket.recv_type("error"))["code"] for _ in range(flood)]
    assert codes[:50] == ["not_found"] * 50  # the burst allowance
    assert "rate_limited" in codes


@pytest.mark.django_db(transaction=True)
async def test_message_rate_limit_per_user(connect, bob, general, settings):
    settings.RATE_LIMIT_MESSAGES_USER = (3, 3600)
    socket = await connect(bob)
    client_ids = [str(uuid.uuid4()) for _ in range(4)]
    for n, client_id in enumerate(client_ids):
        await socket.send({"type": "message.send", "channel": general.id, "client_id": client_id,
                           "body": f"spam {n}", "reply_to": None})  # fmt: skip
    replies = [await socket.recv_type(kind) for kind in ("message.ack",) * 3 + ("error",)]
    assert replies[-1]["code"] == "rate_limited"
    assert replies[-1]["ref"] == client_ids[-1]
    assert await db(general.messages.count)() == 3


# --- CSRF -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_post_without_csrf_token_is_refused(bob, general):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    response = client.post(
        f"/api/channels/{general.id}/messages/",
        {"body": "forged", "client_id": str(uuid.uuid4())},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "csrf_failed"
    assert "reload the page" in error["detail"]
    assert not Message.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "delete"])
def test_every_api_csrf_failure_answers_json(bob, method):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    response = getattr(client, method)(f"/api/attachments/{uuid.uuid4()}/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


@pytest.mark.django_db
def test_plain_form_post_without_csrf_token_is_refused(bob, general):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    response = client.post("/c/photography/general/post/", {"body": "forged"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert "sent without a valid security token" in response.content.decode()
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_api_post_with_csrf_token_is_accepted(bob, general):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    client.get("/c/photography/general/")  # sets the CSRF cookie, as the page does
    token = client.cookies["csrftoken"].value
    response = client.post(
        f"/api/channels/{general.id}/messages/",
        {"body": "real", "client_id": str(uuid.uuid4())},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 201


# --- XSS ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_body_is_inert_in_api_and_page(alice, bob, general, body):
    client = client_for(bob)
    response = client.post(
        f"/api/channels/{general.id}/messages/",
        {"body": body, "client_id": str(uuid.uuid4())},
        content_type="application/json",
    )
    assert response.status_code == 201
    posted = response.json()["message"]
    assert posted["body"] == body  # kept as written; only the HTML is cleaned
    assert inert_problems(posted["html"]) == []
    history = client.get(f"/api/channels/{general.id}/messages/").json()["messages"]
    assert inert_problems(history[-1]["html"]) == []
    page = client_for(alice).get("/c/photography/general/").content.decode()
    start = page.index('<div id="message-list"')
    end = page.index('<div class="typing', start)
    assert inert_problems(page[start:end]) == []


@pytest.mark.django_db(transaction=True)
async def test_hostile_bodies_are_inert_in_live_pushes(
    connect, alice, bob, general, no_rate_limits
):
    a, b = await connect(alice), await connect(bob)
    await b.subscribe(general.id)
    for body in HOSTILE_BODIES:
        await a.send({"type": "message.send", "channel": general.id,
                      "client_id": str(uuid.uuid4()), "body": body, "reply_to": None})  # fmt: skip
        pushed = (await b.recv_type("message.new"))["message"]
        assert pushed["body"] == body
        assert inert_problems(pushed["html"]) == [], body


@pytest.mark.django_db
def test_hostile_display_name_and_reply_quote_are_inert(alice, bob, general):
    from accounts.services import profile_update

    hostile = '<img src=x onerror="alert(1)">'
    profile_update(user=alice, display_name=hostile[:64], bio="", hobbies="")
    parent = say(general, alice, "<script>alert('quoted')</script>")
    say(general, bob, "replying", reply_to=parent.id)
    client = client_for(bob)
    for message in client.get(f"/api/channels/{general.id}/messages/").json()["messages"]:
        assert inert_problems(message["html"]) == []
    page = client.get("/c/photography/general/").content.decode()
    start = page.index('<div id="message-list"')
    assert inert_problems(page[start : page.index('<div class="typing', start)]) == []
    members = page[page.index('<ul class="member-list"') :]
    assert inert_problems(members[: members.index("</ul>")]) == []


# --- NUL and other control characters (PostgreSQL refuses NUL in text) ---------------------


@pytest.mark.django_db
def test_channel_form_with_nul_in_topic_says_why(alice, community):
    manage = client_for(alice).get("/c/photography/manage/").content.decode()
    assert 'name="next" value="/c/photography/manage/"' in manage
    response = client_for(alice).post(
        "/c/photography/manage/channels/",
        {
            "name": "prints",
            "topic": "wet\x00prints",
            "kind": "open",
            "next": "/c/photography/manage/",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "A topic cannot contain control characters." in response.content.decode()
    assert not community.channels.filter(name="prints").exists()


@pytest.mark.django_db
def test_channel_form_with_nul_in_kind_says_why(alice, community):
    response = client_for(alice).post(
        "/c/photography/manage/channels/",
        {"name": "prints", "topic": "", "kind": "open\x00", "next": "/c/photography/manage/"},
        follow=True,
    )
    assert "Unknown channel kind." in response.content.decode()


@pytest.mark.django_db
def test_channel_settings_with_nul_in_topic_says_why(alice, general):
    topic = general.topic
    response = client_for(alice).post(
        f"{general.get_absolute_url()}settings/",
        {"action": "topic", "topic": "\x00"},
        follow=True,
    )
    assert response.status_code == 200
    assert "A topic cannot contain control characters." in response.content.decode()
    general.refresh_from_db()
    assert general.topic == topic


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["body", "client_id", "attachments"])
def test_form_post_with_nul_says_why(bob, general, field):
    data = {"body": "hello", "client_id": str(uuid.uuid4()), field: "x\x00"}
    response = client_for(bob).post("/c/photography/general/post/", data, follow=True)
    assert response.status_code == 200
    assert not Message.objects.filter(channel=general).exclude(author__username="alice").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["body", "client_id", "reply_to"])
def test_api_post_with_nul_is_a_400(bob, general, field):
    data = {"body": "hello", "client_id": str(uuid.uuid4()), field: "x\x00"}
    response = client_for(bob).post(
        f"/api/channels/{general.id}/messages/", data, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


@pytest.mark.django_db
def test_channel_page_with_nul_in_reply_to_renders(bob, general):
    response = client_for(bob).get("/c/photography/general/", {"reply_to": "\x00"})
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("query", [{"before": "\x00"}, {"after": "1\x00"}, {"limit": "\x00"}])
def test_history_with_nul_in_the_query_is_a_400(bob, general, query):
    response = client_for(bob).get(f"/api/channels/{general.id}/messages/", query)
    assert response.status_code == 400


@pytest.mark.django_db
def test_attachment_start_with_nul_is_a_400(bob):
    response = client_for(bob).post(
        "/api/attachments/",
        {"name": "a\x00.txt", "size": 3, "content_type": "text/plain\x00"},
        content_type="application/json",
    )
    assert response.status_code == 400


# --- Reactions: one emoji, nothing else ---------------------------------------------------------

GOOD_EMOJI = [
    "👍",
    "👍🏽",  # skin tone
    "👩‍👩‍👧",  # ZWJ family
    "🧑‍💻",
    "🏳️‍🌈",  # flag with ZWJ
    "🇫🇷",  # regional-indicator flag
    "❤️",
    "❤",  # the unqualified form people type
    "❤️‍🔥",
    "1️⃣",  # keycap
    "🫠",
]
BAD_EMOJI = [
    "👍👍",
    "👍🎉",
    "\u202e",  # right-to-left override
    "\u202e👍",
    "👍\u202e",
    "👍\u200d",  # dangling joiner
    "\u200b👍",  # zero-width space
    '"',
    "👍\"'<>",
    "[👍]",
    "()",
    "🏻",  # a skin tone alone is a component, not an emoji
    "🇦",  # half a flag
    "1",
    "#",
    "a",
    "ab",
    "\x00",
    "",
]


@pytest.mark.django_db(transaction=True)
async def test_reactions_accept_exactly_one_emoji(connect, alice, bob, general, settings):
    settings.RATE_LIMITS_ENABLED = False
    message = await db(say)(general, alice, "react to me")
    socket = await connect(bob)
    await socket.subscribe(general.id)
    for emoji in BAD_EMOJI:
        await socket.send({"type": "reaction.add", "message": message.id, "emoji": emoji})
        reply = await socket.recv_type("error")
        assert (reply["code"], reply["ref"]) == ("invalid", "reaction.add"), emoji
    shown = []
    for emoji in GOOD_EMOJI:
        await socket.send({"type": "reaction.add", "message": message.id, "emoji": emoji})
        reply = await socket.recv_type("reaction")
        assert (reply["emoji"], reply["added"]) == (emoji, True)
        shown = [r["emoji"] for r in reply["message"]["reactions"]]
    assert sorted(shown) == sorted(GOOD_EMOJI)
    assert sorted(await db(list)(Reaction.objects.values_list("emoji", flat=True))) == sorted(
        GOOD_EMOJI
    )


# --- Replays and sockets per user -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_replays_are_budgeted_per_user_across_sockets(connect, alice, bob, general, settings):
    settings.CHAT_REPLAY_BUDGET = (20, 60)
    for n in range(15):
        await db(say)(general, alice, f"old {n}")
    first, second = await connect(bob), await connect(bob)

    async def replay(socket) -> dict:
        await socket.send({"type": "subscribe", "channel": general.id, "since": 0})
        frames = await socket.until("subscribed")  # an error frame raises here
        await socket.send({"type": "unsubscribe", "channel": general.id})
        await socket.recv_type("unsubscribed")
        return frames

    assert len([f for f in await replay(first) if f["type"] == "message.new"]) == 15
    assert len([f for f in await replay(second) if f["type"] == "message.new"]) == 15
    for socket in (first, second):  # 30 replayed: the budget of 20 a minute is spent
        await socket.send({"type": "subscribe", "channel": general.id, "since": 0})
        error = await socket.recv_type("error")
        assert (error["code"], error["ref"]) == ("rate_limited", "subscribe")
        assert 1 <= error["retry_after"] <= 120
    # Others are not held back, and subscribing without a replay still works.
    assert len([f for f in await replay(await connect(alice)) if f["type"] == "message.new"]) == 15
    assert (await first.subscribe(general.id))["last_id"]


@pytest.mark.django_db(transaction=True)
async def test_sockets_per_user_are_capped(connect, alice, bob, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 3
    sockets = [await connect(bob) for _ in range(3)]
    for socket in sockets:  # each is fully open
        await socket.send({"type": "ping"})
        await socket.recv_type("pong")
    extra = await connect(bob)
    assert await extra.closed_with() == 4429
    assert await (await connect(alice)).nothing()  # someone else's socket stays open
    await sockets[0].close()
    await asyncio.sleep(0.05)
    again = await connect(bob)
    await again.send({"type": "ping"})
    assert (await again.recv_type("pong"))["type"] == "pong"


# --- Bidirectional-text controls ------------------------------------------------------------

RLO_NAME = "\u202egnp.exe"  # shows as "exe.png" when the override is allowed to run on


def test_bidi_controls_in_names_and_messages_are_isolated_in_the_page(
    make_user, alice, community, general
):
    evil = make_user("evil", display_name=RLO_NAME)
    membership_join(community=community, user=evil)
    first = say(general, evil, f"see {RLO_NAME} now")
    say(general, alice, "a reply", reply_to=first.id)

    html = client_for(alice).get(general.get_absolute_url()).content.decode()
    assert f'<span class="msg__who" dir="auto" id="m{first.id}-who"' in html
    assert f'title="@evil">{RLO_NAME}</span>' in html
    assert f'<div class="msg__body" dir="auto"><p>see {RLO_NAME} now</p></div>' in html
    assert f'<span class="msg__reply-who" dir="auto">{RLO_NAME}</span>' in html
    assert f'<bdi class="msg__reply-text">see {RLO_NAME} now</bdi>' in html
    assert f'<span class="member-list__name" dir="auto">{RLO_NAME}</span>' in html
