"""The Chime custom resource (deploy/lambda/chime_setup.py) against the fake Chime."""

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml

from chat.tests import fake_chime as fake_module

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "deploy" / "lambda" / "chime_setup.py"
RESOURCES = cfn_yaml.load(str(ROOT / "deploy" / "cloudformation.yaml"))["Resources"]

_spec = importlib.util.spec_from_file_location("chime_setup_lambda", SOURCE)
assert _spec and _spec.loader
chime_setup = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chime_setup)


@pytest.fixture
def responses() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for CloudFormation's presigned ResponseURL: records each PUT body."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/response?X-Amz-Signature=x", received
    server.shutdown()


@pytest.fixture
def identity(fake_chime, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", fake_module.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", fake_module.SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", fake_module.REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CHIME_SDK_IDENTITY", fake_chime.identity_url)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # The handler's `boto3.client()` uses boto3's default session, which keeps the credentials
    # it first found: start from none, as a Lambda container does.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    return fake_chime


def _event(url: str, request: str, **props: Any) -> dict[str, Any]:
    return {
        "RequestType": request,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/hobbies/1",
        "RequestId": "req-1",
        "ResourceType": "Custom::ChimeAppInstance",
        "LogicalResourceId": "ChimeAppInstance",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:x", **props},
    }


PROPS = {"Name": "hobbies", "BridgeUserId": "hobbies-bridge", "RetentionDays": "30"}


def test_create_makes_the_instance_bridge_admin_and_retention_and_answers(identity, responses):
    url, received = responses
    chime_setup.handler(_event(url, "Create", **PROPS), None)
    [answer] = received
    assert answer["Status"] == "SUCCESS", answer
    arn = answer["Data"]["AppInstanceArn"]
    bridge = f"{arn}/user/hobbies-bridge"
    assert answer["PhysicalResourceId"] == arn
    assert answer["Data"]["BridgeUserArn"] == bridge
    assert (answer["RequestId"], answer["LogicalResourceId"]) == ("req-1", "ChimeAppInstance")
    assert [i["Name"] for i in identity.instances.values()] == ["hobbies"]
    assert bridge in identity.users
    assert identity.admins[arn] == {bridge}
    assert identity.retention[arn] == 30


def test_create_again_and_update_adopt_the_same_instance(identity, responses):
    url, received = responses
    chime_setup.handler(_event(url, "Create", **PROPS), None)
    chime_setup.handler(_event(url, "Create", **PROPS), None)
    chime_setup.handler({**_event(url, "Update", **PROPS), "PhysicalResourceId": "x"}, None)
    assert [a["Status"] for a in received] == ["SUCCESS"] * 3
    assert len({a["Data"]["AppInstanceArn"] for a in received}) == 1
    assert len(identity.instances) == 1


def test_delete_keeps_the_instance_and_answers(identity, responses):
    url, received = responses
    chime_setup.handler(_event(url, "Create", **PROPS), None)
    arn = received[0]["PhysicalResourceId"]
    chime_setup.handler({**_event(url, "Delete", **PROPS), "PhysicalResourceId": arn}, None)
    assert received[1]["Status"] == "SUCCESS"
    assert received[1]["PhysicalResourceId"] == arn
    assert arn in identity.instances


def test_a_failure_still_answers_with_the_reason(identity, responses):
    url, received = responses
    identity.unavailable = True
    chime_setup.handler(_event(url, "Create", **PROPS), None)
    [answer] = received
    assert answer["Status"] == "FAILED"
    assert answer["Reason"]


def test_inline_code_is_the_source_file():
    code = RESOURCES["ChimeSetupFunction"]["Properties"]["Code"]["ZipFile"]
    assert code == SOURCE.read_text()
    assert len(code) <= 4096
