"""Amazon Chime SDK messaging: our users, channels, memberships, moderators, bans and messages
mirrored to one AppInstance (docs/chime.md).

The database stays the record: ids, positions (`seq`), replay and history are ours. Every call
here runs inside the service's transaction, so a refusal or an outage rolls the change back and
the user sees an error they can retry. Names on the Chime side are derived, never stored:

- a user is the AppInstanceUser `<CHIME_USER_ID_PREFIX><user id>` (never the email);
- a channel is `<app instance>/channel/hobbies-channel-<channel id>` (Mode RESTRICTED, Privacy
  PRIVATE, our id in Metadata), created and moderated by the bridge user;
- a message keeps Chime's message id in `Message.external_id`; its Metadata says we sent it, so
  the bridge never stores it twice.

Throttling: botocore's standard and adaptive retry modes do not retry Chime's modelled
`ThrottledClientException` (a modelled 429 without a `retryable` trait), so `ChimeApi.call`
retries it too, with full-jitter exponential backoff, on top of the botocore retry config
(connection errors and 5xx).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from django.conf import settings

from accounts.models import User
from chat.backends.base import MessageDenied, MessagePending, MessagingUnavailable
from chat.models import Channel, Message
from chat.selectors import messages_page
from communities.policy import can_moderate
from hobbies import metrics
from hobbies.errors import TooLong

logger = logging.getLogger(__name__)

CONTENT_MAX_BYTES = 4096
METADATA_MAX_BYTES = 1024
CHANNEL_ID_PREFIX = "hobbies-channel-"
ORIGIN = "hobbies"
THROTTLED = {"ThrottledClientException", "ThrottlingException"}
UNAVAILABLE = {"ServiceUnavailableException", "ServiceFailureException"}
EXISTS = {"ConflictException"}


@dataclass(frozen=True)
class ChannelBan:
    """A Chime channel ban: when, and by whom (an AppInstanceUser, perhaps not one of ours)."""

    created: datetime | None
    by_arn: str
    by_name: str


@dataclass(frozen=True)
class ChimeConfig:
    app_instance_arn: str
    bridge_user_id: str
    bridge_user_arn: str
    user_prefix: str
    region: str
    identity_endpoint: str | None
    messaging_endpoint: str | None
    session_scheme: str
    retry_mode: str
    max_attempts: int
    timeout: float

    @classmethod
    def from_settings(cls) -> ChimeConfig:
        arn = settings.CHIME_APP_INSTANCE_ARN
        bridge_id = settings.CHIME_BRIDGE_USER_ID
        bridge_arn = settings.CHIME_BRIDGE_USER_ARN
        if bridge_arn:
            bridge_id = bridge_arn.rsplit("/", 1)[-1]
        elif arn:
            bridge_arn = f"{arn}/user/{bridge_id}"
        return cls(
            app_instance_arn=arn,
            bridge_user_id=bridge_id,
            bridge_user_arn=bridge_arn,
            user_prefix=settings.CHIME_USER_ID_PREFIX,
            region=settings.AWS_REGION,
            identity_endpoint=settings.CHIME_IDENTITY_ENDPOINT_URL,
            messaging_endpoint=settings.CHIME_MESSAGING_ENDPOINT_URL,
            session_scheme=settings.CHIME_SESSION_SCHEME,
            retry_mode=settings.CHIME_RETRY_MODE,
            max_attempts=settings.CHIME_MAX_ATTEMPTS,
            timeout=settings.CHIME_TIMEOUT,
        )

    def with_instance(self, arn: str) -> ChimeConfig:
        bridge_arn = self.bridge_user_arn or f"{arn}/user/{self.bridge_user_id}"
        return ChimeConfig(
            **{**self.__dict__, "app_instance_arn": arn, "bridge_user_arn": bridge_arn}
        )

    def user_id(self, user_pk: int) -> str:
        return f"{self.user_prefix}{user_pk}"

    def user_arn(self, user_pk: int) -> str:
        return f"{self.app_instance_arn}/user/{self.user_id(user_pk)}"

    def user_pk(self, arn: str) -> int | None:
        """Our user id from an AppInstanceUser ARN of ours, or None (the bridge, someone else)."""
        prefix = f"{self.app_instance_arn}/user/{self.user_prefix}"
        tail = arn[len(prefix) :] if arn.startswith(prefix) else ""
        return int(tail) if tail.isdigit() else None

    def channel_arn(self, channel_pk: int) -> str:
        return f"{self.app_instance_arn}/channel/{CHANNEL_ID_PREFIX}{channel_pk}"

    def channel_pk(self, arn: str) -> int | None:
        prefix = f"{self.app_instance_arn}/channel/{CHANNEL_ID_PREFIX}"
        tail = arn[len(prefix) :] if arn.startswith(prefix) else ""
        return int(tail) if tail.isdigit() else None


class ChimeApi:
    """The two boto3 clients, and one `call` that retries throttling and maps outages."""

    def __init__(self, config: ChimeConfig) -> None:
        self.config = config
        boto_config = Config(
            region_name=config.region,
            retries={"mode": config.retry_mode, "max_attempts": config.max_attempts},
            connect_timeout=config.timeout,
            read_timeout=config.timeout,
            max_pool_connections=max(10, settings.CHAT_DB_THREADS * 2),
        )
        session = boto3.session.Session()
        self.identity = session.client(
            "chime-sdk-identity", endpoint_url=config.identity_endpoint, config=boto_config
        )
        self.messaging = session.client(
            "chime-sdk-messaging", endpoint_url=config.messaging_endpoint, config=boto_config
        )
        self.throttled = 0  # retries of ThrottledClientException, for tests and `doctor`
        self._lock = threading.Lock()

    def call(self, client: Any, operation: str, **params: Any) -> dict[str, Any]:
        method = getattr(client, operation)
        delay = 0.05
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                with metrics.timed(metrics.CHIME_LATENCY, operation):
                    result: dict[str, Any] = method(**params)
                return result
            except ClientError as exc:
                code = error_code(exc)
                if code in THROTTLED and attempt < self.config.max_attempts:
                    with self._lock:
                        self.throttled += 1
                    metrics.CHIME_THROTTLES.inc()
                    time.sleep(random.uniform(0, delay))  # noqa: S311 (jitter, not secrets)
                    delay = min(delay * 2, 2.0)
                    continue
                if code in THROTTLED or code in UNAVAILABLE:
                    raise MessagingUnavailable(
                        "The messaging service is busy or unavailable; try again."
                    ) from exc
                raise
            except (BotoConnectionError, HTTPClientError) as exc:
                raise MessagingUnavailable(
                    "The messaging service cannot be reached; try again."
                ) from exc
        raise AssertionError("unreachable")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _metadata(data: dict[str, Any]) -> str:
    text = json.dumps(data, separators=(",", ":"))
    if len(text.encode()) > METADATA_MAX_BYTES:
        raise TooLong("This message carries too much metadata for the messaging service (1 KB).")
    return text


def message_metadata(message: Message) -> str:
    return _metadata(
        {
            "origin": ORIGIN,
            "id": message.id,
            "seq": message.seq,
            "client_id": str(message.client_id),
        }
    )


def message_content(message: Message) -> str:
    content = message.body or "[attachment]"
    if len(content.encode()) > CONTENT_MAX_BYTES:
        raise TooLong(
            "This message is longer than the messaging service accepts (4 KB of text); "
            "shorten it or split it."
        )
    return content


@dataclass(frozen=True)
class Flow:
    """A channel flow's answer about one message: PENDING, SENT, DENIED or FAILED, and why."""

    status: str
    detail: str


class ChimeBackend:
    """MESSAGING_BACKEND=chime."""

    name = "chime"

    def __init__(self, config: ChimeConfig | None = None) -> None:
        self.config = config or ChimeConfig.from_settings()
        self._api: ChimeApi | None = None

    @property
    def api(self) -> ChimeApi:
        if self._api is None:
            self._api = ChimeApi(self.config)
        return self._api

    def _messaging(self, operation: str, **params: Any) -> dict[str, Any]:
        return self.api.call(self.api.messaging, operation, **params)

    def _bridge(self) -> str:
        return self.config.bridge_user_arn

    # --- users ----------------------------------------------------------------------------

    def ensure_user(self, user: User) -> str:
        user_id = self.config.user_id(user.pk)
        name = user.display_name if "@" not in user.display_name else user_id
        try:
            self.api.call(
                self.api.identity,
                "create_app_instance_user",
                AppInstanceArn=self.config.app_instance_arn,
                AppInstanceUserId=user_id,
                Name=name[:100] or user_id,
                Metadata=_metadata({"origin": ORIGIN, "user": user.pk}),
                ClientRequestToken=user_id[:64],
            )
        except ClientError as exc:
            if error_code(exc) not in EXISTS:
                raise
        return self.config.user_arn(user.pk)

    # --- channels -------------------------------------------------------------------------

    def _channel_metadata(self, channel: Channel, **extra: Any) -> str:
        return _metadata(
            {"origin": ORIGIN, "channel": channel.pk, "community": channel.community_id, **extra}
        )

    def create_channel(self, channel: Channel) -> str:
        try:
            self._messaging(
                "create_channel",
                AppInstanceArn=self.config.app_instance_arn,
                ChannelId=f"{CHANNEL_ID_PREFIX}{channel.pk}",
                Name=channel.name,
                Mode="RESTRICTED",
                Privacy="PRIVATE",
                Metadata=self._channel_metadata(channel),
                ClientRequestToken=f"{CHANNEL_ID_PREFIX}{channel.pk}",
                ChimeBearer=self._bridge(),
            )
        except ClientError as exc:
            if error_code(exc) not in EXISTS:
                raise
        return self.config.channel_arn(channel.pk)

    def update_channel(self, channel: Channel) -> None:
        self._messaging(
            "update_channel",
            ChannelArn=self.config.channel_arn(channel.pk),
            Name=channel.name,
            Mode="RESTRICTED",
            Metadata=self._channel_metadata(channel),
            ChimeBearer=self._bridge(),
        )

    def archive_channel(self, channel: Channel) -> None:
        """Chime has no archive: the channel stays, its Metadata says archived."""
        self._messaging(
            "update_channel",
            ChannelArn=self.config.channel_arn(channel.pk),
            Name=channel.name,
            Mode="RESTRICTED",
            Metadata=self._channel_metadata(channel, archived=True),
            ChimeBearer=self._bridge(),
        )

    # --- members, moderators, bans ---------------------------------------------------------

    def add_member(self, channel: Channel, user: User) -> None:
        params = {
            "ChannelArn": self.config.channel_arn(channel.pk),
            "MemberArn": self.config.user_arn(user.pk),
            "Type": "DEFAULT",
            "ChimeBearer": self._bridge(),
        }
        try:
            self._messaging("create_channel_membership", **params)
        except ClientError as exc:
            if error_code(exc) != "NotFoundException":
                raise
            # A user from before Chime was configured: provision them, then add them.
            self.ensure_user(user)
            self._messaging("create_channel_membership", **params)
        if can_moderate(user, channel.community):
            self.add_moderator(channel, user)

    def remove_member(self, channel: Channel, user: User) -> None:
        self._delete(
            "delete_channel_membership",
            ChannelArn=self.config.channel_arn(channel.pk),
            MemberArn=self.config.user_arn(user.pk),
            ChimeBearer=self._bridge(),
        )

    def add_moderator(self, channel: Channel, user: User) -> None:
        try:
            self._messaging(
                "create_channel_moderator",
                ChannelArn=self.config.channel_arn(channel.pk),
                ChannelModeratorArn=self.config.user_arn(user.pk),
                ChimeBearer=self._bridge(),
            )
        except ClientError as exc:
            if error_code(exc) not in EXISTS:
                raise

    def remove_moderator(self, channel: Channel, user: User) -> None:
        self._delete(
            "delete_channel_moderator",
            ChannelArn=self.config.channel_arn(channel.pk),
            ChannelModeratorArn=self.config.user_arn(user.pk),
            ChimeBearer=self._bridge(),
        )

    def ban(self, channel: Channel, user: User) -> None:
        try:
            self._messaging(
                "create_channel_ban",
                ChannelArn=self.config.channel_arn(channel.pk),
                MemberArn=self.config.user_arn(user.pk),
                ChimeBearer=self._bridge(),
            )
        except ClientError as exc:
            if error_code(exc) not in EXISTS:
                raise

    def unban(self, channel: Channel, user: User) -> None:
        self._delete(
            "delete_channel_ban",
            ChannelArn=self.config.channel_arn(channel.pk),
            MemberArn=self.config.user_arn(user.pk),
            ChimeBearer=self._bridge(),
        )

    def channel_ban(self, channel_id: int, user_id: int) -> ChannelBan | None:
        """The Chime channel ban of the user in the channel, as the bridge user sees it (None:
        not banned there). Chime sends no event for a ban, only the removal it makes."""
        try:
            found = self._messaging(
                "describe_channel_ban",
                ChannelArn=self.config.channel_arn(channel_id),
                MemberArn=self.config.user_arn(user_id),
                ChimeBearer=self._bridge(),
            )["ChannelBan"]
        except ClientError as exc:
            if error_code(exc) != "NotFoundException":
                raise
            return None
        created = found.get("CreatedTimestamp")
        return ChannelBan(
            created=created if isinstance(created, datetime) else None,
            by_arn=str(found.get("CreatedBy", {}).get("Arn", "")),
            by_name=str(found.get("CreatedBy", {}).get("Name", "")),
        )

    def _delete(self, operation: str, **params: Any) -> None:
        """Deletes are idempotent: what is already gone is fine."""
        try:
            self._messaging(operation, **params)
        except ClientError as exc:
            if error_code(exc) != "NotFoundException":
                raise

    # --- messages -------------------------------------------------------------------------

    def send_message(self, message: Message) -> str:
        content = message_content(message)
        metadata = message_metadata(message)
        params = {
            "ChannelArn": self.config.channel_arn(message.channel_id),
            "Content": content,
            "Type": "STANDARD",
            "Persistence": "PERSISTENT",
            "Metadata": metadata,
            "ClientRequestToken": message.client_id.hex,
            "ChimeBearer": self.config.user_arn(message.author_id),
        }
        try:
            sent = self._messaging("send_channel_message", **params)
        except ClientError as exc:
            if error_code(exc) not in {"ForbiddenException", "NotFoundException"}:
                raise
            # The author or their membership is missing on the Chime side (created before
            # Chime was configured, or drift): repair both, then send once more.
            self.ensure_user(message.author)
            try:
                self.add_member(message.channel, message.author)
            except ClientError as again:
                if error_code(again) not in EXISTS:
                    raise
            sent = self._messaging("send_channel_message", **params)
        status = (sent.get("Status") or {}).get("Value", "SENT")
        if status in {"DENIED", "FAILED"}:
            detail = (sent.get("Status") or {}).get("Detail") or ""
            raise MessageDenied(
                "The messaging service refused this message" + (f": {detail}" if detail else ".")
            )
        if status == "PENDING":
            # A channel flow is processing it: only its author may know of it until it is SENT.
            raise MessagePending(
                "Sent for checking: this channel checks messages before others see them.",
                str(sent["MessageId"]),
            )
        return str(sent["MessageId"])

    def message_status(self, *, channel_id: int, author_id: int, external_id: str) -> Flow:
        """Where a channel flow is with a message (`GetChannelMessageStatus`, asked as its
        author: Chime answers only the sender). Not found means denied: Chime keeps no denied
        message."""
        try:
            found = self._messaging(
                "get_channel_message_status",
                ChannelArn=self.config.channel_arn(channel_id),
                MessageId=external_id,
                ChimeBearer=self.config.user_arn(author_id),
            )
        except ClientError as exc:
            if error_code(exc) != "NotFoundException":
                raise
            return Flow("DENIED", "")
        status = found.get("Status") or {}
        return Flow(str(status.get("Value") or "PENDING"), str(status.get("Detail") or ""))

    def edit_message(self, message: Message) -> None:
        if not message.external_id or message.is_deleted:
            return
        try:
            self._messaging(
                "update_channel_message",
                ChannelArn=self.config.channel_arn(message.channel_id),
                MessageId=message.external_id,
                Content=message_content(message),
                Metadata=message_metadata(message),
                ChimeBearer=self._bridge(),
            )
        except ClientError as exc:
            # A restored message stays redacted in Chime (redaction cannot be undone there).
            if error_code(exc) != "BadRequestException":
                raise
            logger.warning("Chime kept message %s redacted: %s", message.pk, exc)

    def redact_message(self, message: Message) -> None:
        if not message.external_id:
            return
        self._messaging(
            "redact_channel_message",
            ChannelArn=self.config.channel_arn(message.channel_id),
            MessageId=message.external_id,
            ChimeBearer=self._bridge(),
        )

    def delete_message(self, message: Message) -> None:
        if not message.external_id:
            return
        self._delete(
            "delete_channel_message",
            ChannelArn=self.config.channel_arn(message.channel_id),
            MessageId=message.external_id,
            ChimeBearer=self._bridge(),
        )

    def delete_message_id(self, channel_id: int, external_id: str) -> None:
        """Delete a Chime message we hold no row for (a channel flow's, given up on)."""
        self._delete(
            "delete_channel_message",
            ChannelArn=self.config.channel_arn(channel_id),
            MessageId=external_id,
            ChimeBearer=self._bridge(),
        )

    def mark_read(self, channel: Channel, user: User, message_id: int) -> None:
        self._messaging(
            "update_channel_read_marker",
            ChannelArn=self.config.channel_arn(channel.pk),
            ChimeBearer=self.config.user_arn(user.pk),
        )

    def history(
        self, channel: Channel, *, before: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        # Our database holds every message, ours and those the bridge stored from Chime.
        return messages_page(channel, before=before, limit=limit)


def session_url(api: ChimeApi, endpoint: str, session_id: str) -> str:
    """The bridge user's messaging session URL, SigV4-presigned (service `chime`) the way the
    Chime SDK clients do: `wss://<endpoint>/connect?userArn=…&sessionId=…&X-Amz-…`."""
    credentials = api.messaging._request_signer._credentials.get_frozen_credentials()
    request = AWSRequest(
        method="GET",
        url=f"https://{endpoint}/connect",
        params={"userArn": api.config.bridge_user_arn, "sessionId": session_id},
    )
    SigV4QueryAuth(credentials, "chime", api.config.region, expires=10).add_auth(request)
    url = str(request.prepare().url)
    return api.config.session_scheme + url[len("https") :]
