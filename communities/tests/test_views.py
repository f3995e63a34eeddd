"""Directory and community pages, through the HTTP client, as a browser would see them."""

from __future__ import annotations

import pytest

from chat.models import Channel
from communities.models import Community, JoinRequest, Membership
from communities.services import community_create, join_request_create
from conftest import client_for

pytestmark = pytest.mark.django_db


def page_text(response) -> str:
    return response.content.decode()


@pytest.fixture
def listings(alice, community):
    community_create(name="Chess Club", tags=["chess"], description="Openings.", by=alice)
    community_create(
        name="Secret Darkroom", slug="darkroom", tags=["photography"], visibility="private",
        by=alice,
    )  # fmt: skip


def directory_names(response) -> list[str]:
    return [c.name for c in response.context["communities"]]


def test_directory_search_by_name_and_tag(client, listings):
    assert directory_names(client.get("/", {"q": "chess"})) == ["Chess Club"]
    assert directory_names(client.get("/", {"q": "openings"})) == ["Chess Club"]
    assert directory_names(client.get("/", {"tag": "photography"})) == [
        "Photography",
        "Secret Darkroom",
    ]
    assert directory_names(client.get("/", {"tag": "knitting"})) == []
    assert "No community matches." in page_text(client.get("/", {"q": "zzz"}))


def test_private_community_is_listed_but_its_channels_are_for_members(listings, alice, mallory):
    outsider = client_for(mallory)
    assert "Secret Darkroom" in page_text(outsider.get("/"))
    about = outsider.get("/c/darkroom/")
    assert about.status_code == 200
    assert "Ask to join" in page_text(about)
    assert "#general" not in page_text(about)
    hidden, missing = outsider.get("/c/darkroom/general/"), outsider.get("/c/darkroom/nope/")
    assert hidden.status_code == missing.status_code == 404
    member = client_for(alice)
    assert member.get("/c/darkroom/general/").status_code == 200


def test_join_public_community_at_once(community, mallory):
    client = client_for(mallory)
    assert "Join" in page_text(client.get("/c/photography/"))
    response = client.post("/c/photography/join/", follow=True)
    assert response.redirect_chain[-1][0] == "/c/photography/general/"
    assert "Welcome to \u2068Photography\u2069!" in page_text(response)
    assert Membership.objects.filter(community=community, user=mallory, role="member").exists()


def test_private_request_approved_on_manage_page(alice, mallory):
    secret = community_create(name="Darkroom", visibility="private", by=alice)
    request = join_request_create(community=secret, user=mallory, message="I print at home.")
    moderator = client_for(alice)
    manage = page_text(moderator.get("/c/darkroom/manage/"))
    assert "@mallory" in manage
    assert "I print at home." in manage
    response = moderator.post(
        "/c/darkroom/manage/", {"action": "approve", "request": str(request.id)}
    )
    assert response.status_code == 302
    assert Membership.objects.filter(community=secret, user=mallory).exists()
    request.refresh_from_db()
    assert request.status == JoinRequest.Status.APPROVED
    assert client_for(mallory).get("/c/darkroom/general/").status_code == 200


def test_invite_link_joins_private_community(alice, mallory):
    secret = community_create(name="Darkroom", visibility="private", by=alice)
    invite_url = f"/invite/{secret.invite_code}/"
    assert invite_url in page_text(client_for(alice).get("/c/darkroom/manage/"))
    client = client_for(mallory)
    assert "Darkroom" in page_text(client.get(invite_url))
    client.post(invite_url)
    assert Membership.objects.filter(community=secret, user=mallory).exists()
    assert client.get("/c/darkroom/general/").status_code == 200


def test_bad_invite_link_is_404(mallory):
    assert client_for(mallory).get("/invite/not-a-code/").status_code == 404


def test_leave_and_sole_owner_cannot_leave(community, alice, bob):
    bob_client = client_for(bob)
    bob_client.post("/c/photography/leave/")
    assert not Membership.objects.filter(community=community, user=bob).exists()
    assert bob_client.get("/c/photography/general/").status_code == 404

    alice_client = client_for(alice)
    response = alice_client.post(
        "/c/photography/leave/", {"next": "/c/photography/?about"}, follow=True
    )
    assert "You are the only owner" in page_text(response)
    assert Membership.objects.filter(community=community, user=alice).exists()


def test_only_moderators_create_channels(community, alice, bob):
    member = client_for(bob)
    refused = member.post("/c/photography/manage/channels/", {"name": "gear"})
    assert refused.status_code in (302, 403)
    assert member.get("/c/photography/manage/").status_code == 403
    assert not Channel.objects.filter(community=community, name="gear").exists()

    client_for(alice).post("/c/photography/manage/channels/", {"name": "Gear Talk", "kind": "open"})
    channel = Channel.objects.get(community=community, name="gear-talk")
    assert channel.members.filter(user=bob).exists()
    assert member.get("/c/photography/gear-talk/").status_code == 200


def test_moderator_removes_member_on_manage_page(community, alice, bob):
    client_for(alice).post("/c/photography/manage/", {"action": "remove", "user": str(bob.id)})
    assert not Membership.objects.filter(community=community, user=bob).exists()
    assert client_for(bob).get("/c/photography/general/").status_code == 404


def test_manage_page_of_private_community_is_refused_to_outsiders(alice, mallory):
    community_create(name="Darkroom", visibility="private", by=alice)
    response = client_for(mallory).get("/c/darkroom/manage/")
    assert response.status_code == 403
    assert "Join this community first." in page_text(response)


def test_community_form_creates_community(mallory):
    client = client_for(mallory)
    response = client.post(
        "/communities/new/",
        {"name": "Knitting Circle", "description": "Yarn.", "tags": "knitting, yarn",
         "visibility": "public"},
    )  # fmt: skip
    assert response["Location"] == "/c/knitting-circle/"
    community = Community.objects.get(slug="knitting-circle")
    assert Membership.objects.get(community=community, user=mallory).role == "owner"
    taken = client.post("/communities/new/", {"name": "Knitting Circle", "visibility": "public"})
    assert "The address /c/knitting-circle/ is taken" in page_text(taken)


def test_outsider_asks_to_join_a_private_community_from_its_page(alice, mallory):
    secret = community_create(name="Darkroom", visibility="private", by=alice)
    client = client_for(mallory)
    response = client.post("/c/darkroom/join/", {"message": "I print at home."}, follow=True)
    assert "Request sent: a moderator will answer it." in page_text(response)
    assert "Your request to join is waiting for a moderator." in page_text(response)
    assert not Membership.objects.filter(community=secret, user=mallory).exists()
    request = JoinRequest.objects.get(community=secret, user=mallory)
    assert request.message == "I print at home."
    assert "I print at home." in page_text(client_for(alice).get("/c/darkroom/manage/"))


def test_members_cannot_use_the_manage_page(community, alice, bob, carol):
    member = client_for(bob)
    for action in (
        {"action": "remove", "user": str(carol.id)},
        {"action": "role", "user": str(bob.id), "role": "owner"},
        {"action": "reset_invite"},
    ):
        member.post("/c/photography/manage/", action)
    assert Membership.objects.get(community=community, user=carol).role == "member"
    assert Membership.objects.get(community=community, user=bob).role == "member"
    assert Community.objects.get(id=community.id).invite_code == community.invite_code


def test_moderator_page_requests_with_bad_ids_are_404(community, alice):
    client = client_for(alice)
    for data in ({"action": "remove", "user": "x"}, {"action": "approve", "request": "\u00b2"}):
        assert client.post("/c/photography/manage/", data).status_code == 404


def test_anonymous_visitors_see_about_pages_only(client, listings):
    directory = page_text(client.get("/"))
    assert "Photography" in directory
    assert "Secret Darkroom" in directory
    assert "Log in to join" in page_text(client.get("/c/photography/"))
    assert "Log in to join" in page_text(client.get("/c/darkroom/"))
    channel = client.get("/c/photography/general/")
    assert channel.status_code == 302
    assert channel["Location"].startswith("/accounts/login/")


def test_member_is_redirected_to_general_and_about_page_lists_channels(community, bob):
    client = client_for(bob)
    response = client.get("/c/photography/")
    assert response.status_code == 302
    assert response["Location"] == "/c/photography/general/"
    about = page_text(client.get("/c/photography/?about"))
    assert "#general" in about
    assert "Leave community" in about


# --- Moderation -----------------------------------------------------------------------------


# --- Health ---------------------------------------------------------------------------------


# --- NUL and other control characters (PostgreSQL refuses NUL in text) ---------------------


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"q": "\x00"}, ["Chess Club", "Photography"]),
        ({"q": "che\x00ss"}, ["Chess Club"]),
        ({"q": "ch\x1bess\x7f"}, ["Chess Club"]),
        ({"tag": "\x00x"}, []),
        ({"tag": "chess\x00"}, ["Chess Club"]),
    ],
)
def test_directory_search_with_control_characters(client, listings, params, shown):
    response = client.get("/", params)
    assert response.status_code == 200
    names = directory_names(response)
    assert all(name in names for name in shown)
    if not shown:
        assert names == []


def test_search_box_keeps_the_cleaned_query(client, listings):
    response = client.get("/", {"q": "che\x00ss"})
    assert response.context["q"] == "chess"
    assert "\x00" not in page_text(response)


def test_join_request_message_with_nul_is_refused_with_a_message(alice, mallory):
    secret = community_create(name="Darkroom", visibility="private", by=alice)
    client = client_for(mallory)
    assert 'name="next" value="/c/darkroom/?about"' in page_text(client.get("/c/darkroom/?about"))
    response = client.post(
        "/c/darkroom/join/", {"message": "hi\x00there", "next": "/c/darkroom/?about"}, follow=True
    )
    assert response.status_code == 200
    assert "A request message cannot contain control characters." in page_text(response)
    assert not JoinRequest.objects.filter(community=secret).exists()


def test_invite_code_with_nul_is_404(mallory):
    assert client_for(mallory).get("/invite/abc%00def/").status_code == 404
    assert client_for(mallory).post("/invite/%00/").status_code == 404


def test_community_form_with_nul_says_why(mallory):
    response = client_for(mallory).post(
        "/communities/new/",
        {"name": "Knit\x00ting", "description": "Ya\x00rn", "tags": "kn\x00it",
         "visibility": "public"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "Null characters are not allowed." in page_text(response)
    assert not Community.objects.filter(created_by=mallory).exists()


def test_manage_page_with_nul_in_role_is_refused(community, alice, bob):
    response = client_for(alice).post(
        "/c/photography/manage/", {"action": "role", "user": str(bob.id), "role": "mod\x00"}
    )
    assert response.status_code == 302
    assert Membership.objects.get(community=community, user=bob).role == "member"
