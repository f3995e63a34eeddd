"""The Content-Security-Policy header: on every kind of response, built from the settings a
deployment sets (read by a fresh process, as in production)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client

from communities.services import membership_join
from conftest import client_for

CSP = "Content-Security-Policy"
SHOW = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.CONTENT_SECURITY_POLICY)"
)


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def policy_in_process(**env: str) -> dict[str, list[str]]:
    prefixes = ("AWS_", "STORAGE_BACKEND", "OIDC_", "DJANGO_CSP")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    result = subprocess.run(
        [sys.executable, "-c", SHOW],
        env={**clean, "DJANGO_SETTINGS_MODULE": "hobbies.settings", **env},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return directives(result.stdout.strip())


STRICT = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:", "blob:"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def test_default_policy_is_strict():
    assert directives(settings.CONTENT_SECURITY_POLICY) == STRICT
    assert "unsafe" not in settings.CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    ("path", "status", "content_type"),
    [
        ("/accounts/login/", 200, "text/html"),
        ("/", 200, "text/html"),
        ("/c/photography/general/", 200, "text/html"),
        ("/api/channels/", 200, "application/json"),
        ("/api/channels/999999/messages/", 404, "application/json"),
        ("/c/no-such-community/", 404, "text/html"),
        ("/no/such/page/", 404, "text/html"),
        ("/admin/", 200, "text/html"),
        ("/admin/hobbies/user/", 200, "text/html"),
        ("/static/css/app.css", 200, "text/css"),
        ("/healthz", 200, ""),
    ],
)
def test_every_response_carries_the_policy(superuser, community, path, status, content_type):
    membership_join(community=community, user=superuser)
    response = client_for(superuser).get(path)
    assert response.status_code == status
    assert response["Content-Type"].startswith(content_type)
    assert response[CSP] == settings.CONTENT_SECURITY_POLICY


def test_csrf_failure_page_carries_the_policy_and_needs_no_inline_style(db):
    response = Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "x"})
    assert response.status_code == 403
    assert response[CSP] == settings.CONTENT_SECURITY_POLICY
    assert b"<style" not in response.content  # our template, not Django's inline-styled one
    assert b"Please try again" in response.content


@pytest.mark.urls("hobbies.tests.crash_urls")
def test_server_error_carries_the_policy(db):
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    assert response[CSP] == settings.CONTENT_SECURITY_POLICY


def test_report_only_switch(settings, db):
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = True
    response = Client().get("/accounts/login/")
    assert CSP not in response
    assert response[f"{CSP}-Report-Only"] == settings.CONTENT_SECURITY_POLICY


def test_s3_bucket_at_an_endpoint_is_allowed_for_uploads_and_images():
    policy = policy_in_process(
        STORAGE_BACKEND="s3",
        AWS_STORAGE_BUCKET_NAME="hobbies-files",
        AWS_S3_ENDPOINT_URL="http://127.0.0.1:9000/",
        AWS_S3_ADDRESSING_STYLE="path",
    )
    assert policy["connect-src"] == ["'self'", "http://127.0.0.1:9000"]
    assert policy["img-src"] == ["'self'", "data:", "blob:", "http://127.0.0.1:9000"]
    assert policy["script-src"] == ["'self'"]


def test_s3_bucket_on_aws_is_allowed_by_its_own_host_names():
    policy = policy_in_process(
        STORAGE_BACKEND="s3",
        AWS_STORAGE_BUCKET_NAME="hobbies-files",
        AWS_S3_REGION_NAME="eu-west-1",
    )
    bucket = [
        "https://hobbies-files.s3.amazonaws.com",
        "https://hobbies-files.s3.eu-west-1.amazonaws.com",
    ]
    assert policy["connect-src"] == ["'self'", *bucket]
    assert policy["img-src"] == ["'self'", "data:", "blob:", *bucket]
    assert policy["default-src"] == ["'self'"]


def test_provider_origins_may_end_a_form_and_the_whole_policy_can_be_replaced():
    policy = policy_in_process(
        OIDC_ISSUER="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example",
        OIDC_CLIENT_ID="abc",
        OIDC_AUTHORIZATION_ENDPOINT="https://login.example.org/oauth2/authorize",
        OIDC_LOGOUT_URL="https://login.example.org/logout",
    )
    assert policy["form-action"] == [
        "'self'",
        "https://cognito-idp.eu-west-1.amazonaws.com",
        "https://login.example.org",
    ]
    assert policy["connect-src"] == ["'self'"]
    assert policy_in_process(DJANGO_CSP="default-src 'self'") == {"default-src": ["'self'"]}
