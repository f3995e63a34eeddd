"""Fixtures for the sign-in tests: a scripted OpenID provider on 127.0.0.1, and settings that
point the site at it (undone, with the provider caches, after each test)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client
from django.urls import reverse

from accounts import oidc
from accounts.tests.oidc_support import ScriptedProvider

BACKENDS = ["django.contrib.auth.backends.ModelBackend", "accounts.backends.OIDCBackend"]
GROUP_ROLES = {"moderators": "moderator", "admins": "admin"}


@pytest.fixture
def scripted_provider() -> Iterator[ScriptedProvider]:
    provider = ScriptedProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def oidc_on(settings: Any, scripted_provider: ScriptedProvider) -> Iterator[ScriptedProvider]:
    oidc.clear_caches()
    settings.OIDC_ISSUER = scripted_provider.issuer
    settings.OIDC_CLIENT_ID = ScriptedProvider.CLIENT_ID
    settings.OIDC_CLIENT_SECRET = secrets.token_urlsafe(24)
    settings.OIDC_LABEL = "Hobbies ID"
    settings.OIDC_GROUP_ROLES = GROUP_ROLES
    settings.AUTHENTICATION_BACKENDS = BACKENDS
    yield scripted_provider
    oidc.clear_caches()


def oidc_start(client: Client, **query: str) -> dict[str, str]:
    """Press "Sign in with …": the query of the provider authorization URL we are sent to."""
    response = client.get(reverse("oidc_login"), query)
    assert response.status_code == 302, response.content[:500]
    location = urlparse(response["Location"])
    return {k: v[0] for k, v in parse_qs(location.query).items()} | {
        "_endpoint": f"{location.scheme}://{location.netloc}{location.path}"
    }


def oidc_finish(client: Client, params: dict[str, str], **query: str) -> Any:
    """The provider sends the browser back to our callback."""
    return client.get(
        reverse("oidc_callback"), {"code": "code-123", "state": params["state"], **query}
    )
