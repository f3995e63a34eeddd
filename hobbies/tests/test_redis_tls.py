"""REDIS_URL=rediss://: the channel layer and the cache both reach Redis over TLS (ElastiCache with
encryption in transit), checking the server's certificate against the CA bundle.

Runs a throwaway redis-server with TLS on loopback, with a certificate signed by a CA made here;
skipped when redis-server (built with TLS) or openssl is missing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

# Cache and channel layer, each one round trip, as a server process makes them.
ROUND_TRIPS = """
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
cache.set("tls-check", "cache ok", 30)
print(cache.get("tls-check"))
layer = get_channel_layer()
channel = async_to_sync(layer.new_channel)()
async_to_sync(layer.send)(channel, {"type": "layer ok"})
print(async_to_sync(layer.receive)(channel)["type"])
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """(port, CA file) of a redis-server that speaks only TLS, as `localhost`."""
    if not shutil.which("redis-server") or not shutil.which("openssl"):
        pytest.skip("needs redis-server and openssl")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             "/CN=test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=tmp_path)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", "server.key", "-out", "server.csr", cwd=tmp_path)  # fmt: skip
    (tmp_path / "san.cnf").write_text("subjectAltName=DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", "san.cnf", "-out", "server.pem",
             cwd=tmp_path)  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", "server.pem", "--tls-key-file", "server.key",
         "--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and server.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        if server.poll() is not None:
            output = server.stdout.read().decode(errors="replace") if server.stdout else ""
            pytest.skip(f"redis-server without TLS: {output[-300:]}")
        yield port, tmp_path / "ca.pem"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _run(tmp_path: Path, port: int, **extra: str) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "SSL_CERT"))}
    env = {
        **keep,
        "HOBBIES_VAR_DIR": str(tmp_path / "var"),
        "REDIS_URL": f"rediss://localhost:{port}/6",
        "CHANNEL_LAYER_PREFIX": "tls-check",
        **extra,
    }
    return subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "shell", "-c", ROUND_TRIPS],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cache_and_channel_layer_work_over_tls(tmp_path, tls_redis):
    port, ca = tls_redis
    result = _run(tmp_path, port, SSL_CERT_FILE=str(ca))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["cache ok", "layer ok"]


def test_a_certificate_the_bundle_does_not_trust_is_refused(tmp_path, tls_redis):
    port, _ca = tls_redis
    result = _run(tmp_path, port)
    assert result.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
