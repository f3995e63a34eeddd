"""The naive Channels fan-out pattern, as the Channels tutorial teaches it, served by daphne.

Each subscriber joins one group on connect; the publisher's message goes out with one
`group_send` per message, and every consumer then does its own `json.dumps` and `self.send`
(so the event is serialised once per recipient).

    DJANGO_SETTINGS_MODULE=bench.naive_settings \\
        daphne -b 127.0.0.1 -p 8766 bench.naive_app:application
"""

from __future__ import annotations

import json
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.naive_settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "bench"


class SubscriberConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps({"type": "message.new", "message": event["message"]}))


class PublisherConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or "{}")
        if frame.get("type") != "message.send":
            return
        message = {key: frame.get(key) for key in ("channel", "client_id", "body", "reply_to")}
        await self.channel_layer.group_send(GROUP, {"type": "chat.message", "message": message})


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("publish", PublisherConsumer.as_asgi()),
                path("", SubscriberConsumer.as_asgi()),
            ]
        )
    }
)
