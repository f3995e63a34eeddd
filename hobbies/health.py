"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import hmac
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from chat.chime_bridge import health, health_problem
from chat.hub import channel_layer, hub
from hobbies import metrics


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


async def _layer_reachable(layer: Any) -> None:
    """Redis answers (a PING on the layer's own pool). Never a receive: channels-redis lets one
    receive at a time per process, and the hub's blocking receive holds that turn."""
    if hasattr(layer, "connection"):
        await asyncio.wait_for(layer.connection(0).ping(), timeout=2)


def _age(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    return round((datetime.now(UTC) - datetime.fromisoformat(value)).total_seconds(), 3)


def chime_bridge_report() -> dict[str, Any]:
    """The Chime bridge as it last reported itself in the cache (`chime-bridge:health`).

    Informational: it never makes this process unready. With the bridge down this process still
    authorizes and sends (sends go to Chime and are acknowledged and fanned out from here); only
    live events from other Chime clients wait, and the bridge stores them when it comes back.
    Taking every web process out of the load balancer for that would turn a delay into an outage.
    """
    found = health()
    problem = health_problem(found)
    report: dict[str, Any] = {
        "status": "error: " + problem if problem else "ok",
        "connected": not problem,
        "last_event_age_seconds": _age((found or {}).get("last_event")),
        "lag_seconds": (found or {}).get("lag_seconds"),
    }
    return report


@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        async_to_sync(_layer_reachable)(channel_layer())
        # The hub's canary proves the layer also delivers to this process.
        checks["channel_layer"] = "ok" if hub.layer_ok else "error: not delivering"
    except Exception as exc:
        checks["channel_layer"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", **checks}
    if settings.MESSAGING_BACKEND == "chime":
        body["chime_bridge"] = chime_bridge_report()
    return JsonResponse(body, status=200 if ok else 503)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text. Only for clients in `METRICS_ALLOWED_NETWORKS` (loopback by default)
    and, when `METRICS_TOKEN` is set, only with `Authorization: Bearer <token>`."""
    allowed = metrics.networks(settings.METRICS_ALLOWED_NETWORKS)
    if not metrics.address_allowed(request.META.get("REMOTE_ADDR", ""), allowed):
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    if settings.METRICS_TOKEN:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {settings.METRICS_TOKEN}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            response = HttpResponse("Unauthorized.\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
