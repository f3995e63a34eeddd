"""The OpenID Connect authentication backend that mozilla-django-oidc calls from its views."""

from __future__ import annotations

import logging
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts.models import User
from accounts.oidc import (
    Provider,
    ProviderUnavailable,
    TokenRejected,
    enabled,
    person_from_claims,
    provider,
    verify_id_token,
)
from accounts.services import identity_sync

logger = logging.getLogger("accounts.oidc")


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, with every ID token claim checked and users matched by
    (issuer, `sub`). Errors are raised (`ProviderUnavailable`, `TokenRejected`) so the callback
    can say what went wrong; nothing is written before the token has passed every check."""

    def __init__(self) -> None:
        # The parent reads endpoints from settings here; ours come from `provider()` when needed,
        # so that a password log-in never waits for the provider.
        self.UserModel = get_user_model()

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        if request is None or not enabled() or "nonce" not in kwargs:
            return None
        code = request.GET.get("code")
        if not code:
            return None
        config = provider()
        self.request = request
        token_info = self.get_token(
            {
                "grant_type": "authorization_code",
                "client_id": config.client_id,
                "code": code,
                "redirect_uri": request.build_absolute_uri(reverse("oidc_callback")),
                "code_verifier": kwargs.get("code_verifier") or "",
            },
            config,
        )
        id_token = token_info.get("id_token")
        if not isinstance(id_token, str):
            raise TokenRejected(reason="no ID token in the token response")
        claims = verify_id_token(id_token, nonce=kwargs["nonce"], config=config)
        self.store_tokens(token_info.get("access_token"), id_token)
        return self.get_or_create_user(token_info.get("access_token"), id_token, claims)

    def get_token(self, payload: dict[str, Any], config: Provider | None = None) -> dict[str, Any]:  # type: ignore[override]
        config = config or provider()
        auth = None
        if config.client_secret:
            # Cognito's app clients with a secret take it as HTTP Basic credentials.
            auth = requests.auth.HTTPBasicAuth(config.client_id, config.client_secret)
        try:
            response = requests.post(
                config.token_endpoint, data=payload, auth=auth, timeout=settings.OIDC_TIMEOUT
            )
        except requests.RequestException as exc:
            logger.warning("OIDC: token endpoint unreachable: %s", exc)
            raise ProviderUnavailable(reason="token endpoint unreachable") from exc
        if response.status_code != 200:
            logger.warning(
                "OIDC: token endpoint said %s: %s", response.status_code, response.text[:300]
            )
            if response.status_code >= 500:
                raise ProviderUnavailable(reason=f"token endpoint answered {response.status_code}")
            raise TokenRejected(reason="the provider refused the authorization code")
        try:
            data = response.json()
        except ValueError as exc:
            raise TokenRejected(reason="token response is not JSON") from exc
        if not isinstance(data, dict):
            raise TokenRejected(reason="token response is not a JSON object")
        return data

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        return verify_id_token(token, nonce=kwargs.get("nonce"))

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        # Never by email: an address shared with a local account must not open that account.
        return self.UserModel.objects.none()

    def get_or_create_user(self, access_token: Any, id_token: Any, payload: Any) -> User:
        return identity_sync(person=person_from_claims(payload, settings.OIDC_ISSUER))

    def get_user(self, user_id: Any) -> User | None:
        try:
            return User.objects.get(pk=user_id)
        except User.DoesNotExist:
            return None
