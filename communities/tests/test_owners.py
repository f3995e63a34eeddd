"""Owners' self-service tools through the pages: the community's profile (rules, avatar),
ownership transfer, roles, join requests with their badges, and invite links that expire, run
out or are revoked. Each change is audited; who may do what is the policy's (table below)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from PIL import Image

from chat.models import Channel
from communities.models import AuditEntry, Community, Invite, JoinRequest, Membership
from communities.services import (
    community_create,
    invite_create,
    join_request_create,
    membership_ban,
    membership_join,
    membership_set_role,
)
from conftest import client_for


def png(size: int = 8) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), "red").save(buffer, "PNG")
    return SimpleUploadedFile("a.png", buffer.getvalue(), content_type="image/png")


def audit(community: Community, action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(community=community, action=action))


@pytest.fixture
def mo(make_user, alice, community):
    user = make_user("mo")
    membership_join(community=community, user=user)
    membership_set_role(community=community, user=user, role="moderator", by=alice)
    return user


def profile(**overrides):
    data = {
        "action": "profile",
        "name": "Photo Club",
        "description": "Film and digital.",
        "rules": "Be kind.\nNo spam.",
        "tags": "film, darkroom",
        "visibility": "private",
    }
    data.update(overrides)
    return data


def test_owner_edits_the_profile_with_rules_and_avatar(alice, bob, community):
    response = client_for(alice).post(
        "/c/photography/manage/", {**profile(), "avatar": png()}, follow=True
    )
    assert "Community saved." in response.content.decode()
    community.refresh_from_db()
    assert (community.name, community.visibility) == ("Photo Club", "private")
    assert community.rules == "Be kind.\nNo spam."
    assert sorted(community.tags.values_list("name", flat=True)) == ["darkroom", "film"]
    assert community.avatar.name.startswith("avatars/communities/")
    [entry] = audit(community, "community.update")
    assert entry.actor == alice
    assert set(entry.detail["changed"]) >= {"name", "rules", "visibility", "avatar", "tags"}
    # Shown before joining: the about page, and in the directory with the avatar.
    about = client_for(bob).get("/c/photography/?about").content.decode()
    assert "No spam." in about and community.avatar.url in about
    assert community.avatar.url in Client().get("/").content.decode()
    assert default_storage.exists(community.avatar.name)
    # Removing the avatar.
    client_for(alice).post("/c/photography/manage/", {**profile(), "clear_avatar": "1"})
    community.refresh_from_db()
    assert not community.avatar


def test_an_avatar_that_is_not_an_image_is_refused(alice, community):
    bad = SimpleUploadedFile("a.png", b"not an image", content_type="image/png")
    response = client_for(alice).post(
        "/c/photography/manage/", {**profile(), "avatar": bad}, follow=True
    )
    assert "not an image we can read" in response.content.decode()
    community.refresh_from_db()
    assert community.name == "Photography" and not community.avatar
    assert not audit(community, "community.update")


def test_rules_show_on_the_invite_page(alice, mallory, community):
    client_for(alice).post("/c/photography/manage/", profile(rules="Only film."))
    invite = invite_create(community=community, by=alice)
    page = client_for(mallory).get(f"/invite/{invite.code}/").content.decode()
    assert "Only film." in page


def test_transfer_ownership_makes_the_old_owner_a_moderator(alice, bob, community):
    client = client_for(alice)
    refused = client.post("/c/photography/manage/", {"action": "transfer", "user": bob.id})
    assert refused.status_code == 302  # not confirmed
    assert Membership.objects.get(community=community, user=alice).role == "owner"
    client.post("/c/photography/manage/", {"action": "transfer", "user": bob.id, "confirm": "yes"})
    roles = dict(Membership.objects.filter(community=community).values_list("user", "role"))
    assert roles == {alice.id: "moderator", bob.id: "owner"}
    [entry] = audit(community, "community.transfer")
    assert (entry.actor, entry.target, entry.detail["previous_owners"]) == (alice, bob, [alice.id])
    # alice moderates now: she may not transfer it back.
    client.post(
        "/c/photography/manage/", {"action": "transfer", "user": alice.id, "confirm": "yes"}
    )
    assert Membership.objects.get(community=community, user=bob).role == "owner"


def test_role_changes_go_through_the_policy_and_are_audited(alice, bob, carol, community):
    client_for(alice).post(
        "/c/photography/manage/", {"action": "role", "user": bob.id, "role": "moderator"}
    )
    assert Membership.objects.get(community=community, user=bob).role == "moderator"
    [entry] = audit(community, "member.role")
    assert entry.detail == {"from": "member", "to": "moderator"} and entry.target == bob
    # A moderator may not appoint others.
    client_for(bob).post(
        "/c/photography/manage/", {"action": "role", "user": carol.id, "role": "moderator"}
    )
    assert Membership.objects.get(community=community, user=carol).role == "member"


def test_join_requests_badges_and_decisions(alice, bob, mallory, make_user, community):
    secret = community_create(name="Darkroom", visibility="private", by=alice)
    join_request_create(community=secret, user=mallory, message="I develop film")
    other = make_user("olive")
    join_request_create(community=secret, user=other)
    owner = client_for(alice)
    directory = owner.get("/").content.decode()
    assert 'data-testid="waiting-darkroom"' in directory and "2 waiting" in directory
    assert "waiting" not in client_for(bob).get("/").content.decode()
    channel_page = owner.get("/c/darkroom/general/").content.decode()
    assert 'data-testid="join-requests-badge"' in channel_page
    about = owner.get("/c/darkroom/?about").content.decode()
    assert 'data-testid="join-requests-badge"' in about
    manage = owner.get("/c/darkroom/manage/").content.decode()
    assert "I develop film" in manage
    request = JoinRequest.objects.get(community=secret, user=mallory)
    owner.post("/c/darkroom/manage/", {"action": "approve", "request": request.id})
    assert Membership.objects.filter(community=secret, user=mallory).exists()
    assert audit(secret, "join.approve")[0].target == mallory
    rejected = JoinRequest.objects.get(community=secret, user=other)
    owner.post("/c/darkroom/manage/", {"action": "reject", "request": rejected.id})
    assert audit(secret, "join.reject")[0].target == other
    assert "waiting" not in owner.get("/").content.decode()


# --- Invite links ---------------------------------------------------------------------------


def test_invite_link_with_a_use_limit(alice, make_user, community):
    client_for(alice).post(
        "/c/photography/manage/", {"action": "invite_create", "expires": "60", "max_uses": "1"}
    )
    invite = Invite.objects.get(community=community)
    assert invite.max_uses == 1 and invite.expires_at > timezone.now() + timedelta(minutes=59)
    assert audit(community, "invite.create")[0].detail["invite"] == invite.id
    first, second = make_user("first"), make_user("second")
    assert client_for(first).get(f"/invite/{invite.code}/").status_code == 200
    client_for(first).post(f"/invite/{invite.code}/")
    assert Membership.objects.filter(community=community, user=first).exists()
    invite.refresh_from_db()
    assert invite.uses == 1
    page = client_for(second).get(f"/invite/{invite.code}/")
    assert page.status_code == 410 and "used as many times" in page.content.decode()
    client_for(second).post(f"/invite/{invite.code}/")
    assert not Membership.objects.filter(community=community, user=second).exists()


def test_expired_and_revoked_links_say_so(alice, make_user, community):
    expired = invite_create(community=community, by=alice, expires_in=timedelta(minutes=5))
    Invite.objects.filter(id=expired.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = make_user("late")
    page = client_for(late).get(f"/invite/{expired.code}/")
    assert page.status_code == 410 and "expired" in page.content.decode()
    revoked = invite_create(community=community, by=alice)
    client_for(alice).post(
        "/c/photography/manage/", {"action": "invite_revoke", "invite": revoked.id}
    )
    revoked.refresh_from_db()
    assert revoked.revoked_at is not None
    assert audit(community, "invite.revoke")[0].detail["invite"] == revoked.id
    page = client_for(late).get(f"/invite/{revoked.code}/")
    assert page.status_code == 410 and "revoked" in page.content.decode()
    response = client_for(late).post(f"/invite/{revoked.code}/", follow=True)
    assert "revoked" in response.content.decode()
    assert not Membership.objects.filter(community=community, user=late).exists()


def test_banned_users_are_refused_by_any_link(alice, mallory, community):
    invite = invite_create(community=community, by=alice)
    membership_ban(community=community, user=mallory, by=alice)
    page = client_for(mallory).get(f"/invite/{invite.code}/")
    assert page.status_code == 403 and "banned" in page.content.decode()
    for code in (invite.code, community.invite_code):
        client_for(mallory).post(f"/invite/{code}/")
    assert not Membership.objects.filter(community=community, user=mallory).exists()
    invite.refresh_from_db()
    assert invite.uses == 0


def test_the_permanent_link_keeps_working_and_can_be_replaced(alice, mallory, community):
    old = community.invite_code
    client_for(alice).post("/c/photography/manage/", {"action": "reset_invite"})
    community.refresh_from_db()
    assert community.invite_code != old and audit(community, "invite.reset")
    assert client_for(mallory).get(f"/invite/{old}/").status_code == 404
    client_for(mallory).post(f"/invite/{community.invite_code}/")
    assert Membership.objects.filter(community=community, user=mallory).exists()


# --- Who may do what ------------------------------------------------------------------------

ACTORS = ["anonymous", "non-member", "member", "moderator", "owner", "site moderator", "superuser"]
OWNERS = {"owner", "site moderator", "superuser"}
STAFF = {"moderator", *OWNERS}
MAY = {
    "profile": OWNERS,
    "transfer": OWNERS,
    "role": OWNERS,
    "invite_create": STAFF,
    "invite_revoke": STAFF,
    "reset_invite": STAFF,
    "approve": STAFF,
    "reject": STAFF,
}


@pytest.fixture
def world(make_user, alice, bob, mo, community, site_moderator, superuser, mallory):
    Community.objects.filter(pk=community.pk).update(visibility="private")
    community.visibility = "private"  # so join requests can be made
    return {
        "anonymous": None,
        "non-member": mallory,
        "member": bob,
        "moderator": mo,
        "owner": alice,
        "site moderator": site_moderator,
        "superuser": superuser,
    }


def state(community: Community) -> tuple:
    community.refresh_from_db()
    return (
        community.name,
        community.rules,
        community.invite_code,
        sorted(Membership.objects.filter(community=community).values_list("user", "role")),
        sorted(Invite.objects.filter(community=community).values_list("id", "revoked_at")),
        sorted(JoinRequest.objects.filter(community=community).values_list("id", "status")),
        AuditEntry.objects.filter(community=community).count(),
    )


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", sorted(MAY))
def test_authorization_table(world, actor, action, make_user, alice, bob, community):
    asker = make_user("asker")
    request = join_request_create(community=community, user=asker)
    invite = invite_create(community=community, by=alice)
    fields = {
        "profile": profile(),
        "transfer": {"action": "transfer", "user": bob.id, "confirm": "yes"},
        "role": {"action": "role", "user": bob.id, "role": "moderator"},
        "invite_create": {"action": "invite_create", "expires": "60"},
        "invite_revoke": {"action": "invite_revoke", "invite": invite.id},
        "reset_invite": {"action": "reset_invite"},
        "approve": {"action": "approve", "request": request.id},
        "reject": {"action": "reject", "request": request.id},
    }[action]
    user = world[actor]
    client = client_for(user) if user is not None else Client()
    before = state(community)
    response = client.post("/c/photography/manage/", fields)
    after = state(community)
    if actor in MAY[action]:
        assert after != before, (actor, action)
        assert after[-1] == before[-1] + 1  # one audit entry
        entry = AuditEntry.objects.filter(community=community).order_by("-id").first()
        assert entry.actor == user
    else:
        assert after == before, (actor, action)
        assert response.status_code in (302, 403, 404)


# --- Migration ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_owners_migrations_keep_existing_communities_and_links():
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before = [("communities", "0002_moderation"), ("chat", "0008_moderation")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    OldUser = old.get_model("hobbies", "User")
    OldCommunity = old.get_model("communities", "Community")
    OldChannel = old.get_model("chat", "Channel")
    owner = OldUser.objects.create(username="olga")
    club = OldCommunity.objects.create(name="Film Club", slug="film-club", invite_code="legacy1")
    OldChannel.objects.create(community=club, name="general")
    call_command("migrate", verbosity=0)
    club_now = Community.objects.get(slug="film-club")
    assert (club_now.rules, club_now.avatar.name or "") == ("", "")
    assert not Channel.objects.get(community=club_now).is_archived
    assert not Invite.objects.exists()
    # The legacy link still leads in.
    from accounts.models import User
    from communities.services import membership_join_by_invite

    membership_join_by_invite(code="legacy1", user=User.objects.get(pk=owner.pk))
    assert Membership.objects.filter(community=club_now, user_id=owner.pk).exists()
