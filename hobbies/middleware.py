"""Middleware every response passes through: the Content-Security-Policy header, and sign-in
failures, wherever they happen, ending on one page with a way back to the log-in."""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from hobbies import logs, metrics
from hobbies.errors import SignInFailed

logger = logging.getLogger(__name__)

CSP = "Content-Security-Policy"
CSP_REPORT_ONLY = "Content-Security-Policy-Report-Only"


class ContentSecurityPolicyMiddleware:
    """Adds `settings.CONTENT_SECURITY_POLICY` to every response that has no policy of its own
    (attachment downloads send a stricter one). `CONTENT_SECURITY_POLICY_REPORT_ONLY` sends it
    as Content-Security-Policy-Report-Only: browsers then report violations without blocking."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy: str = settings.CONTENT_SECURITY_POLICY
        if not self.policy:
            raise MiddlewareNotUsed
        self.header = CSP_REPORT_ONLY if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY else CSP

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if CSP not in response and CSP_REPORT_ONLY not in response:
            response[self.header] = self.policy
        return response


class SignInErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, SignInFailed):
            return None
        logger.warning("Sign-in refused (%s): %s", exception.code, exception.reason)
        return render(
            request,
            "registration/sign_in_error.html",
            {"error": exception},
            status=exception.status,
        )


class RequestMetricsMiddleware:
    """Outermost: gives each request its id (X-Request-ID, kept when plain, else made; echoed
    on the response) and records its latency and status by route pattern, never the raw path,
    so the number of series stays bounded."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = logs.incoming_request_id(request.headers.get("X-Request-ID"))
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            response["X-Request-ID"] = rid
            return response
        finally:
            match = getattr(request, "resolver_match", None)
            route = (match.route or match.view_name) if match is not None else "unmatched"
            metrics.http_request(
                route=route,
                method=request.method or "",
                status=status,
                seconds=time.perf_counter() - started,
            )
            logs.request_id.reset(token)
