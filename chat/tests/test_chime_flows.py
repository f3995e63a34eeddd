"""Chime channel flows reach the message's author as states (docs/chime.md, "Channel flows"),
against the fake Chime on loopback: a send Chime answers PENDING is kept for its author only
until the flow decides; SENT releases it to everyone, DENIED and FAILED reach the author only.
Real boto3 clients, real session sockets, the real bridge; nothing of ours patched."""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat.backends.base import MessagePending
from chat.backends.chime import ChimeConfig
from chat.chime_bridge import Bridge
from chat.models import Channel, HeldMessage, Message
from chat.moderation import held_decide
from chat.screening import queue_counts
from chat.services import (
    channel_create,
    channel_member_add,
    channel_member_remove,
    message_send,
)
from chat.tests.test_chime_bridge import Running, wait_until
from hobbies.errors import HeldForReview

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


@pytest.fixture
def flowing(chime, settings, general):
    """`general` has a channel flow: every send to it is answered PENDING."""
    settings.CHIME_FLOW_POLL_SECONDS = 0.1
    chime.pending_channels = {ChimeConfig.from_settings().channel_arn(general.pk)}
    return chime


@pytest.fixture
def bridge(flowing):
    running = Running()
    yield running
    running.kill()


def send_frame(channel_id: int, body: str, client_id: str | None = None) -> dict:
    return {
        "type": "message.send",
        "channel": channel_id,
        "client_id": client_id or str(uuid.uuid4()),
        "body": body,
        "reply_to": None,
    }


def history(user, channel) -> list[str]:
    client = Client()
    client.force_login(user)
    page = client.get(f"/api/channels/{channel.id}/messages/").json()
    return [m["body"] for m in page["messages"]]


def external_id(held_id: int) -> str:
    return HeldMessage.objects.get(id=held_id).external_id


async def test_pending_then_sent_is_released_to_everyone(
    flowing, bridge, connect, alice, bob, general
):
    a, b = await connect(alice), await connect(bob)
    await a.subscribe(general.id)
    await b.subscribe(general.id)
    frame = send_frame(general.id, "checked first")
    await a.send(frame)
    ack = await a.recv_type("message.ack")
    assert ack["status"] == "pending" and ack["message"] is None and ack["held"]
    assert ack["client_id"] == frame["client_id"]
    await a.send({"type": "message.status", "client_id": frame["client_id"]})
    assert (await a.recv_type("message.status"))["status"] == "pending"
    # Nobody else hears of it: no fan-out, no history, no replay, no position taken.
    assert await b.nothing(0.5)
    assert await db(history)(bob, general) == []
    assert await db(Message.objects.filter(channel=general).count)() == 0
    assert await db(Channel.objects.values_list("last_seq", flat=True).get)(id=general.id) == 0
    late = await connect(bob)
    await late.send({"type": "subscribe", "channel": general.id, "seq": 0})
    assert (await late.recv_type("subscribed"))["last_seq"] == 0

    flowing.resolve(await db(external_id)(ack["held"]), "SENT")
    pushed = (await b.recv_type("message.new", timeout=8))["message"]
    assert (pushed["body"], pushed["seq"], pushed["author"]["id"]) == ("checked first", 1, alice.id)
    told = await a.recv_type("message.status", timeout=8)
    assert told["status"] == "sent" and told["client_id"] == frame["client_id"]
    assert told["message"]["id"] == pushed["id"]
    # Then the message.new everyone gets (her page already placed the message: told first).
    assert (await a.recv_type("message.new"))["message"]["id"] == pushed["id"]
    assert await db(history)(bob, general) == ["checked first"]
    await a.send({"type": "message.status", "client_id": frame["client_id"]})
    asked = await a.recv_type("message.status")
    assert asked["status"] == "sent" and asked["message"]["id"] == pushed["id"]
    stored = await db(Message.objects.get)(id=pushed["id"])
    assert stored.external_id == await db(external_id)(ack["held"])
    held = await db(HeldMessage.objects.get)(id=ack["held"])
    assert held.status == HeldMessage.Status.SENT and held.message_id == pushed["id"]


async def test_denied_and_failed_reach_the_author_only(
    flowing, bridge, connect, alice, bob, general
):
    a, b = await connect(alice), await connect(bob)
    await a.subscribe(general.id)
    await b.subscribe(general.id)
    for body, outcome, detail in (
        ("refused", "DENIED", "Not allowed here"),
        ("broken", "FAILED", "The processor timed out"),
    ):
        await a.send(send_frame(general.id, body))
        ack = await a.recv_type("message.ack")
        assert ack["status"] == "pending"
        flowing.resolve(await db(external_id)(ack["held"]), outcome, detail)
        told = await a.recv_type("message.status", timeout=8)
        assert told["status"] == outcome.lower() and told["message"] is None
        assert told["detail"].startswith("Not sent: this channel's checks")
        if outcome == "FAILED":  # Chime keeps a failed message's status, and tells why
            assert detail in told["detail"]
    assert await b.nothing(0.5)
    assert await db(history)(bob, general) == []
    assert await db(history)(alice, general) == []
    assert await db(Message.objects.filter(channel=general).count)() == 0
    # Her page may ask again (`message.status`); nobody else can ask about her messages.
    await a.send({"type": "message.status", "client_id": ack["client_id"]})
    again = await a.recv_type("message.status")
    assert (again["status"], again["held"]) == ("failed", ack["held"])
    await b.send({"type": "message.status", "client_id": ack["client_id"]})
    assert (await b.recv_type("error"))["code"] == "not_found"


def test_the_poll_learns_every_outcome_and_gives_up(flowing, settings, alice, general):
    """The bridge's status poll alone (no session events): GetChannelMessageStatus as the
    author, each outcome applied once, and a message pending too long given up as FAILED."""
    held = {}
    for body in ("sent later", "denied later", "failed later", "never answered"):
        with pytest.raises(MessagePending) as pending:
            message_send(channel=general, author=alice, body=body, client_id=uuid.uuid4())
        held[body] = HeldMessage.objects.get(id=pending.value.held)
    flowing.resolve(held["sent later"].external_id, "SENT")
    flowing.resolve(held["denied later"].external_id, "DENIED")
    flowing.resolve(held["failed later"].external_id, "FAILED", "processor error")
    poller = Bridge()
    assert poller.poll_flows(force=True) == 4
    statuses = dict(HeldMessage.objects.values_list("body", "status"))
    assert statuses == {
        "sent later": "sent",
        "denied later": "denied",
        "failed later": "failed",
        "never answered": "pending",
    }
    assert list(Message.objects.filter(channel=general).values_list("body", "seq")) == [
        ("sent later", 1)
    ]
    assert "processor error" in HeldMessage.objects.get(body="failed later").detail
    # Asked as the author: Chime answers only the sender.
    cfg = ChimeConfig.from_settings()
    assert ("GetChannelMessageStatus", cfg.user_arn(alice.pk)) in flowing.calls
    # Not asked again before its backoff interval has passed.
    assert poller.poll_flows() == 0

    settings.CHIME_FLOW_TIMEOUT_SECONDS = 0
    assert poller.poll_flows(force=True) == 1
    gave_up = HeldMessage.objects.get(body="never answered")
    assert gave_up.status == HeldMessage.Status.FAILED and "no answer" in gave_up.detail
    # Should the flow send it after all, it is taken back out of Chime, never shown here.
    flowing.resolve(gave_up.external_id, "SENT")
    poller.flow_sent(general, gave_up.external_id)
    remote = flowing.channels[cfg.channel_arn(general.pk)].messages
    live = [m["MessageId"] for m in remote if not m.get("_deleted")]
    assert gave_up.external_id not in live
    assert Message.objects.filter(channel=general).count() == 1


def test_a_pending_message_resolves_after_the_bridge_restarts(flowing, alice, bob, general):
    first = Running()
    ids = {}
    for body in ("sent while away", "denied while away"):
        with pytest.raises(MessagePending) as pending:
            message_send(channel=general, author=alice, body=body, client_id=uuid.uuid4())
        ids[body] = pending.value.held
    first.kill()
    flowing.resolve(HeldMessage.objects.get(id=ids["sent while away"]).external_id, "SENT")
    flowing.resolve(HeldMessage.objects.get(id=ids["denied while away"]).external_id, "DENIED")
    second = Running()
    try:
        assert wait_until(
            lambda: set(HeldMessage.objects.values_list("status", flat=True)) == {"sent", "denied"}
        )
        assert list(Message.objects.filter(channel=general).values_list("body", flat=True)) == [
            "sent while away"
        ]
    finally:
        second.kill()


def test_retries_keep_one_held_message_and_the_api_says_pending(flowing, alice, general):
    client = Client()
    client.force_login(alice)
    client_id = str(uuid.uuid4())
    url = f"/api/channels/{general.id}/messages/"
    first = client.post(url, {"body": "twice", "client_id": client_id}, "application/json")
    again = client.post(url, {"body": "twice", "client_id": client_id}, "application/json")
    for answer in (first, again):
        assert answer.status_code == 202
        error = answer.json()["error"]
        assert (error["code"], error["status"]) == ("message_pending", "pending")
    assert first.json()["error"]["held"] == again.json()["error"]["held"]
    assert HeldMessage.objects.filter(author=alice).count() == 1
    held = HeldMessage.objects.get(author=alice)
    flowing.resolve(held.external_id, "DENIED")
    Bridge().poll_flows(force=True)
    refused = client.post(url, {"body": "twice", "client_id": client_id}, "application/json")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "message_denied"
    # Moderators' review queue never lists what a channel flow holds.
    assert queue_counts(general.community_id)["held"] == 0


def test_a_message_a_moderator_approves_can_then_wait_for_the_flow(
    flowing, alice, bob, general, community
):
    community.held_words = "check"
    community.save(update_fields=["held_words"])
    with pytest.raises(HeldForReview) as review:
        message_send(channel=general, author=bob, body="check this", client_id=uuid.uuid4())
    held = HeldMessage.objects.select_related("channel__community", "author").get(
        id=review.value.held
    )
    assert queue_counts(community.id)["held"] == 1
    held_decide(held=held, by=alice, approve=True)
    held.refresh_from_db()
    assert (held.kind, held.status) == (HeldMessage.Kind.FLOW, HeldMessage.Status.PENDING)
    assert queue_counts(community.id)["held"] == 0
    assert not Message.objects.filter(channel=general).exists()
    flowing.resolve(held.external_id, "SENT")
    Bridge().poll_flows(force=True)
    assert list(Message.objects.filter(channel=general).values_list("body", flat=True)) == [
        "check this"
    ]


def test_a_message_sent_after_its_author_left_is_not_posted(flowing, alice, bob, community):
    secret = channel_create(community=community, name="secret", by=alice, kind="private")
    channel_member_add(channel=secret, user=bob, by=alice)
    cfg = ChimeConfig.from_settings()
    flowing.pending_channels = {cfg.channel_arn(secret.pk)}
    with pytest.raises(MessagePending) as pending:
        message_send(channel=secret, author=bob, body="my last words", client_id=uuid.uuid4())
    held = HeldMessage.objects.get(id=pending.value.held)
    channel_member_remove(channel=secret, user=bob, by=alice)
    flowing.resolve(held.external_id, "SENT")
    Bridge().poll_flows(force=True)
    held.refresh_from_db()
    assert held.status == HeldMessage.Status.FAILED and held.detail.startswith("Not sent: ")
    assert not Message.objects.filter(channel=secret).exists()
    remote = flowing.channels[cfg.channel_arn(secret.pk)].messages
    assert held.external_id not in [m["MessageId"] for m in remote if not m.get("_deleted")]
