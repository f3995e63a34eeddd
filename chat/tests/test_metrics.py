"""Monitoring: /metrics moves as things happen, is protected, sums several processes; EMF
lines have the CloudWatch shape and the contract's names; logs are JSON without message bodies."""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from django.test import Client
from websockets.exceptions import InvalidStatus

from chat.tests.live import LiveServer, session_key
from conftest import client_for
from hobbies import metrics

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
SECRET_BODY = "zebra-umbrella-4417 meet me at the lighthouse"
TOKEN = "metrics-test-token-" + uuid.uuid4().hex


def parse(text: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            found[(match.group(1), match.group(2) or "")] = float(match.group(3))
    return found


def total(samples: dict[tuple[str, str], float], name: str, having: str = "") -> float:
    return sum(v for (n, labels), v in samples.items() if n == name and having in labels)


def scrape(client: Client) -> dict[tuple[str, str], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


# --- in-process: the default single-process registry, over Django's test client -------------


@pytest.mark.django_db
def test_metrics_is_loopback_only_by_default(client: Client, settings: Any) -> None:
    assert client.get("/metrics").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 403
    assert b"hobbies_" not in refused.content
    settings.METRICS_ALLOWED_NETWORKS = "203.0.113.0/24"
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200
    assert client.get("/metrics").status_code == 403  # loopback no longer listed


@pytest.mark.django_db
def test_metrics_token_is_required_when_set(client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200
    assert b"hobbies_messages_published_total" in ok.content


def test_a_bad_network_setting_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a CIDR"):
        metrics.networks("127.0.0.1/8, bogus")


@pytest.mark.django_db
def test_http_requests_are_counted_by_route_pattern(client: Client) -> None:
    before = scrape(client)
    for slug in ("one", "two", "three"):
        client.get(f"/c/{slug}/")
    after = scrape(client)
    route = 'route="c/<slug:slug>/"'
    counted = total(after, "hobbies_http_requests_total", route) - total(
        before, "hobbies_http_requests_total", route
    )
    assert counted == 3
    assert not any("/c/one/" in labels for (_, labels) in after)  # raw paths never labels


@pytest.mark.django_db
def test_request_id_is_kept_or_made(client: Client) -> None:
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)


@pytest.mark.django_db
def test_uploads_are_counted_with_their_bytes(upload, store, alice, client: Client) -> None:
    before = scrape(client)
    content = b"plain notes about knots\n" * 40
    assert upload(alice, "notes.txt", content, "text/plain")["status"] == 200
    refused = upload(alice, "page.txt", b"<html><script>x</script></html>", "text/plain")
    assert refused["status"] != 200
    after = scrape(client)

    def moved(name: str, having: str = "") -> float:
        return total(after, name, having) - total(before, name, having)

    assert moved("hobbies_uploads_total") == 1
    assert moved("hobbies_upload_bytes_total") == len(content)
    assert moved("hobbies_upload_failures_total") == 1
    assert moved("hobbies_storage_latency_seconds_count", 'op="size"') == 2


@pytest.mark.django_db
def test_messages_sent_over_http_are_counted(
    client: Client, alice, general, django_capture_on_commit_callbacks
) -> None:
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        sent = client_for(alice).post(
            f"/api/channels/{general.id}/messages/",
            data=json.dumps({"body": "hello", "client_id": str(uuid.uuid4())}),
            content_type="application/json",
        )
    assert sent.status_code == 201, sent.content
    after = scrape(client)
    labels = f'channel="{general.id}",community="{general.community_id}"'
    assert (
        total(after, "hobbies_messages_published_total", labels)
        - total(before, "hobbies_messages_published_total", labels)
        == 1
    )


# --- EMF ------------------------------------------------------------------------------------


def check_emf(doc: dict[str, Any]) -> None:
    """The shape the EMF specification asks for."""
    aws = doc["_aws"]
    assert isinstance(aws["Timestamp"], int) and aws["Timestamp"] > 1_600_000_000_000
    directives = aws["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str) and directive["Namespace"]
        assert len(directive["Metrics"]) <= 100
        for dims in directive["Dimensions"]:
            assert 1 <= len(dims) <= 30
            for name in dims:
                assert isinstance(doc[name], str)  # every dimension has a string value
        for metric in directive["Metrics"]:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            assert metric["Unit"] in {"Count", "Milliseconds"}
            value = doc[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            assert values and len(values) <= 100
            assert all(isinstance(v, (int, float)) for v in values)


CONTRACT_UNITS = {
    "MessagesPublished": "Count",
    "SendFailures": "Count",
    "DeliveryLatency": "Milliseconds",
    "WebSocketsOpen": "Count",
    "BridgeConnected": "Count",
    "HttpRequests": "Count",
    "Http5xx": "Count",
}


def test_emf_lines_carry_the_contract_names_units_and_dimensions(monkeypatch) -> None:
    monkeypatch.setattr(metrics, "emf_enabled", True)
    metrics.emf_lines(namespace="Test", environment="staging")  # start from an empty batch
    metrics.message_published(community=7, channel=9)
    metrics.message_published(community=7, channel=10)
    metrics.send_failed("rate_limited")
    metrics.http_request(route="x/", method="GET", status=200, seconds=0.01)
    metrics.http_request(route="x/", method="GET", status=503, seconds=0.01)
    for _ in range(250):
        metrics.delivered(committed_at=time.time() - 0.02, frames=3)
    metrics.bridge_connected(False)
    out = io.StringIO()
    metrics.emf_flush(namespace="HobbiesCommunity", environment="staging", out=out)
    lines = out.getvalue().splitlines()
    docs = [json.loads(line) for line in lines]
    for doc in docs:
        check_emf(doc)
    main, per_community = docs
    [directive] = main["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "HobbiesCommunity"
    assert directive["Dimensions"] == [["Environment"]]
    assert main["Environment"] == "staging"
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units == CONTRACT_UNITS
    assert main["MessagesPublished"] == 2
    assert main["SendFailures"] == 1
    assert main["HttpRequests"] == 2 and main["Http5xx"] == 1
    assert len(main["DeliveryLatency"]) == 100
    assert all(15 <= v < 5000 for v in main["DeliveryLatency"])
    assert main["BridgeConnected"] == 0
    assert per_community["Community"] == "7" and per_community["MessagesPublished"] == 2
    assert per_community["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["Environment", "Community"]
    ]
    # The next flush starts again from nothing, and still reports the gauges.
    [again] = metrics.emf_lines(namespace="HobbiesCommunity", environment="staging")
    assert again["MessagesPublished"] == 0 and "WebSocketsOpen" in again
    assert "DeliveryLatency" not in again and again["BridgeConnected"] == 0
    monkeypatch.setattr(metrics.batch, "gauges", {})


# --- live: two daphne processes sharing one PROMETHEUS_MULTIPROC_DIR -----------------------


@pytest.fixture
def servers() -> Iterator[list[LiveServer]]:
    started: list[LiveServer] = []
    yield started
    for server in started:
        server.close()


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)  # noqa: S310 (loopback test server)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def frames_until(ws: Any, kind: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        seen.append(frame)
        if frame["type"] == kind:
            return seen


def send_frame(channel: int, body: str) -> str:
    return json.dumps(
        {"type": "message.send", "channel": channel, "client_id": str(uuid.uuid4()), "body": body}
    )


@pytest.mark.django_db(transaction=True)
def test_live_metrics_move_as_things_happen_across_processes(
    servers, tmp_path, alice, bob, general
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
        "METRICS_TOKEN": TOKEN,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "RATE_LIMITS_ENABLED": "1",
    }
    first = LiveServer(**env).start()
    servers.append(first)
    second = LiveServer(**env).start()
    servers.append(second)
    assert get(f"{first.url}/metrics")[0] == 401
    alice_session, bob_session = session_key(alice), session_key(bob)

    async def scenario() -> int:
        # Refused for its Origin: a page on another site.
        with pytest.raises(InvalidStatus):
            await websockets.connect(
                first.ws_url,
                additional_headers={
                    "Cookie": f"sessionid={alice_session}",
                    "Origin": "https://evil.example",
                },
            )
        # Both on the first process; Bob's second tab on the second. (Across processes the
        # sockets only hear each other through a shared channel layer, Redis.)
        alice_ws, bob_ws, bob_tab = [
            await websockets.connect(
                server.ws_url,
                additional_headers={"Cookie": f"sessionid={session}", "Origin": server.url},
            )
            for server, session in (
                (first, alice_session),
                (first, bob_session),
                (second, bob_session),
            )
        ]
        for ws in (alice_ws, bob_ws, bob_tab):
            await ws.send(json.dumps({"type": "subscribe", "channel": general.id, "since": None}))
            await frames_until(ws, "subscribed")
        await alice_ws.send(send_frame(general.id, SECRET_BODY))
        await frames_until(alice_ws, "message.ack")
        await frames_until(bob_ws, "message.new")
        await bob_tab.send(send_frame(general.id, "from the second process"))
        await frames_until(bob_tab, "message.ack")
        # A failed send: an empty message.
        await alice_ws.send(send_frame(general.id, ""))
        error = (await frames_until(alice_ws, "error"))[-1]
        # A burst of frames past the socket's rate limit.
        limited = 0
        for _ in range(80):
            await bob_ws.send(json.dumps({"type": "ping"}))
        while True:
            try:
                frame = json.loads(await asyncio.wait_for(bob_ws.recv(), timeout=2))
            except TimeoutError:
                break
            if frame["type"] == "error" and frame["code"] == "rate_limited":
                limited += 1
        status, text = get(f"{first.url}/metrics", TOKEN)
        assert status == 200
        open_now = total(parse(text), "hobbies_websockets_open")
        assert error["ref"]  # the refusal was answered
        for ws in (alice_ws, bob_ws, bob_tab):
            await ws.close()
        assert limited > 0
        return int(open_now)

    open_while_connected = asyncio.run(scenario())
    assert open_while_connected == 3  # two sockets on one process, one on the other, summed

    status, text = get(f"{second.url}/metrics", TOKEN)
    assert status == 200
    samples = parse(text)
    labels = f'channel="{general.id}",community="{general.community_id}"'
    assert total(samples, "hobbies_messages_published_total", labels) == 2
    assert total(samples, "hobbies_send_failures_total") == 1
    assert total(samples, "hobbies_websocket_connects_total") == 3
    assert total(samples, "hobbies_websocket_origin_refusals_total") == 1
    assert total(samples, "hobbies_rate_limited_total", 'what="socket_frames"') >= 1
    # One latency sample per message per process that had its sockets.
    assert total(samples, "hobbies_delivery_latency_seconds_count") >= 2
    assert total(samples, "hobbies_frames_sent_total") >= 3

    for server in servers:
        server.stop()
    logs = first.output() + second.output()
    assert SECRET_BODY not in logs
    assert "zebra-umbrella" not in logs
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    opened = [r for r in records if r["message"] == "socket opened"]
    assert len(opened) == 3
    assert all(r["connection_id"] and r["user_id"] in (alice.id, bob.id) for r in opened)


@pytest.mark.django_db(transaction=True)
def test_a_server_with_emf_on_writes_valid_lines_with_its_environment(
    servers, alice, general
) -> None:
    server = LiveServer(
        METRICS_EMF="1", METRICS_EMF_INTERVAL="0.5", HOBBIES_ENVIRONMENT="staging"
    ).start()
    servers.append(server)
    session = session_key(alice)

    async def scenario() -> None:
        ws = await websockets.connect(
            server.ws_url,
            additional_headers={"Cookie": f"sessionid={session}", "Origin": server.url},
        )
        await ws.send(json.dumps({"type": "subscribe", "channel": general.id, "since": None}))
        await frames_until(ws, "subscribed")
        await ws.send(send_frame(general.id, SECRET_BODY))
        await frames_until(ws, "message.ack")
        await asyncio.sleep(1.2)  # at least one flush while the socket is open
        await ws.close()

    asyncio.run(scenario())
    server.stop()  # and the last flush, at exit
    docs = [json.loads(line) for line in server.output().splitlines() if '"_aws"' in line]
    assert len(docs) >= 2
    for doc in docs:
        check_emf(doc)
        assert doc["Environment"] == "staging"
        assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "HobbiesCommunity"
    main = [d for d in docs if "Community" not in d]
    assert sum(d["MessagesPublished"] for d in main) == 1
    assert max(d["WebSocketsOpen"] for d in main) == 1
    assert sum(len(d.get("DeliveryLatency", [])) for d in main) >= 1
    assert sum(d["HttpRequests"] for d in main) >= 1  # the start-up health checks
    [community] = [d for d in docs if "Community" in d]
    assert community["Community"] == str(general.community_id)
    assert SECRET_BODY not in server.output()


# --- deploy/monitoring: alert rules and the Grafana dashboard --------------------------------


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    rules = MONITORING / "alerts.yml"
    if promtool is None:
        pytest.fail("promtool is needed: install the Debian package `prometheus`.")
    checked = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "4 rules found" in checked.stdout + checked.stderr


@pytest.mark.django_db
def test_every_dashboard_query_names_an_exported_metric(client: Client) -> None:
    text = client.get("/metrics").content.decode()
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    exported = set(families)
    for family in families:
        exported |= {f"{family}_total", f"{family}_bucket", f"{family}_count", f"{family}_sum"}
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    panels = dashboard["panels"]
    assert len(panels) >= 8
    named = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\bhobbies_[a-z0-9_]+", target["expr"]))
            assert names, target["expr"]
            assert names <= exported, names - exported
            named |= names
    assert "hobbies_delivery_latency_seconds_bucket" in named
