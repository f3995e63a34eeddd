"""Storage fixtures: local files in a temporary folder, or a real S3 API (moto in server mode on
127.0.0.1, started here and stopped at the end of the session) with django-storages pointed at
it through `AWS_S3_ENDPOINT_URL`."""

from __future__ import annotations

import io
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from django.test import Client
from PIL import Image

from conftest import client_for

REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    # moto accepts any credentials; these only keep boto3 from looking for real ones.
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = "moto-test"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "moto-test"  # moto accepts anything
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def use_s3(settings: Any, endpoint: str, bucket: str) -> None:
    settings.STORAGE_BACKEND = "s3"
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.AWS_S3_REGION_NAME = REGION
    settings.AWS_S3_ENDPOINT_URL = endpoint
    settings.AWS_S3_ADDRESSING_STYLE = "path"
    settings.AWS_S3_TIMEOUT = 3


def make_bucket(endpoint: str, origins: list[str] | None = None) -> str:
    """A fresh private bucket with CORS for the site's origin, as the CloudFormation stack sets."""
    bucket = f"hobbies-test-{uuid.uuid4().hex[:12]}"
    client = s3_client(endpoint)
    client.create_bucket(Bucket=bucket)
    client.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": origins or ["http://testserver"],
                    "AllowedMethods": ["POST"],
                    "AllowedHeaders": ["*"],
                    "MaxAgeSeconds": 600,
                }
            ]
        },
    )
    return bucket


class Store:
    """What the storage holds, whichever backend the test runs on."""

    def __init__(self, backend: str, root: Path, endpoint: str = "", bucket: str = "") -> None:
        self.backend, self.root, self.endpoint, self.bucket = backend, root, endpoint, bucket

    def keys(self) -> list[str]:
        if self.backend == "s3":
            listed = s3_client(self.endpoint).list_objects_v2(Bucket=self.bucket)
            return sorted(o["Key"] for o in listed.get("Contents", []))
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())

    def put(self, target: dict[str, Any], content: bytes, client: Client, name: str = "f") -> int:
        """Upload as the browser does: a multipart POST of the target's fields, then the file."""
        upload = target["upload"]
        if self.backend == "s3":
            import requests

            response = requests.post(
                upload["url"],
                data=upload["fields"],
                files={"file": (name, content)},
                timeout=10,
            )
            return int(response.status_code)
        response = client.post(upload["url"], {**upload["fields"], "file": _named(content, name)})
        return int(response.status_code)


def _named(content: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = name
    return handle


@pytest.fixture(params=["local", "s3"])
def store(request: Any, settings: Any, tmp_path: Path) -> Store:
    """Runs the test once on local storage and once on S3 (moto)."""
    settings.ATTACHMENTS_ROOT = tmp_path / "attachments"
    settings.RATE_LIMITS_ENABLED = False
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = make_bucket(endpoint)
        use_s3(settings, endpoint, bucket)
        return Store("s3", tmp_path, endpoint, bucket)
    settings.STORAGE_BACKEND = "local"
    return Store("local", settings.ATTACHMENTS_ROOT)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: an S3 endpoint that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def jpeg(
    size: tuple[int, int] = (64, 32), *, gps: bool = False, orientation: int | None = None
) -> bytes:
    image = Image.new("RGB", size, (200, 40, 40))
    for x in range(size[0] // 2):
        for y in range(size[1]):
            image.putpixel((x, y), (20, 40, 200))
    exif = Image.Exif()
    exif[0x010F] = "HobbyCam"  # Make
    if orientation:
        exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


def png(size: tuple[int, int] = (40, 40), mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 1 if mode == "1" else (10, 200, 10, 255)).save(out, "PNG")
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def upload(store: Store) -> Callable[..., dict[str, Any]]:
    """`upload(user, name, content)`: start, upload and confirm through the API; returns the
    confirm response's JSON (or the first error met)."""

    def run(
        user: Any,
        name: str,
        content: bytes,
        content_type: str = "",
        confirm: bool = True,
    ) -> dict[str, Any]:
        client = client_for(user)
        started = client.post(
            "/api/attachments/",
            {"name": name, "size": len(content), "content_type": content_type},
            content_type="application/json",
        )
        if started.status_code != 201:
            return {"status": started.status_code, **started.json()}
        target = started.json()
        status = store.put(target, content, client, name)
        if status not in (201, 204):
            return {"status": status, "upload_failed": True, **target}
        if not confirm:
            return {"status": 201, **target}
        confirmed = client.post(f"/api/attachments/{target['attachment']['id']}/confirm/")
        return {"status": confirmed.status_code, **confirmed.json()}

    return run


# --- Amazon Chime SDK messaging: the fake service on loopback (chat/tests/fake_chime.py) --------


@pytest.fixture
def fake_chime() -> Iterator[Any]:
    from chat.tests.fake_chime import FakeChime

    fake = FakeChime()
    yield fake
    fake.stop()
    assert not fake.errors, fake.errors  # every answer matched botocore's output shapes


@pytest.fixture
def chime(settings: Any, fake_chime: Any, monkeypatch: Any) -> Iterator[Any]:
    """MESSAGING_BACKEND=chime against the fake: the AppInstance and bridge user made by
    `chime_setup`, its ARN in the settings. Yields the fake."""
    from django.core.management import call_command

    from chat.backends import configured_backend
    from chat.tests import fake_chime as fake_module

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", fake_module.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", fake_module.SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings.AWS_REGION = fake_module.REGION
    settings.CHIME_IDENTITY_ENDPOINT_URL = fake_chime.identity_url
    settings.CHIME_MESSAGING_ENDPOINT_URL = fake_chime.messaging_url
    settings.CHIME_SESSION_SCHEME = "ws"
    settings.CHIME_APP_INSTANCE_ARN = ""
    out = io.StringIO()
    call_command("chime_setup", stdout=out)
    arn = out.getvalue().split("CHIME_APP_INSTANCE_ARN=")[1].split()[0]
    settings.CHIME_APP_INSTANCE_ARN = arn
    settings.MESSAGING_BACKEND = "chime"
    configured_backend.cache_clear()
    yield fake_chime
    configured_backend.cache_clear()
