"""The container's entrypoint, run on this machine as the image runs it: it migrates an empty
PostgreSQL database, starts daphne, and the image's health check passes against /readyz; with
the image's static files, production settings and Redis, two browsers chat through it."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import secrets
import shlex
import shutil
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
import redis
from django.conf import settings
from playwright.sync_api import Browser, BrowserContext, Page, expect

from chat.tests.live import CspWatch

ENTRYPOINT = settings.BASE_DIR / "deploy" / "entrypoint.sh"
HEALTHCHECK = settings.BASE_DIR / "deploy" / "healthcheck.py"
HOST = "chat.example.org"
# The PostgreSQL server to create the throwaway database on (as a superuser).
SERVER_URL = os.environ.get("SMOKE_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = os.environ.get("SMOKE_DATABASE_NAME", f"hobbies_entrypoint_smoke_{os.getpid()}")
# The Redis server (and database number) for the channel layer and cache of the chat smoke test;
# its keys get a prefix of their own, deleted afterwards.
REDIS_SERVER_URL = os.environ.get(
    "SMOKE_REDIS_URL", os.environ.get("REDIS_URL", "").strip() or "redis://127.0.0.1:6379/0"
)


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


# --- Two browsers chat through it -----------------------------------------------------------


def dockerfile_env() -> dict[str, str]:
    """The `ENV` values the Dockerfile bakes into the image."""
    text = (settings.BASE_DIR / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(item.partition("=")[::2] for item in shlex.split(line[4:]))
    return env


@pytest.fixture
def smoke_redis() -> Iterator[tuple[str, str]]:
    """The machine's Redis and a key prefix for this test alone; its keys are deleted after."""
    client = redis.Redis.from_url(REDIS_SERVER_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.skip(f"no Redis at {REDIS_SERVER_URL}: {exc}")
    prefix = f"smoke-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        yield REDIS_SERVER_URL, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def sign_in(page: Page, username: str, password: str, name: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("me")).to_have_text(name)


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_two_browsers_chat_through_the_image_entrypoint(
    tmp_path, smoke_database, smoke_redis, browser: Browser
):
    """The image as built and run in production: static files collected at build, DEBUG off,
    secure cookies and the HTTPS redirect on, PostgreSQL and Redis. The browsers reach it as
    through the TLS-terminating load balancer, which says so in `X-Forwarded-Proto` and appends
    the client's address to `X-Forwarded-For`."""
    redis_url, prefix = smoke_redis
    var_dir, static_root = tmp_path / "var", tmp_path / "staticfiles"
    port = free_port()
    image = {
        **dockerfile_env(),
        "HOBBIES_VAR_DIR": str(var_dir),
        "DJANGO_STATIC_ROOT": str(static_root),
        "PORT": str(port),
    }
    assert image["DJANGO_STATIC_MANIFEST"] == "1"

    # The build's `collectstatic` step, with its throwaway key; the image keeps no var files.
    build_env = {k: v for k, v in entrypoint_env(var_dir).items() if not k.startswith("DJANGO_")}
    build = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=settings.BASE_DIR,
        env={**build_env, **image, "DJANGO_SECRET_KEY": "collectstatic-only-not-a-secret"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    assert (static_root / "staticfiles.json").exists()
    shutil.rmtree(var_dir)

    # The browsers reach the app without the TLS hop, so the origin they send is the http one:
    # it is trusted as the site's public origin (https://chat.example.org) is in production.
    origin = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(16)
    env = entrypoint_env(
        var_dir,
        **image,
        DATABASE_URL=smoke_database,
        REDIS_URL=redis_url,
        CHANNEL_LAYER_PREFIX=prefix,
        BIND_ADDRESS="127.0.0.1",
        DJANGO_ALLOWED_HOSTS=f"{HOST},127.0.0.1",
        DJANGO_CSRF_TRUSTED_ORIGINS=origin,
        DJANGO_TRUSTED_PROXIES="1",
        DEMO_PASSWORD=password,
    )
    log = (tmp_path / "entrypoint.log").open("w+b")
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "web"],
        env={**env, "MIGRATE_ON_START": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def output() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")

    contexts: list[BrowserContext] = []
    try:
        deadline = time.monotonic() + 120
        check = None
        while time.monotonic() < deadline and process.poll() is None:
            check = subprocess.run(
                [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True
            )
            if check.returncode == 0:
                break
            time.sleep(0.5)
        assert check is not None and check.returncode == 0, output()

        # Plain HTTP is sent to HTTPS (only the health checks answer over it).
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/accounts/login/", headers={"Host": HOST})
        response = connection.getresponse()
        assert response.status == 301
        assert response.getheader("Location") == f"https://{HOST}/accounts/login/"
        connection.close()

        # The operator's one-off task: the demo users alice and bob, both in #general.
        seed = subprocess.run(
            ["sh", str(ENTRYPOINT), "manage", "seed_demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert seed.returncode == 0, seed.stdout + seed.stderr

        pages: dict[str, Page] = {}
        static: list[tuple[str, int, dict[str, str]]] = []
        watches = {}
        people = {"alice": ("Alice Adams", "203.0.113.10"), "bob": ("Bob Brown", "203.0.113.20")}
        for username, (name, address) in people.items():
            context = browser.new_context(
                base_url=origin,
                extra_http_headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": address},
            )
            contexts.append(context)
            context.set_default_timeout(15_000)
            context.on(
                "response",
                lambda r: static.append((r.url, r.status, r.headers)) if "/static/" in r.url else 0,
            )
            watches[username] = CspWatch(context)
            page = context.new_page()
            sign_in(page, username, password, name)
            cookie = next(c for c in context.cookies() if c["name"] == "sessionid")
            assert cookie["secure"] and cookie["httpOnly"]
            page.goto("/c/photography/general/")
            # The chat script (a hashed, compressed static file) ran and opened its socket.
            expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
            page.evaluate("window.notReloaded = true")
            pages[username] = page
        alice, bob = pages["alice"], pages["bob"]

        alice_composer = alice.get_by_label("Message #general")
        alice_composer.fill("Smoke test: anyone there?")
        alice_composer.press("Enter")
        live = bob.locator("#message-list .msg", has_text="Smoke test: anyone there?")
        expect(live).to_have_count(1)
        expect(live.locator(".msg__who")).to_have_text("Alice Adams")

        bob_composer = bob.get_by_label("Message #general")
        bob_composer.fill("Loud and clear, Alice.")
        bob_composer.press("Enter")
        reply = alice.locator("#message-list .msg", has_text="Loud and clear, Alice.")
        expect(reply).to_have_count(1)
        expect(reply.locator(".msg__who")).to_have_text("Bob Brown")

        # Each sees their own message once, acknowledged, and the other's live.
        for page, own in ((alice, "anyone there?"), (bob, "Loud and clear")):
            mine = page.locator("#message-list .msg.mine[data-id]", has_text=own)
            expect(mine).to_have_count(1)
            expect(page.locator("#message-list .msg--pending")).to_have_count(0)
            expect(page.locator("#conn")).to_have_text("connected")
            assert page.evaluate("window.notReloaded") is True
            # The stylesheet applied: the page layout is the app's, not the browser's default.
            assert page.evaluate("getComputedStyle(document.body).display") == "flex"
        for username, page in pages.items():
            assert watches[username].check(page) == [], username

        served = {url.rsplit("/static/", 1)[1]: (status, h) for url, status, h in static}
        names = set(served)
        assert any(re.fullmatch(r"css/app\.[0-9a-f]{12}\.css", n) for n in names), names
        assert any(re.fullmatch(r"js/chat/.+\.[0-9a-f]{12}\.js", n) for n in names), names
        # Every file the pages load, the chat script's module imports included, is served under
        # its hashed name (so browsers and a CDN may keep it for ever) and compressed.
        for name, (status, headers) in served.items():
            assert status == 200, name
            assert re.search(r"\.[0-9a-f]{12}\.(css|js)$", name), name
            assert "immutable" in headers.get("cache-control", ""), name
            assert headers.get("content-encoding") in ("gzip", "br"), name

        # The events went through Redis, under this deployment's prefix.
        client = redis.Redis.from_url(redis_url)
        assert list(client.scan_iter(match=f"{prefix}*", count=1000))
        client.close()
    finally:
        for context in contexts:
            context.close()
        stop(process)
        server_output = output()
        log.close()
    assert "Traceback" not in server_output, server_output

    with psycopg.connect(smoke_database) as conn:
        rows = conn.execute(
            "SELECT u.username, host(s.ip) FROM hobbies_signin s "
            "JOIN hobbies_user u ON u.id = s.user_id"
        ).fetchall()
    # Each sign-in is recorded with the client's address as the load balancer gave it.
    assert sorted(rows) == [("alice", "203.0.113.10"), ("bob", "203.0.113.20")]
