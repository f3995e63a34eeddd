"""Production settings as a deployment sets them, read from the environment by a fresh process:
Django's deployment checklist passes, HTTPS is enforced, and the load balancer's health checks
still answer over plain HTTP."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.conf import settings

HOST = "chat.example.org"

# In the fresh process: what a browser and the load balancer get over HTTP and HTTPS.
REQUESTS = f"""
import json, django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client(HTTP_HOST="{HOST}")
out = {{}}
for path in ("/healthz", "/readyz", "/accounts/login/"):
    plain = client.get(path)
    tls = client.get(path, HTTP_X_FORWARDED_PROTO="https")
    out[path] = [plain.status_code, plain.get("Location"), tls.status_code,
                 tls.get("Strict-Transport-Security")]
print(json.dumps(out))
"""


def production_env(var_dir: Path, **extra: str) -> dict[str, str]:
    # The embedded database and channel layer: enough for the checks and /readyz.
    drop = ("DJANGO_", "OIDC_", "LOCAL_LOGIN", "DATABASE_URL", "REDIS_URL", "HOBBIES_VAR_DIR")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {
        **keep,
        "HOBBIES_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "hobbies.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DJANGO_ALLOWED_HOSTS": HOST,
        "DJANGO_SECURE_COOKIES": "1",
        "DJANGO_DEBUG": "0",
        **extra,
    }


def run(var_dir: Path, args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=production_env(var_dir, **extra),
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_deploy(var_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return run(var_dir, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **extra)


def test_check_deploy_reports_nothing_with_production_settings(tmp_path):
    result = check_deploy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_check_deploy_reports_nothing_with_the_opt_ins_and_opt_outs(tmp_path):
    result = check_deploy(
        tmp_path,
        DJANGO_HSTS_INCLUDE_SUBDOMAINS="1",
        DJANGO_HSTS_PRELOAD="1",
        DJANGO_SSL_REDIRECT="0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_still_warns_when_hsts_is_switched_off(tmp_path):
    result = check_deploy(tmp_path, DJANGO_HSTS_SECONDS="0")
    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr


def test_pages_redirect_to_https_and_health_checks_answer_over_http(tmp_path):
    result = run(tmp_path, ["-c", REQUESTS])
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    year = "max-age=31536000"
    assert seen["/accounts/login/"] == [301, f"https://{HOST}/accounts/login/", 200, year]
    assert seen["/healthz"] == [200, None, 200, year]
    assert seen["/readyz"] == [200, None, 200, year]


def test_hsts_subdomains_and_preload_are_opt_in_and_redirect_can_be_left_to_the_proxy(tmp_path):
    result = run(
        tmp_path,
        ["-c", REQUESTS],
        DJANGO_HSTS_SECONDS="600",
        DJANGO_HSTS_INCLUDE_SUBDOMAINS="1",
        DJANGO_HSTS_PRELOAD="1",
        DJANGO_SSL_REDIRECT="0",
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["/accounts/login/"] == [200, None, 200, "max-age=600; includeSubDomains; preload"]
