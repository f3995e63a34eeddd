# ruff: noqa: I001 - hobbies.asgi must be imported (and Django set up) before chat's modules.
"""The app, with a fault to inject: the process kills itself (SIGKILL) right after committing a
message whose body contains `CRASH_MARKER`, or a change whose control event's action is
`CRASH_ACTION` (`kick`: a member taken out of a channel), before its broadcast is published — a
server dying between commit and broadcast. Served by the fault tests instead of `hobbies.asgi`."""

from __future__ import annotations

import os
import signal
from typing import Any

from hobbies.asgi import application  # first: it sets Django up
from chat import hub as hub_module

__all__ = ["application"]

MARKER = os.environ.get("CRASH_MARKER", "")
ACTION = os.environ.get("CRASH_ACTION", "")
_publish_sync = hub_module.publish_sync


def _publish_or_die(event: dict[str, Any]) -> None:
    if MARKER and MARKER in str(event.get("frame", "")):
        os.kill(os.getpid(), signal.SIGKILL)
    if ACTION and event.get("type") == "hub.control" and event.get("action") == ACTION:
        os.kill(os.getpid(), signal.SIGKILL)
    _publish_sync(event)


hub_module.publish_sync = _publish_or_die
