"""Sign-in through an OpenID provider, driven through the real views against a scripted
provider on 127.0.0.1: the flow's parameters, every ID token check, identities and roles,
logout, the post-login step and its failure, and local log-in switched off."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse

from accounts.models import Identity, Profile, SignIn, User
from accounts.tests.conftest import oidc_finish, oidc_start
from accounts.tests.oidc_support import ScriptedProvider, free_port, rsa_key
from chat.backends.local import LocalBackend
from conftest import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(client: Client, provider: ScriptedProvider, **claims: Any) -> Any:
    params = oidc_start(client)
    provider.answer_with(nonce=params["nonce"], **claims)
    return oidc_finish(client, params)


def signed_in_user(client: Client) -> User | None:
    user_id = client.session.get(SESSION_KEY)
    return User.objects.filter(pk=user_id).first() if user_id else None


# --- The flow -------------------------------------------------------------------------------


def test_login_page_offers_the_provider_only_when_configured(client, settings, oidc_on):
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with Hobbies ID" in page
    assert 'name="password"' in page
    settings.OIDC_ISSUER = ""
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with" not in page
    assert client.get(reverse("oidc_login")).status_code == 404


def test_authorization_request_uses_code_flow_with_pkce_state_and_nonce(client, oidc_on):
    params = oidc_start(client, next="/c/photography/")
    assert params["_endpoint"] == f"{oidc_on.url}/authorize"
    assert params["response_type"] == "code"
    assert params["client_id"] == ScriptedProvider.CLIENT_ID
    assert params["redirect_uri"] == "http://testserver/accounts/oidc/callback/"
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
    assert set(params["scope"].split()) >= {"openid", "email", "profile"}
    assert SESSION_KEY not in client.session


def test_first_sign_in_creates_the_member_and_lands_on_the_directory(client, settings, oidc_on):
    params = oidc_start(client)
    oidc_on.answer_with(nonce=params["nonce"])
    response = oidc_finish(client, params)

    assert response.status_code == 302 and response["Location"] == reverse("directory")
    user = signed_in_user(client)
    assert user is not None and user.username == "olivia"
    assert user.email == "olivia@example.org" and not user.has_usable_password()
    assert Identity.objects.get(user=user).subject == "0b8f6a2e-4c3d-4e5f-9a1b-2c3d4e5f6a7b"
    assert Profile.objects.get(user=user).display_name == "Olivia Ortega"
    assert list(SignIn.objects.filter(user=user).values_list("method", flat=True)) == ["oidc"]
    page = client.get(reverse("directory")).content.decode()
    assert "Olivia Ortega" in page

    # The code was exchanged with the PKCE verifier, our redirect URI and the client secret.
    (request,) = oidc_on.token_requests
    form = request["form"]
    verifier_hash = hashlib.sha256(form["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(verifier_hash).rstrip(b"=").decode() == params["code_challenge"]
    assert form["grant_type"] == "authorization_code" and form["code"] == "code-123"
    assert form["redirect_uri"] == params["redirect_uri"]
    basic = base64.b64encode(f"{ScriptedProvider.CLIENT_ID}:{settings.OIDC_CLIENT_SECRET}".encode())
    assert request["authorization"] == f"Basic {basic.decode()}"
    assert "client_secret" not in form


def test_next_page_is_kept_through_the_sign_in(client, oidc_on):
    params = oidc_start(client, next="/accounts/profile/")
    oidc_on.answer_with(nonce=params["nonce"])
    assert oidc_finish(client, params)["Location"] == "/accounts/profile/"


def test_session_key_rotates_on_sign_in(client, oidc_on):
    params = oidc_start(client)
    before = client.session.session_key
    oidc_on.answer_with(nonce=params["nonce"])
    oidc_finish(client, params)
    assert client.session.session_key != before
    assert signed_in_user(client) is not None


def test_discovery_is_fetched_once_and_keys_are_cached(client, oidc_on):
    for _ in range(3):
        sign_in(Client(), oidc_on)
    assert oidc_on.hits["/.well-known/openid-configuration"] == 1
    assert oidc_on.hits["/jwks"] == 1


def test_rotated_signing_key_is_fetched_again_on_unknown_kid(client, settings, oidc_on):
    settings.OIDC_JWKS_MIN_REFRESH_SECONDS = 0
    sign_in(Client(), oidc_on)
    oidc_on.keys["key-2"] = rsa_key()
    oidc_on.published = ["key-2"]
    params = oidc_start(client)
    claims = oidc_on.claims(nonce=params["nonce"])
    oidc_on.answer = lambda form: (200, {"id_token": oidc_on.sign(claims, kid="key-2")})
    assert oidc_finish(client, params).status_code == 302
    assert signed_in_user(client) is not None
    assert oidc_on.hits["/jwks"] == 2


# --- Rejected tokens and failed flows: a clear page, nothing created ------------------------


def _rejected(client: Client, response: Any, text: str) -> None:
    assert response.status_code in (400, 502), response.status_code
    page = response.content.decode()
    assert text in page
    assert reverse("login") in page  # a way back
    assert SESSION_KEY not in client.session
    assert not User.objects.exists()
    assert not Identity.objects.exists()
    assert not SignIn.objects.exists()


NOT_VERIFIED = "could not be verified"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong_aud", "another client"),
        ("wrong_iss", "another issuer"),
        ("expired", "expired"),
        ("issued_in_the_future", "not yet valid"),
        ("bad_signature", "bad signature"),
        ("unknown_kid", "unknown signing key"),
        ("missing_nonce", "nonce"),
        ("wrong_nonce", "nonce"),
        ("access_token", "aud"),
        ("no_sub", "sub"),
        ("unsigned", "algorithm 'none'"),
    ],
)
def test_bad_id_tokens_are_rejected_and_nothing_is_created(client, oidc_on, caplog, case, reason):
    params = oidc_start(client)
    now = int(time.time())
    overrides: dict[str, Any] = {"nonce": params["nonce"]}
    kid, key = "key-1", None
    if case == "wrong_aud":
        overrides["aud"] = "someone-else"
    elif case == "wrong_iss":
        overrides["iss"] = "http://127.0.0.1:1/other-issuer"
    elif case == "expired":
        overrides.update(iat=now - 7200, exp=now - 3600)
    elif case == "issued_in_the_future":
        overrides.update(iat=now + 3600, exp=now + 7200)
    elif case == "bad_signature":
        key = rsa_key()  # signed by someone else, claiming our provider's key id
    elif case == "unknown_kid":
        kid, key = "key-unknown", rsa_key()
    elif case == "missing_nonce":
        overrides["nonce"] = None
    elif case == "wrong_nonce":
        overrides["nonce"] = "a-nonce-from-another-sign-in"
    elif case == "access_token":
        # Cognito's access token: token_use "access", client_id instead of aud.
        overrides.update(token_use="access", aud=None, client_id=ScriptedProvider.CLIENT_ID)
    elif case == "no_sub":
        overrides["sub"] = None
    claims = oidc_on.claims(**overrides)
    if case == "unsigned":
        token = (
            ".".join(
                base64.urlsafe_b64encode(part.encode()).rstrip(b"=").decode()
                for part in ('{"alg":"none","kid":"key-1"}', json.dumps(claims))
            )
            + "."
        )
    else:
        token = oidc_on.sign(claims, kid=kid, key=key)
    oidc_on.answer = lambda form: (200, {"access_token": "x", "id_token": token})
    _rejected(client, oidc_finish(client, params), NOT_VERIFIED)
    assert reason in caplog.text


def test_access_token_in_place_of_the_id_token_is_rejected(client, oidc_on, caplog):
    params = oidc_start(client)
    access = oidc_on.sign(oidc_on.claims(nonce=params["nonce"], token_use="access"))
    oidc_on.answer = lambda form: (200, {"access_token": "x", "id_token": access})
    _rejected(client, oidc_finish(client, params), NOT_VERIFIED)
    assert "not an ID token" in caplog.text


def test_mismatched_state_is_rejected(client, oidc_on):
    params = oidc_start(client)
    oidc_on.answer_with(nonce=params["nonce"])
    response = oidc_finish(client, params | {"state": "not-the-state-we-sent"})
    _rejected(client, response, "expired or was already used")
    assert oidc_on.token_requests == []


def test_state_from_another_browser_is_rejected(client, oidc_on):
    params = oidc_start(Client())
    oidc_on.answer_with(nonce=params["nonce"])
    _rejected(client, oidc_finish(client, params), "expired or was already used")


def test_replayed_callback_is_rejected(client, oidc_on):
    params = oidc_start(client)
    oidc_on.answer_with(nonce=params["nonce"])
    assert oidc_finish(client, params).status_code == 302
    client.post(reverse("logout"))
    response = oidc_finish(client, params)
    assert response.status_code == 400
    assert "expired or was already used" in response.content.decode()
    assert SESSION_KEY not in client.session
    assert SignIn.objects.count() == 1


def test_expired_state_is_rejected(client, settings, oidc_on):
    settings.OIDC_STATE_MAX_AGE_SECONDS = 0
    params = oidc_start(client)
    oidc_on.answer_with(nonce=params["nonce"])
    time.sleep(0.01)
    _rejected(client, oidc_finish(client, params), "took too long")


def test_cancelled_consent_is_explained(client, oidc_on):
    params = oidc_start(client)
    response = client.get(
        reverse("oidc_callback"), {"error": "access_denied", "state": params["state"]}
    )
    _rejected(client, response, "Sign-in was cancelled")
    # The state was used up: coming back with it later fails too.
    oidc_on.answer_with(nonce=params["nonce"])
    _rejected(Client(), oidc_finish(client, params), "expired or was already used")


def test_provider_refusing_the_code_is_explained(client, oidc_on):
    params = oidc_start(client)
    oidc_on.answer = lambda form: (400, {"error": "invalid_grant"})
    _rejected(client, oidc_finish(client, params), NOT_VERIFIED)


def test_provider_down_at_the_start_is_explained(client, settings, oidc_on):
    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"
    response = client.get(reverse("oidc_login"))
    assert response.status_code == 502
    assert "could not be reached" in response.content.decode()


def test_provider_down_at_the_token_exchange_is_explained(client, oidc_on):
    params = oidc_start(client)
    oidc_on.stop()
    _rejected(client, oidc_finish(client, params), "could not be reached")


def test_discovery_naming_another_issuer_is_refused(client, settings, oidc_on):
    settings.OIDC_ISSUER = oidc_on.issuer + "/"
    settings.OIDC_DISCOVERY_URL = oidc_on.url + "/.well-known/openid-configuration"
    assert client.get(reverse("oidc_login")).status_code == 502


# --- Identities, claims and roles -----------------------------------------------------------


def test_same_email_as_a_local_account_makes_another_user(client, oidc_on, make_user):
    local = make_user("olivia", email="olivia@example.org", display_name="Local Olivia")
    sign_in(client, oidc_on)
    user = signed_in_user(client)
    assert user is not None and user.pk != local.pk
    assert user.username != "olivia" and user.username.startswith("olivia-")
    local.refresh_from_db()
    assert local.has_usable_password() and not local.identities.exists()
    # The local account still opens with its own password only.
    other = Client()
    other.post(reverse("login"), {"username": "olivia", "password": PASSWORD})
    assert other.session[SESSION_KEY] == str(local.pk)


def test_same_subject_signs_in_the_same_user_and_claims_stay_in_sync(client, oidc_on):
    sign_in(client, oidc_on)
    first = signed_in_user(client)
    again = Client()
    sign_in(
        again,
        oidc_on,
        email="olivia.ortega@example.org",
        given_name="Liv",
        family_name="Ortega",
        **{"cognito:username": "liv"},
    )
    second = signed_in_user(again)
    assert first is not None and second is not None and first.pk == second.pk
    assert (second.username, second.email) == ("liv", "olivia.ortega@example.org")
    assert Profile.objects.get(user=second).display_name == "Liv Ortega"
    assert User.objects.count() == 1 and Profile.objects.count() == 1


def test_display_name_chosen_on_the_site_is_kept(client, oidc_on):
    sign_in(client, oidc_on)
    client.post(reverse("profile"), {"display_name": "Olly", "bio": "", "hobbies": ""})
    sign_in(Client(), oidc_on, given_name="Olivia-Maria")
    assert Profile.objects.get().display_name == "Olly"


def test_groups_become_site_roles_and_are_taken_away_at_next_sign_in(client, oidc_on):
    sign_in(client, oidc_on, **{"cognito:groups": ["moderators", "admins", "unknown-group"]})
    user = User.objects.get()
    assert user.is_staff and user.is_superuser and user.has_perm("communities.moderate")
    assert client.get("/admin/").status_code == 200

    client = Client()
    sign_in(client, oidc_on, **{"cognito:groups": ["moderators"]})
    user = User.objects.get()
    assert user.is_staff and not user.is_superuser and user.has_perm("communities.moderate")
    assert client.get("/admin/hobbies/user/").status_code == 403

    client = Client()
    sign_in(client, oidc_on, **{"cognito:groups": []})
    user = User.objects.get()
    assert not user.is_staff and not user.is_superuser and not user.has_perm("communities.moderate")
    assert client.get("/admin/").status_code == 302  # to the admin log-in


def test_disabled_account_is_refused_with_a_clear_page(client, oidc_on):
    sign_in(Client(), oidc_on)
    User.objects.update(is_active=False)
    response = sign_in(client, oidc_on)
    assert response.status_code == 400
    assert "This account is disabled." in response.content.decode()
    assert SESSION_KEY not in client.session and SignIn.objects.count() == 1


def test_groups_outside_the_allowlist_grant_nothing(client, settings, oidc_on):
    settings.OIDC_GROUP_ROLES = {}
    sign_in(client, oidc_on, **{"cognito:groups": ["moderators", "admins"]})
    user = User.objects.get()
    assert not user.is_staff and not user.is_superuser


def test_groups_claim_name_is_configurable(client, settings, oidc_on):
    settings.OIDC_GROUPS_CLAIM = "groups"
    sign_in(client, oidc_on, groups=["admins"], **{"cognito:groups": None})
    assert User.objects.get().is_superuser


# --- Logout ---------------------------------------------------------------------------------


def test_logout_after_provider_sign_in_goes_through_cognito_logout(client, settings, oidc_on):
    settings.OIDC_LOGOUT_URL = "https://hobbies.auth.eu-west-1.amazoncognito.com/logout"
    sign_in(client, oidc_on)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == (
        "https://hobbies.auth.eu-west-1.amazoncognito.com/logout?client_id=hobbies-web"
        "&logout_uri=http%3A%2F%2Ftestserver%2Faccounts%2Flogin%2F"
    )
    assert SESSION_KEY not in client.session


def test_logout_with_another_provider_uses_its_end_session_endpoint(client, oidc_on):
    sign_in(client, oidc_on)
    id_token = client.session["oidc_id_token"]
    location = client.post(reverse("logout"))["Location"]
    assert location.startswith(f"{oidc_on.url}/end-session?client_id=hobbies-web")
    assert "post_logout_redirect_uri=http%3A%2F%2Ftestserver%2Faccounts%2Flogin%2F" in location
    assert f"id_token_hint={id_token}" in location
    assert SESSION_KEY not in client.session


def test_logout_of_a_local_account_stays_here(client, oidc_on, alice):
    client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert client.post(reverse("logout"))["Location"] == reverse("login")
    assert SESSION_KEY not in client.session


@pytest.mark.django_db(transaction=True)
async def test_logout_closes_the_sessions_sockets(oidc_on, settings):
    """Signing out through the provider path closes that session's WebSockets."""
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.db import connections

    from chat.events import user_key
    from chat.hub import hub
    from hobbies.asgi import application

    client = Client()
    await database_sync_to_async(sign_in)(client, oidc_on)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(
        application,
        "/ws/",
        headers=[(b"host", b"testserver"), (b"origin", b"http://testserver"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect()
    assert connected
    user_id = await database_sync_to_async(lambda: int(client.session[SESSION_KEY]))()
    for _ in range(100):  # the socket is accepted before it joins the hub
        if hub.listeners(user_key(user_id)):
            break
        await asyncio.sleep(0.02)
    try:
        await database_sync_to_async(client.post)(reverse("logout"))
        while True:
            output = await communicator.receive_output(timeout=3)
            if output["type"] == "websocket.close":
                break
        await communicator.wait()
    finally:
        await hub.shutdown()
        # The worker thread's database connection would outlive the test (persistent connections).
        await database_sync_to_async(connections.close_all)()


# --- The post-login step --------------------------------------------------------------------


def test_post_login_step_runs_once_per_login_and_creates_the_profile_once(client, alice):
    Profile.objects.filter(user=alice).delete()
    for _ in range(2):
        response = Client(HTTP_USER_AGENT="Firefox/140", REMOTE_ADDR="203.0.113.9").post(
            reverse("login"), {"username": "alice", "password": PASSWORD}
        )
        assert response.status_code == 302
    assert Profile.objects.filter(user=alice).count() == 1
    records = list(SignIn.objects.filter(user=alice).values_list("method", "ip", "user_agent"))
    assert records == [("password", "203.0.113.9", "Firefox/140")] * 2


def test_post_login_step_failure_is_shown_and_signs_out(client, alice, monkeypatch, caplog):
    def unavailable(self: LocalBackend, user: User) -> str:
        raise ConnectionError("messaging service unavailable")

    monkeypatch.setattr(LocalBackend, "ensure_user", unavailable)
    Profile.objects.filter(user=alice).delete()
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 503
    assert "setting up your account failed" in response.content.decode()
    assert SESSION_KEY not in client.session
    assert not SignIn.objects.exists() and not Profile.objects.filter(user=alice).exists()
    assert "Post-login step failed" in caplog.text
    assert client.get(reverse("profile")).status_code == 302  # still signed out


def test_post_login_step_failure_after_provider_sign_in(client, oidc_on, monkeypatch):
    monkeypatch.setattr(
        LocalBackend, "ensure_user", lambda self, user: (_ for _ in ()).throw(ConnectionError())
    )
    response = sign_in(client, oidc_on)
    assert response.status_code == 503
    assert "setting up your account failed" in response.content.decode()
    assert SESSION_KEY not in client.session and not SignIn.objects.exists()


def test_sign_ins_are_readable_by_admins_only_and_never_editable(make_user, alice):
    admin = make_user("root")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    Client().post(reverse("login"), {"username": "alice", "password": PASSWORD})
    staff = Client()
    staff.force_login(admin)
    page = staff.get("/admin/hobbies/signin/")
    assert page.status_code == 200 and "alice" in page.content.decode()
    assert staff.get("/admin/hobbies/signin/add/").status_code == 403
    record = SignIn.objects.filter(user=alice).get()
    assert staff.post(f"/admin/hobbies/signin/{record.pk}/delete/").status_code == 403
    assert SignIn.objects.filter(pk=record.pk).exists()
    regular = Client()
    regular.force_login(alice)
    assert regular.get("/admin/hobbies/signin/").status_code == 302


# --- Local log-in switched off --------------------------------------------------------------


def test_local_login_can_be_switched_off(client, settings, oidc_on, alice):
    settings.LOCAL_LOGIN_ENABLED = False
    settings.AUTHENTICATION_BACKENDS = ["accounts.backends.OIDCBackend"]
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with Hobbies ID" in page and 'name="password"' not in page
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403 and SESSION_KEY not in client.session
    response = client.post(
        reverse("signup"), {"username": "newbie", "password": "a-long-pass-phrase"}
    )
    assert response.status_code == 403
    assert not User.objects.filter(username="newbie").exists()
    sign_in(client, oidc_on)
    assert signed_in_user(client) is not None
