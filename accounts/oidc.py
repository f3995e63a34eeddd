"""Sign-in through an OpenID Connect provider: Amazon Cognito, or any other.

Everything that speaks to the provider lives here: its configuration (settings first, then the
issuer's discovery document, fetched once and cached), its signing keys (cached, fetched again
when a token names a key we do not know), the ID token checks and the provider's logout
address. The authentication backend that mozilla-django-oidc calls from its views is
`accounts.backends.OIDCBackend`.

mozilla-django-oidc checks neither `aud` nor `iss`, and matches users by email; the backend here
checks every claim and matches users by (issuer, `sub`) only.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from hobbies.errors import CheckFailed, SignInFailed

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"


class ProviderUnavailable(SignInFailed):
    code = "provider_unavailable"
    status = 502

    def default_detail(self) -> str:
        return "The sign-in service could not be reached. Please try again in a few minutes."


class TokenRejected(SignInFailed):
    code = "token_rejected"
    status = 400

    def default_detail(self) -> str:
        return (
            "The answer from the sign-in service could not be verified, so you were not signed in."
        )


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_CLIENT_ID)


# --- Provider configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    client_secret: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str


_lock = threading.Lock()
_discovery: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks: dict[str, tuple[float, dict[str, jwt.PyJWK]]] = {}


def clear_caches() -> None:
    """Forget discovery documents and signing keys (tests, or after changing settings)."""
    with _lock:
        _discovery.clear()
        _jwks.clear()


class Unreadable(Exception):
    """A provider document could not be read; the message says how (for logs and `doctor`)."""


def _fetch_json(url: str) -> dict[str, Any]:
    """The JSON object at `url`, or `Unreadable`."""
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
    except requests.Timeout as exc:
        raise Unreadable(f"no answer within {settings.OIDC_TIMEOUT} s") from exc
    except requests.ConnectionError as exc:
        refused = "refused" in str(exc).lower()
        raise Unreadable("connection refused" if refused else f"cannot connect ({exc})") from exc
    except requests.RequestException as exc:
        raise Unreadable(str(exc)) from exc
    if response.status_code >= 400:
        raise Unreadable(f"HTTP {response.status_code}")
    try:
        data = response.json()
    except ValueError as exc:
        raise Unreadable("not JSON") from exc
    if not isinstance(data, dict):
        raise Unreadable("not a JSON object")
    return data


def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        return _fetch_json(url)
    except Unreadable as exc:
        logger.warning("OIDC: could not fetch the %s from %s: %s", what, url, exc)
        raise ProviderUnavailable(reason=f"{what} unavailable") from exc


def _discovery_url(issuer: str) -> str:
    return settings.OIDC_DISCOVERY_URL or issuer.rstrip("/") + "/.well-known/openid-configuration"


def _discovery_document(issuer: str) -> dict[str, Any]:
    url = _discovery_url(issuer)
    with _lock:
        cached = _discovery.get(url)
    if cached is not None and time.monotonic() - cached[0] < settings.OIDC_CACHE_SECONDS:
        return cached[1]
    document = _get_json(url, "discovery document")
    if document.get("issuer") != issuer:
        logger.error("OIDC: %s names issuer %r, not %r", url, document.get("issuer"), issuer)
        raise ProviderUnavailable(reason="discovery document names another issuer")
    with _lock:
        _discovery[url] = (time.monotonic(), document)
    return document


REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


def _configured_endpoints() -> dict[str, str]:
    """The endpoints set in settings (`OIDC_<NAME>`); empty where the discovery document says."""
    return {
        "authorization_endpoint": settings.OIDC_AUTHORIZATION_ENDPOINT,
        "token_endpoint": settings.OIDC_TOKEN_ENDPOINT,
        "jwks_uri": settings.OIDC_JWKS_URI,
        "end_session_endpoint": settings.OIDC_END_SESSION_ENDPOINT,
    }


def _complete(endpoints: dict[str, str], document: dict[str, Any]) -> list[str]:
    """Fill the endpoints not set from the discovery document; the required ones still missing."""
    for name, value in endpoints.items():
        found = document.get(name)
        endpoints[name] = value or (found if isinstance(found, str) else "")
    return [name for name in REQUIRED_ENDPOINTS if not endpoints[name]]


def provider() -> Provider:
    """The provider's settings; endpoints not set explicitly come from its discovery document."""
    issuer = settings.OIDC_ISSUER
    endpoints = _configured_endpoints()
    if not all(endpoints[name] for name in REQUIRED_ENDPOINTS):
        missing = _complete(endpoints, _discovery_document(issuer))
        if missing:
            logger.error("OIDC: no %s in the discovery document or settings", ", ".join(missing))
            raise ProviderUnavailable(reason=f"no {missing[0]}")
    return Provider(
        issuer=issuer,
        client_id=settings.OIDC_CLIENT_ID,
        client_secret=settings.OIDC_CLIENT_SECRET,
        **endpoints,
    )


# --- Signing keys and ID tokens -------------------------------------------------------------


def _fetch_keys(uri: str) -> dict[str, jwt.PyJWK]:
    return _usable_keys(_get_json(uri, "signing keys"))


def _usable_keys(document: dict[str, Any]) -> dict[str, jwt.PyJWK]:
    """The RS256 signing keys of a JWKS document, by `kid`."""
    keys: dict[str, jwt.PyJWK] = {}
    listed = document.get("keys")
    for data in listed if isinstance(listed, list) else []:
        if not isinstance(data, dict) or not isinstance(data.get("kid"), str):
            continue
        if data.get("kty") != "RSA" or data.get("use", "sig") != "sig":
            continue
        if data.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            keys[data["kid"]] = jwt.PyJWK(data, algorithm=ALGORITHM)
        except jwt.PyJWTError:
            logger.warning("OIDC: skipping unreadable key %r", data["kid"])
    return keys


def signing_key(kid: str, jwks_uri: str) -> jwt.PyJWK:
    """The provider's key `kid`. Keys are cached; an unknown `kid` fetches them again (the
    provider may have rotated its keys), at most once per OIDC_JWKS_MIN_REFRESH_SECONDS."""
    now = time.monotonic()
    with _lock:
        cached = _jwks.get(jwks_uri)
    if cached is not None:
        fetched_at, keys = cached
        fresh = now - fetched_at < settings.OIDC_CACHE_SECONDS
        if kid in keys and fresh:
            return keys[kid]
        if fresh and now - fetched_at < settings.OIDC_JWKS_MIN_REFRESH_SECONDS:
            raise TokenRejected(reason=f"unknown signing key {kid!r}")
    keys = _fetch_keys(jwks_uri)
    with _lock:
        _jwks[jwks_uri] = (now, keys)
    if kid not in keys:
        raise TokenRejected(reason=f"unknown signing key {kid!r}")
    return keys[kid]


def decode_id_token(token: str, config: Provider | None = None) -> dict[str, Any]:
    """The claims of an ID token from our provider, or `TokenRejected`.

    Checks: RS256 signature by a key of the issuer's JWKS, `iss` is the issuer, `aud` is our
    client id (and `azp` too when there are several audiences), `exp` has not passed, `iat` is
    neither in the future nor too old, `sub` is present, and Cognito's `token_use` is `id`.
    """
    config = config or provider()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenRejected(reason="malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise TokenRejected(reason=f"algorithm {header.get('alg')!r} is not {ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenRejected(reason="token names no signing key")
    key = signing_key(kid, config.jwks_uri)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[ALGORITHM],
            audience=config.client_id,
            issuer=config.issuer,
            leeway=settings.OIDC_CLOCK_SKEW_SECONDS,
            options={"require": ["iss", "aud", "sub", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenRejected(reason="token expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenRejected(reason="token is for another client") from exc
    except jwt.InvalidIssuerError as exc:
        raise TokenRejected(reason="token is from another issuer") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenRejected(reason="bad signature") from exc
    except jwt.PyJWTError as exc:
        raise TokenRejected(reason=f"invalid token: {exc}") from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != config.client_id:
        raise TokenRejected(reason="token was issued to another party")
    max_age = settings.OIDC_ID_TOKEN_MAX_AGE_SECONDS + settings.OIDC_CLOCK_SKEW_SECONDS
    if time.time() - claims["iat"] > max_age:
        raise TokenRejected(reason="token is too old")
    if "token_use" in claims and claims["token_use"] != "id":  # noqa: S105 - a claim value
        raise TokenRejected(reason=f"a {claims['token_use']!r} token is not an ID token")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise TokenRejected(reason="token has no subject")
    return claims


def verify_id_token(
    token: str, *, nonce: str | None, config: Provider | None = None
) -> dict[str, Any]:
    """`decode_id_token`, and the token's `nonce` is the one this sign-in sent."""
    claims = decode_id_token(token, config)
    token_nonce = claims.get("nonce")
    if not nonce or not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce, nonce):
        raise TokenRejected(reason="nonce missing or not ours")
    return claims


# --- From claims to our user ----------------------------------------------------------------

_USERNAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


@dataclass(frozen=True)
class Person:
    """What a provider says about someone, in our terms."""

    issuer: str
    subject: str
    username: str
    email: str
    first_name: str
    last_name: str
    roles: frozenset[str]


def _text(claims: dict[str, Any], name: str, limit: int) -> str:
    value = claims.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def person_from_claims(claims: dict[str, Any], issuer: str) -> Person:
    subject = str(claims["sub"])
    email = _text(claims, "email", 254)
    candidates = [
        _text(claims, "preferred_username", 150),
        _text(claims, "cognito:username", 150),
        email.partition("@")[0],
    ]
    username = next(
        (
            cleaned[:30]
            for name in candidates
            if name and name != subject and len(cleaned := _USERNAME_UNSAFE.sub("", name)) >= 2
        ),
        "member-" + _USERNAME_UNSAFE.sub("", subject)[:8],
    )
    first, last = _text(claims, "given_name", 150), _text(claims, "family_name", 150)
    if not first and not last:
        first = _text(claims, "name", 150)
    return Person(
        issuer=issuer,
        subject=subject,
        username=username,
        email=email,
        first_name=first,
        last_name=last,
        roles=frozenset(roles_from_claims(claims)),
    )


def roles_from_claims(claims: dict[str, Any]) -> set[str]:
    """Site roles granted by the provider's groups, through the OIDC_GROUP_ROLES allowlist."""
    groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list):
        return set()
    mapping: dict[str, str] = settings.OIDC_GROUP_ROLES
    return {mapping[group] for group in groups if isinstance(group, str) and group in mapping}


# --- Logout ---------------------------------------------------------------------------------


def logout_url(request: HttpRequest, *, id_token: str | None = None) -> str | None:
    """Where to send the browser so the provider ends its session too, or None.

    Cognito: its hosted UI's `/logout` with `client_id` and `logout_uri` (OIDC_LOGOUT_URL).
    Other providers: the discovery document's `end_session_endpoint` (RP-initiated logout).
    """
    back = settings.OIDC_LOGOUT_REDIRECT_URI or request.build_absolute_uri(
        reverse(settings.LOGOUT_REDIRECT_URL)
    )
    if settings.OIDC_LOGOUT_URL:
        query = urlencode({"client_id": settings.OIDC_CLIENT_ID, "logout_uri": back})
        return f"{settings.OIDC_LOGOUT_URL}?{query}"
    endpoint = provider().end_session_endpoint
    if not endpoint:
        return None
    params = {"client_id": settings.OIDC_CLIENT_ID, "post_logout_redirect_uri": back}
    if id_token:
        params["id_token_hint"] = id_token
    return f"{endpoint}?{urlencode(params)}"


# --- Deployment check (`manage.py doctor`) ----------------------------------------------------

COGNITO_ISSUER = "https://cognito-idp.<region>.amazonaws.com/<user pool id>"


def check() -> str:
    """Read the provider's discovery document and signing keys afresh (no cache), as a sign-in
    would. Returns what was found; raises `CheckFailed` naming the setting to change."""
    issuer, client_id = settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID
    if not issuer and not client_id:
        return "off (OIDC_ISSUER unset): local accounts only"
    if not issuer or not client_id:
        present, absent = "OIDC_ISSUER", "OIDC_CLIENT_ID"
        if not issuer:
            present, absent = absent, present
        raise CheckFailed(
            f"{present} is set but {absent} is not, so sign-in with the provider is off",
            fix=f"set {absent} too (docs/authentication.md), or unset {present}",
        )
    endpoints = _configured_endpoints()
    if not all(endpoints[name] for name in REQUIRED_ENDPOINTS):
        _check_discovery(issuer, endpoints)
    uri = endpoints["jwks_uri"]
    where = "OIDC_JWKS_URI" if settings.OIDC_JWKS_URI else "the discovery document's jwks_uri"
    try:
        keys = _usable_keys(_fetch_json(uri))
    except Unreadable as exc:
        raise CheckFailed(
            f"cannot read the signing keys at {uri} ({exc})",
            fix=f"check {where} and that this machine can reach it",
        ) from exc
    if not keys:
        raise CheckFailed(
            f"the key set at {uri} has no RS256 signing key, so no ID token can be verified",
            fix=(
                f"check {where}: it must be the provider's JWKS with an RS256 key "
                "(a Cognito user pool's /.well-known/jwks.json)"
            ),
        )
    return f"{issuer}: discovery document and {len(keys)} RS256 signing key(s) read"


def _check_discovery(issuer: str, endpoints: dict[str, str]) -> None:
    url = _discovery_url(issuer)
    setting = "OIDC_DISCOVERY_URL" if settings.OIDC_DISCOVERY_URL else "OIDC_ISSUER"
    try:
        document = _fetch_json(url)
    except Unreadable as exc:
        raise CheckFailed(
            f"cannot read the discovery document at {url} ({exc})",
            fix=(
                f"check {setting} (the issuer exactly as in its tokens' `iss`; Cognito: "
                f"{COGNITO_ISSUER}) and that this machine can reach the provider"
            ),
        ) from exc
    named = document.get("issuer")
    if named != issuer:
        raise CheckFailed(
            f"the discovery document at {url} names issuer {named!r}, not OIDC_ISSUER {issuer!r}",
            fix=(
                f"set OIDC_ISSUER to {named!r}, exactly as the provider names itself"
                if isinstance(named, str) and named
                else f"check {setting}: it must lead to the provider's discovery document"
            ),
        )
    missing = _complete(endpoints, document)
    if missing:
        raise CheckFailed(
            f"the discovery document at {url} has no {', '.join(missing)}",
            fix=f"set {', '.join('OIDC_' + name.upper() for name in missing)}",
        )
