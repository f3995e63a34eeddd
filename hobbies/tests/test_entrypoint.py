"""The container's entrypoint, run on this machine as the image runs it: it migrates an empty
PostgreSQL database, starts daphne, and the image's health check passes against /readyz."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

ENTRYPOINT = settings.BASE_DIR / "deploy" / "entrypoint.sh"
HEALTHCHECK = settings.BASE_DIR / "deploy" / "healthcheck.py"
HOST = "chat.example.org"
# The PostgreSQL server to create the throwaway database on (as a superuser).
SERVER_URL = os.environ.get("SMOKE_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = os.environ.get("SMOKE_DATABASE_NAME", f"hobbies_entrypoint_smoke_{os.getpid()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smoke_database() -> Iterator[str]:
    try:
        admin = psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {SERVER_URL}: {exc}")
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DB_NAME}"')
        try:
            yield SERVER_URL.rsplit("/", 1)[0] + "/" + DB_NAME
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def entrypoint_env(var_dir: Path, **extra: str) -> dict[str, str]:
    drop = ("DJANGO_", "OIDC_", "LOCAL_LOGIN", "DATABASE_URL", "REDIS_URL", "HOBBIES_VAR_DIR")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {
        **keep,
        # `python` on PATH is this virtualenv's, as it is the image's in the container.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOBBIES_VAR_DIR": str(var_dir),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DJANGO_ALLOWED_HOSTS": HOST,
        "DJANGO_SECURE_COOKIES": "1",
        **extra,
    }


def test_entrypoint_migrates_serves_and_passes_its_health_check(tmp_path, smoke_database):
    port = free_port()
    env = entrypoint_env(
        tmp_path,
        DATABASE_URL=smoke_database,
        MIGRATE_ON_START="1",
        PORT=str(port),
        BIND_ADDRESS="127.0.0.1",
    )
    log = (tmp_path / "entrypoint.log").open("w+b")
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "web"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        check = None
        deadline = time.monotonic() + 120  # migrating an empty database, under load
        while time.monotonic() < deadline and process.poll() is None:
            check = subprocess.run(
                [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True
            )
            if check.returncode == 0:
                break
            time.sleep(0.5)
        log.seek(0)
        output = log.read().decode(errors="replace")
        assert check is not None and check.returncode == 0, output
        assert "Applying hobbies.0001_initial... OK" in output

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/readyz", headers={"Host": HOST})
        response = connection.getresponse()
        assert response.status == 200
        assert json.load(response) == {"status": "ok", "database": "ok", "channel_layer": "ok"}
        connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    # `exec`: the signal reached daphne itself, which shut down.
    assert process.returncode is not None

    with psycopg.connect(smoke_database) as conn:
        applied = conn.execute("SELECT count(*) FROM django_migrations").fetchone()
    assert applied is not None and applied[0] > 10


def test_health_check_fails_when_nothing_answers(tmp_path):
    env = entrypoint_env(tmp_path, PORT=str(free_port()))
    check = subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True
    )
    assert check.returncode == 1
    assert "readyz:" in check.stderr


def test_entrypoint_refuses_an_unknown_process(tmp_path):
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "serve"],
        env=entrypoint_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 64
    assert "unknown process 'serve': web, worker or manage" in result.stderr


@pytest.fixture
def task_metadata() -> Iterator[str]:
    """ECS's task metadata endpoint (v4) on loopback: this container's record, as ECS serves it."""
    record = {
        "Name": "app",
        "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["127.0.0.9"]}],
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(record).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v4/0123456789abcdef-app"
    server.shutdown()
    server.server_close()


def _status(port: int, host: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/healthz", headers={"Host": host})
        return connection.getresponse().status
    finally:
        connection.close()


def test_on_ecs_the_load_balancer_may_name_the_tasks_own_address(tmp_path, task_metadata):
    """An ALB health check's Host is the task's address and port: it is allowed, no other is."""
    port = free_port()
    env = entrypoint_env(
        tmp_path,
        ECS_CONTAINER_METADATA_URI_V4=task_metadata,
        PORT=str(port),
        BIND_ADDRESS="127.0.0.1",
    )
    log = (tmp_path / "entrypoint.log").open("w+b")
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "web"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = _status(port, f"127.0.0.9:{port}")
                break
            except OSError:
                time.sleep(0.3)
        log.seek(0)
        assert status == 200, log.read().decode(errors="replace")
        assert _status(port, HOST) == 200
        assert _status(port, f"127.0.0.10:{port}") == 400
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_without_an_answer_from_ecs_the_allowed_hosts_stay_as_set(tmp_path):
    env = entrypoint_env(
        tmp_path, ECS_CONTAINER_METADATA_URI_V4=f"http://127.0.0.1:{free_port()}/v4/x"
    )
    show = "from django.conf import settings; print(','.join(settings.ALLOWED_HOSTS))"
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "manage", "shell", "-c", show],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == HOST
    assert "ecs_address: http://127.0.0.1:" in result.stderr
