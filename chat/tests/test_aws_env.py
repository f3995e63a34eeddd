"""`manage.py aws_env`: the stack's outputs as the app's env file, against the template and moto."""

import io
import json
import re
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from chat.management.commands.aws_env import OUTPUT_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = cfn_yaml.load(str(ROOT / "deploy" / "cloudformation.yaml"))
OUTPUTS = TEMPLATE["Outputs"]
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
DOCUMENTED = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", CONFIGURATION, flags=re.MULTILINE))
REGION = "eu-west-1"

# moto's CloudFormation cannot create these; the test stack takes them as parameters of the same
# name instead (Cognito's made through moto's Cognito API), so the template's own output
# expressions resolve. Resources of the other types moto lacks are left out of the test stack.
AS_PARAMETERS = ("UserPool", "UserPoolClient", "UserPoolDomain", "SecretKey")
LEFT_OUT = (
    "AWS::Lambda::",
    "AWS::CloudWatch::",
    "AWS::Cognito::UserPoolGroup",
    "AWS::S3::BucketPolicy",
)


def test_every_mapped_output_is_in_the_template_and_names_its_documented_setting():
    for output, var in OUTPUT_SETTINGS.items():
        assert output in OUTPUTS, output
        assert OUTPUTS[output]["Description"].startswith(var), output
        assert "Export" not in OUTPUTS[output]
        assert var in DOCUMENTED, f"{var} is not in docs/configuration.md"


def test_every_output_that_names_a_documented_setting_is_mapped():
    for name, output in OUTPUTS.items():
        var = output["Description"].split(" ", 1)[0].rstrip(".")
        if var in DOCUMENTED:
            assert OUTPUT_SETTINGS.get(name) == var, name


@pytest.fixture
def endpoint(s3_endpoint: str) -> str:
    """The suite's moto server (chat/tests/conftest.py): it serves CloudFormation as well."""
    return s3_endpoint


def _deploy(endpoint: str, name: str, chime_arn: str) -> dict[str, str]:
    """Create a stack of the template's resources minus Cognito's; returns the Cognito ids."""
    cognito = boto3.client("cognito-idp", region_name=REGION, endpoint_url=endpoint)
    pool = cognito.create_user_pool(PoolName=f"{name}-members")["UserPool"]["Id"]
    client = cognito.create_user_pool_client(UserPoolId=pool, ClientName="web")
    client_id = client["UserPoolClient"]["ClientId"]
    template = dict(TEMPLATE)
    template["Resources"] = {
        key: res
        for key, res in TEMPLATE["Resources"].items()
        if key not in AS_PARAMETERS and not res["Type"].startswith(LEFT_OUT)
    }
    template["Parameters"] = {
        **TEMPLATE["Parameters"],
        **{key: {"Type": "String"} for key in AS_PARAMETERS},
    }
    cloudformation = boto3.client("cloudformation", region_name=REGION, endpoint_url=endpoint)
    params = {
        "AppName": name,
        "CognitoDomainPrefix": f"{name}-login",
        "ChimeAppInstanceArn": chime_arn,
        "UserPool": pool,
        "UserPoolClient": client_id,
        "UserPoolDomain": f"{name}-login",
        "SecretKey": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{name}/key",
    }
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    status = cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    assert status == "CREATE_COMPLETE"
    return {"pool": pool, "client": client_id}


def _aws_env(endpoint: str, stack: str) -> str:
    out = io.StringIO()
    call_command("aws_env", stack=stack, region=REGION, endpoint_url=endpoint, stdout=out)
    return out.getvalue()


def test_prints_the_env_file_of_a_deployed_stack(endpoint):
    chime = "arn:aws:chime:eu-west-1:123456789012:app-instance/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    ids = _deploy(endpoint, "hobbies", chime)
    lines = _aws_env(endpoint, "hobbies").splitlines()
    assert lines[0] == f"# From CloudFormation stack hobbies ({REGION})."
    env = dict(line.split("=", 1) for line in lines[1:])
    hosted = f"https://hobbies-login.auth.{REGION}.amazoncognito.com"
    bucket = env.pop("AWS_STORAGE_BUCKET_NAME")
    assert re.fullmatch(rf"hobbies-attachments-\d{{12}}-{REGION}", bucket)
    assert env == {
        "OIDC_ISSUER": f"https://cognito-idp.{REGION}.amazonaws.com/{ids['pool']}",
        "OIDC_CLIENT_ID": ids["client"],
        "OIDC_AUTHORIZATION_ENDPOINT": f"{hosted}/oauth2/authorize",
        "OIDC_TOKEN_ENDPOINT": f"{hosted}/oauth2/token",
        "OIDC_LOGOUT_URL": f"{hosted}/logout",
        "AWS_S3_REGION_NAME": REGION,
        "AWS_REGION": REGION,
        "CHIME_APP_INSTANCE_ARN": chime,
        "HOBBIES_ENVIRONMENT": "production",
        "METRICS_NAMESPACE": "HobbiesCommunity",
    }
    # The bucket is the one the stack made.
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_without_chime_there_is_no_chime_line(endpoint):
    _deploy(endpoint, "nochime", "")
    env = _aws_env(endpoint, "nochime")
    assert "CHIME_APP_INSTANCE_ARN" not in env
    assert "OIDC_ISSUER=https://cognito-idp." in env


def test_a_missing_stack_is_a_clear_error(endpoint):
    with pytest.raises(CommandError, match=f"No stack named 'absent' in {REGION}"):
        _aws_env(endpoint, "absent")


def test_a_stack_without_our_outputs_is_a_clear_error(endpoint):
    cloudformation = boto3.client("cloudformation", region_name=REGION, endpoint_url=endpoint)
    body = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    cloudformation.create_stack(StackName="other", TemplateBody=json.dumps(body))
    with pytest.raises(CommandError, match="has none of the outputs"):
        _aws_env(endpoint, "other")
