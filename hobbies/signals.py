"""Sign-in runs the post-login step; log-out closes the sockets opened with that session."""

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest

from hobbies.errors import SignInIncomplete
from hobbies.models import SignIn
from hobbies.services import sockets_close_for_session, user_post_login

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
            ip=meta.get("REMOTE_ADDR"),
            user_agent=str(meta.get("HTTP_USER_AGENT", "")),
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


@receiver(user_logged_out)
def close_sockets_on_logout(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is not None and request is not None:
        sockets_close_for_session(user_id=user.pk, session_key=request.session.session_key)
