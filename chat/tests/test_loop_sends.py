"""Plain sends on PostgreSQL, made from the event loop (`message_send_from_loop`)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import connection, connections

from chat import services
from chat.consumers import ChatConsumer
from chat.models import Message
from chat.tests.test_consumers import send_frame
from hobbies import loopdb

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the event loop's connections: PostgreSQL"
    ),
]

db = database_sync_to_async


@pytest.fixture
def pooled_sends(monkeypatch):
    """The sends the sockets' thread pool made (`ChatConsumer._send`), by body."""
    made: list[str] = []
    threaded = ChatConsumer._send

    def recorded(self, frame):
        made.append(frame["body"])
        return threaded(self, frame)

    monkeypatch.setattr(ChatConsumer, "_send", recorded)
    return made


async def test_a_plain_message_is_sent_from_the_loop_and_the_rest_in_the_pool(
    connect, alice, bob, general, pooled_sends
):
    a, b = await connect(alice), await connect(bob)
    await b.subscribe(general.id)
    await a.send(send_frame(general.id, "plain *text*"))
    ack = await a.recv_type("message.ack")
    assert ack["status"] == "sent"
    received = (await b.recv_type("message.new"))["message"]
    assert received["id"] == ack["message"]["id"]
    assert "<em>text</em>" in received["html"]
    stored = await db(Message.objects.get)(id=received["id"])
    assert stored.payload_json  # stored with its rendering, for replays
    assert stored.seq == received["seq"]

    await a.send(send_frame(general.id, "hello @bob"))
    mention = (await b.recv_type("message.new"))["message"]
    assert 'class="mention' in mention["html"]
    await a.send(send_frame(general.id, "a reply", reply_to=received["id"]))
    assert (await b.recv_type("message.new"))["message"]["reply_to"]["id"] == received["id"]
    assert pooled_sends == ["hello @bob", "a reply"]


async def test_a_retry_from_the_loop_is_the_same_message(connect, alice, bob, general):
    a, b = await connect(alice), await connect(bob)
    await b.subscribe(general.id)
    frame = send_frame(general.id, "once")
    await a.send(frame)
    first = await a.recv_type("message.ack")
    await a.send(frame)
    again = await a.recv_type("message.ack")
    assert again["message"]["id"] == first["message"]["id"]
    assert (await b.recv_type("message.new"))["message"]["id"] == first["message"]["id"]
    assert await b.nothing()
    assert await db(Message.objects.filter(client_id=frame["client_id"]).count)() == 1


async def test_a_lost_connection_is_replaced_without_losing_the_send(connect, alice, bob, general):
    """PostgreSQL restarted (here: the loop's connections ended by the server): the next send
    finds its idle connections gone, takes new ones and goes through."""
    a, b = await connect(alice), await connect(bob)
    await b.subscribe(general.id)
    await a.send(send_frame(general.id, "before"))
    assert (await a.recv_type("message.ack"))["status"] == "sent"
    pools = loopdb._pools[asyncio.get_running_loop()].values()
    backends = [conn.info.backend_pid for pool in pools for conn in pool.idle]
    assert backends

    def terminate() -> None:
        with connections["default"].cursor() as cursor:
            for pid in backends:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

    await db(terminate)()
    await a.send(send_frame(general.id, "after"))
    ack = await a.recv_type("message.ack")
    assert ack["status"] == "sent"
    bodies = [(await b.recv_type("message.new"))["message"]["body"] for _ in range(2)]
    assert bodies == ["before", "after"]


async def test_a_commit_is_announced_even_if_the_sender_goes_away(connect, alice, bob, general):
    """The socket that sent closes (its task cancelled) while the message is being written:
    once written, everyone still gets it."""
    b = await connect(bob)
    await b.subscribe(general.id)
    sending = asyncio.ensure_future(
        services.message_send_from_loop(
            author=alice, channel_id=general.id, body="last words", client_id=uuid.uuid4()
        )
    )
    for _ in range(10_000):
        if services._committing:
            break
        await asyncio.sleep(0.001)
    assert services._committing, "the send never began its write"
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    received = (await b.recv_type("message.new"))["message"]
    assert received["body"] == "last words"
    assert await db(Message.objects.filter(id=received["id"]).exists)()
