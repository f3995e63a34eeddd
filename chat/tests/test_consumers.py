"""The WebSocket protocol, through the real ASGI application."""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async

from chat.services import message_send

pytestmark = pytest.mark.django_db(transaction=True)


async def test_message_reaches_other_member_live(connect, alice, bob, general):
    a, b = await connect(alice), await connect(bob)
    await a.subscribe(general.id)
    await b.subscribe(general.id)
    client_id = str(uuid.uuid4())
    await a.send(
        {
            "type": "message.send",
            "channel": general.id,
            "client_id": client_id,
            "body": "hi **bob**",
            "reply_to": None,
        }
    )
    received = await b.recv_type("message.new")
    assert received["message"]["body"] == "hi **bob**"
    assert "<strong>bob</strong>" in received["message"]["html"]
    assert received["message"]["author"]["username"] == "alice"


async def test_replay_since_sends_missed_messages_in_order(connect, alice, bob, general):
    first, _ = await database_sync_to_async(message_send)(
        channel=general, author=alice, body="one", client_id=uuid.uuid4()
    )
    for body in ("two", "three"):
        await database_sync_to_async(message_send)(
            channel=general, author=alice, body=body, client_id=uuid.uuid4()
        )
    b = await connect(bob)
    await b.send({"type": "subscribe", "channel": general.id, "since": first.id})
    bodies = [(await b.recv_type("message.new"))["message"]["body"] for _ in range(2)]
    subscribed = await b.recv_type("subscribed")
    assert bodies == ["two", "three"]
    assert subscribed["last_id"] > first.id
