"""Account, directory and community pages, through the HTTP client, as a browser would see them."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from accounts.models import SignIn, User
from accounts.services import site_roles_set
from conftest import PASSWORD, client_for, say

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


def test_login_rate_limit_per_username_sees_through_spellings_of_the_same_name(alice, settings):
    # Each spelling signs in as alice (the form strips and NFKC-normalizes), so each counts
    # against the same limit.
    settings.RATE_LIMIT_LOGIN = (3, 3600)
    spellings = [" alice", "alice\t", "\uff41\uff4c\uff49\uff43\uff45"]  # the last full-width
    for n, spelling in enumerate(spellings):
        response = Client(REMOTE_ADDR=f"10.0.1.{n}").post(
            "/accounts/login/", {"username": spelling, "password": "wrong-pw"}
        )
        assert response.status_code == 200
        assert "enter a correct username and password" in page_text(response)
    blocked = Client(REMOTE_ADDR="10.0.1.99").post(
        "/accounts/login/", {"username": " Alice ", "password": PASSWORD}
    )
    assert blocked.status_code == 429
    assert "Too many requests" in page_text(blocked)


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


# --- Joining and leaving --------------------------------------------------------------------


def test_signup_rate_limit_per_address(client, settings):
    settings.RATE_LIMIT_SIGNUP = (2, 3600)
    for n in range(2):
        Client().post("/accounts/signup/", {"username": f"new{n}", "password": PASSWORD})
    response = client.post("/accounts/signup/", {"username": "new9", "password": PASSWORD})
    assert "Too many requests; try again in 3600 seconds." in page_text(response)
    assert not User.objects.filter(username="new9").exists()


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


# --- NUL and other control characters (PostgreSQL refuses NUL in text) ---------------------


def test_login_with_nul_in_username_says_why(client, alice):
    response = client.post("/accounts/login/", {"username": "alice\x00", "password": PASSWORD})
    assert response.status_code == 200
    assert "Null characters are not allowed." in page_text(response)


def test_sign_in_record_drops_control_characters_of_the_user_agent(alice):
    response = Client(HTTP_USER_AGENT="Fire\x00fox/140\x1b").post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert SignIn.objects.get(user=alice).user_agent == "Firefox/140"


def test_signup_with_nul_says_why(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "do\x00ra", "display_name": "D\x00", "email": "d@x\x00.org",
         "password": PASSWORD},
    )  # fmt: skip
    assert response.status_code == 200
    assert "Null characters are not allowed." in page_text(response)
    assert not User.objects.filter(username__startswith="do").exists()


def test_profile_with_nul_says_why(bob):
    client = client_for(bob)
    response = client.post(
        "/accounts/profile/", {"display_name": "B\x00", "bio": "x\x00", "hobbies": "\x00"}
    )
    assert response.status_code == 200
    assert "Null characters are not allowed." in page_text(response)
    bob.refresh_from_db()
    assert bob.display_name == "Bob Brown"
