"""Helpers every app's views share: domain errors shown as pages, the client's address, and
CSRF failures answered in the shape each client expects."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Collection
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import csrf

from hobbies.errors import DomainError, Invalid, NotFound


def domain_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Show a domain error as a message on the page the user came from (or a 404 page)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            return render(request, "error.html", {"error": exc}, status=404)
        except DomainError as exc:
            if request.method == "POST":
                messages.error(request, exc.detail)
                return redirect(safe_next(request, str(request.POST.get("next", ""))))
            return render(request, "error.html", {"error": exc}, status=exc.status)

    return wrapper


def safe_next(request: HttpRequest, target: str) -> str:
    """`target` if it stays on this site, else the current path."""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return request.path


def client_ip(request: HttpRequest) -> str:
    """The address of the client, for per-address limits and the sign-in record.

    Without trusted proxies (`TRUSTED_PROXY_COUNT` 0) it is the peer, `REMOTE_ADDR`. Behind N
    of them, each appends to `X-Forwarded-For` the address it received the request from, so the
    Nth entry from the right is the client as the outermost proxy saw it; entries to its left
    came from the client and are never read. A header with fewer entries, or an entry that is
    not an address, gives the peer.
    """
    peer = _address(request.META.get("REMOTE_ADDR")) or "unknown"
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return peer
    hops = str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
    if len(hops) < proxies:
        return peer
    return _address(hops[-proxies]) or peer


def _address(value: object) -> str | None:
    """`value` as a normalized IP address, or None."""
    try:
        return str(ipaddress.ip_address(str(value or "").strip()))
    except ValueError:
        return None


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """`CSRF_FAILURE_VIEW`: the JSON API's error shape under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {
                "error": {
                    "code": "csrf_failed",
                    "detail": "This request was refused because its CSRF token is missing or "
                    "wrong; reload the page and try again.",
                }
            },
            status=403,
        )
    return csrf.csrf_failure(request, reason)


def request_data(request: HttpRequest, lists: Collection[str] = ()) -> tuple[dict[str, Any], bool]:
    """An API request's fields: a JSON object's, or the form's (the fields named in `lists` as
    lists); and whether the values are text (a form) rather than JSON values."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            raise Invalid("The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise Invalid("The body must be a JSON object.")
        return data, False
    form: dict[str, Any] = request.POST.dict()
    for name in lists:
        if name in request.POST:
            form[name] = request.POST.getlist(name)
    return form, True
