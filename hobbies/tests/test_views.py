"""Account, directory and community pages, through the HTTP client, as a browser would see them."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from chat.models import Channel
from conftest import PASSWORD, client_for, say
from hobbies.models import Community, JoinRequest, Membership, User
from hobbies.services import community_create, join_request_create, site_roles_set

pytestmark = pytest.mark.django_db


def page_text(response) -> str:
    return response.content.decode()


# --- Sign-up, log-in, profile ---------------------------------------------------------------


def test_signup_creates_account_and_logs_in(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "dora", "display_name": "Dora D", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert User.objects.get(username="dora").display_name == "Dora D"
    assert client.get("/").context["user"].username == "dora"


@pytest.mark.parametrize(
    ("username", "password", "shown"),
    [
        ("alice", PASSWORD, "That username is taken."),
        ("dora", "password123", "This password is too common."),
        ("dora", "short", "Ensure this value has at least 8 characters"),
        ("dora ora!", PASSWORD, "Usernames are 2 to 30 letters, digits or . _ + - characters."),
    ],
)
def test_signup_shows_clear_error_and_creates_nothing(client, alice, username, password, shown):
    before = User.objects.count()
    response = client.post("/accounts/signup/", {"username": username, "password": password})
    assert response.status_code == 200
    assert shown in page_text(response)
    assert User.objects.count() == before
    assert not response.context["user"].is_authenticated


def test_login_with_right_and_wrong_password(client, alice):
    wrong = client.post("/accounts/login/", {"username": "alice", "password": "nope-nope-nope"})
    assert wrong.status_code == 200
    assert "enter a correct username and password" in page_text(wrong)
    right = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert right.status_code == 302
    assert client.get("/").context["user"] == alice


def test_login_rate_limit_answers_the_eleventh_attempt_with_429(client, alice, settings):
    # A long window, so the test does not straddle two windows.
    settings.RATE_LIMIT_LOGIN = (10, 3600)
    for _ in range(10):
        response = client.post("/accounts/login/", {"username": "alice", "password": "wrong-pw"})
        assert response.status_code == 200
    blocked = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert blocked.status_code == 429
    assert "Too many requests; try again in 3600 seconds." in page_text(blocked)
    assert not client.get("/").context["user"].is_authenticated


def test_login_rate_limit_counts_per_username_across_addresses(alice, settings):
    settings.RATE_LIMIT_LOGIN = (3, 3600)
    for n in range(3):
        Client(REMOTE_ADDR=f"10.0.0.{n}").post(
            "/accounts/login/", {"username": "alice", "password": "wrong-pw"}
        )
    blocked = Client(REMOTE_ADDR="10.0.0.99").post(
        "/accounts/login/", {"username": "ALICE", "password": PASSWORD}
    )
    assert blocked.status_code == 429


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_profile_display_name_shows_on_messages(bob, general):
    say(general, bob, "hello there")
    client = client_for(bob)
    response = client.post(
        "/accounts/profile/", {"display_name": "Bobby Tables", "bio": "", "hobbies": "chess"}
    )
    assert response.status_code == 302
    page = page_text(client.get("/c/photography/general/"))
    assert "Bobby Tables" in page
    api = client.get(f"/api/channels/{general.id}/messages/").json()
    assert api["messages"][0]["author"]["display_name"] == "Bobby Tables"


def test_profile_avatar_accepts_png_and_refuses_non_image(bob):
    client = client_for(bob)
    ok = client.post(
        "/accounts/profile/",
        {"display_name": "Bob", "avatar": SimpleUploadedFile("a.png", png_bytes(), "image/png")},
    )
    assert ok.status_code == 302
    bob.profile.refresh_from_db()
    assert bob.profile.avatar
    page = page_text(client.get("/accounts/profile/"))
    assert bob.profile.avatar.url in page
    with bob.profile.avatar.open() as stored, Image.open(stored) as image:
        assert image.format == "PNG"

    refused = client.post(
        "/accounts/profile/",
        {
            "display_name": "Not saved",
            "avatar": SimpleUploadedFile("evil.png", b"<?php echo 1; ?>", "image/png"),
        },
    )
    assert refused.status_code == 200
    assert "That file is not an image we can read." in page_text(refused)
    bob.profile.refresh_from_db()
    assert bob.profile.display_name == "Bob"


def test_profile_page_needs_login(client):
    response = client.get("/accounts/profile/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- Directory ------------------------------------------------------------------------------


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


# --- Joining and leaving --------------------------------------------------------------------


def test_join_public_community_at_once(community, mallory):
    client = client_for(mallory)
    assert "Join" in page_text(client.get("/c/photography/"))
    response = client.post("/c/photography/join/", follow=True)
    assert response.redirect_chain[-1][0] == "/c/photography/general/"
    assert "Welcome to Photography!" in page_text(response)
    assert Membership.objects.filter(community=community, user=mallory, role="member").exists()


def test_member_is_redirected_to_general_and_about_page_lists_channels(community, bob):
    client = client_for(bob)
    response = client.get("/c/photography/")
    assert response.status_code == 302
    assert response["Location"] == "/c/photography/general/"
    about = page_text(client.get("/c/photography/?about"))
    assert "#general" in about
    assert "Leave community" in about


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


# --- Moderation -----------------------------------------------------------------------------


def test_only_moderators_create_channels(community, alice, bob):
    member = client_for(bob)
    refused = member.post("/c/photography/manage/", {"action": "channel", "name": "gear"})
    assert refused.status_code in (302, 403)
    assert member.get("/c/photography/manage/").status_code == 403
    assert not Channel.objects.filter(community=community, name="gear").exists()

    client_for(alice).post(
        "/c/photography/manage/", {"action": "channel", "name": "Gear Talk", "kind": "open"}
    )
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


# --- Health ---------------------------------------------------------------------------------


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_and_channel_layer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}


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


def test_signup_rate_limit_per_address(client, settings):
    settings.RATE_LIMIT_SIGNUP = (2, 3600)
    for n in range(2):
        Client().post("/accounts/signup/", {"username": f"new{n}", "password": PASSWORD})
    response = client.post("/accounts/signup/", {"username": "new9", "password": PASSWORD})
    assert "Too many requests; try again in 3600 seconds." in page_text(response)
    assert not User.objects.filter(username="new9").exists()


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


def test_admin_signs_in_through_the_site_log_in(client, make_user):
    site_roles_set(user=make_user("keeper"), roles={"admin"})
    to_login = client.get("/admin/", follow=True)
    assert to_login.redirect_chain[-1][0] == "/accounts/login/?next=%2Fadmin%2F"
    signed_in = client.post(
        "/accounts/login/?next=%2Fadmin%2F",
        {"username": "keeper", "password": PASSWORD, "next": "/admin/"},
        follow=True,
    )
    assert signed_in.redirect_chain[-1][0] == "/admin/"
    assert "Hobbies Community administration" in page_text(signed_in)
    client.post("/accounts/logout/")
    offsite = client.get("/admin/login/", {"next": "https://evil.example/"})
    assert offsite["Location"] == "/accounts/login/?next=%2Fadmin%2F"


def test_admin_tells_a_signed_in_member_they_have_no_access(bob):
    response = client_for(bob).get("/admin/", follow=True)
    assert response.status_code == 403
    assert "Your account does not have access to the administration." in page_text(response)
