"""Production settings as a deployment sets them, read from the environment by a fresh process:
Django's deployment checklist passes, HTTPS is enforced, and the load balancer's health checks
still answer over plain HTTP."""

from __future__ import annotations

import json
import os
import re
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
    result = check_deploy(
        tmp_path,
        DJANGO_CSRF_TRUSTED_ORIGINS=f"https://{HOST}",
        DJANGO_HSTS_SECONDS="3600",
        DJANGO_SSL_REDIRECT="1",
        DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        DJANGO_STATIC_MANIFEST="1",
    )
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


def test_check_deploy_names_what_the_defaults_leave_insecure(tmp_path):
    env = dict.fromkeys(("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DJANGO_SECURE_COOKIES"), "")
    result = check_deploy(tmp_path, **env)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    for missing in (
        "SECURE_HSTS_SECONDS",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
    ):
        assert missing in out


def test_a_malformed_proxy_ssl_header_is_refused_by_name(tmp_path):
    result = check_deploy(tmp_path, DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")
    assert result.returncode != 0
    assert "DJANGO_SECURE_PROXY_SSL_HEADER: 'X-Forwarded-Proto' is not" in result.stderr


def test_without_a_proxy_header_only_tls_to_the_app_counts_as_https(tmp_path):
    result = run(tmp_path, ["-c", REQUESTS], DJANGO_SECURE_PROXY_SSL_HEADER="off")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # The proxy's header is not believed: the page still redirects, and sends no HSTS.
    assert seen["/accounts/login/"][0] == 301
    assert seen["/accounts/login/"][2] == 301


def test_manifest_static_files_are_hashed_compressed_and_used_by_pages(tmp_path):
    collect = ["manage.py", "collectstatic", "--noinput"]
    collected = run(tmp_path, collect, DJANGO_STATIC_MANIFEST="1")
    assert collected.returncode == 0, collected.stderr
    static = tmp_path / "static"
    assert (static / "staticfiles.json").exists()
    hashed = sorted(static.rglob("*.css"))
    assert any(p.name.count(".") >= 2 for p in hashed)
    assert any(static.rglob("*.css.gz"))
    # The chat's hashed modules import each other under their hashed names too, never a plain
    # one that browsers would cache apart from the module importing it.
    manifest = json.loads((static / "staticfiles.json").read_text())["paths"]
    modules = [static / hashed for name, hashed in manifest.items() if name.startswith("js/chat/")]
    imports = [
        (module, spec)
        for module in modules
        for spec in re.findall(r"""from\s*["'](\.[^"']+)["']""", module.read_text())
    ]
    assert imports
    for module, spec in imports:
        target = (module.parent / spec).resolve()
        assert target.exists(), (module.name, spec)
        assert re.search(r"\.[0-9a-f]{12}\.js$", spec), (module.name, spec)
    login = run(
        tmp_path,
        [
            "-c",
            "import django; django.setup()\n"
            "from django.test import Client\n"
            f"r = Client(HTTP_HOST='{HOST}').get('/accounts/login/', secure=True)\n"
            "print(r.status_code); print(r.content.decode())",
        ],
        DJANGO_STATIC_MANIFEST="1",
    )
    assert login.returncode == 0, login.stderr
    status, _, body = login.stdout.partition("\n")
    assert status == "200"
    links = [line for line in body.splitlines() if "/static/" in line and ".css" in line]
    assert links, body
    # Every stylesheet link names a hashed file that WhiteNoise has on disk.
    for line in links:
        name = line.split("/static/", 1)[1].split('"', 1)[0]
        assert (static / name).exists(), name
        assert name.count(".") >= 2, name


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
