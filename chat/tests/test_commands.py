"""The management commands an operator runs: `seed_demo`, `setup` and `doctor`.

In-process through `call_command` on the test database (SQLite, or PostgreSQL and Redis when
DATABASE_URL and REDIS_URL are set), and as `manage.py` in a fresh process where the exit code and
the environment as a deployment sets it matter (a fresh database, a service that is down).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from accounts.tests.oidc_support import ScriptedProvider
from chat.tests.conftest import REGION, make_bucket, s3_client

DEMO_USERS = ["alice", "bob", "carol"]
DEMO_COMMUNITIES = ["Photography", "Board Games", "Climbing", "Chess Club"]
DEMO_PASSWORD = "demo-password-for-tests"

# What the deployment environment may set; fresh processes start without them.
DEPLOYMENT_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "CHANNEL_LAYER_PREFIX",
    "MESSAGING_BACKEND",
    "DJANGO_DEBUG",
    "DJANGO_SECURE_COOKIES",
    "RATE_LIMITS_ENABLED",
    "STORAGE_BACKEND",
    "ATTACHMENTS_ROOT",
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_S3_REGION_NAME",
    "AWS_S3_ENDPOINT_URL",
    "AWS_S3_ADDRESSING_STYLE",
    "OIDC_ISSUER",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET",
    "OIDC_DISCOVERY_URL",
    "OIDC_JWKS_URI",
    "DEMO_PASSWORD",
}


def run(name: str, *args: Any, **options: Any) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out, **options)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    """Rows of every model, by model name (whichever app it lives in)."""
    return {m._meta.model_name: m._default_manager.count() for m in apps.get_models()}


def log_in(username: str, password: str) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": password})
    assert response.status_code == 302, f"{username} could not log in"
    return client


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: a service that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manage(*args: str, var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py ARGS` in a fresh process, on the embedded defaults in `var_dir` plus `env`."""
    clean = {k: v for k, v in os.environ.items() if k not in DEPLOYMENT_VARIABLES}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env={**clean, "HOBBIES_VAR_DIR": str(var_dir), **env},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- seed_demo ------------------------------------------------------------------------------


@pytest.fixture
def demo_password(settings: Any) -> str:
    settings.DEMO_PASSWORD = DEMO_PASSWORD
    return DEMO_PASSWORD


@pytest.mark.django_db
def test_seed_demo_creates_users_communities_channels_and_messages(demo_password):
    out = run("seed_demo")

    assert "Demo data ready: users alice, bob and carol" in out
    counts = row_counts()
    assert counts["user"] == 3
    assert counts["community"] == 4
    assert counts["channel"] == 8  # a general channel each, plus gear, news, game-night, beta
    assert counts["membership"] == 7
    assert counts["message"] == 3
    directory = log_in("alice", demo_password).get("/").content.decode()
    assert all(name in directory for name in DEMO_COMMUNITIES)


@pytest.mark.django_db
@pytest.mark.parametrize("username", DEMO_USERS)
def test_demo_users_log_in_with_the_demo_password(demo_password, username):
    run("seed_demo")

    client = log_in(username, demo_password)

    page = client.get("/c/photography/general/")
    assert page.status_code == 200
    assert "Share what you shot this week." in page.content.decode()
    wrong = Client().post("/accounts/login/", {"username": username, "password": "not-it"})
    assert wrong.status_code == 200  # the form again, with an error


@pytest.mark.django_db
def test_seed_demo_twice_changes_nothing(demo_password):
    run("seed_demo")
    first = row_counts()

    out = run("seed_demo")

    assert "Demo data ready" in out
    assert row_counts() == first


@pytest.mark.django_db
def test_seed_demo_leaves_existing_demo_accounts_alone(settings, demo_password):
    """Re-seeding with another DEMO_PASSWORD does not reset the passwords of existing accounts."""
    run("seed_demo")
    settings.DEMO_PASSWORD = "another-demo-password"

    run("seed_demo")

    log_in("bob", demo_password)


# --- setup ----------------------------------------------------------------------------------


@pytest.fixture
def static_root(settings: Any, tmp_path: Path) -> Path:
    settings.STATIC_ROOT = tmp_path / "static"
    return settings.STATIC_ROOT


def collected(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.django_db
def test_setup_migrates_collects_static_files_and_runs_doctor(static_root, capsys):
    call_command("setup")

    out = capsys.readouterr().out
    assert "No migrations to apply." in out  # the test database is migrated already
    assert "Static files collected." in out
    assert "ok    migrations: all applied" in out
    assert out.rstrip().endswith("Ready to serve.")
    files = collected(static_root)
    assert {"css/app.css", "js/chat/main.js", "admin/css/base.css"} <= files


@pytest.mark.django_db
def test_setup_twice_gives_the_same_result(static_root, capsys):
    call_command("setup")
    first_out, first_files, first_counts = (
        capsys.readouterr().out,
        collected(static_root),
        row_counts(),
    )

    call_command("setup")

    assert capsys.readouterr().out == first_out
    assert collected(static_root) == first_files
    assert row_counts() == first_counts


@pytest.mark.django_db
def test_setup_demo_loads_the_demo_data_once(static_root, demo_password, capsys):
    call_command("setup", demo=True)
    counts = row_counts()
    call_command("setup", demo=True)

    assert "Demo data ready" in capsys.readouterr().out
    assert row_counts() == counts
    assert counts["community"] == 4
    log_in("carol", demo_password)


@pytest.mark.django_db
def test_setup_without_demo_loads_no_demo_data(static_root):
    call_command("setup", stdout=StringIO())

    assert row_counts()["community"] == 0


def test_a_fresh_deployment_is_set_up_by_setup(tmp_path):
    """On a new machine doctor names the missing step; setup takes it, and again changes nothing."""
    before = manage("doctor", var_dir=tmp_path)
    assert before.returncode == 1
    assert "FAIL  migrations:" in before.stdout
    assert "fix: run `manage.py migrate`" in before.stdout

    first = manage("setup", var_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Applying hobbies.0001_initial... OK" in first.stdout
    assert (tmp_path / "static" / "css" / "app.css").is_file()
    assert first.stdout.rstrip().endswith("Ready to serve.")

    again = manage("setup", var_dir=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "No migrations to apply." in again.stdout
    assert "Applying" not in again.stdout

    assert manage("doctor", var_dir=tmp_path).returncode == 0


# --- doctor ---------------------------------------------------------------------------------

CHECKS = [
    "database",
    "migrations",
    "channel layer",
    "cache",
    "messaging backend",
    "storage",
    "OIDC sign-in",
]


@pytest.mark.django_db
def test_doctor_passes_on_this_configuration():
    """On the embedded default, or on PostgreSQL and Redis when the run is pointed at them."""
    out = run("doctor")

    lines = out.splitlines()
    for check in CHECKS:
        assert any(line.startswith(f"ok    {check}: ") for line in lines), out
    assert "FAIL" not in out
    assert lines[-1] == "Ready to serve."


def redis_settings(settings: Any, url: str) -> None:
    """Point the channel layer and the cache at `url`, as settings.py does for REDIS_URL."""
    settings.REDIS_URL = url
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": url}], "prefix": "doctor-test"},
        }
    }
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "doctor-test",
        }
    }


@pytest.mark.django_db
def test_doctor_fails_and_names_the_fix_when_redis_is_down(settings, closed_port):
    url = f"redis://127.0.0.1:{closed_port}/0"
    redis_settings(settings, url)
    out = StringIO()

    with pytest.raises(CommandError, match=r"2 check\(s\) failed: channel layer, cache"):
        call_command("doctor", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ok    database")
    fix = f"      fix: start Redis at {url}, or fix REDIS_URL"
    for check in ("channel layer", "cache"):
        failed = next(i for i, line in enumerate(lines) if line.startswith(f"FAIL  {check}: "))
        assert str(closed_port) in lines[failed]
        assert lines[failed + 1] == fix
    assert "Ready to serve." not in out.getvalue()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployment on the embedded defaults with its database migrated."""
    var_dir = tmp_path_factory.mktemp("deployment")
    result = manage("migrate", "--noinput", var_dir=var_dir)
    assert result.returncode == 0, result.stderr
    return var_dir


def test_doctor_exits_zero_in_a_fresh_process(migrated):
    result = manage("doctor", var_dir=migrated)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("Ready to serve.")


@pytest.mark.parametrize(
    ("env", "failed", "fix"),
    [
        pytest.param(
            {"DATABASE_URL": "postgres://postgres@127.0.0.1:{port}/hobbies"},
            ["database"],
            "start PostgreSQL at 127.0.0.1:{port}/hobbies and check its user, or fix DATABASE_URL",
            id="database down",
        ),
        pytest.param(
            {"REDIS_URL": "redis://127.0.0.1:{port}/0"},
            ["channel layer", "cache"],
            "start Redis at redis://127.0.0.1:{port}/0, or fix REDIS_URL",
            id="redis down",
        ),
        pytest.param(
            {"REDIS_URL": "redis://:hunter2@127.0.0.1:{port}/0"},
            ["channel layer", "cache"],
            "start Redis at redis://:***@127.0.0.1:{port}/0, or fix REDIS_URL",
            id="redis with a password down",
        ),
        pytest.param(
            {"MESSAGING_BACKEND": "carrier-pigeon"},
            ["messaging backend"],
            "set MESSAGING_BACKEND to one of: local, chime",
            id="unknown messaging backend",
        ),
    ],
)
def test_doctor_exits_non_zero_and_names_the_fix(migrated, closed_port, env, failed, fix):
    env = {k: v.format(port=closed_port) for k, v in env.items()}

    result = manage("doctor", var_dir=migrated, **env)

    assert result.returncode == 1, result.stdout
    assert f"CommandError: {len(failed)} check(s) failed: {', '.join(failed)}" in result.stderr
    lines = result.stdout.splitlines()
    for check in CHECKS:
        if check in failed:
            at = next(i for i, line in enumerate(lines) if line.startswith(f"FAIL  {check}: "))
            assert lines[at + 1] == f"      fix: {fix.format(port=closed_port)}"
        elif check == "migrations" and "database" in failed:
            assert "skip  migrations: needs the database" in lines
        else:
            assert any(line.startswith(f"ok    {check}: ") for line in lines), result.stdout
    assert "hunter2" not in result.stdout + result.stderr


def test_doctor_says_why_the_database_cannot_be_reached(migrated, closed_port):
    """On PostgreSQL the app borrows connections from a pool, which only says that it waited:
    doctor connects straight to the server, whose refusal says why."""
    url = f"postgres://postgres@127.0.0.1:{closed_port}/hobbies"

    result = manage("doctor", var_dir=migrated, DATABASE_URL=url)

    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL  database: ")]
    assert len(failed) == 1 and "Connection refused" in failed[0], result.stdout


# --- doctor: the integrations (S3 on the suite's moto server, an OpenID provider on loopback) -


@pytest.fixture
def oidc_provider() -> Iterator[ScriptedProvider]:
    """The scripted OpenID provider of the sign-in tests: discovery document and signing keys
    over HTTP on 127.0.0.1."""
    provider = ScriptedProvider().start()
    yield provider
    provider.stop()


def s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    """A deployment on S3, as its environment says it (moto takes any credentials)."""
    return {
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": REGION,
        "AWS_S3_ADDRESSING_STYLE": "path",
        "AWS_S3_TIMEOUT": "3",
        "AWS_ACCESS_KEY_ID": "moto-test",
        "AWS_SECRET_ACCESS_KEY": "moto-test",
    }


def oidc_env(issuer: str, **extra: str) -> dict[str, str]:
    return {
        "OIDC_ISSUER": issuer,
        "OIDC_CLIENT_ID": ScriptedProvider.CLIENT_ID,
        "OIDC_CLIENT_SECRET": "client-secret",
        "OIDC_TIMEOUT": "3",
        **extra,
    }


def failing_row(result: subprocess.CompletedProcess[str], check: str) -> tuple[str, str]:
    """The one failed check's problem and fix, after checking the exit and the other rows."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"CommandError: 1 check(s) failed: {check}" in result.stderr
    assert "Ready to serve." not in result.stdout
    lines = result.stdout.splitlines()
    for other in CHECKS:
        if other != check:
            assert any(line.startswith(f"ok    {other}: ") for line in lines), output
    at = next(i for i, line in enumerate(lines) if line.startswith(f"FAIL  {check}: "))
    assert lines[at + 1].startswith("      fix: "), output
    return lines[at].removeprefix(f"FAIL  {check}: "), lines[at + 1].removeprefix("      fix: ")


def test_doctor_passes_with_s3_and_an_oidc_provider(migrated, s3_endpoint, oidc_provider):
    bucket = make_bucket(s3_endpoint)

    result = manage(
        "doctor", var_dir=migrated, **s3_env(s3_endpoint, bucket), **oidc_env(oidc_provider.issuer)
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert (
        f"ok    storage: s3 bucket {bucket!r} at {s3_endpoint}: stored, read and deleted a file"
    ) in lines
    assert (
        f"ok    OIDC sign-in: {oidc_provider.issuer}: discovery document and 1 RS256 signing "
        "key(s) read"
    ) in lines
    assert oidc_provider.hits == {"/.well-known/openid-configuration": 1, "/jwks": 1}
    # The probe is gone again.
    assert s3_client(s3_endpoint).list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_doctor_fails_on_a_bucket_that_does_not_exist(migrated, s3_endpoint):
    bucket = f"hobbies-missing-{uuid.uuid4().hex[:8]}"

    result = manage("doctor", var_dir=migrated, **s3_env(s3_endpoint, bucket))

    problem, fix = failing_row(result, "storage")
    assert problem == f"bucket {bucket!r} does not exist at {s3_endpoint}"
    assert fix == (
        f"create the bucket {bucket!r} there (deploy/cloudformation.yaml creates the attachments "
        "bucket), or set AWS_STORAGE_BUCKET_NAME to the bucket you have"
    )


def test_doctor_fails_when_s3_cannot_be_reached(migrated, closed_port):
    endpoint = f"http://127.0.0.1:{closed_port}"

    result = manage("doctor", var_dir=migrated, **s3_env(endpoint, "attachments"))

    problem, fix = failing_row(result, "storage")
    assert problem.startswith(f"cannot reach S3 at {endpoint} ("), problem
    assert fix == (
        "check AWS_S3_ENDPOINT_URL (unset on AWS itself) and AWS_S3_REGION_NAME, and that this "
        "machine can reach S3"
    )


def test_doctor_fails_when_the_attachments_folder_cannot_be_written(migrated, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("in the way")  # a file where the folder should be
    root = blocked / "attachments"

    result = manage("doctor", var_dir=migrated, ATTACHMENTS_ROOT=str(root))

    problem, fix = failing_row(result, "storage")
    assert problem.startswith(f"cannot write files under {root} ("), problem
    assert fix == f"make {root} writable by the server's user, or set ATTACHMENTS_ROOT"


OidcCase = Callable[[ScriptedProvider, int], tuple[dict[str, str], str, str]]


def _issuer_down(provider: ScriptedProvider, port: int) -> tuple[dict[str, str], str, str]:
    issuer = f"http://127.0.0.1:{port}/us-east-1_pool"
    return (
        oidc_env(issuer),
        f"cannot read the discovery document at {issuer}/.well-known/openid-configuration "
        "(connection refused)",
        "check OIDC_ISSUER (the issuer exactly as in its tokens' `iss`; Cognito: "
        "https://cognito-idp.<region>.amazonaws.com/<user pool id>) and that this machine can "
        "reach the provider",
    )


def _issuer_mismatch(provider: ScriptedProvider, port: int) -> tuple[dict[str, str], str, str]:
    issuer = provider.issuer + "/"  # the document is found, but names the issuer without "/"
    return (
        oidc_env(issuer),
        f"the discovery document at {provider.url}/.well-known/openid-configuration names "
        f"issuer {provider.issuer!r}, not OIDC_ISSUER {issuer!r}",
        f"set OIDC_ISSUER to {provider.issuer!r}, exactly as the provider names itself",
    )


def _no_signing_keys(provider: ScriptedProvider, port: int) -> tuple[dict[str, str], str, str]:
    provider.published = []
    return (
        oidc_env(provider.issuer),
        f"the key set at {provider.url}/jwks has no RS256 signing key, so no ID token can be "
        "verified",
        "check the discovery document's jwks_uri: it must be the provider's JWKS with an RS256 "
        "key (a Cognito user pool's /.well-known/jwks.json)",
    )


def _keys_not_found(provider: ScriptedProvider, port: int) -> tuple[dict[str, str], str, str]:
    uri = f"{provider.url}/.well-known/jwks.json"  # the provider serves its keys at /jwks
    return (
        oidc_env(provider.issuer, OIDC_JWKS_URI=uri),
        f"cannot read the signing keys at {uri} (HTTP 404)",
        "check OIDC_JWKS_URI and that this machine can reach it",
    )


def _no_client_id(provider: ScriptedProvider, port: int) -> tuple[dict[str, str], str, str]:
    return (
        {"OIDC_ISSUER": provider.issuer},
        "OIDC_ISSUER is set but OIDC_CLIENT_ID is not, so sign-in with the provider is off",
        "set OIDC_CLIENT_ID too (docs/authentication.md), or unset OIDC_ISSUER",
    )


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(_issuer_down, id="issuer unreachable"),
        pytest.param(_issuer_mismatch, id="issuer mismatch"),
        pytest.param(_no_signing_keys, id="no signing keys"),
        pytest.param(_keys_not_found, id="signing keys not found"),
        pytest.param(_no_client_id, id="no client id"),
    ],
)
def test_doctor_fails_on_a_misconfigured_oidc_provider(
    migrated, oidc_provider, closed_port, case: OidcCase
):
    env, expected_problem, expected_fix = case(oidc_provider, closed_port)

    result = manage("doctor", var_dir=migrated, **env)

    problem, fix = failing_row(result, "OIDC sign-in")
    assert problem == expected_problem
    assert fix == expected_fix
