"""The Chime bridge (`manage.py chime_bridge`) against the fake Chime on loopback: messages
other Chime clients send reach our sockets live, a dead bridge's gap is filled when it comes
back, dropped sessions reconnect, and health is reported."""

from __future__ import annotations

import io
import threading
import time

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from chat.backends.chime import ChimeConfig
from chat.chime_bridge import HEALTH_TTL, Bridge, health, retryable
from chat.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


def wait_until(predicate, timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


class Running:
    """A bridge in a thread, as `manage.py chime_bridge` runs it."""

    def __init__(self) -> None:
        self.bridge = Bridge()
        self.result: list[int] = []

        def run() -> None:
            try:
                self.result.append(self.bridge.run())
            finally:
                connection.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert wait_until(lambda: self.bridge.connected), "the bridge did not connect"

    def kill(self) -> None:
        self.bridge.kill()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def bridge(chime):
    running = Running()
    yield running
    running.kill()


def arns(*users):
    cfg = ChimeConfig.from_settings()
    return [cfg.user_arn(u.pk) for u in users]


def channel_arn(channel) -> str:
    return ChimeConfig.from_settings().channel_arn(channel.pk)


def test_close_codes_follow_the_chime_sdk_rule():
    assert all(retryable(c) for c in (1001, 1006, 1011, 1014, 4001, 4010, 4999))
    assert not any(retryable(c) for c in (1000, 1008, 4002, 4003, 4401))


async def test_another_clients_message_appears_live(chime, bridge, connect, alice, bob, general):
    a = await connect(alice)
    await a.subscribe(general.id)
    (bob_arn,) = arns(bob)
    message_id = await db(chime.post_as)(bob_arn, channel_arn(general), "hi from another app")
    pushed = (await a.recv_type("message.new", timeout=8))["message"]
    assert pushed["body"] == "hi from another app"
    assert pushed["author"]["id"] == bob.id
    stored = await db(Message.objects.get)(id=pushed["id"])
    assert stored.external_id == message_id and stored.seq == pushed["seq"] == 1
    # Our own sends come back on the session too, and are not stored twice.
    await a.send(
        {
            "type": "message.send",
            "channel": general.id,
            "client_id": "6b0f1c2e-6d0c-4d55-9f3e-4f4c8d2c1a01",
            "body": "mine",
        }
    )
    await a.recv_type("message.ack")
    await db(wait_until)(lambda: bridge.bridge.stats.events >= 2)
    assert await db(Message.objects.filter(channel=general).count)() == 2
    assert bridge.bridge.stats.drift == 0


def test_edits_and_deletions_from_elsewhere_are_applied(chime, bridge, bob, general):
    (bob_arn,) = arns(bob)
    message_id = chime.post_as(bob_arn, channel_arn(general), "typo")
    assert wait_until(lambda: Message.objects.filter(external_id=message_id).exists())
    api = bridge.bridge.backend.api
    api.messaging.update_channel_message(
        ChannelArn=channel_arn(general), MessageId=message_id, Content="fixed", ChimeBearer=bob_arn
    )
    assert wait_until(lambda: Message.objects.get(external_id=message_id).body == "fixed")
    api.messaging.redact_channel_message(
        ChannelArn=channel_arn(general), MessageId=message_id, ChimeBearer=bob_arn
    )
    assert wait_until(lambda: Message.objects.get(external_id=message_id).is_deleted)


def test_a_dead_bridge_catches_up_when_restarted(chime, bob, general):
    (bob_arn,) = arns(bob)
    first = Running()
    chime.post_as(bob_arn, channel_arn(general), "before")
    assert wait_until(lambda: Message.objects.filter(channel=general).count() == 1)
    first.kill()
    # While no bridge runs, more than a page (50) of messages arrives.
    for i in range(60):
        chime.post_as(bob_arn, channel_arn(general), f"while away {i}")
    assert Message.objects.filter(channel=general).count() == 1
    second = Running()
    try:
        assert wait_until(lambda: Message.objects.filter(channel=general).count() == 61)
        bodies = list(
            Message.objects.filter(channel=general).order_by("seq").values_list("body", flat=True)
        )
        assert bodies == ["before"] + [f"while away {i}" for i in range(60)]
        seqs = list(
            Message.objects.filter(channel=general).order_by("seq").values_list("seq", flat=True)
        )
        assert seqs == list(range(1, 62))
    finally:
        second.kill()


def test_a_dropped_session_reconnects_and_misses_nothing(chime, bridge, bob, general):
    (bob_arn,) = arns(bob)
    chime.drop_sessions(1011)
    chime.post_as(bob_arn, channel_arn(general), "during the drop")
    assert wait_until(lambda: bridge.bridge.stats.reconnects >= 1)
    assert wait_until(lambda: bridge.bridge.connected)
    chime.post_as(bob_arn, channel_arn(general), "after the drop")
    assert wait_until(lambda: Message.objects.filter(channel=general).count() == 2)
    assert Message.objects.filter(body="during the drop").count() == 1


def test_a_non_retryable_close_stops_the_bridge(chime, bridge):
    chime.drop_sessions(4003)
    bridge.thread.join(30)  # a loaded machine may take a while to see the close
    assert bridge.result == [1]
    assert health()["connected"] is False


def test_health_is_reported_and_read(chime, bridge, bob, general):
    (bob_arn,) = arns(bob)
    chime.post_as(bob_arn, channel_arn(general), "tick")
    assert wait_until(lambda: (health() or {}).get("stored", 0) >= 1)
    out = io.StringIO()
    call_command("chime_bridge", "--health", stdout=out)
    assert '"connected": true' in out.getvalue()
    assert health()["lag_seconds"] is not None
    bridge.kill()
    with pytest.raises(CommandError, match="not connected"):
        call_command("chime_bridge", "--health", stdout=io.StringIO())


def test_doctor_checks_chime(chime, bridge):
    out = io.StringIO()
    call_command("doctor", stdout=out)
    assert "reachable, bridge user exists" in out.getvalue()
    chime.unavailable = True
    with pytest.raises(CommandError):
        call_command("doctor", stdout=io.StringIO())


def test_membership_events_from_elsewhere(chime, bridge, alice, bob, carol, community):
    from chat.models import ChannelMember
    from chat.services import channel_create, channel_member_add

    secret = channel_create(community=community, name="secret", by=alice, kind="private")
    channel_member_add(channel=secret, user=bob, by=alice)
    api = bridge.bridge.backend.api
    alice_arn, bob_arn, carol_arn = arns(alice, bob, carol)
    # A Chime moderator elsewhere (alice's own Chime client) removes bob: he left it here too.
    api.messaging.delete_channel_membership(
        ChannelArn=channel_arn(secret), MemberArn=bob_arn, ChimeBearer=alice_arn
    )
    assert wait_until(lambda: not ChannelMember.objects.filter(channel=secret, user=bob).exists())
    # Carol added elsewhere is drift, left for chime_sync; our own additions are not.
    api.messaging.create_channel_membership(
        ChannelArn=channel_arn(secret), MemberArn=carol_arn, Type="DEFAULT", ChimeBearer=alice_arn
    )
    assert wait_until(lambda: bridge.bridge.stats.drift == 1)
    assert not ChannelMember.objects.filter(channel=secret, user=carol).exists()


def test_readyz_reports_a_connected_bridge(chime, bridge, bob, general, client):
    (bob_arn,) = arns(bob)
    chime.post_as(bob_arn, channel_arn(general), "tick")
    assert wait_until(lambda: (health() or {}).get("stored", 0) >= 1)
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    report = body["chime_bridge"]
    assert report["status"] == "ok"
    assert report["connected"] is True
    assert 0 <= report["last_event_age_seconds"] < HEALTH_TTL
    assert report["lag_seconds"] is not None


def test_readyz_stays_ready_while_the_bridge_is_down(chime, bridge, client):
    bridge.kill()
    response = client.get("/readyz")
    # Sends still go to Chime from this process; only events from other Chime clients wait.
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["chime_bridge"]["connected"] is False
    assert body["chime_bridge"]["status"].startswith("error: the bridge is not connected")


def test_readyz_and_doctor_with_no_bridge_ever(chime, client):
    body = client.get("/readyz").json()
    assert body["status"] == "ok"
    assert body["chime_bridge"] == {
        "status": "error: no bridge has reported (is `manage.py chime_bridge` running?)",
        "connected": False,
        "last_event_age_seconds": None,
        "lag_seconds": None,
    }
    out = io.StringIO()
    call_command("doctor", stdout=out)
    assert "warn  Chime bridge: no bridge has reported" in out.getvalue()
    assert "fix: start `manage.py chime_bridge`" in out.getvalue()


def test_doctor_names_the_fix_for_a_stopped_bridge(chime, bridge):
    chime.drop_sessions(4003)
    bridge.thread.join(30)  # a loaded machine may take a while to see the close
    out = io.StringIO()
    call_command("doctor", stdout=out)
    text = out.getvalue()
    assert "Chime bridge: the bridge is not connected to the Chime messaging session" in text
    assert "fix: see the bridge's log" in text
    assert "restart `manage.py chime_bridge`" in text


# --- bans made in Chime -----------------------------------------------------------------------


def other_channel(community, alice):
    from chat.services import channel_create

    return channel_create(community=community, name="lenses", by=alice)


def membership_frame(channel, user) -> str:
    """The DELETE_CHANNEL_MEMBERSHIP frame Chime sends, as the session delivers it (a replay)."""
    import json

    (user_arn,) = arns(user)
    payload = {"ChannelArn": channel_arn(channel), "Member": {"Arn": user_arn}, "Type": "DEFAULT"}
    return json.dumps(
        {
            "Headers": {"x-amz-chime-event-type": "DELETE_CHANNEL_MEMBERSHIP"},
            "Payload": json.dumps(payload),
        }
    )


async def test_a_ban_made_in_chime_bans_here(
    chime, bridge, connect, alice, bob, community, general
):
    from chat.models import ChannelMember
    from communities.models import AuditEntry, Ban
    from communities.policy import active_ban

    lenses = await db(other_channel)(community, alice)
    b = await connect(bob)
    await b.subscribe(general.id)
    alice_arn, bob_arn = arns(alice, bob)
    # alice moderates the Chime channel; on another Chime client she bans bob there. Chime
    # kicks him (DELETE_CHANNEL_MEMBERSHIP) and sends nothing else.
    api = bridge.bridge.backend.api
    await db(api.messaging.create_channel_ban)(
        ChannelArn=channel_arn(general), MemberArn=bob_arn, ChimeBearer=alice_arn
    )
    dropped = await b.recv_type("unsubscribed", timeout=10)
    assert dropped == {"type": "unsubscribed", "channel": general.id, "reason": "removed"}
    restriction = await b.recv_type("restriction")
    assert restriction["kind"] == "ban" and restriction["community"] == community.id
    assert restriction["until"] is None
    # He cannot come back or post.
    await b.send({"type": "subscribe", "channel": general.id})
    assert (await b.recv_type("error"))["code"] == "banned"
    await b.send(
        {
            "type": "message.send",
            "channel": general.id,
            "client_id": "0d9c7f43-34f5-4bd2-8b38-4f1b1f2f7d11",
            "body": "let me in",
        }
    )
    assert (await b.recv_type("error"))["code"] == "banned"

    def state():
        ban = active_ban(bob, community)
        entries = list(AuditEntry.objects.filter(community=community, action=AuditEntry.Action.BAN))
        return ban, entries

    ban, entries = await db(state)()
    assert ban is not None and ban.created_by is None and ban.until is None
    assert ban.reason == "Channel ban made in Chime on #general by Alice Adams"
    # The moderation log shows it, made by no app user ("system").
    assert [(e.actor_id, e.target_id, e.reason) for e in entries] == [(None, bob.id, ban.reason)]
    assert not await db(ChannelMember.objects.filter(user=bob).exists)()
    # Mirrored as any ban: bob is banned in Chime on the community's other channel too, by the
    # bridge user, and that removal coming back is not imported again.
    remote = chime.channels[channel_arn(lenses)]
    assert bob_arn in remote.bans and bob_arn not in remote.members
    assert remote.bans[bob_arn][1] == bridge.bridge.config.bridge_user_arn
    await db(wait_until)(lambda: bridge.bridge.later == [] and bridge.bridge.stats.events >= 2)
    await db(time.sleep)(2.5)  # past the settling time of the mirrored removals
    assert bridge.bridge.stats.bans_imported == 1
    assert await db(Ban.objects.filter(user=bob).count)() == 1
    assert bridge.bridge.stats.drift == 0
    assert (health() or {}).get("bans_imported") == 1


def test_a_ban_replayed_is_applied_once(chime, bridge, alice, bob, community, general):
    from communities.models import AuditEntry, Ban

    alice_arn, bob_arn = arns(alice, bob)
    bridge.bridge.backend.api.messaging.create_channel_ban(
        ChannelArn=channel_arn(general), MemberArn=bob_arn, ChimeBearer=alice_arn
    )
    assert wait_until(lambda: Ban.objects.filter(user=bob).exists())
    # The same event again (a replayed frame), applied at once.
    bridge.kill()
    replay = Bridge()
    replay.handle(membership_frame(general, bob))
    replay.settle(force=True)
    assert Ban.objects.filter(user=bob, community=community).count() == 1
    assert AuditEntry.objects.filter(action=AuditEntry.Action.BAN).count() == 1
    assert replay.stats.bans_imported == 0


def test_a_removal_that_is_not_a_ban_is_not_one(chime, bridge, alice, bob, community, general):
    from chat.models import ChannelMember
    from chat.services import channel_create, channel_member_add
    from communities.models import Ban

    secret = channel_create(community=community, name="secret", by=alice, kind="private")
    channel_member_add(channel=secret, user=bob, by=alice)
    api = bridge.bridge.backend.api
    alice_arn, bob_arn = arns(alice, bob)
    # Removed from an open channel on another client: drift (left for chime_sync), no ban.
    api.messaging.delete_channel_membership(
        ChannelArn=channel_arn(general), MemberArn=bob_arn, ChimeBearer=alice_arn
    )
    assert wait_until(lambda: bridge.bridge.stats.drift == 1)
    assert ChannelMember.objects.filter(channel=general, user=bob).exists()
    # Removed from a private channel: he left it, and nothing more.
    api.messaging.delete_channel_membership(
        ChannelArn=channel_arn(secret), MemberArn=bob_arn, ChimeBearer=alice_arn
    )
    assert wait_until(lambda: not ChannelMember.objects.filter(channel=secret, user=bob).exists())
    assert not Ban.objects.filter(user=bob).exists()
    assert bridge.bridge.stats.bans_imported == 0


def test_a_chime_ban_of_a_moderator_is_not_applied(chime, bridge, alice, bob, community, general):
    from communities.models import Ban, Membership
    from communities.services import membership_set_role

    membership_set_role(community=community, user=bob, role=Membership.Role.MODERATOR, by=alice)
    alice_arn, bob_arn = arns(alice, bob)
    bridge.bridge.backend.api.messaging.create_channel_ban(
        ChannelArn=channel_arn(general), MemberArn=bob_arn, ChimeBearer=alice_arn
    )
    assert wait_until(lambda: bridge.bridge.stats.drift == 1)
    assert not Ban.objects.filter(user=bob).exists()
    assert Membership.objects.filter(community=community, user=bob).exists()
