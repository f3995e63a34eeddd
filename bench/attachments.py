"""Attachments benchmark: time to first thumbnail for a 5 MB photo, and upload throughput, on
the local storage path and the S3 path.

For each backend it starts the app under daphne on a free 127.0.0.1 port (SQLite in a temp
folder; for `s3`, an S3 API served by moto in this process on another loopback port, with a
fresh bucket) and drives it over HTTP exactly as the composer does: start → multipart POST of the
bytes to the target (our upload URL, or the presigned POST to the bucket) → confirm → send the
message → GET the thumbnail (following the redirect to the presigned GET on S3).

    .venv/bin/python bench/attachments.py                       # both backends, defaults
    .venv/bin/python bench/attachments.py --backends local --photos 10 --files 20

Results go to stdout and to `bench/results/attachments-<UTC timestamp>.json` (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import HOST, die_with_parent, free_port  # noqa: E402

PYTHON = sys.executable
MB = 1024 * 1024


# --- Inputs ---------------------------------------------------------------------------------


def photo(target_bytes: int = 5 * MB) -> bytes:
    """A 12-megapixel JPEG of about `target_bytes`: smooth shapes plus sensor-like noise."""
    width, height = 4000, 3000
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise_side = 1000
    quality = 92
    while True:
        noise = Image.frombytes(
            "RGB",
            (noise_side, noise_side * 3 // 4),
            os.urandom(noise_side * noise_side * 3 // 4 * 3),
        )
        picture = Image.blend(base, noise.resize((width, height)), 0.35)
        out = io.BytesIO()
        exif = Image.Exif()
        exif[0x010F] = "BenchCam"
        exif[0x0112] = 6  # taken sideways: orientation is applied when the thumbnail is made
        picture.save(out, "JPEG", quality=quality, exif=exif)
        data = out.getvalue()
        if len(data) >= target_bytes * 0.9 or noise_side >= 4000:
            return data
        noise_side = int(noise_side * 1.5)


def blob(size: int) -> bytes:
    """A PDF-looking file of `size` bytes (its type is told from the header)."""
    head = b"%PDF-1.4\n"
    return head + os.urandom(size - len(head))


# --- The server -----------------------------------------------------------------------------


class App:
    def __init__(self, backend: str, workdir: Path, s3_endpoint: str = "") -> None:
        self.backend = backend
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hobbies.settings",
            "HOBBIES_VAR_DIR": str(workdir),
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            "DJANGO_DEBUG": "0",
            "RATE_LIMITS_ENABLED": "0",
            "LOG_LEVEL": "WARNING",
            "ATTACHMENTS_ROOT": str(workdir / "attachments"),
        }
        self.env.pop("REDIS_URL", None)
        if backend == "s3":
            self.env.update(
                STORAGE_BACKEND="s3",
                AWS_STORAGE_BUCKET_NAME=make_bucket(s3_endpoint),
                AWS_S3_REGION_NAME="us-east-1",
                AWS_S3_ENDPOINT_URL=s3_endpoint,
                AWS_S3_ADDRESSING_STYLE="path",
            )
        self.log = (workdir / "server.log").open("wb")
        self.process: subprocess.Popen[bytes] | None = None

    def setup(self) -> tuple[int, str]:
        run = {"cwd": ROOT, "env": self.env, "check": True, "capture_output": True}
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], **run)  # type: ignore[call-overload]
        made = subprocess.run([PYTHON, "bench/setup_app.py", "--users", "1"], **run)  # type: ignore[call-overload]
        data = json.loads(made.stdout.decode().strip().splitlines()[-1])
        return int(data["channel"]), str(data["sessions"][0])

    def start(self) -> None:
        command = [
            PYTHON,
            "-m",
            "daphne",
            "-b",
            HOST,
            "-p",
            str(self.port),
            "hobbies.asgi:application",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("the app did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def make_bucket(endpoint: str) -> str:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )  # fmt: skip
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return bucket


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# --- The client -----------------------------------------------------------------------------


class Client:
    def __init__(self, app: App, session_key: str, channel: int) -> None:
        self.app, self.channel = app, channel
        self.http = requests.Session()
        self.http.cookies.set("sessionid", session_key, domain=HOST)
        # The channel page's composer form sets the csrftoken cookie.
        self.http.get(f"{app.url}/c/fanout-bench/general/", timeout=10).raise_for_status()
        self.http.headers["X-CSRFToken"] = self.http.cookies.get("csrftoken", "")
        self.http.headers["Referer"] = app.url + "/"

    def upload(self, name: str, data: bytes, content_type: str) -> dict[str, float | str]:
        """One file through start → transfer → confirm; seconds spent in each step."""
        t0 = time.perf_counter()
        started = self.http.post(
            f"{self.app.url}/api/attachments/",
            json={"name": name, "size": len(data), "content_type": content_type},
            timeout=60,
        )
        started.raise_for_status()
        target = started.json()
        t1 = time.perf_counter()
        upload = target["upload"]
        url = upload["url"] if upload["url"].startswith("http") else self.app.url + upload["url"]
        sent = self.http.post(url, data=upload["fields"], files={"file": (name, data)}, timeout=120)
        if sent.status_code not in (201, 204):
            raise RuntimeError(f"upload failed: {sent.status_code} {sent.text[:200]}")
        t2 = time.perf_counter()
        attachment_id = target["attachment"]["id"]
        confirmed = self.http.post(
            f"{self.app.url}/api/attachments/{attachment_id}/confirm/", timeout=120
        )
        confirmed.raise_for_status()
        t3 = time.perf_counter()
        return {"id": attachment_id, "start": t1 - t0, "transfer": t2 - t1, "confirm": t3 - t2}

    def send(self, attachment_ids: list[str]) -> dict[str, Any]:
        response = self.http.post(
            f"{self.app.url}/api/channels/{self.channel}/messages/",
            json={"body": "bench", "client_id": str(uuid.uuid4()), "attachments": attachment_ids},
            timeout=60,
        )
        response.raise_for_status()
        return dict(response.json()["message"])

    def get(self, path: str) -> bytes:
        response = self.http.get(self.app.url + path, timeout=60)  # follows the S3 redirect
        response.raise_for_status()
        return response.content


# --- Measurements ---------------------------------------------------------------------------


STEPS = ("start", "transfer", "confirm", "send", "thumbnail_get", "total")


def first_thumbnail(client: Client, data: bytes, runs: int) -> dict[str, Any]:
    rows = []
    for index in range(runs):
        t0 = time.perf_counter()
        steps = client.upload(f"photo-{index}.jpg", data, "image/jpeg")
        t_confirmed = time.perf_counter()
        message = client.send([str(steps["id"])])
        t_sent = time.perf_counter()
        thumb = client.get(message["attachments"][0]["thumbnail_url"])
        t_end = time.perf_counter()
        assert Image.open(io.BytesIO(thumb)).size[0] > 0
        rows.append(
            {
                "start": float(steps["start"]),
                "transfer": float(steps["transfer"]),
                "confirm": float(steps["confirm"]),
                "send": t_sent - t_confirmed,
                "thumbnail_get": t_end - t_sent,
                "total": t_end - t0,
            }
        )
    return {
        key: {
            "median_ms": 1000 * statistics.median(r[key] for r in rows),
            "min_ms": 1000 * min(r[key] for r in rows),
            "max_ms": 1000 * max(r[key] for r in rows),
        }
        for key in STEPS
    }


def throughput(client: Client, size: int, files: int, workers: int) -> dict[str, Any]:
    data = blob(size)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        steps = list(
            pool.map(
                lambda i: client.upload(f"file-{i}.pdf", data, "application/pdf"), range(files)
            )
        )
    elapsed = time.perf_counter() - t0
    transfer = sum(float(s["transfer"]) for s in steps)
    return {
        "files": files, "file_mb": size / MB, "workers": workers,
        "end_to_end_mb_s": files * size / MB / elapsed,
        "transfer_only_mb_s_per_stream": files * size / MB / transfer,
        "elapsed_s": elapsed,
    }  # fmt: skip


def run_backend(backend: str, args: argparse.Namespace, s3_endpoint: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-attach-{backend}-") as folder:
        app = App(backend, Path(folder), s3_endpoint)
        try:
            channel, session_key = app.setup()
            app.start()
            client = Client(app, session_key, channel)
            data = photo()
            result: dict[str, Any] = {"backend": backend, "photo_mb": len(data) / MB}
            client.upload("warm-up.jpg", data, "image/jpeg")
            result["first_thumbnail"] = first_thumbnail(client, data, args.photos)
            result["throughput"] = [
                throughput(client, args.file_mb * MB, args.files, workers) for workers in (1, 4)
            ]
            return result
        finally:
            app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument("--photos", type=int, default=5, help="5 MB photos timed end to end")
    parser.add_argument("--files", type=int, default=12, help="files per throughput run")
    parser.add_argument("--file-mb", type=int, default=5)
    args = parser.parse_args()
    results = []
    with moto_server() as endpoint:
        for backend in args.backends.split(","):
            results.append(run_backend(backend.strip(), args, endpoint))
    for r in results:
        ft = r["first_thumbnail"]
        print(f"\n{r['backend']}: photo {r['photo_mb']:.1f} MB, {args.photos} runs")
        print(f"  {'step':14} {'median':>8} {'min':>8} {'max':>8}  (ms)")
        for key in STEPS:
            row = ft[key]
            print(f"  {key:14} {row['median_ms']:8.0f} {row['min_ms']:8.0f} {row['max_ms']:8.0f}")
        for t in r["throughput"]:
            print(
                f"  upload {t['files']} x {t['file_mb']:.0f} MB, {t['workers']} at a time: "
                f"{t['end_to_end_mb_s']:.1f} MB/s end to end, "
                f"{t['transfer_only_mb_s_per_stream']:.1f} MB/s per transfer"
            )
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    path = out_dir / f"attachments-{stamp}.json"
    path.write_text(
        json.dumps({"machine": machine, "args": vars(args), "results": results}, indent=2)
    )
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
