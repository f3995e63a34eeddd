"""The role policy, walked as a table: every kind of person by every action it decides."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts.services import site_roles_set
from chat import policy as chat_policy
from chat.models import Channel
from chat.services import channel_create
from communities import policy
from communities.services import community_create, membership_join, membership_set_role
from conftest import say

pytestmark = pytest.mark.django_db

ACTORS = [
    "anonymous",
    "non-member",
    "member",
    "moderator elsewhere",
    "moderator",
    "owner",
    "site moderator",
    "superuser",
]

# Action → who may (everyone else may not).
MAY = {
    "moderate the community": {"moderator", "owner", "site moderator", "superuser"},
    "change roles (own)": {"owner", "site moderator", "superuser"},
    "post in an open channel": {
        "non-member",  # the channel fetch refuses non-members before the policy is asked
        "member",
        "moderator elsewhere",
        "moderator",
        "owner",
        "site moderator",
        "superuser",
    },
    "post in an announcement channel": {"moderator", "owner", "site moderator", "superuser"},
    "set a channel's topic": {"moderator", "owner", "site moderator", "superuser"},
    "add someone to a private channel": {"moderator", "owner", "site moderator", "superuser"},
    "delete another's message": {"moderator", "owner", "site moderator", "superuser"},
    "edit another's message": set(),
    "remove a member": {"moderator", "owner", "site moderator", "superuser"},
    "remove a moderator": {"owner", "site moderator", "superuser"},
    "remove an owner": set(),
}


@pytest.fixture
def world(make_user, alice, bob, community):
    """alice owns Photography, bob is a member there, mo moderates it; elsewhere moderates
    another community; a site moderator and a superuser belong to nothing."""
    mo = make_user("mo")
    membership_join(community=community, user=mo)
    membership_set_role(community=community, user=mo, role="moderator", by=alice)
    elsewhere = make_user("elsewhere")
    community_create(name="Chess", by=elsewhere)
    site_moderator = make_user("sitemod")
    site_roles_set(user=site_moderator, roles=["moderator"])
    superuser = make_user("root")
    site_roles_set(user=superuser, roles=["admin"])
    writer = make_user("writer")
    membership_join(community=community, user=writer)
    open_channel = community.channels.get(name="general")
    news = channel_create(community=community, name="news", kind="announcement", by=alice)
    private = channel_create(community=community, name="mods", kind=Channel.Kind.PRIVATE, by=alice)
    actors = {
        "anonymous": AnonymousUser(),
        "non-member": make_user("stranger"),
        "member": bob,
        "moderator elsewhere": elsewhere,
        "moderator": mo,
        "owner": alice,
        "site moderator": site_moderator,
        "superuser": superuser,
    }
    return {
        "community": community,
        "open": open_channel,
        "news": news,
        "private": private,
        "message": say(open_channel, writer, "by another member"),
        "actors": actors,
        "roles": {"member": bob, "moderator": mo, "owner": alice},
    }


def decide(world, actor, action: str) -> bool:
    community = world["community"]
    target_role = {
        "remove a member": "member",
        "remove a moderator": "moderator",
        "remove an owner": "owner",
    }
    if action in target_role:
        target = world["roles"][target_role[action]]
        target_is_self = getattr(actor, "pk", None) == target.pk
        return not target_is_self and policy.outranks(
            policy.role_of(actor, community), policy.role_of(target, community)
        )
    return {
        "moderate the community": lambda: policy.can_moderate(actor, community),
        "change roles (own)": lambda: policy.can_own(actor, community),
        "post in an open channel": lambda: chat_policy.can_post(actor, world["open"]),
        "post in an announcement channel": lambda: chat_policy.can_post(actor, world["news"]),
        "set a channel's topic": lambda: chat_policy.can_manage_channel(actor, world["open"]),
        "add someone to a private channel": lambda: chat_policy.can_add_member(
            actor, world["private"]
        ),
        "delete another's message": lambda: chat_policy.can_delete_message(actor, world["message"]),
        "edit another's message": lambda: chat_policy.can_edit_message(actor, world["message"]),
    }[action]()


@pytest.mark.parametrize("action", list(MAY))
def test_policy_table(world, action):
    got = {name: decide(world, actor, action) for name, actor in world["actors"].items()}
    expected = {name: name in MAY[action] for name in ACTORS}
    if action == "remove a member":
        expected["member"] = False  # bob is the member: nobody removes themselves this way
    assert got == expected


def test_site_moderators_are_moderators_everywhere_and_nowhere_once_disabled(world):
    site_moderator = world["actors"]["site moderator"]
    assert policy.role_of(site_moderator, world["community"]) == "owner"
    site_moderator.is_active = False
    assert not policy.can_moderate(site_moderator, world["community"])
    site_roles_set(user=site_moderator, roles=[])
    site_moderator.is_active = True
    fresh = type(site_moderator).objects.get(pk=site_moderator.pk)  # permissions are cached
    assert not policy.can_moderate(fresh, world["community"])
