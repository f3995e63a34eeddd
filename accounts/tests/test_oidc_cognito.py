"""ID token checks on tokens shaped by Amazon Cognito: moto's cognito-idp, in server mode on
127.0.0.1, issues them and serves the user pool's discovery document and keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from accounts import oidc
from accounts.services import identity_sync
from accounts.tests.oidc_support import free_port

pytestmark = pytest.mark.django_db
PASSWORD = "Correct-Horse-42"


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def cognito(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A user pool with an app client, a `moderators` group and a member in it."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    idp = boto3.client("cognito-idp", endpoint_url=moto_server, region_name="eu-west-1")
    pool = idp.create_user_pool(PoolName="hobbies")["UserPool"]["Id"]
    client = idp.create_user_pool_client(
        UserPoolId=pool,
        ClientName="hobbies-web",
        ExplicitAuthFlows=["ADMIN_NO_SRP_AUTH"],
        ReadAttributes=["email", "name"],
    )["UserPoolClient"]["ClientId"]
    idp.create_group(GroupName="moderators", UserPoolId=pool)
    idp.admin_create_user(
        UserPoolId=pool,
        Username="maya",
        UserAttributes=[
            {"Name": "email", "Value": "maya@example.org"},
            {"Name": "name", "Value": "Maya Moreau"},
        ],
        MessageAction="SUPPRESS",
    )
    idp.admin_set_user_password(UserPoolId=pool, Username="maya", Password=PASSWORD, Permanent=True)
    idp.admin_add_user_to_group(UserPoolId=pool, Username="maya", GroupName="moderators")
    tokens = idp.admin_initiate_auth(
        UserPoolId=pool,
        ClientId=client,
        AuthFlow="ADMIN_NO_SRP_AUTH",
        AuthParameters={"USERNAME": "maya", "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    return {
        "pool": pool,
        "client": client,
        "issuer": f"https://cognito-idp.eu-west-1.amazonaws.com/{pool}",
        "discovery": f"{moto_server}/{pool}/.well-known/openid-configuration",
        "id_token": tokens["IdToken"],
        "access_token": tokens["AccessToken"],
    }


@pytest.fixture
def cognito_settings(settings: Any, cognito: dict[str, Any]) -> Iterator[dict[str, Any]]:
    oidc.clear_caches()
    settings.OIDC_ISSUER = cognito["issuer"]
    settings.OIDC_CLIENT_ID = cognito["client"]
    settings.OIDC_DISCOVERY_URL = cognito["discovery"]
    # Cognito's hosted UI lives on the user pool domain, not the issuer.
    domain = "https://hobbies-example.auth.eu-west-1.amazoncognito.com"
    settings.OIDC_AUTHORIZATION_ENDPOINT = f"{domain}/oauth2/authorize"
    settings.OIDC_TOKEN_ENDPOINT = f"{domain}/oauth2/token"
    settings.OIDC_GROUP_ROLES = {"moderators": "moderator"}
    yield cognito
    oidc.clear_caches()


def test_cognito_id_token_passes_and_maps_to_a_moderator(cognito_settings):
    config = oidc.provider()
    assert config.jwks_uri.endswith(f"/{cognito_settings['pool']}/.well-known/jwks.json")
    claims = oidc.decode_id_token(cognito_settings["id_token"])
    assert claims["token_use"] == "id" and claims["aud"] == cognito_settings["client"]
    person = oidc.person_from_claims(claims, cognito_settings["issuer"])
    assert person.username == "maya" and person.email == "maya@example.org"
    assert person.first_name == "Maya Moreau" and person.roles == {"moderator"}
    user = identity_sync(person=person)
    assert user.is_staff and user.has_perm("communities.moderate")


def test_cognito_access_token_is_not_an_id_token(cognito_settings):
    with pytest.raises(oidc.TokenRejected) as caught:
        oidc.decode_id_token(cognito_settings["access_token"])
    assert "aud" in caught.value.reason


def test_cognito_id_token_for_another_app_client_is_rejected(cognito_settings, settings):
    settings.OIDC_CLIENT_ID = "another-app-client"
    with pytest.raises(oidc.TokenRejected) as caught:
        oidc.decode_id_token(cognito_settings["id_token"])
    assert caught.value.reason == "token is for another client"


def test_cognito_id_token_from_another_user_pool_is_rejected(cognito_settings, settings):
    other = cognito_settings["issuer"].replace(cognito_settings["pool"], "eu-west-1_Other")
    config = oidc.provider()
    with pytest.raises(oidc.TokenRejected) as caught:
        oidc.decode_id_token(
            cognito_settings["id_token"],
            oidc.Provider(**{**config.__dict__, "issuer": other}),
        )
    assert caught.value.reason == "token is from another issuer"


def test_cognito_token_without_our_nonce_is_rejected(cognito_settings):
    with pytest.raises(oidc.TokenRejected) as caught:
        oidc.verify_id_token(cognito_settings["id_token"], nonce="the-nonce-we-sent")
    assert "nonce" in caught.value.reason


def test_tampered_cognito_token_is_rejected(cognito_settings):
    header, payload, signature = cognito_settings["id_token"].split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    with pytest.raises(oidc.TokenRejected):
        oidc.decode_id_token(forged)
