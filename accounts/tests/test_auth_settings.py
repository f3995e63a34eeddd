"""Sign-in settings as a deployment sets them: read from the environment by a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from conftest import PASSWORD

SHOW = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE, "
    "s.CSRF_COOKIE_SECURE, s.CSRF_COOKIE_SAMESITE, s.AUTHENTICATION_BACKENDS, "
    "sorted(s.OIDC_GROUP_ROLES.items()))"
)


def settings_in_process(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "LOCAL_LOGIN"))}
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        env={**clean, "DJANGO_SETTINGS_MODULE": "hobbies.settings", **env},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_cookies_are_secure_http_only_and_lax():
    result = settings_in_process(DJANGO_SECURE_COOKIES="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True True Lax True Lax ['django.contrib.auth.backends.Model")


def test_provider_settings_turn_on_the_provider_backend_and_the_group_allowlist():
    result = settings_in_process(
        OIDC_ISSUER="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example",
        OIDC_CLIENT_ID="abc",
        OIDC_GROUP_ROLES="moderators=moderator, admins=admin",
        LOCAL_LOGIN_ENABLED="0",
    )
    assert result.returncode == 0, result.stderr
    assert "['accounts.backends.OIDCBackend']" in result.stdout
    assert "[('admins', 'admin'), ('moderators', 'moderator')]" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OIDC_GROUP_ROLES": "moderators=owner"}, "OIDC_GROUP_ROLES"),
        ({"LOCAL_LOGIN_ENABLED": "0"}, "no way in"),
    ],
)
def test_bad_sign_in_settings_stop_the_start(env, message):
    result = settings_in_process(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


@pytest.mark.django_db
def test_password_log_in_rotates_the_session_key(alice):
    client = Client()
    client.get(reverse("login"))
    client.session.save()
    before = client.session.session_key
    client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert client.session.session_key not in (None, before)
    assert client.session["_auth_user_id"] == str(alice.pk)
