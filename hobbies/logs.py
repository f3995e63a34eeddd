"""Log context and the JSON log format (`LOG_FORMAT=json`).

Every log line carries the request id (HTTP) or connection id (WebSocket) of the code that wrote
it, and the user and channel ids where the code set them. Log lines never carry message bodies or
secrets: callers log ids and codes, never the text users wrote.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str] = ContextVar("request_id", default="")
connection_id: ContextVar[str] = ContextVar("connection_id", default="")
user_id: ContextVar[int | None] = ContextVar("user_id", default=None)
channel_id: ContextVar[int | None] = ContextVar("channel_id", default=None)

# An incoming X-Request-ID is kept only when it is short and plain (it ends up in every line).
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def new_id() -> str:
    return uuid.uuid4().hex


def incoming_request_id(value: str | None) -> str:
    return value if value and REQUEST_ID.match(value) else new_id()


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.connection_id = connection_id.get()
        record.user_id = user_id.get()
        record.channel_id = channel_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the context fields set."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("request_id", "connection_id", "user_id", "channel_id"):
            value = getattr(record, field, None)
            if value not in (None, ""):
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
