"""Each moderator's power through the page, the API and the socket, with its live effect on a
second connected user and the audit entry it leaves."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chat.models import Channel, HeldMessage, Message, Report
from communities.models import AuditEntry, Ban, Membership
from communities.services import (
    community_filter_set,
    membership_join,
    membership_join_by_invite,
    membership_set_role,
)
from conftest import client_for, say
from hobbies.errors import Banned

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


def entries(community, action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(community=community, action=action))


def send(channel_id: int, body: str) -> dict:
    return {
        "type": "message.send",
        "channel": channel_id,
        "client_id": str(uuid.uuid4()),
        "body": body,
    }


@pytest.fixture
def mo(make_user, alice, community):
    """A moderator of Photography (alice owns it; bob and carol are members)."""
    user = make_user("mo", display_name="Mo Moderator")
    membership_join(community=community, user=user)
    membership_set_role(community=community, user=user, role="moderator", by=alice)
    return user


async def test_remove_over_the_socket_reaches_readers_and_keeps_the_text_for_moderators(
    connect, mo, bob, carol, general, community
):
    message = await db(say)(general, carol, "buy my followers")
    reader = await connect(bob)
    await reader.subscribe(general.id)
    moderator = await connect(mo)

    await moderator.send({"type": "message.remove", "message": message.id, "reason": "spam"})

    assert (await moderator.recv_type("done"))["action"] == "message.remove"
    gone = (await reader.recv_type("message.deleted"))["message"]
    assert gone["removed"] is True and gone["deleted"] is True
    assert gone["body"] == "" and "Removed by a moderator." in gone["html"]
    assert "buy my followers" not in gone["html"]
    # The author's view: the same tombstone, from history too.
    history = await db(lambda: client_for(carol).get(f"/api/channels/{general.id}/messages/"))()
    assert history.json()["messages"][-1]["removed"] is True
    # Moderators open it, with its text; members cannot.
    kept = await db(lambda: client_for(mo).get(f"/api/messages/{message.id}/moderation/"))()
    assert kept.json()["body"] == "buy my followers"
    assert kept.json()["removal_reason"] == "spam"
    page = await db(
        lambda: client_for(mo).get(f"/c/photography/moderation/messages/{message.id}/")
    )()
    assert "buy my followers" in page.content.decode()
    refused = await db(lambda: client_for(bob).get(f"/api/messages/{message.id}/moderation/"))()
    assert refused.status_code == 404
    [entry] = await db(entries)(community, "message.remove")
    assert (entry.actor_id, entry.target_id, entry.message_id, entry.reason) == (
        mo.id,
        carol.id,
        message.id,
        "spam",
    )
    assert entry.undo == "message.restore"


async def test_restore_from_the_audit_log_page_shows_the_message_again(
    connect, mo, bob, carol, general, community
):
    message = await db(say)(general, carol, "actually fine")
    api = await db(client_for)(mo)
    removed = await db(
        lambda: api.post(
            "/api/moderation/",
            {"action": "message.remove", "message": message.id},
            content_type="application/json",
        )
    )()
    assert removed.status_code == 200
    reader = await connect(bob)
    await reader.subscribe(general.id)
    log = await db(lambda: api.get("/c/photography/moderation/log/"))()
    assert "Restore" in log.content.decode()

    page = await db(
        lambda: api.post(
            "/c/photography/moderation/act/",
            {
                "action": "message.restore",
                "message": message.id,
                "next": "/c/photography/moderation/log/",
            },
        )
    )()

    assert page.status_code == 302
    back = (await reader.recv_type("message.updated"))["message"]
    assert back["removed"] is False and back["body"] == "actually fine"
    assert len(await db(entries)(community, "message.restore")) == 1


async def test_report_queue_resolve_with_timeout_tells_everyone(
    connect, alice, bob, carol, general, community
):
    message = await db(say)(general, carol, "you are all idiots")
    owner = await connect(alice)
    reporter = await connect(bob)
    author = await connect(carol)
    await author.subscribe(general.id)

    await reporter.send(
        {"type": "message.report", "message": message.id, "reason": "harassment", "note": "rude"}
    )
    assert (await reporter.recv_type("done"))["action"] == "message.report"
    queue = await owner.recv_type("moderation.queue")
    assert (queue["community"], queue["reports"], queue["held"]) == (community.id, 1, 0)
    # Once per message.
    await reporter.send({"type": "message.report", "message": message.id, "reason": "spam"})
    assert (await reporter.recv_type("error"))["code"] == "conflict"
    # The queue page shows it in context with the reporter count.
    page = await db(lambda: client_for(alice).get("/c/photography/moderation/"))()
    assert 'data-testid="reported"' in page.content.decode()
    assert "1 report" in page.content.decode() and "rude" in page.content.decode()

    resolved = await db(
        lambda: client_for(alice).post(
            "/api/moderation/",
            {
                "action": "report.resolve",
                "message": message.id,
                "outcome": "timeout",
                "minutes": 60,
                "reason": "insults",
            },
            content_type="application/json",
        )
    )()

    assert resolved.status_code == 200 and resolved.json()["resolved"] == 1
    told = await reporter.recv_type("report.resolved")
    assert told["outcome"] == "timeout" and told["message"] == message.id
    restriction = await author.recv_type("restriction")
    assert restriction["kind"] == "timeout" and restriction["until"]
    assert (await owner.recv_type("moderation.queue"))["reports"] == 0
    # The timed-out author reads but cannot post, react or edit, and is told until when.
    await author.send(send(general.id, "let me explain"))
    error = await author.recv_type("error")
    assert error["code"] == "timed_out" and error["until"] == restriction["until"]
    await author.send({"type": "reaction.add", "message": message.id, "emoji": "👍"})
    assert (await author.recv_type("error"))["code"] == "timed_out"
    api = await db(
        lambda: client_for(carol).post(
            f"/api/channels/{general.id}/messages/",
            {"body": "hi", "client_id": str(uuid.uuid4())},
            content_type="application/json",
        )
    )()
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "timed_out" and api.json()["error"]["until"]
    page = await db(lambda: client_for(carol).get("/c/photography/general/"))()
    assert 'data-testid="timeout-note"' in page.content.decode()
    actions = await db(
        lambda: list(
            AuditEntry.objects.filter(community=community).values_list("action", flat=True)
        )
    )()
    assert set(actions) == {"member.timeout", "report.resolve"}
    # The reporter also sees it on their next page load, once.
    first = await db(lambda: client_for(bob).get("/c/photography/general/"))()
    assert "Your report was handled by a moderator" in first.content.decode()
    again = await db(lambda: client_for(bob).get("/c/photography/general/"))()
    assert "Your report was handled" not in again.content.decode()


async def test_a_timeout_ends_by_itself(connect, alice, carol, general, community, monkeypatch):
    response = await db(
        lambda: client_for(alice).post(
            "/c/photography/moderation/act/",
            {
                "action": "member.timeout",
                "user": carol.id,
                "minutes": "10",
                "reason": "cool off",
                "next": "/c/photography/manage/",
            },
        )
    )()
    assert response.status_code == 302
    author = await connect(carol)
    await author.send(send(general.id, "still here?"))
    assert (await author.recv_type("error"))["code"] == "timed_out"
    later = timezone.now() + timedelta(minutes=11)
    monkeypatch.setattr(timezone, "now", lambda: later)
    await author.send(send(general.id, "back again"))
    assert (await author.recv_type("message.ack"))["message"]["body"] == "back again"


async def test_ban_from_the_manage_page_cuts_the_sockets_and_keeps_them_out(
    connect, alice, bob, carol, general, community
):
    banned_socket = await connect(carol)
    await banned_socket.subscribe(general.id)
    reader = await connect(bob)
    await reader.subscribe(general.id)

    response = await db(
        lambda: client_for(alice).post(
            "/c/photography/moderation/act/",
            {
                "action": "member.ban",
                "user": carol.id,
                "days": "7",
                "reason": "spam",
                "next": "/c/photography/manage/",
            },
        )
    )()

    assert response.status_code == 302
    dropped = await banned_socket.recv_type("unsubscribed")
    assert dropped == {"type": "unsubscribed", "channel": general.id, "reason": "removed"}
    restriction = await banned_socket.recv_type("restriction")
    assert restriction["kind"] == "ban" and restriction["community"] == community.id
    await db(say)(general, bob, "after the ban")
    assert (await reader.recv_type("message.new"))["message"]["body"] == "after the ban"
    assert await banned_socket.nothing()
    await banned_socket.send({"type": "subscribe", "channel": general.id})
    error = await banned_socket.recv_type("error")
    assert error["code"] == "banned" and error["until"]
    await banned_socket.send(send(general.id, "let me in"))
    assert (await banned_socket.recv_type("error"))["code"] == "banned"
    # Cannot rejoin, ask, or use an invite.
    join = await db(lambda: client_for(carol).post("/c/photography/join/", {"next": "/"}))()
    assert join.status_code == 302
    assert not await db(Membership.objects.filter(community=community, user=carol).exists)()
    with pytest.raises(Banned):
        await db(membership_join_by_invite)(code=community.invite_code, user=carol)
    page = await db(lambda: client_for(carol).get("/c/photography/general/"))()
    assert page.status_code == 403 and "banned" in page.content.decode()
    [entry] = await db(entries)(community, "member.ban")
    assert entry.target_id == carol.id and entry.undo == "member.unban"
    # Unban over the socket: they may join again.
    owner = await connect(alice)
    await owner.send({"type": "member.unban", "community": community.id, "user": carol.id})
    assert (await owner.recv_type("done"))["action"] == "member.unban"
    await db(lambda: client_for(carol).post("/c/photography/join/"))()
    assert await db(Membership.objects.filter(community=community, user=carol).exists)()


async def test_cleanup_after_a_spammer_removes_their_messages_live_and_bans(
    connect, mo, bob, carol, general, community, no_rate_limits
):
    spam = [await db(say)(general, carol, f"spam {n}") for n in range(3)]
    kept = await db(say)(general, bob, "real talk")
    reader = await connect(bob)
    await reader.subscribe(general.id)

    response = await db(
        lambda: client_for(mo).post(
            "/api/moderation/",
            {
                "action": "member.cleanup",
                "community": "photography",
                "user": carol.id,
                "window": "hour",
                "ban": True,
            },
            content_type="application/json",
        )
    )()

    assert response.status_code == 200 and response.json()["removed"] == 3
    gone = [(await reader.recv_type("message.deleted"))["message"]["id"] for _ in spam]
    assert sorted(gone) == [m.id for m in spam]
    assert not (await db(Message.objects.get)(id=kept.id)).is_deleted
    assert await db(Ban.objects.active().filter(community=community, user=carol).exists)()
    actions = await db(
        lambda: sorted(
            # Making the moderator (the fixture) is logged too.
            AuditEntry.objects.exclude(action="member.role").values_list("action", flat=True)
        )
    )()
    assert actions == ["member.ban", "member.cleanup"]


async def test_slow_mode_over_the_socket_with_the_wait_and_moderators_exempt(
    connect, alice, bob, general, community
):
    owner = await connect(alice)
    member = await connect(bob)
    await member.subscribe(general.id)

    await owner.send({"type": "channel.slow_mode", "channel": general.id, "seconds": 60})

    assert (await owner.recv_type("done"))["seconds"] == 60
    assert (await member.recv_type("channel.updated"))["slow_mode"] == 60
    await member.send(send(general.id, "first"))
    await member.recv_type("message.ack")
    await member.recv_type("message.new")
    await member.send(send(general.id, "second"))
    error = await member.recv_type("error")
    assert error["code"] == "slow_mode" and error["until"]
    await owner.send(send(general.id, "moderators are exempt"))
    await owner.recv_type("message.ack")
    await owner.send(send(general.id, "twice"))
    await owner.recv_type("message.ack")
    [entry] = await db(entries)(community, "channel.slow_mode")
    assert entry.detail["seconds"] == 60
    page = await db(lambda: client_for(bob).get("/c/photography/general/"))()
    assert 'data-slow-mode="60"' in page.content.decode()


async def test_word_filter_blocks_or_holds_and_approval_gives_the_next_position(
    connect, alice, bob, carol, general, community
):
    await db(community_filter_set)(
        community=community, by=alice, blocked_words="scam", held_words="casino"
    )
    owner = await connect(alice)
    reader = await connect(bob)
    await reader.subscribe(general.id)
    author = await connect(carol)

    await author.send(send(general.id, "a SCAM here"))
    blocked = await author.recv_type("error")
    assert blocked["code"] == "blocked" and "scam" in blocked["detail"].lower()
    held_frame = send(general.id, "casino night at mine")
    await author.send(held_frame)
    pending = await author.recv_type("error")
    assert pending["code"] == "pending_review" and pending["ref"] == held_frame["client_id"]
    assert (await owner.recv_type("moderation.queue"))["held"] == 1
    assert await reader.nothing()
    later = await db(say)(general, bob, "written after the held one")
    assert (await reader.recv_type("message.new"))["message"]["seq"] == later.seq

    approved = await db(
        lambda: client_for(alice).post(
            "/c/photography/moderation/act/",
            {
                "action": "held.approve",
                "held": pending["held"],
                "next": "/c/photography/moderation/",
            },
        )
    )()

    assert approved.status_code == 302
    new = (await reader.recv_type("message.new"))["message"]
    assert new["body"] == "casino night at mine" and new["seq"] == later.seq + 1
    decided = await author.recv_type("held.decided")
    assert decided["approved"] is True and decided["message"] == new["id"]
    held = await db(HeldMessage.objects.get)(id=pending["held"])
    assert held.status == "approved"
    assert len(await db(entries)(community, "held.approve")) == 1
    assert len(await db(entries)(community, "community.filter")) == 1


def test_remove_button_badge_and_report_form_on_pages(mo, bob, carol, general, community):
    message = say(general, carol, "hello")
    page = client_for(mo).get("/c/photography/general/").content.decode()
    assert 'data-can-moderate="1"' in page and 'id="queue-badge"' in page
    member_page = client_for(bob).get("/c/photography/general/").content.decode()
    assert 'data-can-moderate="0"' in member_page and "queue-badge" not in member_page
    form = client_for(bob).get(f"/messages/{message.id}/report/")
    assert form.status_code == 200
    sent = client_for(bob).post(
        f"/messages/{message.id}/report/", {"reason": "spam", "note": "ads"}
    )
    assert sent.status_code == 302
    assert Report.objects.get(message=message).reporter == bob
    assert "1 report" in client_for(mo).get("/c/photography/moderation/").content.decode()
    assert client_for(bob).get("/c/photography/moderation/").status_code == 403
    assert client_for(bob).get("/c/photography/moderation/log/").status_code == 403


def test_moderators_cannot_act_on_peers_or_owners_and_nobody_on_themselves(mo, alice, community):
    for target, action in (
        (alice, "member.ban"),
        (alice, "member.timeout"),
        (mo, "member.timeout"),
    ):
        response = client_for(mo).post(
            "/api/moderation/",
            {"action": action, "community": "photography", "user": target.id, "minutes": 60},
            content_type="application/json",
        )
        assert response.status_code == 403, (target, action)
    assert not AuditEntry.objects.exclude(action="member.role").exists()
    assert Channel.objects.filter(community=community).exists()


def test_admin_action_removes_through_the_service(site_moderator, carol, general, community):
    message = say(general, carol, "off topic ad")
    response = client_for(site_moderator).post(
        "/admin/chat/message/",
        {"action": "remove_messages", "_selected_action": [message.id]},
        follow=True,
    )
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.removed and message.body == "off topic ad"
    [entry] = entries(community, "message.remove")
    assert entry.actor == site_moderator


def test_two_sends_at_once_in_slow_mode_let_one_through(alice, bob, general):
    """Slow mode is checked again under the channel's row lock: two sends racing each other
    cannot both pass the check made before the lock."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    from chat.moderation import channel_slow_mode_set
    from chat.services import message_send
    from hobbies.errors import DomainError

    channel_slow_mode_set(channel=general, by=alice, seconds=60)
    general.refresh_from_db()
    start = Barrier(4)

    def send(n: int) -> str:
        try:
            start.wait()
            message_send(channel=general, author=bob, body=f"race {n}", client_id=uuid.uuid4())
            return "sent"
        except DomainError as error:
            return error.code
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(send, range(4)))
    assert outcomes == ["sent", "slow_mode", "slow_mode", "slow_mode"]
    assert Message.objects.filter(author=bob, channel=general).count() == 1
