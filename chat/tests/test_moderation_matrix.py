"""Who may use each moderator's power, walked as a table through the HTTP API and the socket:
every kind of person by every action. Only the right ones succeed; the others get an error and
change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.utils import timezone

from accounts.services import site_roles_set
from chat import moderation
from chat.models import Channel, HeldMessage, Message, Report
from communities.models import AuditEntry, Ban, Membership
from communities.services import (
    community_create,
    community_filter_set,
    membership_ban,
    membership_join,
    membership_set_role,
    membership_timeout,
)
from conftest import client_for, say
from hobbies.errors import HeldForReview

ACTORS = [
    "anonymous",
    "non-member",
    "member",
    "timed-out member",
    "banned user",
    "moderator elsewhere",
    "moderator",
    "owner",
    "site moderator",
    "superuser",
]
STAFF = {"moderator", "owner", "site moderator", "superuser"}
ABOVE_MODERATORS = {"owner", "site moderator", "superuser"}

# Action → who may (everyone else may not).
MAY: dict[str, set[str]] = {
    "message.remove": STAFF,
    "message.restore": STAFF,
    "message.report": {"member", "timed-out member", "moderator", "owner"},
    "report.resolve": STAFF,
    "member.timeout": STAFF,
    "member.timeout (a moderator)": ABOVE_MODERATORS,
    "member.timeout (the owner)": {"site moderator", "superuser"},
    "member.timeout (yourself)": set(),
    "member.timeout_end": STAFF,
    "member.ban": STAFF,
    "member.ban (a moderator)": ABOVE_MODERATORS,
    "member.unban": STAFF,
    "member.cleanup": STAFF,
    "channel.slow_mode": STAFF,
    "community.filter": STAFF,
    "held.approve": STAFF,
    "held.reject": STAFF,
    "read the audit log": STAFF,
    "read the queue": STAFF,
    "read a removed message": STAFF,
}


@pytest.fixture
def world(make_user, alice, bob, community):
    """alice owns Photography; bob is a member; mo moderates it; writer posts; tm is timed
    out; banned is banned; elsewhere moderates Chess; a site moderator and a superuser."""
    mo = make_user("mo")
    membership_join(community=community, user=mo)
    membership_set_role(community=community, user=mo, role="moderator", by=alice)
    peer = make_user("peer")
    membership_join(community=community, user=peer)
    membership_set_role(community=community, user=peer, role="moderator", by=alice)
    writer = make_user("writer")
    membership_join(community=community, user=writer)
    tm = make_user("tm")
    membership_join(community=community, user=tm)
    banned = make_user("banned")
    membership_join(community=community, user=banned)
    elsewhere = make_user("elsewhere")
    community_create(name="Chess", by=elsewhere)
    site_moderator = make_user("sitemod")
    site_roles_set(user=site_moderator, roles=["moderator"])
    superuser = make_user("root")
    site_roles_set(user=superuser, roles=["admin"])
    general = Channel.objects.get(community=community, name="general")
    message = say(general, writer, "buy cheap watches")
    removed = say(general, writer, "already removed")
    moderation.message_remove(message=removed, by=alice, reason="spam")
    witness = make_user("witness")
    membership_join(community=community, user=witness)
    moderation.report_create(message=message, by=witness, reason="spam")
    community_filter_set(community=community, by=alice, blocked_words="", held_words="casino")
    general = Channel.objects.select_related("community").get(id=general.id)
    with pytest.raises(HeldForReview) as held:
        say(general, writer, "casino night")
    soon = timezone.now() + timedelta(hours=1)
    membership_timeout(community=community, user=tm, by=alice, until=soon, reason="cool off")
    membership_ban(community=community, user=banned, by=alice, reason="spam")
    actors = {
        "anonymous": AnonymousUser(),
        "non-member": make_user("stranger"),
        "member": bob,
        "timed-out member": tm,
        "banned user": banned,
        "moderator elsewhere": elsewhere,
        "moderator": mo,
        "owner": alice,
        "site moderator": site_moderator,
        "superuser": superuser,
    }
    return {
        "community": community,
        "general": general,
        "message": message,
        "removed": removed,
        "held": held.value.held,
        "writer": writer,
        "peer": peer,
        "tm": tm,
        "banned": banned,
        "actors": actors,
    }


def request_for(world: dict[str, Any], actor: Any, action: str) -> tuple[str, str, dict]:
    """(method, url, JSON body) for `action` as `actor`."""
    slug = world["community"].slug
    target = {
        "member.timeout (a moderator)": world["peer"],
        "member.ban (a moderator)": world["peer"],
        "member.timeout (the owner)": world["actors"]["owner"],
        "member.timeout (yourself)": actor,
    }
    if action in target:
        name = action.split(" ")[0]
        return (
            "post",
            "/api/moderation/",
            {
                "action": name,
                "community": slug,
                "user": getattr(target[action], "pk", None) or 0,
                "minutes": 60,
                "reason": "r",
            },
        )
    body: dict[str, Any] = {
        "message.remove": {"message": world["message"].id, "reason": "spam"},
        "message.restore": {"message": world["removed"].id},
        "message.report": {"message": world["message"].id, "reason": "spam", "note": "n"},
        "report.resolve": {"message": world["message"].id, "outcome": "dismiss"},
        "member.timeout": {"community": slug, "user": world["writer"].id, "minutes": 60},
        "member.timeout_end": {"community": slug, "user": world["tm"].id},
        "member.ban": {"community": slug, "user": world["writer"].id, "reason": "spam"},
        "member.unban": {"community": slug, "user": world["banned"].id},
        "member.cleanup": {"community": slug, "user": world["writer"].id, "window": "all"},
        "channel.slow_mode": {"channel": world["general"].id, "seconds": 30},
        "community.filter": {"community": slug, "blocked": "scam", "held": ""},
        "held.approve": {"held": world["held"]},
        "held.reject": {"held": world["held"]},
    }.get(action, {})
    if action == "read the audit log":
        return "get", f"/api/communities/{slug}/moderation/log/", {}
    if action == "read the queue":
        return "get", f"/api/communities/{slug}/moderation/queue/", {}
    if action == "read a removed message":
        return "get", f"/api/messages/{world['removed'].id}/moderation/", {}
    return "post", "/api/moderation/", {"action": action, **body}


def state(world: dict[str, Any]) -> dict[str, Any]:
    """Everything a moderation action could change."""
    community = world["community"]
    return {
        "audit": AuditEntry.objects.filter(community=community).count(),
        "bans": list(Ban.objects.filter(community=community).values_list("user", "lifted_at")),
        "members": sorted(
            Membership.objects.filter(community=community).values_list(
                "user", "role", "timeout_until"
            )
        ),
        "messages": list(
            Message.objects.filter(channel__community=community).values_list(
                "id", "deleted_at", "removed"
            )
        ),
        "reports": list(Report.objects.values_list("id", "resolved_at")),
        "held": list(HeldMessage.objects.values_list("id", "status")),
        "slow": list(Channel.objects.values_list("id", "slow_mode_seconds")),
        "filter": (community.blocked_words, community.held_words),
    }


def fresh(world: dict[str, Any]) -> dict[str, Any]:
    world["community"].refresh_from_db()
    return state(world)


@pytest.mark.django_db
@pytest.mark.parametrize("action", list(MAY))
@pytest.mark.parametrize("actor_name", ACTORS)
def test_moderation_matrix_over_http(world, actor_name, action):
    actor = world["actors"][actor_name]
    client = Client() if actor_name == "anonymous" else client_for(actor)
    method, url, body = request_for(world, actor, action)
    before = fresh(world)

    if method == "get":
        response = client.get(url)
    else:
        response = client.post(url, body, content_type="application/json")

    allowed = actor_name in MAY[action]
    assert (response.status_code in (200, 201)) == allowed, (response.status_code, response.json())
    after = fresh(world)
    if allowed and method == "post":
        assert after != before
        if action != "message.report":
            assert after["audit"] > before["audit"]  # every power leaves an audit entry
    else:
        assert after == before
        if not allowed:
            assert response.status_code in (401, 403, 404), response.json()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("actor_name", [a for a in ACTORS if a != "anonymous"])
async def test_remove_over_the_socket_matrix(world, connect, actor_name):
    actor = world["actors"][actor_name]
    socket = await connect(actor)
    await socket.send({"type": "message.remove", "message": world["message"].id, "reason": "x"})
    frame = await socket.recv_type("done" if actor_name in STAFF else "error")
    message = await database_sync_to_async(Message.objects.get)(id=world["message"].id)
    assert message.removed == (actor_name in STAFF)
    if actor_name not in STAFF:
        assert frame["code"] in ("not_found", "forbidden", "banned")
        if actor_name == "banned user":
            assert frame["code"] == "not_found"  # moderators' fetch: nothing to see here
