"""Request bodies over the limit are refused before they are read, on a real daphne."""

from __future__ import annotations

import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from channels.testing import HttpCommunicator

from chat.tests.live import LiveServer

MB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[LiveServer]:
    started = LiveServer(REQUEST_MAX_BYTES=str(MB)).start()
    yield started
    started.close()


class Peak:
    """The highest resident memory of the server while the block runs, sampled every 20 ms."""

    def __init__(self, server: LiveServer) -> None:
        self.server, self.base, self.peak = server, server.rss(), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss())
            time.sleep(0.02)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # let the server take what was sent
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.rss())

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / MB


def post(
    server: LiveServer, path: str, head: dict[str, str], body: Iterator[bytes]
) -> tuple[int | None, int]:
    """POST `body` piece by piece, stopping when the server answers or closes; returns the
    response status (None if none came) and how many body bytes the server let us send."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", *(
        f"{k}: {v}" for k, v in head.items())]  # fmt: skip
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    sent = 0
    try:
        for piece in body:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (or closed) before the body was all sent
            sock.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass
    status = None
    try:
        ready = select.select([sock], [], [], 5)[0]
        reply = sock.recv(4096) if ready else b""
        if reply.startswith(b"HTTP/1.1 "):
            status = int(reply.split()[1])
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    return status, sent


def pieces(total: int, size: int = MB) -> Iterator[bytes]:
    chunk = b"x" * size
    for _ in range(total // size):
        yield chunk


def chunked(total: int, size: int = MB) -> Iterator[bytes]:
    for piece in pieces(total, size):
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


@pytest.mark.django_db(transaction=True)
def test_a_huge_declared_body_is_refused_before_it_is_read(server):
    with Peak(server) as peak:
        status, sent = post(server, "/healthz", {"Content-Length": str(400 * MB)}, pieces(400 * MB))
    print(f"\n400 MB Content-Length to /healthz: status {status}, {sent / MB:.0f} MB sent, "
          f"daphne grew {peak.growth_mb:.1f} MB")  # fmt: skip
    assert status == 413
    assert sent < 64 * MB
    assert peak.growth_mb < 50


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_is_cut_off_past_the_limit(server):
    with Peak(server) as peak:
        status, sent = post(server, "/healthz", {"Transfer-Encoding": "chunked"}, chunked(400 * MB))
    print(f"\n400 MB chunked to /healthz: status {status}, {sent / MB:.0f} MB sent, "
          f"daphne grew {peak.growth_mb:.1f} MB")  # fmt: skip
    assert status == 413
    assert sent < 64 * MB
    assert peak.growth_mb < 50


@pytest.mark.django_db(transaction=True)
def test_the_upload_endpoint_takes_a_whole_attachment(server):
    """The local upload endpoint's limit is ATTACHMENT_MAX_BYTES plus the form, not the
    general one (1 MB here): a 3 MB body reaches the view (which refuses the bad token)."""
    path = f"/api/attachments/{uuid.uuid4()}/upload/"
    status, sent = post(
        server, path, {"Content-Length": str(3 * MB), "Content-Type": "text/plain"},
        pieces(3 * MB),
    )  # fmt: skip
    assert sent == 3 * MB
    assert status is not None and status != 413
    status, _ = post(server, "/healthz", {"Content-Length": str(3 * MB)}, pieces(3 * MB))
    assert status == 413


async def test_body_limit_middleware_for_other_servers(settings):
    """Servers that stream the body to the application get the same limit from the ASGI
    middleware: by Content-Length before reading, and by counting the chunks."""
    from hobbies.asgi import application

    settings.REQUEST_MAX_BYTES = 1000
    declared = HttpCommunicator(
        application, "POST", "/healthz", body=b"x" * 10,
        headers=[(b"host", b"testserver"), (b"content-length", b"5000")],
    )  # fmt: skip
    assert (await declared.get_response())["status"] == 413
    streamed = HttpCommunicator(
        application, "POST", "/healthz", body=b"x" * 5000, headers=[(b"host", b"testserver")]
    )
    assert (await streamed.get_response())["status"] == 413
