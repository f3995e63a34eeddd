"""Accounts, profiles, communities and memberships, through the service functions."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from chat.models import Channel, ChannelMember
from conftest import PASSWORD
from hobbies.errors import Conflict, Forbidden, Invalid, NotFound
from hobbies.models import Community, JoinRequest, Membership, User
from hobbies.services import (
    community_create,
    join_request_create,
    join_request_decide,
    membership_join,
    membership_join_by_invite,
    membership_leave,
    membership_remove,
    membership_set_role,
    profile_update,
    user_create,
)

pytestmark = pytest.mark.django_db


def png_file(name: str = "me.png") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


# --- Accounts -------------------------------------------------------------------------------


def test_user_create_makes_a_profile_with_the_display_name():
    user = user_create(username="dora", password=PASSWORD, display_name="Dora D")
    assert user.check_password(PASSWORD)
    assert user.display_name == "Dora D"


@pytest.mark.parametrize(
    ("username", "password", "error", "detail"),
    [
        ("alice", PASSWORD, Conflict, "taken"),
        ("ALICE", PASSWORD, Conflict, "taken"),
        ("new_user", "password", Invalid, "too common"),
        ("new_user", "12345678901", Invalid, "entirely numeric"),
        ("bad name!", PASSWORD, Invalid, "letters, digits"),
        ("x", PASSWORD, Invalid, "2 to 30"),
        ("<script>", PASSWORD, Invalid, "letters, digits"),
    ],
)
def test_user_create_refuses_bad_input_and_writes_nothing(alice, username, password, error, detail):
    before = User.objects.count()
    with pytest.raises(error) as exc:
        user_create(username=username, password=password)
    assert detail in exc.value.detail
    assert User.objects.count() == before


def test_profile_update_accepts_a_png_and_refuses_other_files(alice):
    profile = profile_update(
        user=alice, display_name="Alice A.", bio="Film.", hobbies="film, film, darkroom",
        avatar=png_file(),
    )  # fmt: skip
    assert profile.avatar.name
    assert profile.hobby_list == ["film", "darkroom"]
    with pytest.raises(Invalid, match="not an image"):
        profile_update(
            user=alice, display_name="Changed", bio="", hobbies="",
            avatar=SimpleUploadedFile("x.png", b"GIF89a not really", content_type="image/png"),
        )  # fmt: skip
    alice.profile.refresh_from_db()
    assert alice.profile.display_name == "Alice A."  # nothing half-written


# --- Communities and memberships ------------------------------------------------------------


def test_community_create_makes_owner_and_general_channel(alice):
    community = community_create(name="Chess Club", tags=["Chess", "board games"], by=alice)
    assert community.slug == "chess-club"
    assert sorted(t.name for t in community.tags.all()) == ["board-games", "chess"]
    assert Membership.objects.get(community=community, user=alice).role == "owner"
    general = Channel.objects.get(community=community, name="general")
    assert ChannelMember.objects.filter(channel=general, user=alice).exists()


def test_community_create_refuses_taken_slug(alice, community):
    with pytest.raises(Conflict, match="/c/photography/"):
        community_create(name="Photography", by=alice)
    assert Community.objects.filter(slug="photography").count() == 1


def test_private_community_joins_by_request_and_approval(alice, bob, mallory):
    secret = community_create(name="Darkroom", visibility="private", by=alice)
    with pytest.raises(Forbidden):
        membership_join(community=secret, user=mallory)
    request = join_request_create(community=secret, user=mallory, message="I print at home.")
    assert join_request_create(community=secret, user=mallory) == request  # one pending only
    with pytest.raises(Forbidden):
        join_request_decide(request=request, by=mallory, approve=True)
    join_request_decide(request=request, by=alice, approve=True)
    assert Membership.objects.filter(community=secret, user=mallory).exists()
    with pytest.raises(Conflict):
        join_request_decide(request=request, by=alice, approve=False)


def test_rejected_request_makes_no_member(alice, mallory):
    secret = community_create(name="Darkroom", visibility="private", by=alice)
    request = join_request_create(community=secret, user=mallory)
    join_request_decide(request=request, by=alice, approve=False)
    assert request.status == JoinRequest.Status.REJECTED
    assert not Membership.objects.filter(community=secret, user=mallory).exists()


def test_invite_code_joins_private_community_and_reset_invalidates_it(alice, mallory, bob):
    secret = community_create(name="Darkroom", visibility="private", by=alice)
    old = secret.invite_code
    membership_join_by_invite(code=old, user=mallory)
    assert Membership.objects.filter(community=secret, user=mallory).exists()
    from hobbies.services import community_invite_reset

    community_invite_reset(community=secret, by=alice)
    with pytest.raises(NotFound):
        membership_join_by_invite(code=old, user=bob)


def test_leave_removes_channel_memberships_and_sole_owner_cannot_leave(alice, bob, community):
    membership_leave(community=community, user=bob)
    assert not Membership.objects.filter(community=community, user=bob).exists()
    assert not ChannelMember.objects.filter(channel__community=community, user=bob).exists()
    with pytest.raises(Invalid, match="only owner"):
        membership_leave(community=community, user=alice)
    assert Membership.objects.filter(community=community, user=alice).exists()


def test_only_owner_changes_roles_and_moderators_cannot_remove_each_other(
    alice, bob, carol, community
):
    with pytest.raises(Forbidden):
        membership_set_role(community=community, user=carol, role="moderator", by=bob)
    membership_set_role(community=community, user=bob, role="moderator", by=alice)
    membership_set_role(community=community, user=carol, role="moderator", by=alice)
    with pytest.raises(Forbidden):
        membership_remove(community=community, user=carol, by=bob)
    with pytest.raises(Forbidden):
        membership_remove(community=community, user=alice, by=bob)
    membership_remove(community=community, user=carol, by=alice)
    assert not Membership.objects.filter(community=community, user=carol).exists()
    with pytest.raises(Invalid, match="at least one owner"):
        membership_set_role(community=community, user=alice, role="member", by=alice)


def test_profile_update_refuses_oversized_avatar(alice):
    from hobbies.errors import TooLong

    big = SimpleUploadedFile("big.png", b"\x89PNG" + b"0" * (2 * 1024 * 1024), "image/png")
    with pytest.raises(TooLong):
        profile_update(user=alice, display_name="", bio="", hobbies="", avatar=big)
    alice.profile.refresh_from_db()
    assert not alice.profile.avatar


@pytest.mark.django_db(transaction=True)
def test_two_first_sign_ins_of_one_person_at_once_make_one_user():
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    from hobbies.models import Identity
    from hobbies.oidc import Person
    from hobbies.services import identity_sync

    person = Person(
        issuer="https://id.example",
        subject="sub-1",
        username="olivia",
        email="olivia@example.org",
        first_name="Olivia",
        last_name="Ortega",
        roles=frozenset(),
    )
    start = Barrier(4)

    def sign_in(_: int) -> int:
        try:
            start.wait()
            return identity_sync(person=person).pk
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        user_ids = set(pool.map(sign_in, range(4)))
    assert len(user_ids) == 1
    assert Identity.objects.filter(subject="sub-1").count() == 1
    assert User.objects.filter(username__startswith="olivia").count() == 1
