"""Log-out closes the sockets opened with that session."""

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest

from hobbies.services import sockets_close_for_session


@receiver(user_logged_out)
def close_sockets_on_logout(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is not None and request is not None:
        sockets_close_for_session(user_id=user.pk, session_key=request.session.session_key)
