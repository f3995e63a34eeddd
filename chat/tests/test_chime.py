"""MESSAGING_BACKEND=chime through the socket and the services, against the fake Chime on
loopback (chat/tests/fake_chime.py): the real boto3 clients, nothing of ours patched."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError
from channels.db import database_sync_to_async
from django.test import Client

from chat.backends import get_backend
from chat.backends.chime import ChimeConfig
from chat.models import Message
from chat.moderation import message_remove
from chat.services import (
    channel_archive,
    channel_create,
    channel_member_add,
    channel_unarchive,
    message_send,
)
from chat.tests import fake_chime as fake_module
from communities.models import Membership
from communities.services import membership_ban, membership_set_role, membership_unban

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


def send_frame(channel_id: int, body: str, client_id: str | None = None) -> dict:
    return {
        "type": "message.send",
        "channel": channel_id,
        "client_id": client_id or str(uuid.uuid4()),
        "body": body,
        "reply_to": None,
    }


def config() -> ChimeConfig:
    return ChimeConfig.from_settings()


def remote(fake, channel) -> fake_module.FakeChannel:
    return fake.channels[config().channel_arn(channel.pk)]


def test_users_channels_and_memberships_are_mirrored(chime, alice, bob, general):
    cfg = config()
    channel = remote(chime, general)
    assert channel.mode == "RESTRICTED" and channel.privacy == "PRIVATE"
    assert json.loads(channel.metadata)["channel"] == general.pk
    assert cfg.bridge_user_arn in channel.moderators
    assert {cfg.user_arn(alice.pk), cfg.user_arn(bob.pk)} <= set(channel.members)
    # alice owns the community: a channel moderator; bob is not.
    assert cfg.user_arn(alice.pk) in channel.moderators
    assert cfg.user_arn(bob.pk) not in channel.moderators
    # Ids come from our user ids, never the email.
    assert cfg.user_arn(alice.pk).endswith(f"/user/hobbies-user-{alice.pk}")


def test_moderators_bans_and_removals_follow_the_services(chime, alice, bob, general, community):
    cfg = config()
    membership_set_role(community=community, user=bob, role=Membership.Role.MODERATOR, by=alice)
    assert cfg.user_arn(bob.pk) in remote(chime, general).moderators
    membership_set_role(community=community, user=bob, role=Membership.Role.MEMBER, by=alice)
    assert cfg.user_arn(bob.pk) not in remote(chime, general).moderators

    sent = message_send(channel=general, author=bob, body="spam", client_id=uuid.uuid4())
    message_remove(message=sent.message, by=alice, reason="spam")
    stored = next(
        m for m in remote(chime, general).messages if m["MessageId"] == sent.message.external_id
    )
    assert stored["Redacted"] and stored["Content"] == ""

    membership_ban(community=community, user=bob, by=alice)
    assert cfg.user_arn(bob.pk) in remote(chime, general).bans
    assert cfg.user_arn(bob.pk) not in remote(chime, general).members
    membership_unban(community=community, user=bob, by=alice)
    assert cfg.user_arn(bob.pk) not in remote(chime, general).bans


def test_private_channel_members_only(chime, alice, bob, community):
    secret = channel_create(community=community, name="secret", by=alice, kind="private")
    assert config().user_arn(bob.pk) not in remote(chime, secret).members
    channel_member_add(channel=secret, user=bob, by=alice)
    assert config().user_arn(bob.pk) in remote(chime, secret).members


def test_archive_and_unarchive_reach_the_chime_channel(chime, alice, community):
    club = channel_create(community=community, name="club", by=alice, kind="open")
    channel_archive(channel=club, by=alice)
    archived = remote(chime, club)
    assert json.loads(archived.metadata)["archived"] is True
    assert archived.mode == "RESTRICTED" and archived.name == "club"
    channel_unarchive(channel=club, by=alice)
    assert "archived" not in json.loads(remote(chime, club).metadata)


async def test_two_users_chat_through_chime(chime, connect, alice, bob, general):
    a, b = await connect(alice), await connect(bob)
    await a.subscribe(general.id)
    await b.subscribe(general.id)
    frame = send_frame(general.id, "hello through Chime")
    await a.send(frame)
    ack = await a.recv_type("message.ack")
    assert ack["client_id"] == frame["client_id"] and ack["status"] == "sent"
    assert (await b.recv_type("message.new"))["message"]["body"] == "hello through Chime"
    message = await db(Message.objects.get)(id=ack["message"]["id"])
    stored = next(
        m for m in remote(chime, general).messages if m["MessageId"] == message.external_id
    )
    assert stored["Content"] == "hello through Chime"
    assert stored["_sender"] == config().user_arn(alice.pk)  # sent as alice (ChimeBearer)
    assert json.loads(stored["Metadata"])["origin"] == "hobbies"
    sends = [bearer for op, bearer in chime.calls if op == "SendChannelMessage"]
    assert sends == [config().user_arn(alice.pk)]


async def test_throttling_is_absorbed(chime, connect, alice, general):
    a = await connect(alice)
    await a.subscribe(general.id)
    chime.throttle(2)
    await a.send(send_frame(general.id, "despite throttling"))
    ack = await a.recv_type("message.ack")
    assert ack["message"]["body"] == "despite throttling"
    assert get_backend().api.throttled == 2


async def test_outage_is_a_failure_the_author_can_retry(chime, connect, alice, bob, general):
    a, b = await connect(alice), await connect(bob)
    await a.subscribe(general.id)
    await b.subscribe(general.id)
    chime.unavailable = True
    frame = send_frame(general.id, "during the outage")
    await a.send(frame)
    error = await a.recv_type("error")
    assert error["code"] == "messaging_unavailable" and error["ref"] == frame["client_id"]
    assert await b.nothing()
    assert not await db(Message.objects.filter(channel=general).exists)()
    chime.unavailable = False
    await a.send(frame)  # the page's retry: the same client_id
    ack = await a.recv_type("message.ack")
    assert (await b.recv_type("message.new"))["message"]["id"] == ack["message"]["id"]
    assert await db(Message.objects.filter(channel=general).count)() == 1


async def test_denied_message_shows_as_denied_to_its_author_only(
    chime, connect, alice, bob, general
):
    chime.deny_words = {"forbidden"}
    a, b = await connect(alice), await connect(bob)
    await a.subscribe(general.id)
    await b.subscribe(general.id)
    frame = send_frame(general.id, "something forbidden")
    await a.send(frame)
    error = await a.recv_type("error")
    assert error["code"] == "message_denied" and error["ref"] == frame["client_id"]
    assert "refused" in error["detail"]
    assert await b.nothing()
    assert not await db(Message.objects.filter(channel=general).exists)()


async def test_over_the_chime_limit_is_refused_before_sending(chime, connect, alice, general):
    a = await connect(alice)
    await a.subscribe(general.id)
    await a.send(send_frame(general.id, "é" * 2100))  # 2100 characters, 4200 bytes
    error = await a.recv_type("error")
    assert error["code"] == "too_long" and "4 KB" in error["detail"]
    assert not [op for op, _ in chime.calls if op == "SendChannelMessage"]


def test_edit_delete_and_read_marker_reach_chime(chime, alice, bob, general):
    from chat.services import message_delete, message_edit, read_mark

    sent = message_send(channel=general, author=alice, body="first", client_id=uuid.uuid4())
    message_edit(message=sent.message, by=alice, body="first, edited")
    stored = next(
        m for m in remote(chime, general).messages if m["MessageId"] == sent.message.external_id
    )
    assert stored["Content"] == "first, edited"
    read_mark(channel=general, user=bob, message_id=sent.message.id)
    assert config().user_arn(bob.pk) in remote(chime, general).read_markers
    message_delete(message=sent.message, by=alice)
    assert stored["_deleted"]


def test_the_fake_checks_signatures_and_bearers(chime):
    client = boto3.client(
        "chime-sdk-messaging",
        endpoint_url=chime.messaging_url,
        region_name=fake_module.REGION,
        aws_access_key_id=fake_module.ACCESS_KEY,
        aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(ClientError) as bad_signature:
        client.get_messaging_session_endpoint()
    assert bad_signature.value.response["Error"]["Code"] == "ForbiddenException"
    good = get_backend().api.messaging
    with pytest.raises(ClientError) as bad_bearer:
        good.list_channels(
            AppInstanceArn=config().app_instance_arn,
            ChimeBearer=config().app_instance_arn + "/user/nobody",
        )
    assert bad_bearer.value.response["Error"]["Code"] == "ForbiddenException"


def test_local_backend_still_the_default(alice, general):
    assert get_backend().name == "local"
    sent = message_send(channel=general, author=alice, body="local", client_id=uuid.uuid4())
    assert sent.message.external_id == ""


def test_http_post_works_with_chime(chime, alice, general):
    client: Client = __import__("conftest").client_for(alice)
    response = client.post(
        f"/api/channels/{general.id}/messages/",
        data=json.dumps({"body": "over HTTP", "client_id": str(uuid.uuid4())}),
        content_type="application/json",
    )
    assert response.status_code in (200, 201), response.content
    assert Message.objects.get(channel=general).external_id
