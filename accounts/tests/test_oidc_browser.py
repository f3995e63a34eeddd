"""Signing in through a real OpenID provider, end to end in Chromium.

The provider is the django-oauth-toolkit project in `oidc_provider/`, run as its own process on
127.0.0.1 (RS256 key made here, PKCE required, Cognito-shaped claims); the site runs under daphne
on 127.0.0.1, provider through its environment like a deployment. Both are stopped by the
fixtures."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from playwright.sync_api import Browser, Page, expect

from accounts.models import Identity, SignIn, User
from accounts.tests.oidc_support import free_port, private_pem, rsa_key
from chat.tests.live import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CLIENT_ID = "hobbies-web"
LABEL = "Hobbies ID"


class Provider:
    """The test provider process and the commands that manage its users."""

    def __init__(self, data_dir: Path, site_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = f"{self.url}/o"
        self.secret = secrets.token_urlsafe(32)
        self.site = site_url
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "accounts.tests.oidc_provider.settings",
            "OP_DATA_DIR": str(data_dir),
            "OP_SECRET_KEY": secrets.token_urlsafe(50),
            "OP_RSA_PRIVATE_KEY": private_pem(rsa_key()),
            "OP_ISSUER": self.issuer,
        }
        self.manage("migrate", "--noinput")
        self.manage(
            "provider_client",
            CLIENT_ID,
            # `--name=value`: a random secret may start with "-".
            f"--secret={self.secret}",
            f"--redirect-uri={site_url}/accounts/oidc/callback/",
            f"--logout-uri={site_url}/accounts/login/",
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=django_settings.BASE_DIR,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                discovery = f"{self.issuer}/.well-known/openid-configuration"
                if requests.get(discovery, timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("the test OpenID provider did not start")
            time.sleep(0.1)

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=django_settings.BASE_DIR,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def user(self, username: str, password: str, groups: str, first: str, last: str) -> None:
        self.manage(
            "provider_user",
            username,
            f"--password={password}",
            f"--email={username}@example.org",
            f"--first-name={first}",
            f"--last-name={last}",
            f"--groups={groups}",
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def provider(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The provider, and the site (daphne) set up to sign in with it."""
    site = LiveServer()
    running = Provider(tmp_path_factory.mktemp("provider"), site.url)
    site.env.update(
        OIDC_ISSUER=running.issuer,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=running.secret,
        OIDC_LABEL=LABEL,
        OIDC_LOGOUT_URL=f"{running.url}/logout",
        OIDC_GROUP_ROLES="moderators=moderator,admins=admin",
    )
    try:
        site.start()
    except Exception:
        running.stop()
        raise
    yield running
    site.close()
    running.stop()


@pytest.fixture
def site(provider: Any) -> str:
    return str(provider.site)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def sign_in(page: Page, site: str, username: str, password: str, *, consent: bool = True) -> None:
    page.goto(f"{site}/accounts/login/")
    page.get_by_role("button", name=f"Sign in with {LABEL}").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in to the provider").click()
    page.get_by_role("button", name="Authorize" if consent else "Cancel").click()


def test_sign_in_roles_and_logout_through_the_provider(page: Page, site: str, provider):
    password = secrets.token_urlsafe(16)
    provider.user("olivia", password, "moderators", "Olivia", "Ortega")

    sign_in(page, site, "olivia", password)
    page.wait_for_url(f"{site}/")
    expect(page.get_by_test_id("me")).to_have_text("Olivia Ortega")

    # The provider's `moderators` group made her a site moderator: the admin site opens.
    page.goto(f"{site}/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    user = User.objects.get(identities__issuer=provider.issuer)
    assert user.has_perm("communities.moderate") and not user.is_superuser
    assert list(SignIn.objects.filter(user=user).values_list("method", flat=True)) == ["oidc"]

    # Log out: our session ends, the provider's too, and we are back on our log-in page.
    page.goto(f"{site}/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{site}/accounts/login/")
    expect(page.get_by_role("button", name=f"Sign in with {LABEL}")).to_be_visible()
    page.goto(f"{site}/accounts/profile/")
    page.wait_for_url(f"{site}/accounts/login/?next=/accounts/profile/")
    # Signing in again asks for the provider password again: its session ended.
    page.get_by_role("button", name=f"Sign in with {LABEL}").click()
    expect(page.get_by_role("button", name="Sign in to the provider")).to_be_visible()


def test_removed_from_moderators_loses_the_role_at_next_sign_in(page: Page, site, provider):
    password = secrets.token_urlsafe(16)
    provider.user("mo", password, "moderators", "Mo", "Reyes")
    sign_in(page, site, "mo", password)
    page.wait_for_url(f"{site}/")
    page.goto(f"{site}/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.goto(f"{site}/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{site}/accounts/login/")

    provider.user("mo", password, "", "Mo", "Reyes")  # taken out of the group at the provider
    sign_in(page, site, "mo", password)
    page.wait_for_url(f"{site}/")
    page.goto(f"{site}/admin/")
    expect(
        page.get_by_text("Your account does not have access to the administration.")
    ).to_be_visible()
    user = User.objects.get(identities__issuer=provider.issuer)
    assert not user.is_staff and not user.has_perm("communities.moderate")


def test_cancelled_consent_ends_on_a_clear_page_and_creates_nothing(page: Page, site, provider):
    password = secrets.token_urlsafe(16)
    provider.user("casey", password, "", "Casey", "Lee")
    sign_in(page, site, "casey", password, consent=False)
    expect(page.get_by_test_id("sign-in-error")).to_contain_text("Sign-in was cancelled")
    page.get_by_role("link", name="Back to log in").click()
    page.wait_for_url(f"{site}/accounts/login/")
    assert not User.objects.exists() and not Identity.objects.exists()
