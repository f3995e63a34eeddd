"""Accounts, profiles, communities and memberships, through the service functions."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from accounts.models import User
from accounts.services import profile_update, user_create
from conftest import PASSWORD
from hobbies.errors import Conflict, Invalid

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

    from accounts.models import Identity
    from accounts.oidc import Person
    from accounts.services import identity_sync

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
