"""A real server for end-to-end tests: daphne in a subprocess, on the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.test import Client

from accounts.models import User


def database_url() -> str:
    """The URL of the database this test run created, for the server process."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if db["ENGINE"] == "django.db.backends.postgresql":
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "127.0.0.1"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"
    raise RuntimeError(f"no live-server support for {db['ENGINE']}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """`daphne` on a loopback port, in a subprocess, pointed at the test database."""

    def __init__(self, app: str = "hobbies.asgi:application", **extra_env: str) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws/"
        self.log = tempfile.NamedTemporaryFile(prefix="daphne-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hobbies.settings",
            "DATABASE_URL": database_url(),
            # The same key as this process, so sessions made here are valid there.
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "DJANGO_DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            **extra_env,
        }

    def start(self) -> LiveServer:
        daphne = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(
            [*daphne, self.app],
            cwd=settings.BASE_DIR,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"daphne did not start:\n{self.output()}")

    def rss(self) -> int:
        """The server process's resident memory, in bytes (Linux)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def output(self) -> str:
        return Path(self.log.name).read_text()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def session_key(user: User) -> str:
    """A session for `user`, valid on a live server (same database and secret key)."""
    client = Client()
    client.force_login(user)
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """The system's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    import pytest
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Chromium is needed for the browser tests and was not found at {CHROMIUM}: "
            "install the system package `chromium` (or set CHROMIUM_PATH)."
        )
    # Playwright's sync API keeps an event loop open on this thread, which Django takes for
    # async code; the tests are synchronous, so Django's guard is lifted while they run.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


# Every Content-Security-Policy violation a page meets: the DOM event (pushed to a window array
# by a script that runs before the page's own) and Chromium's console report.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} at ` +
    `${event.sourceFile}:${event.lineNumber} (${event.sample})`);
});
"""


class CspWatch:
    """`CspWatch(context)` records violations on every page of a browser context; `check(page)`
    collects the ones the current document saw (call it before leaving the page)."""

    def __init__(self, context: Any) -> None:
        self.seen: list[str] = []
        context.add_init_script(CSP_LISTENER)
        context.on("console", self._console)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.seen.append(f"console: {message.text}")

    def check(self, page: Any) -> list[str]:
        page.wait_for_timeout(100)  # the event is queued as a task after the violation
        events = page.evaluate("window.__cspViolations || []")
        self.seen.extend(f"{page.url}: {text}" for text in events)
        page.evaluate("window.__cspViolations = []")
        return self.seen
