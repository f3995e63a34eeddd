"""Communities, memberships and join requests, through the service functions."""

from __future__ import annotations

import pytest

from chat.models import Channel, ChannelMember
from communities.models import Community, JoinRequest, Membership
from communities.services import (
    community_create,
    join_request_create,
    join_request_decide,
    membership_join,
    membership_join_by_invite,
    membership_leave,
    membership_remove,
    membership_set_role,
)
from hobbies.errors import Conflict, Forbidden, Invalid, NotFound

pytestmark = pytest.mark.django_db


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
    from communities.services import community_invite_reset

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
