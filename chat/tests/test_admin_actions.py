"""The message admin's one action, "delete the selected messages": it leaves a tombstone through
the chat service, so members see "This message was deleted." and moderators keep the text as a
revision. Run as staff through the changelist, then read back as members see it."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from communities.services import membership_set_role
from conftest import client_for, say

pytestmark = pytest.mark.django_db

TOMBSTONE = "This message was deleted."


def admin_url(obj: Model, view: str = "changelist") -> str:
    """The admin page of `obj`'s model (or of `obj`, for "change")."""
    args = [obj.pk] if view == "change" else []
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_{view}", args=args)


def delete_messages(client: Client, *messages: Model, follow: bool = True) -> Any:
    return client.post(
        admin_url(messages[0]),
        {"action": "delete_messages", "_selected_action": [m.pk for m in messages]},
        follow=follow,
    )


def shown(response: Any) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in response.context["messages"]]


def history(user: Any, channel: Any) -> dict[int, dict[str, Any]]:
    """The channel's messages as a member's client loads them."""
    response = client_for(user).get(f"/api/channels/{channel.id}/messages/")
    assert response.status_code == 200
    return {m["id"]: m for m in response.json()["messages"]}


@pytest.fixture
def community_moderator(community, alice, bob) -> Client:
    """bob, made a moderator by the owner and given admin access."""
    membership_set_role(community=community, user=bob, role="moderator", by=alice)
    call_command("grant_admin", "bob", stdout=StringIO())
    return client_for(bob)


@pytest.fixture
def posted(general, bob, carol):
    return say(general, bob, "Selling my old 35mm, DM me"), say(general, carol, "Nice camera!")


def test_only_the_tombstone_removal_and_restore_actions_are_offered(
    superuser, site_moderator, staff_viewer, posted
):
    """No bulk hard delete: the built-in "delete selected" is withdrawn for messages. Staff
    with view permissions only are offered no action."""
    for user in (superuser, site_moderator):
        response = client_for(user).get(admin_url(posted[0]))
        choices = response.context["action_form"].fields["action"].choices
        names = [name for name, _ in choices if name]
        assert names == ["delete_messages", "remove_messages", "restore_messages"], user
    assert client_for(staff_viewer).get(admin_url(posted[0])).context["action_form"] is None


def test_superuser_deletes_a_message_and_members_see_a_tombstone(superuser, general, posted, alice):
    spam, kept = posted

    response = delete_messages(client_for(superuser), spam)

    assert shown(response) == [("success", "1 message(s) deleted.")]
    assert "(deleted)" in response.content.decode()  # the changelist's body column
    seen = history(alice, general)
    assert seen[spam.id]["deleted"] is True
    assert seen[spam.id]["body"] == ""
    assert seen[kept.id]["body"] == "Nice camera!"
    assert TOMBSTONE in client_for(alice).get("/c/photography/general/").content.decode()
    spam.refresh_from_db()
    assert spam.deleted_by == superuser
    assert list(spam.revisions.values_list("body", flat=True)) == ["Selling my old 35mm, DM me"]


def test_the_deleted_text_stays_visible_to_admins_as_a_revision(superuser, posted):
    spam, _ = posted
    root = client_for(superuser)
    delete_messages(root, spam)

    page = root.get(admin_url(spam, "change"))

    assert page.status_code == 200
    assert "Selling my old 35mm, DM me" in page.content.decode()


def test_site_moderator_deletes_several_messages(site_moderator, general, posted, alice):
    response = delete_messages(client_for(site_moderator), *posted)

    assert shown(response) == [("success", "2 message(s) deleted.")]
    seen = history(alice, general)
    assert all(seen[m.id]["deleted"] for m in posted)


def test_deleting_a_tombstone_again_changes_nothing(superuser, posted):
    spam, _ = posted
    root = client_for(superuser)
    delete_messages(root, spam)
    spam.refresh_from_db()
    deleted_at = spam.deleted_at

    delete_messages(root, spam)

    spam.refresh_from_db()
    assert spam.deleted_at == deleted_at
    assert spam.revisions.count() == 1


def test_staff_who_moderate_nothing_cannot_delete_others_messages(
    staff_viewer, general, posted, alice
):
    """They see none of the community's messages; a crafted POST finds nothing to act on."""
    spam, _ = posted
    client = client_for(staff_viewer)
    assert client.get(admin_url(spam)).context["cl"].result_count == 0

    response = delete_messages(client, spam)

    assert shown(response) == []  # no action to run: nothing happens
    spam.refresh_from_db()
    assert spam.deleted_at is None
    assert history(alice, general)[spam.id]["body"] == "Selling my old 35mm, DM me"


def test_a_mixed_selection_removes_what_it_may_and_names_the_rest(
    community_moderator, alice, general, posted
):
    """A community moderator (bob) removes a member's message, not the owner's."""
    _, carols = posted
    owners = say(general, alice, "Welcome, everyone")

    response = community_moderator.post(
        admin_url(carols),
        {"action": "remove_messages", "_selected_action": [carols.pk, owners.pk]},
        follow=True,
    )

    refused = "Only moderators can remove messages, and not those of their peers."
    assert shown(response) == [
        ("success", "1 message(s) removed."),
        ("error", f"#{owners.id}: {refused}"),
    ]
    seen = history(alice, general)
    assert seen[carols.id]["deleted"] is True
    assert seen[owners.id]["deleted"] is False


def test_members_without_admin_access_cannot_delete(bob, carol, general, posted):
    spam, _ = posted

    response = delete_messages(client_for(carol), spam)

    assert response.status_code == 403
    assert "Your account does not have access to the administration." in response.content.decode()
    assert history(bob, general)[spam.id]["deleted"] is False


def test_anonymous_visitors_are_sent_to_log_in(client, bob, general, posted):
    spam, _ = posted

    response = delete_messages(client, spam, follow=False)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert history(bob, general)[spam.id]["deleted"] is False
