"""Admin actions on communities, memberships and join requests, as staff run them: a POST to the
changelist, then the messages shown and the state read back. Every action goes through a service,
so its refusals show up as admin error messages and change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from conftest import client_for

pytestmark = pytest.mark.django_db


def admin_url(obj: Model, view: str = "changelist") -> str:
    """The admin page of `obj`'s model, named by wherever that model lives now."""
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_{view}")


def run_action(client: Client, action: str, *objs: Model) -> Any:
    return client.post(
        admin_url(objs[0]),
        {"action": action, "_selected_action": [obj.pk for obj in objs]},
        follow=True,
    )


def shown(response: Any) -> list[tuple[str, str]]:
    """The admin messages on the page: (level, text)."""
    return [(m.level_tag, m.message) for m in response.context["messages"]]


def offered(client: Client, obj: Model) -> set[str]:
    """The actions in the changelist's "Action" menu."""
    response = client.get(admin_url(obj))
    assert response.status_code == 200
    form = response.context["action_form"]  # None when no action is offered
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


@pytest.fixture
def darkroom(alice):
    """A private community made on the site by alice (its owner)."""
    client_for(alice).post("/communities/new/", {"name": "Darkroom", "visibility": "private"})
    return alice.memberships.get(community__slug="darkroom").community


@pytest.fixture
def join_request(darkroom, mallory):
    """mallory asks to join the darkroom, from its page."""
    client_for(mallory).post("/c/darkroom/join/", {"message": "I print at home."})
    return darkroom.join_requests.get(user=mallory)


def can_open_darkroom(user) -> bool:
    return client_for(user).get("/c/darkroom/general/").status_code == 200


# --- What each role is offered --------------------------------------------------------------


def test_the_actions_each_admin_role_is_offered(superuser, site_moderator, community, join_request):
    membership = community.memberships.get(role="member")
    root, warden = client_for(superuser), client_for(site_moderator)

    # No bulk deletion anywhere: it would write past the services.
    assert offered(root, join_request) == {"approve", "reject"}
    assert offered(root, membership) == {"remove_members", "end_timeouts", "ban_members"}
    assert offered(root, community) == set()

    assert offered(warden, join_request) == {"approve", "reject"}
    assert offered(warden, membership) == {"remove_members", "end_timeouts", "ban_members"}
    assert offered(warden, community) == set()


# --- Join requests: approve and reject ------------------------------------------------------


def test_superuser_approves_a_join_request(superuser, join_request, mallory):
    assert not can_open_darkroom(mallory)

    response = run_action(client_for(superuser), "approve", join_request)

    assert response.status_code == 200
    assert shown(response) == [("success", "1 done.")]
    join_request.refresh_from_db()
    assert join_request.status == "approved"
    assert join_request.decided_by == superuser
    assert join_request.decided_at is not None
    assert join_request.community.memberships.filter(user=mallory, role="member").exists()
    assert can_open_darkroom(mallory)


def test_site_moderator_rejects_a_join_request(site_moderator, join_request, mallory):
    response = run_action(client_for(site_moderator), "reject", join_request)

    assert shown(response) == [("success", "1 done.")]
    join_request.refresh_from_db()
    assert join_request.status == "rejected"
    assert join_request.decided_by == site_moderator
    assert not join_request.community.memberships.filter(user=mallory).exists()
    assert not can_open_darkroom(mallory)


@pytest.mark.parametrize(("first", "again"), [("approve", "reject"), ("reject", "approve")])
def test_an_answered_request_cannot_be_answered_again(superuser, join_request, first, again):
    root = client_for(superuser)
    run_action(root, first, join_request)
    join_request.refresh_from_db()
    decided = (join_request.status, join_request.decided_at)

    response = run_action(root, again, join_request)

    assert shown(response) == [("error", f"{join_request}: This request was already answered.")]
    join_request.refresh_from_db()
    assert (join_request.status, join_request.decided_at) == decided
    is_member = join_request.community.memberships.filter(user=join_request.user).exists()
    assert is_member == (first == "approve")


def test_approving_a_mixed_selection_reports_each_refusal(
    superuser, darkroom, join_request, make_user
):
    root = client_for(superuser)
    run_action(root, "reject", join_request)
    join_request.refresh_from_db()
    dora = make_user("dora")
    client_for(dora).post("/c/darkroom/join/")
    pending = darkroom.join_requests.get(user=dora)

    response = run_action(root, "approve", join_request, pending)

    assert shown(response) == [
        ("success", "1 done."),
        ("error", f"{join_request}: This request was already answered."),
    ]
    assert can_open_darkroom(dora)
    assert not darkroom.memberships.filter(user=join_request.user).exists()


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_staff_who_moderate_nothing_cannot_answer_requests(staff_viewer, join_request, action):
    """Staff who moderate no community see none of its rows, and have no actions to run."""
    client = client_for(staff_viewer)
    assert offered(client, join_request) == set()

    response = run_action(client, action, join_request)

    assert shown(response) == []  # no action to run: nothing happens
    join_request.refresh_from_db()
    assert join_request.status == "pending"
    assert join_request.decided_by is None
    assert not join_request.community.memberships.filter(user=join_request.user).exists()


def test_a_community_owner_without_a_site_role_answers_on_the_site_not_the_admin(
    join_request, alice
):
    """The darkroom's owner is not staff: the admin turns her away (her manage page is where she
    answers) and her POST changes nothing."""
    response = client_for(alice).post(
        admin_url(join_request),
        {"action": "approve", "_selected_action": [join_request.pk]},
        follow=True,
    )

    assert response.status_code == 403
    join_request.refresh_from_db()
    assert join_request.status == "pending"


# --- Memberships: remove --------------------------------------------------------------------


def test_site_moderator_removes_a_member(site_moderator, community, general, bob):
    assert client_for(bob).get("/c/photography/general/").status_code == 200
    membership = community.memberships.get(user=bob)

    response = run_action(client_for(site_moderator), "remove_members", membership)

    assert shown(response) == [("success", "1 done.")]
    assert not community.memberships.filter(user=bob).exists()
    assert not general.members.filter(pk=bob.pk).exists()
    assert client_for(bob).get("/c/photography/general/").status_code == 404


def test_superuser_removes_several_members_at_once(superuser, community, bob, carol):
    selected = community.memberships.filter(user__in=[bob, carol])

    response = run_action(client_for(superuser), "remove_members", *selected)

    assert shown(response) == [("success", "2 done.")]
    assert list(community.memberships.values_list("user__username", flat=True)) == ["alice"]


def test_the_owner_cannot_be_removed(superuser, community, alice, bob):
    owner = community.memberships.get(user=alice)
    member = community.memberships.get(user=bob)

    response = run_action(client_for(superuser), "remove_members", owner, member)

    assert shown(response) == [
        ("success", "1 done."),
        ("error", f"{owner}: Only an owner can remove moderators; owners cannot be removed."),
    ]
    owner.refresh_from_db()
    assert owner.role == "owner"
    assert client_for(alice).get("/c/photography/general/").status_code == 200
    assert not community.memberships.filter(user=bob).exists()


def test_staff_who_moderate_nothing_cannot_remove_members(staff_viewer, community, bob):
    membership = community.memberships.get(user=bob)

    response = run_action(client_for(staff_viewer), "remove_members", membership)

    assert shown(response) == []  # no action to run: nothing happens
    assert community.memberships.filter(user=bob).exists()


# --- Who cannot run them at all -------------------------------------------------------------


@pytest.fixture
def targets(community, join_request, bob) -> dict[str, Model]:
    return {
        "approve": join_request,
        "reject": join_request,
        "remove_members": community.memberships.get(user=bob),
    }


def _state(targets: dict[str, Model]) -> list[tuple[Any, ...]]:
    join_request, membership = targets["approve"], targets["remove_members"]
    return [
        tuple(join_request._meta.model.objects.values_list("id", "status").order_by("id")),
        tuple(membership._meta.model.objects.values_list("id", "role").order_by("id")),
    ]


@pytest.mark.parametrize("action", ["approve", "reject", "remove_members"])
def test_members_without_admin_access_cannot_run_actions(targets, bob, action):
    before = _state(targets)
    target = targets[action]

    response = client_for(bob).post(
        admin_url(target), {"action": action, "_selected_action": [target.pk]}, follow=True
    )

    assert response.status_code == 403
    assert "Your account does not have access to the administration." in response.content.decode()
    assert _state(targets) == before


@pytest.mark.parametrize("action", ["approve", "reject", "remove_members"])
def test_anonymous_visitors_are_sent_to_log_in(client, targets, action):
    before = _state(targets)
    target = targets[action]

    response = client.post(admin_url(target), {"action": action, "_selected_action": [target.pk]})

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert _state(targets) == before
