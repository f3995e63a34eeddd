"""Sign-in failures, wherever they happen, end on one page with a way back to the log-in."""

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from hobbies.errors import SignInFailed

logger = logging.getLogger(__name__)


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
