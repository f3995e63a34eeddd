"""A fake Amazon Chime SDK (identity + messaging) on loopback, for the test suite and bench/.

No Chime emulator exists, so this is one: two threaded HTTP servers (identity, messaging) and a
WebSocket server for the messaging session. Our code is not patched: the real boto3 clients
point here through `CHIME_IDENTITY_ENDPOINT_URL` / `CHIME_MESSAGING_ENDPOINT_URL`, and the
bridge opens the session socket at the URL `GetMessagingSessionEndpoint` returns.

Operations (REST, rest-json):
  identity: CreateAppInstance, ListAppInstances, DescribeAppInstance, CreateAppInstanceUser,
    DescribeAppInstanceUser, ListAppInstanceUsers, DeleteAppInstanceUser, CreateAppInstanceAdmin,
    ListAppInstanceAdmins, PutAppInstanceRetentionSettings, GetAppInstanceRetentionSettings.
  messaging: CreateChannel, DescribeChannel, UpdateChannel, DeleteChannel, ListChannels,
    CreateChannelMembership, DeleteChannelMembership, ListChannelMemberships,
    CreateChannelModerator, DeleteChannelModerator, ListChannelModerators, CreateChannelBan
    (which removes a current member, sending DELETE_CHANNEL_MEMBERSHIP as Chime does: there is
    no ban event), DescribeChannelBan, DeleteChannelBan, ListChannelBans, SendChannelMessage,
    UpdateChannelMessage, RedactChannelMessage, DeleteChannelMessage, ListChannelMessages,
    UpdateChannelReadMarker, GetChannelMessageStatus, GetMessagingSessionEndpoint.
Session events (`{"Headers": {"x-amz-chime-event-type": …}, "Payload": "<json>"}`):
  SESSION_ESTABLISHED, CREATE/UPDATE/REDACT/DELETE_CHANNEL_MESSAGE,
  CREATE/DELETE_CHANNEL_MEMBERSHIP, UPDATE_CHANNEL, DELETE_CHANNEL, and for a channel flow
  (Chime's "Sending messages" guide) PENDING/DENIED/FAILED_CREATE_CHANNEL_MESSAGE, which go to
  the sender's own sessions only; a flow's SENT outcome is a CREATE_CHANNEL_MESSAGE to all.

How it was checked against botocore's model: requests are routed, and their parameters read
(uri labels, querystring, `x-amz-chime-bearer` header, JSON body), from each operation's
`http.requestUri`/`method` and input shape members' `location` in botocore's own
`chime-sdk-identity` and `chime-sdk-messaging` service models; required input members are
enforced. Every answer is validated with `botocore.validate.ParamValidator` against the
operation's output shape before it is sent (an invalid answer is a 500 and is recorded in
`FakeChime.errors`, which the tests' fixture asserts empty), and the success status is the
model's `responseCode`. The real botocore clients then parse it. Every request must carry a
SigV4 `Authorization` header whose signature this server recomputes with botocore's
`SigV4Auth` (service `chime`, the fake's key); the session socket needs a URL presigned with
`SigV4QueryAuth`, checked the same way. Errors are the model's exception shapes with their
status codes (`ThrottledClientException` is a 429, `ServiceUnavailableException` a 503).

Knobs for tests: `throttle(n)` (the next n requests get 429), `unavailable` (every request
503), `delay` (seconds added to each request), `deny_words` (a message containing one is
answered with Status DENIED, as a channel flow would), `pending_channels` (a send to one of
these channel ARNs is answered Status PENDING, kept out of the channel until
`resolve(message_id, "SENT" | "DENIED" | "FAILED")` gives the flow's outcome),
`post_as(...)` (another Chime client sends a message), `drop_sessions(code)` (close every
session socket).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import botocore.session
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.validate import ParamValidator
from websockets.sync.server import ServerConnection, serve

ACCOUNT = "123456789012"
ACCESS_KEY = "FAKECHIMEACCESSKEY"
SECRET_KEY = "fake-chime-secret-key"
REGION = "us-east-1"
PAGE_MAX = 50


class ChimeError(Exception):
    def __init__(self, code: str, status: int, message: str = "") -> None:
        super().__init__(message or code)
        self.code, self.status, self.message = code, status, message or code


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Route:
    operation: Any  # botocore OperationModel
    pattern: re.Pattern[str]
    query: dict[str, str]


def _routes(service: str) -> list[Route]:
    model = botocore.session.get_session().get_service_model(service)
    routes = []
    for name in model.operation_names:
        op = model.operation_model(name)
        path, _, query = op.http["requestUri"].partition("?")
        regex = re.sub(r"\\\{(\w+)\+?\\\}", r"(?P<\1>[^/]+)", re.escape(path))
        routes.append(Route(op, re.compile(regex + "$"), dict(parse_qsl(query))))
    # The most specific first: a literal query (`?operation=redact`) before the bare path.
    routes.sort(key=lambda r: -len(r.query))
    return routes


def _convert(shape: Any, value: str) -> Any:
    if shape.type_name == "integer":
        return int(value)
    if shape.type_name == "timestamp":
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except ValueError:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError) as exc:
        raise ChimeError("BadRequestException", 400, "Invalid NextToken") from exc


def _page(items: list[Any], params: dict[str, Any], key: str) -> dict[str, Any]:
    start = _offset(params.get("NextToken"))
    size = min(int(params.get("MaxResults") or PAGE_MAX), PAGE_MAX)
    out: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        out["NextToken"] = _token(start + size)
    return out


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


@dataclass
class FakeChannel:
    arn: str
    name: str
    mode: str
    privacy: str
    metadata: str
    created_by: str
    created: datetime = field(default_factory=_now)
    updated: datetime = field(default_factory=_now)
    last_message: datetime | None = None
    members: dict[str, str] = field(default_factory=dict)  # arn -> Type
    moderators: set[str] = field(default_factory=set)
    bans: dict[str, tuple[datetime, str]] = field(default_factory=dict)  # arn -> (when, by)
    messages: list[dict[str, Any]] = field(default_factory=list)
    read_markers: dict[str, datetime] = field(default_factory=dict)


class FakeChime:
    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.unavailable = False
        self.deny_words: set[str] = set()
        self.pending_channels: set[str] = set()
        # A channel flow's messages not yet SENT: MessageId -> (channel, message, persistence).
        self.flowing: dict[str, tuple[FakeChannel, dict[str, Any], str]] = {}
        self.errors: list[str] = []
        self.calls: list[tuple[str, str]] = []  # (operation, bearer)
        self.lock = threading.RLock()
        self.instances: dict[str, dict[str, Any]] = {}
        self.admins: dict[str, set[str]] = {}
        self.retention: dict[str, int] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, FakeChannel] = {}
        self.tokens: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.sessions: dict[ServerConnection, str] = {}
        self._throttle = 0
        self._ids = iter(range(1, 10**9))
        self.validator = ParamValidator()
        self.identity = self._http(_routes("chime-sdk-identity"))
        self.messaging = self._http(_routes("chime-sdk-messaging"))
        self.ws = serve(self._session, "127.0.0.1", 0)
        self.threads = [
            threading.Thread(target=s.serve_forever, daemon=True)
            for s in (self.identity, self.messaging, self.ws)
        ]
        for thread in self.threads:
            thread.start()

    # --- lifecycle and knobs ----------------------------------------------------------------

    @property
    def identity_url(self) -> str:
        return f"http://127.0.0.1:{self.identity.server_address[1]}"

    @property
    def messaging_url(self) -> str:
        return f"http://127.0.0.1:{self.messaging.server_address[1]}"

    @property
    def session_host(self) -> str:
        return f"127.0.0.1:{self.ws.socket.getsockname()[1]}"

    def stop(self) -> None:
        self.drop_sessions(1001)
        for server in (self.identity, self.messaging):
            server.shutdown()
            server.server_close()
        self.ws.shutdown()

    def throttle(self, count: int) -> None:
        with self.lock:
            self._throttle = count

    def drop_sessions(self, code: int = 1011) -> None:
        with self.lock:
            sessions = list(self.sessions)
        for conn in sessions:
            conn.close(code, "dropped by the fake")

    def instance_arn(self, app_instance_id: str) -> str:
        return f"arn:aws:chime:{REGION}:{ACCOUNT}:app-instance/{app_instance_id}"

    def post_as(self, sender_arn: str, channel_arn: str, content: str, metadata: str = "") -> str:
        """Another Chime client (not our app) sends a message; returns its MessageId."""
        with self.lock:
            result = self._send_message(
                {
                    "ChannelArn": channel_arn,
                    "Content": content,
                    "Type": "STANDARD",
                    "Persistence": "PERSISTENT",
                    "Metadata": metadata,
                    "ClientRequestToken": uuid.uuid4().hex,
                    "ChimeBearer": sender_arn,
                }
            )
        return str(result["MessageId"])

    # --- HTTP -------------------------------------------------------------------------------

    def _http(self, routes: list[Route]) -> ThreadingHTTPServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: without this, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every answer.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = fake._dispatch(
                    routes, self.command, self.path, dict(self.headers.items()), body
                )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server

    def _dispatch(
        self, routes: list[Route], method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(raw)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            self._check_signature(method, raw, headers, body)
            for route in routes:
                match = route.pattern.match(split.path)
                if (
                    match
                    and route.operation.http["method"] == method
                    and all(query.get(k) == v for k, v in route.query.items())
                ):
                    break
            else:
                raise ChimeError("NotFoundException", 404, f"No route for {method} {split.path}")
            op = route.operation
            params = self._params(op, match.groupdict(), query, headers, body)
            if self.delay:
                time.sleep(self.delay)
            with self.lock:
                self.calls.append((op.name, params.get("ChimeBearer", "")))
                if self.unavailable:
                    raise ChimeError("ServiceUnavailableException", 503, "Unavailable")
                if self._throttle > 0:
                    self._throttle -= 1
                    raise ChimeError("ThrottledClientException", 429, "Rate exceeded")
                result = getattr(self, f"op_{op.name}")(params)
            return self._answer(op, result)
        except ChimeError as exc:
            payload = json.dumps({"Code": exc.code, "Message": exc.message}).encode()
            return (
                exc.status,
                {"Content-Type": "application/json", "x-amzn-ErrorType": exc.code},
                payload,
            )

    def _check_signature(self, method: str, raw: str, headers: dict[str, str], body: bytes) -> None:
        lower = {k.lower(): v for k, v in headers.items()}
        match = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
            r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})",
            lower.get("authorization", ""),
        )
        if match is None:
            raise ChimeError("UnauthorizedClientException", 401, "Missing SigV4 Authorization")
        key, _, region, service, signed, signature = match.groups()
        if key != ACCESS_KEY or service != "chime" or region != REGION:
            raise ChimeError("ForbiddenException", 403, "Wrong credential scope")
        request = AWSRequest(
            method=method,
            url=f"http://{lower['host']}{raw}",
            data=body,
            headers={name: lower[name] for name in signed.split(";")},
        )
        request.context["timestamp"] = lower["x-amz-date"]
        signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), service, region)
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if expected != signature:
            raise ChimeError("ForbiddenException", 403, "SignatureDoesNotMatch")

    def _params(
        self,
        op: Any,
        labels: dict[str, str],
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> dict[str, Any]:
        shape = op.input_shape
        if shape is None:
            return {}
        data = json.loads(body) if body else {}
        lower = {k.lower(): v for k, v in headers.items()}
        params: dict[str, Any] = {}
        for name, member in shape.members.items():
            where = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if where == "uri":
                params[name] = unquote(labels[wire])
            elif where == "querystring" and wire in query:
                params[name] = _convert(member, query[wire])
            elif where == "header" and wire.lower() in lower:
                params[name] = lower[wire.lower()]
            elif where is None and name in data:
                params[name] = data[name]
        missing = [m for m in shape.required_members if m not in params]
        if missing:
            raise ChimeError("BadRequestException", 400, f"Missing {', '.join(missing)}")
        bearer = params.get("ChimeBearer")
        if bearer is not None and bearer not in self.users:
            raise ChimeError("ForbiddenException", 403, "Unknown x-amz-chime-bearer")
        return params

    def _answer(self, op: Any, result: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        status = int(op.http.get("responseCode") or 200)
        shape = op.output_shape
        if shape is None:
            return status, {}, b""
        report = self.validator.validate(result, shape)
        if report.has_errors():
            self.errors.append(f"{op.name}: {report.generate_report()}")
            raise ChimeError("ServiceFailureException", 500, "invalid fake answer")
        headers = {"Content-Type": "application/json"}
        out = {}
        for name, value in result.items():
            member = shape.members[name]
            if member.serialization.get("location") == "header":
                headers[member.serialization.get("name", name)] = str(value)
            else:
                out[name] = value
        payload = json.dumps(out, default=lambda v: v.timestamp()).encode()
        return status, headers, payload

    # --- helpers ----------------------------------------------------------------------------

    def _instance(self, arn: str) -> dict[str, Any]:
        if arn not in self.instances:
            raise ChimeError("NotFoundException", 404, "No such AppInstance")
        return self.instances[arn]

    def _channel(self, arn: str) -> FakeChannel:
        if arn not in self.channels:
            raise ChimeError("NotFoundException", 404, "No such channel")
        return self.channels[arn]

    def _is_admin(self, user_arn: str, channel_arn: str) -> bool:
        instance = channel_arn.split("/channel/")[0]
        return user_arn in self.admins.get(instance, set())

    def _moderates(self, user_arn: str, channel: FakeChannel) -> None:
        if user_arn not in channel.moderators and not self._is_admin(user_arn, channel.arn):
            raise ChimeError("ForbiddenException", 403, "Not a moderator of the channel")

    def _identity(self, arn: str) -> dict[str, str]:
        return {"Arn": arn, "Name": str(self.users.get(arn, {}).get("Name", arn))}

    def _emit(
        self, channel: FakeChannel, event: str, payload: dict[str, Any], only: str = ""
    ) -> None:
        frame = json.dumps(
            {
                "Headers": {
                    "x-amz-chime-event-type": event,
                    "x-amz-chime-message-type": "STANDARD" if "MESSAGE" in event else "SYSTEM",
                },
                "Payload": json.dumps(payload, default=_iso),
            }
        )
        for conn, user_arn in list(self.sessions.items()):
            if only and user_arn != only:
                continue
            if (
                user_arn in channel.members
                or user_arn in channel.moderators
                or self._is_admin(user_arn, channel.arn)
            ):
                with contextlib.suppress(Exception):  # a closing session misses it
                    conn.send(frame)

    def _message_view(self, channel: FakeChannel, msg: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in msg.items() if not k.startswith("_")}
        view["Sender"] = self._identity(msg["_sender"])
        return view

    # --- identity operations ----------------------------------------------------------------

    def op_CreateAppInstance(self, p: dict[str, Any]) -> dict[str, Any]:
        for arn, item in self.instances.items():
            if item["_token"] == p["ClientRequestToken"]:
                return {"AppInstanceArn": arn}
        arn = self.instance_arn(uuid.uuid4().hex)
        now = _now()
        self.instances[arn] = {
            "AppInstanceArn": arn,
            "Name": p["Name"],
            "Metadata": p.get("Metadata", ""),
            "CreatedTimestamp": now,
            "LastUpdatedTimestamp": now,
            "_token": p["ClientRequestToken"],
        }
        return {"AppInstanceArn": arn}

    def op_ListAppInstances(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [
            {k: v[k] for k in ("AppInstanceArn", "Name", "Metadata")}
            for v in self.instances.values()
        ]
        return _page(items, p, "AppInstances")

    def op_DescribeAppInstance(self, p: dict[str, Any]) -> dict[str, Any]:
        item = self._instance(p["AppInstanceArn"])
        return {"AppInstance": {k: v for k, v in item.items() if not k.startswith("_")}}

    def op_CreateAppInstanceUser(self, p: dict[str, Any]) -> dict[str, Any]:
        self._instance(p["AppInstanceArn"])
        arn = f"{p['AppInstanceArn']}/user/{p['AppInstanceUserId']}"
        if arn in self.users:
            raise ChimeError("ConflictException", 409, "The user already exists")
        now = _now()
        self.users[arn] = {
            "AppInstanceUserArn": arn,
            "Name": p["Name"],
            "Metadata": p.get("Metadata", ""),
            "CreatedTimestamp": now,
            "LastUpdatedTimestamp": now,
        }
        return {"AppInstanceUserArn": arn}

    def op_DescribeAppInstanceUser(self, p: dict[str, Any]) -> dict[str, Any]:
        if p["AppInstanceUserArn"] not in self.users:
            raise ChimeError("NotFoundException", 404, "No such user")
        return {"AppInstanceUser": dict(self.users[p["AppInstanceUserArn"]])}

    def op_ListAppInstanceUsers(self, p: dict[str, Any]) -> dict[str, Any]:
        prefix = p["AppInstanceArn"] + "/user/"
        items = [
            {k: u[k] for k in ("AppInstanceUserArn", "Name", "Metadata")}
            for arn, u in sorted(self.users.items())
            if arn.startswith(prefix)
        ]
        return {"AppInstanceArn": p["AppInstanceArn"], **_page(items, p, "AppInstanceUsers")}

    def op_DeleteAppInstanceUser(self, p: dict[str, Any]) -> dict[str, Any]:
        if self.users.pop(p["AppInstanceUserArn"], None) is None:
            raise ChimeError("NotFoundException", 404, "No such user")
        return {}

    def op_CreateAppInstanceAdmin(self, p: dict[str, Any]) -> dict[str, Any]:
        self._instance(p["AppInstanceArn"])
        if p["AppInstanceAdminArn"] not in self.users:
            raise ChimeError("NotFoundException", 404, "No such user")
        self.admins.setdefault(p["AppInstanceArn"], set()).add(p["AppInstanceAdminArn"])
        return {
            "AppInstanceAdmin": self._identity(p["AppInstanceAdminArn"]),
            "AppInstanceArn": p["AppInstanceArn"],
        }

    def op_ListAppInstanceAdmins(self, p: dict[str, Any]) -> dict[str, Any]:
        admins = sorted(self.admins.get(p["AppInstanceArn"], set()))
        items = [{"Admin": self._identity(arn)} for arn in admins]
        return {"AppInstanceArn": p["AppInstanceArn"], **_page(items, p, "AppInstanceAdmins")}

    def op_PutAppInstanceRetentionSettings(self, p: dict[str, Any]) -> dict[str, Any]:
        self._instance(p["AppInstanceArn"])
        settings = p["AppInstanceRetentionSettings"]
        self.retention[p["AppInstanceArn"]] = settings["ChannelRetentionSettings"]["RetentionDays"]
        return {"AppInstanceRetentionSettings": settings, "InitiateDeletionTimestamp": _now()}

    def op_GetAppInstanceRetentionSettings(self, p: dict[str, Any]) -> dict[str, Any]:
        days = self.retention.get(p["AppInstanceArn"])
        if days is None:
            return {}
        return {
            "AppInstanceRetentionSettings": {"ChannelRetentionSettings": {"RetentionDays": days}},
            "InitiateDeletionTimestamp": _now(),
        }

    # --- channels ---------------------------------------------------------------------------

    def op_CreateChannel(self, p: dict[str, Any]) -> dict[str, Any]:
        self._instance(p["AppInstanceArn"])
        channel_id = p.get("ChannelId") or uuid.uuid4().hex
        arn = f"{p['AppInstanceArn']}/channel/{channel_id}"
        if arn in self.channels:
            raise ChimeError("ConflictException", 409, "The channel already exists")
        channel = FakeChannel(
            arn=arn,
            name=p["Name"],
            mode=p.get("Mode", "RESTRICTED"),
            privacy=p.get("Privacy", "PRIVATE"),
            metadata=p.get("Metadata", ""),
            created_by=p["ChimeBearer"],
        )
        channel.members[p["ChimeBearer"]] = "DEFAULT"
        channel.moderators.add(p["ChimeBearer"])
        self.channels[arn] = channel
        return {"ChannelArn": arn}

    def _channel_view(self, channel: FakeChannel) -> dict[str, Any]:
        view = {
            "Name": channel.name,
            "ChannelArn": channel.arn,
            "Mode": channel.mode,
            "Privacy": channel.privacy,
            "Metadata": channel.metadata,
        }
        if channel.last_message is not None:
            view["LastMessageTimestamp"] = channel.last_message
        return view

    def op_DescribeChannel(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        view = {
            **self._channel_view(channel),
            "CreatedBy": self._identity(channel.created_by),
            "CreatedTimestamp": channel.created,
            "LastUpdatedTimestamp": channel.updated,
        }
        return {"Channel": view}

    def op_UpdateChannel(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        self._moderates(p["ChimeBearer"], channel)
        channel.name = p.get("Name", channel.name)
        channel.mode = p.get("Mode", channel.mode)
        channel.metadata = p.get("Metadata", channel.metadata)
        channel.updated = _now()
        self._emit(channel, "UPDATE_CHANNEL", self._channel_view(channel))
        return {"ChannelArn": channel.arn}

    def op_DeleteChannel(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        self._moderates(p["ChimeBearer"], channel)
        self._emit(channel, "DELETE_CHANNEL", self._channel_view(channel))
        del self.channels[channel.arn]
        return {}

    def op_ListChannels(self, p: dict[str, Any]) -> dict[str, Any]:
        prefix = p["AppInstanceArn"] + "/channel/"
        items = [
            self._channel_view(c)
            for arn, c in sorted(self.channels.items())
            if arn.startswith(prefix) and c.privacy == p.get("Privacy", "PUBLIC")
        ]
        return _page(items, p, "Channels")

    # --- memberships, moderators, bans ------------------------------------------------------

    def _membership_event(self, channel: FakeChannel, event: str, member: str) -> None:
        payload = {"ChannelArn": channel.arn, "Member": self._identity(member), "Type": "DEFAULT"}
        self._emit(channel, event, payload)

    def op_CreateChannelMembership(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        self._moderates(p["ChimeBearer"], channel)
        member = p["MemberArn"]
        if member not in self.users:
            raise ChimeError("NotFoundException", 404, "No such member")
        if member in channel.bans:
            raise ChimeError("ForbiddenException", 403, "The member is banned")
        if member not in channel.members:
            channel.members[member] = p["Type"]
            self._membership_event(channel, "CREATE_CHANNEL_MEMBERSHIP", member)
        return {"ChannelArn": channel.arn, "Member": self._identity(member)}

    def op_DeleteChannelMembership(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        self._moderates(p["ChimeBearer"], channel)
        if channel.members.pop(p["MemberArn"], None) is None:
            raise ChimeError("NotFoundException", 404, "Not a member")
        self._membership_event(channel, "DELETE_CHANNEL_MEMBERSHIP", p["MemberArn"])
        return {}

    def op_ListChannelMemberships(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        items = [{"Member": self._identity(arn)} for arn in sorted(channel.members)]
        return {"ChannelArn": channel.arn, **_page(items, p, "ChannelMemberships")}

    def op_CreateChannelModerator(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        self._moderates(p["ChimeBearer"], channel)
        if p["ChannelModeratorArn"] not in self.users:
            raise ChimeError("NotFoundException", 404, "No such user")
        if p["ChannelModeratorArn"] in channel.moderators:
            raise ChimeError("ConflictException", 409, "Already a moderator")
        channel.moderators.add(p["ChannelModeratorArn"])
        return {
            "ChannelArn": channel.arn,
            "ChannelModerator": self._identity(p["ChannelModeratorArn"]),
        }

    def op_DeleteChannelModerator(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        self._moderates(p["ChimeBearer"], channel)
        if p["ChannelModeratorArn"] not in channel.moderators:
            raise ChimeError("NotFoundException", 404, "Not a moderator")
        channel.moderators.discard(p["ChannelModeratorArn"])
        return {}

    def op_ListChannelModerators(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        items = [{"Moderator": self._identity(arn)} for arn in sorted(channel.moderators)]
        return {"ChannelArn": channel.arn, **_page(items, p, "ChannelModerators")}

    def op_CreateChannelBan(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        self._moderates(p["ChimeBearer"], channel)
        member = p["MemberArn"]
        if member in channel.bans:
            raise ChimeError("ConflictException", 409, "Already banned")
        channel.bans[member] = (_now(), p["ChimeBearer"])
        # A ban removes a current member, and that removal is the only event Chime sends
        # (its "Understanding system messages" guide has no ban event).
        if channel.members.pop(member, None) is not None:
            self._membership_event(channel, "DELETE_CHANNEL_MEMBERSHIP", member)
        return {"ChannelArn": channel.arn, "Member": self._identity(member)}

    def op_DescribeChannelBan(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        self._moderates(p["ChimeBearer"], channel)
        found = channel.bans.get(p["MemberArn"])
        if found is None:
            raise ChimeError("NotFoundException", 404, "Not banned")
        created, by = found
        return {
            "ChannelBan": {
                "Member": self._identity(p["MemberArn"]),
                "ChannelArn": channel.arn,
                "CreatedTimestamp": created,
                "CreatedBy": self._identity(by),
            }
        }

    def op_DeleteChannelBan(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        self._moderates(p["ChimeBearer"], channel)
        if channel.bans.pop(p["MemberArn"], None) is None:
            raise ChimeError("NotFoundException", 404, "Not banned")
        return {}

    def op_ListChannelBans(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        items = [{"Member": self._identity(arn)} for arn in sorted(channel.bans)]
        return {"ChannelArn": channel.arn, **_page(items, p, "ChannelBans")}

    # --- messages ---------------------------------------------------------------------------

    def _find(self, channel: FakeChannel, message_id: str) -> dict[str, Any]:
        for msg in channel.messages:
            if msg["MessageId"] == message_id and not msg.get("_deleted"):
                return msg
        raise ChimeError("NotFoundException", 404, "No such message")

    def _send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        sender = p["ChimeBearer"]
        key = (channel.arn, sender, p["ClientRequestToken"])
        if key in self.tokens:
            return self.tokens[key]
        if sender in channel.bans or sender not in channel.members:
            raise ChimeError("ForbiddenException", 403, "The sender is not a member")
        if len(p["Content"].encode()) > 4096:
            raise ChimeError("BadRequestException", 400, "Content is over 4 KB")
        if len(p.get("Metadata", "").encode()) > 1024:
            raise ChimeError("BadRequestException", 400, "Metadata is over 1 KB")
        message_id = f"{next(self._ids):08d}-{uuid.uuid4().hex[:12]}"
        denied = any(word in p["Content"].lower() for word in self.deny_words)
        pending = not denied and channel.arn in self.pending_channels
        status = {"Value": "DENIED", "Detail": "Refused by the channel flow"} if denied else None
        if pending:
            status = {"Value": "PENDING"}
        result: dict[str, Any] = {
            "ChannelArn": channel.arn,
            "MessageId": message_id,
            "Status": status or {"Value": "SENT"},
        }
        self.tokens[key] = result
        if denied:
            return result
        now = _now()
        msg = {
            "MessageId": message_id,
            "Content": p["Content"],
            "Metadata": p.get("Metadata", ""),
            "Type": p["Type"],
            "CreatedTimestamp": now,
            "LastUpdatedTimestamp": now,
            "Redacted": False,
            "Status": {"Value": "SENT"},
            "_sender": sender,
        }
        if pending:
            msg["Status"] = {"Value": "PENDING"}
            self.flowing[message_id] = (channel, msg, p["Persistence"])
            event = {"ChannelArn": channel.arn, **self._message_view(channel, msg)}
            self._emit(channel, "PENDING_CREATE_CHANNEL_MESSAGE", event, only=sender)
            return result
        self._publish(channel, msg, p["Persistence"])
        return result

    def _publish(self, channel: FakeChannel, msg: dict[str, Any], persistence: str) -> None:
        channel.messages.append(msg)
        channel.last_message = msg["CreatedTimestamp"]
        event = {
            "ChannelArn": channel.arn,
            **self._message_view(channel, msg),
            "Persistence": persistence,
        }
        self._emit(channel, "CREATE_CHANNEL_MESSAGE", event)

    def resolve(self, message_id: str, outcome: str, detail: str = "") -> None:
        """The channel flow's processor decides a PENDING message: SENT publishes it to the
        channel; DENIED drops it (Chime keeps no denied message); FAILED keeps its status for
        GetChannelMessageStatus. DENIED and FAILED are told to the sender's sessions only."""
        if outcome not in ("SENT", "DENIED", "FAILED"):
            raise ValueError(f"not a channel flow outcome: {outcome}")
        with self.lock:
            channel, msg, persistence = self.flowing[message_id]
            msg["Status"] = {"Value": outcome, **({"Detail": detail} if detail else {})}
            if outcome == "SENT":
                del self.flowing[message_id]
                self._publish(channel, msg, persistence)
                return
            if outcome == "DENIED":
                del self.flowing[message_id]
            event = {"ChannelArn": channel.arn, **self._message_view(channel, msg)}
            self._emit(channel, f"{outcome}_CREATE_CHANNEL_MESSAGE", event, only=msg["_sender"])

    def op_GetChannelMessageStatus(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        flowing = self.flowing.get(p["MessageId"])
        # Not found: never sent, or denied (Chime keeps no denied message).
        msg = flowing[1] if flowing is not None else self._find(channel, p["MessageId"])
        if p["ChimeBearer"] != msg["_sender"]:
            raise ChimeError("ForbiddenException", 403, "Only the sender sees its status")
        return {"Status": msg["Status"]}

    def op_SendChannelMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._send_message(p)

    def op_UpdateChannelMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        msg = self._find(channel, p["MessageId"])
        if p["ChimeBearer"] != msg["_sender"]:
            self._moderates(p["ChimeBearer"], channel)
        if msg["Redacted"]:
            raise ChimeError("BadRequestException", 400, "The message is redacted")
        msg["Content"] = p["Content"]
        msg["Metadata"] = p.get("Metadata", msg["Metadata"])
        msg["LastUpdatedTimestamp"] = msg["LastEditedTimestamp"] = _now()
        self._emit(
            channel,
            "UPDATE_CHANNEL_MESSAGE",
            {"ChannelArn": channel.arn, **self._message_view(channel, msg)},
        )
        return {
            "ChannelArn": channel.arn,
            "MessageId": msg["MessageId"],
            "Status": {"Value": "SENT"},
        }

    def op_RedactChannelMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        msg = self._find(channel, p["MessageId"])
        if p["ChimeBearer"] != msg["_sender"]:
            self._moderates(p["ChimeBearer"], channel)
        msg["Content"], msg["Metadata"], msg["Redacted"] = "", "", True
        msg["LastUpdatedTimestamp"] = _now()
        self._emit(
            channel,
            "REDACT_CHANNEL_MESSAGE",
            {"ChannelArn": channel.arn, **self._message_view(channel, msg)},
        )
        return {"ChannelArn": channel.arn, "MessageId": msg["MessageId"]}

    def op_DeleteChannelMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        self._moderates(p["ChimeBearer"], channel)
        msg = self._find(channel, p["MessageId"])
        msg["_deleted"] = True
        self._emit(
            channel,
            "DELETE_CHANNEL_MESSAGE",
            {
                "ChannelArn": channel.arn,
                "MessageId": msg["MessageId"],
                "Sender": self._identity(msg["_sender"]),
            },
        )
        return {}

    def op_ListChannelMessages(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        bearer = p["ChimeBearer"]
        if bearer not in channel.members and not self._is_admin(bearer, channel.arn):
            raise ChimeError("ForbiddenException", 403, "Not a member")
        items = [
            m
            for m in channel.messages
            if not m.get("_deleted")
            and ("NotBefore" not in p or m["CreatedTimestamp"] >= p["NotBefore"])
            and ("NotAfter" not in p or m["CreatedTimestamp"] <= p["NotAfter"])
        ]
        if p.get("SortOrder", "DESCENDING") == "DESCENDING":
            items = items[::-1]
        views = [self._message_view(channel, m) for m in items]
        return {"ChannelArn": channel.arn, **_page(views, p, "ChannelMessages")}

    def op_UpdateChannelReadMarker(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p["ChannelArn"])
        if p["ChimeBearer"] not in channel.members:
            raise ChimeError("ForbiddenException", 403, "Not a member")
        channel.read_markers[p["ChimeBearer"]] = _now()
        return {"ChannelArn": channel.arn}

    def op_GetMessagingSessionEndpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"Endpoint": {"Url": self.session_host}}

    # --- the messaging session socket -------------------------------------------------------

    def _session(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        raw = conn.request.path
        host = conn.request.headers.get("Host", self.session_host)
        pairs = parse_qsl(urlsplit(raw).query, keep_blank_values=True)
        params = dict(pairs)
        signature = params.get("X-Amz-Signature", "")
        unsigned = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
        request = AWSRequest(
            method="GET",
            url=f"https://{host}{urlsplit(raw).path}",
            params=unsigned,
            headers={"host": host},
        )
        request.context["timestamp"] = params.get("X-Amz-Date", "")
        signer = SigV4QueryAuth(
            Credentials(ACCESS_KEY, SECRET_KEY),
            "chime",
            REGION,
            expires=int(params.get("X-Amz-Expires", "0")),
        )
        prepared = request.prepare()
        request.url = prepared.url
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        signed_at = datetime.strptime(
            params.get("X-Amz-Date", "19700101T000000Z") + "+0000", "%Y%m%dT%H%M%SZ%z"
        )
        expired = (_now() - signed_at).total_seconds() > int(params.get("X-Amz-Expires", "0"))
        user = params.get("userArn", "")
        if expected != signature or expired or user not in self.users:
            conn.close(4401, "Unauthorized")
            return
        with self.lock:
            self.sessions[conn] = user
        conn.send(
            json.dumps(
                {
                    "Headers": {
                        "x-amz-chime-event-type": "SESSION_ESTABLISHED",
                        "x-amz-chime-message-type": "SYSTEM",
                    },
                    "Payload": "",
                }
            )
        )
        try:
            for _ in conn:
                pass
        except Exception:  # noqa: S110 (the peer went away)
            pass
        finally:
            with self.lock:
                self.sessions.pop(conn, None)
