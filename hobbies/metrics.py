"""What the site measures, in one place: Prometheus metrics for `/metrics`, and the CloudWatch
Embedded Metric Format (EMF) lines written on stdout when `METRICS_EMF` is on.

Every app records through the small functions here (`message_published`, `send_failed`, ...), so
the names, labels and the EMF contract live in one module. Recording is cheap: a counter
increment, or one histogram observation per fanned-out event (not one per socket).

Several server processes: set `PROMETHEUS_MULTIPROC_DIR` (read by prometheus-client itself when
this module is imported) to one empty directory shared by the processes; `/metrics` then sums
the counters of every process and the open-socket gauge of the live ones.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- Prometheus metrics ---------------------------------------------------------------------

MESSAGES_PUBLISHED = Counter(
    "hobbies_messages_published_total", "Messages committed.", ["community", "channel"]
)
SEND_FAILURES = Counter("hobbies_send_failures_total", "Sends refused or failed.", ["reason"])
MESSAGE_EDITS = Counter("hobbies_message_edits_total", "Messages edited.")
MESSAGE_REMOVALS = Counter("hobbies_message_removals_total", "Messages deleted or removed.")
REPORTS = Counter("hobbies_reports_total", "Messages reported.")
DELIVERY_LATENCY = Histogram(
    "hobbies_delivery_latency_seconds",
    "Commit to hand-off to the local sockets, one sample per event per process.",
    buckets=LATENCY_BUCKETS,
)
FRAMES_SENT = Counter("hobbies_frames_sent_total", "Frames handed to local sockets.")
SOCKETS_TOO_SLOW = Counter(
    "hobbies_sockets_closed_too_slow_total", "Sockets closed for falling behind."
)
REPLAYS = Counter("hobbies_replays_total", "Catch-up replays sent.")
REPLAY_FRAMES = Counter("hobbies_replay_frames_total", "Frames sent by catch-up replays.")
WEBSOCKETS_OPEN = Gauge("hobbies_websockets_open", "Open WebSockets.", multiprocess_mode="livesum")
WEBSOCKET_CONNECTS = Counter("hobbies_websocket_connects_total", "WebSockets accepted.")
WEBSOCKET_DISCONNECTS = Counter("hobbies_websocket_disconnects_total", "WebSockets closed.")
AUTH_FAILURES = Counter(
    "hobbies_websocket_auth_failures_total", "WebSockets refused: not signed in."
)
ORIGIN_REFUSALS = Counter(
    "hobbies_websocket_origin_refusals_total", "WebSocket handshakes refused for their Origin."
)
RATE_LIMITED = Counter("hobbies_rate_limited_total", "Requests or frames rate-limited.", ["what"])
UPLOADS = Counter("hobbies_uploads_total", "Attachment uploads stored.")
UPLOAD_BYTES = Counter("hobbies_upload_bytes_total", "Bytes of attachments stored.")
UPLOAD_FAILURES = Counter("hobbies_upload_failures_total", "Attachment uploads refused.")
STORAGE_LATENCY = Histogram(
    "hobbies_storage_latency_seconds", "Object storage calls.", ["op"], buckets=LATENCY_BUCKETS
)
CHIME_LATENCY = Histogram(
    "hobbies_chime_api_latency_seconds", "Chime API calls.", ["op"], buckets=LATENCY_BUCKETS
)
CHIME_THROTTLES = Counter("hobbies_chime_throttles_total", "Chime API calls throttled.")
BRIDGE_CONNECTED = Gauge(
    "hobbies_bridge_connected", "1 while the Chime bridge session is up.", multiprocess_mode="max"
)
BRIDGE_LAG = Gauge(
    "hobbies_bridge_lag_seconds", "Age of the last Chime event on arrival.", multiprocess_mode="max"
)
HTTP_REQUESTS = Counter(
    "hobbies_http_requests_total", "HTTP requests served.", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "hobbies_http_request_duration_seconds",
    "HTTP request latency.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)


# --- EMF ----------------------------------------------------------------------------------------

EMF_COUNTS = ("MessagesPublished", "SendFailures", "HttpRequests", "Http5xx")
EMF_MAX_VALUES = 100  # values of one metric in one line (the EMF limit)


class EmfBatch:
    """What happened since the last flush, as the metric contract names it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, float] = {}
        self.latencies: list[float] = []
        self.gauges: dict[str, float] = {}
        self.communities: dict[str, float] = {}

    def add(self, name: str, value: float = 1) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + value

    def take(self) -> tuple[dict[str, float], list[float], dict[str, float], dict[str, float]]:
        with self.lock:
            taken = (self.counts, self.latencies, dict(self.gauges), self.communities)
            self.counts, self.latencies, self.communities = {}, [], {}
        return taken


batch = EmfBatch()
_open_sockets = 0
emf_enabled = False


def emf_lines(
    *, namespace: str, environment: str, timestamp_ms: int | None = None
) -> list[dict[str, Any]]:
    """The EMF documents for what happened since the last call (and the current gauges)."""
    counts, latencies, gauges, communities = batch.take()
    gauges.setdefault("WebSocketsOpen", float(_open_sockets))
    now = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    doc: dict[str, Any] = {"Environment": environment}
    metrics: list[dict[str, str]] = []
    for name in EMF_COUNTS:
        doc[name] = counts.get(name, 0)
        metrics.append({"Name": name, "Unit": "Count"})
    for name, value in gauges.items():
        doc[name] = value
        metrics.append({"Name": name, "Unit": "Count"})
    if latencies:
        doc["DeliveryLatency"] = latencies[-EMF_MAX_VALUES:]
        metrics.append({"Name": "DeliveryLatency", "Unit": "Milliseconds"})
    doc["_aws"] = {
        "Timestamp": now,
        "CloudWatchMetrics": [
            {"Namespace": namespace, "Dimensions": [["Environment"]], "Metrics": metrics}
        ],
    }
    lines = [doc]
    for community, value in sorted(communities.items()):
        lines.append(
            {
                "Environment": environment,
                "Community": community,
                "MessagesPublished": value,
                "_aws": {
                    "Timestamp": now,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": namespace,
                            "Dimensions": [["Environment", "Community"]],
                            "Metrics": [{"Name": "MessagesPublished", "Unit": "Count"}],
                        }
                    ],
                },
            }
        )
    return lines


def emf_flush(*, namespace: str, environment: str, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    for doc in emf_lines(namespace=namespace, environment=environment):
        stream.write(json.dumps(doc, separators=(",", ":")) + "\n")
    stream.flush()


def emf_start(*, namespace: str, environment: str, interval: float) -> None:
    """Flush an EMF line every `interval` seconds from a daemon thread, and once at exit."""
    global emf_enabled
    if emf_enabled:
        return
    emf_enabled = True

    def flush() -> None:
        try:
            emf_flush(namespace=namespace, environment=environment)
        except Exception:
            logger.exception("metrics: EMF flush failed")

    def loop() -> None:
        while True:
            time.sleep(interval)
            flush()

    threading.Thread(target=loop, name="emf-flush", daemon=True).start()
    atexit.register(flush)


# --- Recording ----------------------------------------------------------------------------------


def message_published(*, community: int | str, channel: int | str) -> None:
    MESSAGES_PUBLISHED.labels(community=str(community), channel=str(channel)).inc()
    if emf_enabled:
        batch.add("MessagesPublished")
        with batch.lock:
            key = str(community)
            batch.communities[key] = batch.communities.get(key, 0) + 1


def send_failed(reason: str) -> None:
    SEND_FAILURES.labels(reason=reason).inc()
    if emf_enabled:
        batch.add("SendFailures")


def delivered(*, committed_at: float, frames: int) -> None:
    """One fanned-out event: `frames` frames handed to local sockets, committed at
    `committed_at` (time.time() of the commit hook)."""
    FRAMES_SENT.inc(frames)
    latency = max(0.0, time.time() - committed_at)
    DELIVERY_LATENCY.observe(latency)
    if emf_enabled:
        with batch.lock:
            if len(batch.latencies) < EMF_MAX_VALUES * 10:
                batch.latencies.append(round(latency * 1000, 3))


def socket_opened() -> None:
    global _open_sockets
    _open_sockets += 1
    WEBSOCKETS_OPEN.inc()
    WEBSOCKET_CONNECTS.inc()


def socket_closed() -> None:
    global _open_sockets
    _open_sockets -= 1
    WEBSOCKETS_OPEN.dec()
    WEBSOCKET_DISCONNECTS.inc()


def bridge_connected(up: bool) -> None:
    BRIDGE_CONNECTED.set(1 if up else 0)
    if emf_enabled:
        with batch.lock:
            batch.gauges["BridgeConnected"] = 1 if up else 0


def http_request(*, route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
    HTTP_LATENCY.labels(route=route).observe(seconds)
    if emf_enabled:
        batch.add("HttpRequests")
        if status >= 500:
            batch.add("Http5xx")


def timed(histogram: Histogram, op: str) -> Any:
    """`with timed(STORAGE_LATENCY, "save"):` observes how long the block took."""
    return histogram.labels(op=op).time()


# --- Exposition ---------------------------------------------------------------------------------


def exposition() -> tuple[bytes, str]:
    """The Prometheus text of every process sharing `PROMETHEUS_MULTIPROC_DIR`, or of this one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a finished process's live gauges (call from the process manager)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """`METRICS_ALLOWED_NETWORKS`: comma-separated CIDRs; a clear error for a bad one."""
    found = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"METRICS_ALLOWED_NETWORKS: {part!r} is not a CIDR network") from None
    return found


def address_allowed(address: str, allowed: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in allowed if ip.version == net.version)
