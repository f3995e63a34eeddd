"""The fake Chime's channel flow, as Chime's "Sending messages" guide describes it: a send to a
flowing channel is answered PENDING and told to the sender's sessions only; the processor's
SENT outcome reaches every member as CREATE_CHANNEL_MESSAGE, while DENIED and FAILED reach the
sender only. Real boto3 clients and real session sockets; GetChannelMessageStatus answers the
sender (DENIED messages are not kept, so they are not found)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from websockets.sync.client import ClientConnection, connect

from chat.backends import get_backend
from chat.backends.chime import ChimeConfig
from chat.tests import fake_chime as fake_module

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def open_session(fake, user_arn: str) -> Iterator[ClientConnection]:
    """A Chime client's own messaging session (not the bridge's), presigned as the SDKs do."""
    request = AWSRequest(
        method="GET",
        url=f"https://{fake.session_host}/connect",
        params={"userArn": user_arn, "sessionId": uuid.uuid4().hex},
    )
    credentials = Credentials(fake_module.ACCESS_KEY, fake_module.SECRET_KEY)
    SigV4QueryAuth(credentials, "chime", fake_module.REGION, expires=10).add_auth(request)
    with connect("ws" + str(request.prepare().url)[len("https") :], open_timeout=5) as ws:
        assert next_event(ws)[0] == "SESSION_ESTABLISHED"
        yield ws


def next_event(ws: ClientConnection, timeout: float = 5.0) -> tuple[str, dict]:
    frame = json.loads(ws.recv(timeout=timeout))
    return frame["Headers"]["x-amz-chime-event-type"], json.loads(frame["Payload"] or "{}")


def quiet(ws: ClientConnection) -> bool:
    try:
        ws.recv(timeout=0.5)
    except TimeoutError:
        return True
    return False


def test_channel_flow_outcomes_reach_the_right_sessions(chime, alice, bob, general):
    cfg = ChimeConfig.from_settings()
    alice_arn, bob_arn = cfg.user_arn(alice.pk), cfg.user_arn(bob.pk)
    channel_arn = cfg.channel_arn(general.pk)
    chime.pending_channels = {channel_arn}
    api = get_backend().api.messaging
    with open_session(chime, alice_arn) as a, open_session(chime, bob_arn) as b:
        check_outcomes(api, channel_arn, alice_arn, bob_arn, chime, a, b)


def check_outcomes(api, channel_arn, alice_arn, bob_arn, chime, a, b) -> None:

    def send(text: str) -> str:
        sent = api.send_channel_message(
            ChannelArn=channel_arn,
            Content=text,
            Type="STANDARD",
            Persistence="PERSISTENT",
            ClientRequestToken=uuid.uuid4().hex,
            ChimeBearer=alice_arn,
        )
        assert sent["Status"]["Value"] == "PENDING"
        kind, payload = next_event(a)
        assert (kind, payload["MessageId"], payload["Status"]["Value"]) == (
            "PENDING_CREATE_CHANNEL_MESSAGE",
            sent["MessageId"],
            "PENDING",
        )
        return str(sent["MessageId"])

    def status(message_id: str, bearer: str) -> str:
        found = api.get_channel_message_status(
            ChannelArn=channel_arn, MessageId=message_id, ChimeBearer=bearer
        )
        return str(found["Status"]["Value"])

    def listed() -> list[str]:
        page = api.list_channel_messages(ChannelArn=channel_arn, ChimeBearer=alice_arn)
        return [m["Content"] for m in page["ChannelMessages"]]

    held = send("held for review")
    assert quiet(b)
    assert status(held, alice_arn) == "PENDING"
    with pytest.raises(ClientError) as not_the_sender:
        status(held, bob_arn)
    assert not_the_sender.value.response["Error"]["Code"] == "ForbiddenException"
    assert "held for review" not in listed()

    chime.resolve(held, "SENT")
    for ws in (a, b):
        kind, payload = next_event(ws)
        assert kind == "CREATE_CHANNEL_MESSAGE"
        assert (payload["Content"], payload["Status"]["Value"]) == ("held for review", "SENT")
    assert "held for review" in listed()

    denied = send("refused by the flow")
    chime.resolve(denied, "DENIED", "Not allowed here")
    kind, payload = next_event(a)
    assert kind == "DENIED_CREATE_CHANNEL_MESSAGE"
    assert payload["Status"] == {"Value": "DENIED", "Detail": "Not allowed here"}
    assert quiet(b)
    with pytest.raises(ClientError) as gone:
        status(denied, alice_arn)
    assert gone.value.response["Error"]["Code"] == "NotFoundException"

    failed = send("the processor is down")
    chime.resolve(failed, "FAILED")
    assert next_event(a)[0] == "FAILED_CREATE_CHANNEL_MESSAGE"
    assert quiet(b)
    assert status(failed, alice_arn) == "FAILED"
    assert "refused by the flow" not in listed() and "the processor is down" not in listed()
