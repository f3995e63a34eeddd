"""Helpers every app's views share: domain errors shown as pages, the client's address."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from hobbies.errors import DomainError, NotFound


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
    """The address of the client, as the server saw it."""
    return str(request.META.get("REMOTE_ADDR", "unknown"))
