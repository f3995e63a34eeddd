"""The Cognito post-authentication trigger: deploy/lambda/post_auth.py and its wiring."""

import copy
import importlib.util
import json
from pathlib import Path

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "deploy" / "lambda" / "post_auth.py"
RESOURCES = cfn_yaml.load(str(ROOT / "deploy" / "cloudformation.yaml"))["Resources"]

_spec = importlib.util.spec_from_file_location("post_auth", SOURCE)
assert _spec and _spec.loader
post_auth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(post_auth)

# What Cognito sends after a member signs in through the hosted UI.
EVENT = {
    "version": "1",
    "region": "eu-west-1",
    "userPoolId": "eu-west-1_AbCdEf123",
    "userName": "6f1c2a3e-8b7d-4e5f-9a0b-1c2d3e4f5a6b",
    "callerContext": {
        "awsSdkVersion": "aws-sdk-unknown-unknown",
        "clientId": "3n4b5urk1ft4fl3mg5e62d9ado",
    },
    "triggerSource": "PostAuthentication_Authentication",
    "request": {
        "userAttributes": {
            "sub": "6f1c2a3e-8b7d-4e5f-9a0b-1c2d3e4f5a6b",
            "cognito:user_status": "CONFIRMED",
            "email_verified": "true",
            "email": "ada@example.org",
            "cognito:groups": "moderators",
        },
        "newDeviceUsed": False,
        "clientMetadata": {},
    },
    "response": {},
}


def test_handler_returns_the_event_unchanged_and_logs_one_line_without_personal_data(capsys):
    event = copy.deepcopy(EVENT)
    assert post_auth.handler(event, None) == EVENT
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "sign_in"
    assert record["trigger"] == "PostAuthentication_Authentication"
    assert record["user_pool"] == "eu-west-1_AbCdEf123"
    assert record["client_id"] == "3n4b5urk1ft4fl3mg5e62d9ado"
    assert record["sub"] == "6f1c2a3e-8b7d-4e5f-9a0b-1c2d3e4f5a6b"
    assert record["new_device"] is False
    assert "ada@example.org" not in lines[0]
    assert "example.org" not in lines[0]


def test_handler_tolerates_an_event_without_attributes(capsys):
    event = {"triggerSource": "PostAuthentication_Authentication", "request": {}}
    assert post_auth.handler(event, None) is event
    assert json.loads(capsys.readouterr().out)["sub"] is None


def test_inline_code_is_the_source_file():
    code = RESOURCES["PostAuthFunction"]["Properties"]["Code"]["ZipFile"]
    assert code == SOURCE.read_text()
    assert len(code) <= 4096  # CloudFormation's ZipFile limit


def test_the_user_pool_calls_the_function_and_may_invoke_it():
    pool = RESOURCES["UserPool"]["Properties"]
    function_arn = {"Fn::GetAtt": ["PostAuthFunction", "Arn"]}
    assert pool["LambdaConfig"] == {"PostAuthentication": function_arn}
    permission = RESOURCES["PostAuthPermission"]["Properties"]
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Principal"] == "cognito-idp.amazonaws.com"
    assert permission["FunctionName"] == function_arn
    assert permission["SourceArn"] == {"Fn::GetAtt": ["UserPool", "Arn"]}


def test_the_function_role_may_only_write_its_own_log_group():
    role = RESOURCES["PostAuthRole"]["Properties"]
    assert "ManagedPolicyArns" not in role
    statements = [st for policy in role["Policies"] for st in policy["PolicyDocument"]["Statement"]]
    assert statements == [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {"Fn::Sub": "${PostAuthLogGroup.Arn}:log-stream:*"},
        }
    ]
    function = RESOURCES["PostAuthFunction"]["Properties"]
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "PostAuthLogGroup"}}
    assert function["Role"] == {"Fn::GetAtt": ["PostAuthRole", "Arn"]}
