"""Every sign-in runs the post-login step. Connected in `AccountsConfig.ready()`."""

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.models import SignIn
from accounts.services import user_post_login
from hobbies.errors import SignInIncomplete
from hobbies.http import client_ip
from hobbies.parsing import clean_text

logger = logging.getLogger(__name__)


@receiver(user_logged_in, dispatch_uid="hobbies.post_login")
def post_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Every way of signing in ends here. If the post-login step fails the sign-in is undone
    and the failure shown (by `SignInErrorsMiddleware`), never left half done."""
    method = (
        SignIn.Method.OIDC
        if getattr(user, "backend", "") == settings.OIDC_BACKEND
        else SignIn.Method.PASSWORD
    )
    meta = request.META if request is not None else {}
    try:
        user_post_login(
            user=user,
            method=method,
            ip=client_ip(request) if request is not None else None,
            user_agent=clean_text(meta.get("HTTP_USER_AGENT"), max_length=255),
        )
    except Exception as exc:
        logger.exception("Post-login step failed for user %s; signing them out", user.pk)
        if request is not None:
            request.session.flush()
            request.user = AnonymousUser()
        raise SignInIncomplete(
            "You could not be signed in because setting up your account failed. "
            "Please try again; if it keeps failing, tell the site's administrators.",
            reason=type(exc).__name__,
        ) from exc
