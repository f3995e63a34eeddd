"""The admin, scoped: a moderator of community A given admin access sees and acts on A only.

Two private communities, A ("Aperture": alice owns it, bob moderates it and has admin access)
and B ("Bobbins": dave owns it), each with a row of every moderation model, all made through
the services. Bob's changelists hold A's rows and none of B's, B's change pages are 404s, and
actions posted with B's ids change nothing; site moderators and superusers see both. The lists
and the overview run a fixed number of queries however many rows there are.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.admin import site
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db.models import Model
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.services import COMMUNITY_MODERATORS_GROUP, SITE_MODERATORS_GROUP
from chat import moderation
from chat.models import Channel, HeldMessage, Message, Report
from chat.services import channel_create, message_send
from communities.models import AuditEntry, Ban, Community, JoinRequest, Membership
from communities.services import (
    community_create,
    community_filter_set,
    join_request_create,
    join_request_decide,
    membership_ban,
    membership_join,
    membership_set_role,
    membership_timeout,
)
from conftest import client_for, say
from hobbies.errors import HeldForReview

pytestmark = pytest.mark.django_db

MODELS: list[type[Model]] = [
    Community,
    Channel,
    Membership,
    JoinRequest,
    Message,
    Report,
    HeldMessage,
    Ban,
    AuditEntry,
]
# How each model reaches its community.
PATHS = {Community: "pk", Message: "channel__community", HeldMessage: "channel__community"}


def changelist(model: type[Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change_page(obj: Model) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def rows_of(model: type[Model], community: Community) -> set[int]:
    path = PATHS.get(model, "community")
    rows = model._default_manager.filter(**{path: community.pk})
    return set(rows.values_list("pk", flat=True))


def populate(community: Community, owner: User, make_user: Any, tag: str, n: int = 1) -> None:
    """Rows of every moderation model in `community`: members who post, get reported, held,
    timed out and banned, and people asking to join."""
    general = Channel.objects.get(community=community, name="general")
    community_filter_set(community=community, by=owner, blocked_words="", held_words="casino")
    for i in range(n):
        member = make_user(f"{tag}m{i}")
        asker = make_user(f"{tag}a{i}")
        join_request_decide(
            request=join_request_create(community=community, user=member), by=owner, approve=True
        )
        join_request_create(community=community, user=asker, message="let me in")
        message = say(general, member, f"{tag}-secret {i}")
        removed = say(general, member, f"{tag}-removed {i}")
        moderation.message_remove(message=removed, by=owner, reason="spam")
        moderation.report_create(message=message, by=owner, reason="spam")
        with contextlib.suppress(HeldForReview):
            message_send(
                channel=general, author=member, body=f"{tag} casino {i}", client_id=uuid.uuid4()
            )
        membership_timeout(
            community=community,
            user=member,
            by=owner,
            until=timezone.now() + timedelta(hours=1),
        )
        membership_ban(community=community, user=make_user(f"{tag}b{i}"), by=owner)


@pytest.fixture
def world(make_user: Any, no_rate_limits: None) -> dict[str, Any]:
    alice, bob, dave = make_user("alice"), make_user("bob"), make_user("dave")
    a = community_create(name="Aperture", visibility="private", by=alice)
    b = community_create(name="Bobbins", visibility="private", by=dave)
    join_request_decide(request=join_request_create(community=a, user=bob), by=alice, approve=True)
    membership_set_role(community=a, user=bob, role="moderator", by=alice)
    populate(a, alice, make_user, "aperture")
    populate(b, dave, make_user, "bobbins")
    call_command("grant_admin", "bob", stdout=StringIO())
    bob.refresh_from_db()
    return {"a": a, "b": b, "alice": alice, "bob": bob, "dave": dave}


# --- Lists, pages and actions --------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.model_name)
def test_a_community_moderator_sees_only_their_communitys_rows(world, model):
    client = client_for(world["bob"])
    response = client.get(changelist(model))

    assert response.status_code == 200
    shown = {obj.pk for obj in response.context["cl"].result_list}
    assert shown == rows_of(model, world["a"])
    assert shown, "community A has rows of every kind"
    # Nothing of B anywhere on the page: not its rows, not its name in the filters.
    page = response.content.decode()
    assert "Bobbins" not in page
    assert "bobbins" not in page


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.model_name)
def test_site_moderators_and_superusers_see_every_community(
    world, model, site_moderator, superuser
):
    both = rows_of(model, world["a"]) | rows_of(model, world["b"])
    for user in (site_moderator, superuser):
        response = client_for(user).get(changelist(model))
        assert {obj.pk for obj in response.context["cl"].result_list} >= both, user


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.model_name)
def test_another_communitys_pages_are_not_found(world, model):
    client = client_for(world["bob"])
    theirs = model._default_manager.get(pk=min(rows_of(model, world["b"])))
    ours = model._default_manager.get(pk=min(rows_of(model, world["a"])))

    assert client.get(change_page(ours)).status_code == 200
    assert client.get(change_page(theirs)).status_code == 404
    assert client.post(change_page(theirs), {}).status_code in (403, 404)
    history = change_page(theirs).replace("/change/", "/history/")
    assert client.get(history).status_code == 404


def snapshot(community: Community) -> list[Any]:
    """Everything the admin actions could change in a community."""
    return [
        sorted(Message.objects.filter(channel__community=community).values_list("id", "removed")),
        sorted(Report.objects.filter(community=community).values_list("id", "outcome")),
        sorted(
            HeldMessage.objects.filter(channel__community=community).values_list("id", "status")
        ),
        sorted(Ban.objects.filter(community=community).values_list("id", "lifted_at")),
        sorted(Membership.objects.filter(community=community).values_list("id", "timeout_until")),
        sorted(JoinRequest.objects.filter(community=community).values_list("id", "status")),
        AuditEntry.objects.filter(community=community).count(),
    ]


ACTIONS = [
    (Message, "remove_messages"),
    (Message, "restore_messages"),
    (Message, "delete_messages"),
    (Report, "resolve_remove"),
    (Report, "resolve_dismiss"),
    (HeldMessage, "approve"),
    (HeldMessage, "reject"),
    (Ban, "lift_bans"),
    (Membership, "end_timeouts"),
    (Membership, "remove_members"),
    (Membership, "ban_members"),
    (JoinRequest, "approve"),
    (JoinRequest, "reject"),
]


@pytest.mark.parametrize(("model", "action"), ACTIONS, ids=lambda v: getattr(v, "__name__", v))
def test_actions_posted_with_another_communitys_ids_change_nothing(world, model, action):
    client = client_for(world["bob"])
    before = snapshot(world["b"])

    response = client.post(
        changelist(model),
        {"action": action, "_selected_action": sorted(rows_of(model, world["b"]))},
        follow=True,
    )

    assert response.status_code == 200
    assert snapshot(world["b"]) == before


@pytest.mark.parametrize(("model", "action"), ACTIONS, ids=lambda v: getattr(v, "__name__", v))
def test_actions_on_their_own_community_go_through_the_services(world, model, action):
    """The same actions on A's rows do change them, and write the audit log."""
    client = client_for(world["bob"])
    before, audit = snapshot(world["a"]), AuditEntry.objects.filter(community=world["a"]).count()

    client.post(
        changelist(model),
        {"action": action, "_selected_action": sorted(rows_of(model, world["a"]))},
        follow=True,
    )

    assert snapshot(world["a"]) != before
    # Deleting, removing members and answering requests keep no audit entry (as on the site).
    if action not in ("delete_messages", "remove_members", "approve", "reject") or (
        model is HeldMessage
    ):
        assert AuditEntry.objects.filter(community=world["a"]).count() > audit


def test_choices_and_object_permissions_ask_the_policy(world):
    request = RequestFactory().get("/admin/")
    request.user = world["bob"]
    membership_admin = site._registry[Membership]
    field = membership_admin.formfield_for_foreignkey(
        Membership._meta.get_field("community"), request
    )
    assert list(field.queryset) == [world["a"]]
    channel_field = site._registry[Message].formfield_for_foreignkey(
        Message._meta.get_field("channel"), request
    )
    assert set(channel_field.queryset) == set(Channel.objects.filter(community=world["a"]))
    theirs = Ban.objects.filter(community=world["b"]).first()
    ours = Ban.objects.filter(community=world["a"]).first()
    ban_admin = site._registry[Ban]
    assert ban_admin.has_view_permission(request, ours)
    assert not ban_admin.has_view_permission(request, theirs)
    assert ban_admin.has_change_permission(request)
    assert not ban_admin.has_change_permission(request, theirs)


def test_banning_from_the_admin_bans_through_the_service(world):
    carol = User.objects.get(username="aperturem0")
    membership = Membership.objects.get(community=world["a"], user=carol)

    response = client_for(world["bob"]).post(
        changelist(Membership),
        {"action": "ban_members", "_selected_action": [membership.pk]},
        follow=True,
    )

    assert [m.message for m in response.context["messages"]] == ["1 done."]
    assert Ban.objects.active().filter(community=world["a"], user=carol).exists()
    assert not Membership.objects.filter(pk=membership.pk).exists()
    entry = AuditEntry.objects.filter(community=world["a"]).latest("id")
    assert (entry.action, entry.actor, entry.target) == ("member.ban", world["bob"], carol)


def test_reports_list_open_ones_first(world, site_moderator):
    first = Report.objects.filter(community=world["a"]).first()
    moderation.report_resolve(message=first.message, by=world["alice"], outcome="dismiss")
    response = client_for(site_moderator).get(changelist(Report))
    listed = [r.pk for r in response.context["cl"].result_list]
    assert listed[-1] == first.pk
    assert all(Report.objects.get(pk=pk).is_open for pk in listed[:-1])


# --- Query counts --------------------------------------------------------------------------


@pytest.fixture
def crowd(make_user, no_rate_limits, superuser) -> dict[str, Any]:
    """Two communities with many rows each, and bob moderating the first with admin access."""
    alice, bob, dave = make_user("alice"), make_user("bob"), make_user("dave")
    a = community_create(name="Aperture", visibility="private", by=alice)
    b = community_create(name="Bobbins", visibility="private", by=dave)
    join_request_decide(request=join_request_create(community=a, user=bob), by=alice, approve=True)
    membership_set_role(community=a, user=bob, role="moderator", by=alice)
    populate(a, alice, make_user, "ap", n=12)
    populate(b, dave, make_user, "bo", n=3)
    for i in range(12):
        channel_create(community=a, name=f"topic-{i}", by=alice)
        more = community_create(name=f"Club {i}", by=alice)
        membership_join(community=more, user=bob)
        membership_set_role(community=more, user=bob, role="moderator", by=alice)
    call_command("grant_admin", "bob", stdout=StringIO())
    return {"bob": bob, "root": superuser}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.model_name)
def test_changelists_run_a_fixed_number_of_queries(crowd, model, django_assert_max_num_queries):
    for who in ("bob", "root"):
        client = client_for(crowd[who])
        client.get(changelist(model))  # sessions and permissions warm up the same either way
        with django_assert_max_num_queries(14):
            response = client.get(changelist(model))
        assert len(response.context["cl"].result_list) >= 12, (who, model)


def test_the_overview_runs_a_fixed_number_of_queries(crowd, django_assert_max_num_queries):
    client = client_for(crowd["bob"])
    with django_assert_max_num_queries(12):
        response = client.get(reverse("admin_moderation_overview"))
    assert response.status_code == 200


# --- The overview --------------------------------------------------------------------------


def test_the_overview_is_linked_from_the_index_and_scoped(world, site_moderator):
    bob = client_for(world["bob"])
    index = bob.get(reverse("admin:index")).content.decode()
    assert reverse("admin_moderation_overview") in index

    response = bob.get(reverse("admin_moderation_overview"))
    overview = response.context["overview"]
    assert overview.open_reports == 1
    assert overview.pending_held == 1
    assert {r.community_id for r in overview.reports} == {world["a"].id}
    assert [row["actor__username"] for row in overview.actions_by_moderator] == ["alice"]
    assert [row["channel__community__name"] for row in overview.busiest_channels] == ["Aperture"]
    assert "Bobbins" not in response.content.decode()

    everything = client_for(site_moderator).get(reverse("admin_moderation_overview"))
    assert everything.context["overview"].open_reports == 2
    assert {r["actor__username"] for r in everything.context["overview"].actions_by_moderator} == {
        "alice",
        "dave",
    }


def test_the_overview_is_for_staff_only(world):
    member = client_for(User.objects.get(username="aperturem0"))
    response = member.get(reverse("admin_moderation_overview"))
    assert response.status_code in (302, 403)


# --- Groups and admin access ---------------------------------------------------------------


def test_setup_creates_both_groups_with_their_permissions_idempotently():
    for _ in range(2):
        call_command("setup", stdout=StringIO())
    site_group = Group.objects.get(name=SITE_MODERATORS_GROUP)
    community_group = Group.objects.get(name=COMMUNITY_MODERATORS_GROUP)
    site_perms = {f"{p.content_type.app_label}.{p.codename}" for p in site_group.permissions.all()}
    community_perms = {
        f"{p.content_type.app_label}.{p.codename}" for p in community_group.permissions.all()
    }
    assert "communities.moderate" in site_perms
    assert "communities.moderate" not in community_perms
    for perm in ("chat.view_message", "chat.change_report", "communities.change_ban"):
        assert perm in site_perms
        assert perm in community_perms
    assert Group.objects.filter(name=COMMUNITY_MODERATORS_GROUP).count() == 1


def test_grant_admin_gives_and_takes_back_scoped_access(make_user, community, alice, bob):
    with pytest.raises(CommandError, match="moderates no community"):
        call_command("grant_admin", "bob", stdout=StringIO())
    membership_set_role(community=community, user=bob, role="moderator", by=alice)
    out = StringIO()

    call_command("grant_admin", "bob", stdout=out)

    assert "Photography" in out.getvalue()
    bob.refresh_from_db()
    assert bob.is_staff
    assert bob.groups.filter(name=COMMUNITY_MODERATORS_GROUP).exists()
    assert client_for(bob).get(changelist(Message)).status_code == 200

    call_command("grant_admin", "bob", "--revoke", stdout=StringIO())

    bob.refresh_from_db()
    assert not bob.is_staff
    assert client_for(bob).get(changelist(Message)).status_code == 302  # to the admin log-in
