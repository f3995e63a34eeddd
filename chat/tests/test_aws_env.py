"""`manage.py aws_env`: the stack's outputs as the app's env file, against the template and moto."""

import io
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from chat.management.commands.aws_env import OUTPUT_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = cfn_yaml.load(str(ROOT / "deploy" / "cloudformation.yaml"))
OUTPUTS = TEMPLATE["Outputs"]
RESOURCES = TEMPLATE["Resources"]
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
DOCUMENTED = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", CONFIGURATION, flags=re.MULTILINE))
REGION = "eu-west-1"

# moto's CloudFormation cannot create these; the test stack takes them as parameters of the same
# name instead (Cognito's made through moto's Cognito API, each secret an ARN), so the template's
# own expressions resolve. Resources of the other types moto lacks are left out of the test stack.
SECRETS = sorted(k for k, r in RESOURCES.items() if r["Type"] == "AWS::SecretsManager::Secret")
AS_PARAMETERS = ("UserPool", "UserPoolClient", "UserPoolDomain", *SECRETS)
LEFT_OUT = (
    "AWS::Lambda::",
    "AWS::CloudWatch::",
    "AWS::Cognito::UserPoolGroup",
    "AWS::S3::BucketPolicy",
    "AWS::ElastiCache::",
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


def _deploy(endpoint: str, name: str, chime_arn: str, **extra: str) -> dict[str, str]:
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
        **{key: _secret_arn(name, key) for key in SECRETS},
        **extra,
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


def _secret_arn(stack: str, key: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{stack}/{key}"


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


# --- Running the app on ECS (ContainerImage set) ----------------------------------------------
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/hobbies:1.0.0"
TASK_DEFINITIONS = sorted(
    k for k, r in RESOURCES.items() if r["Type"] == "AWS::ECS::TaskDefinition"
)


def _network(endpoint: str) -> dict[str, str]:
    """What the operator brings: a VPC with two public and two private subnets, a certificate."""
    acm = boto3.client("acm", region_name=REGION, endpoint_url=endpoint)
    certificate = acm.request_certificate(DomainName="chat.example.net")["CertificateArn"]
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in enumerate("abab")
    ]
    return {
        "VpcId": vpc,
        "PublicSubnetIds": ",".join(subnets[:2]),
        "PrivateSubnetIds": ",".join(subnets[2:]),
        "CertificateArn": certificate,
    }


def _stack(endpoint: str, name: str) -> tuple[dict[str, str], dict[str, str]]:
    """The stack's outputs and its resources' physical ids."""
    cloudformation = boto3.client("cloudformation", region_name=REGION, endpoint_url=endpoint)
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
    return outputs, {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}


def _environment(container: dict[str, Any]) -> dict[str, str]:
    # moto keeps an entry left out with AWS::NoValue as a null.
    return {e["name"]: e["value"] for e in container["environment"] if e}


def _ingress(ec2: Any, group_id: str) -> list[tuple[int, int, str]]:
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    return sorted(
        (rule["FromPort"], rule["ToPort"], source)
        for rule in group["IpPermissions"]
        for source in [r["CidrIp"] for r in rule.get("IpRanges", [])]
        + [p["GroupId"] for p in rule.get("UserIdGroupPairs", [])]
    )


def test_a_stack_without_an_image_runs_nothing(endpoint):
    _deploy(endpoint, "bare", "")
    outputs, resources = _stack(endpoint, "bare")
    assert "LoadBalancerDnsName" not in outputs
    assert "MigrateCommand" not in outputs
    assert not {"Cluster", "WebService", "LoadBalancer", "Database"} & resources.keys()


def test_runs_the_app_on_ecs_behind_the_load_balancer(endpoint):
    chime = "arn:aws:chime:eu-west-1:123456789012:app-instance/5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
    network = _network(endpoint)
    _deploy(
        endpoint,
        "onecs",
        chime,
        ContainerImage=IMAGE,
        SiteUrl="https://chat.example.net",
        EnvironmentName="staging",
        **network,
    )
    outputs, resources = _stack(endpoint, "onecs")
    private = network["PrivateSubnetIds"].split(",")

    # The services (moto keeps their counts and task definitions; the network and load balancer
    # settings are checked in the template below).
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=endpoint)
    cluster = outputs["ClusterName"]
    assert cluster == "onecs"
    arns = [resources["WebService"], resources["BridgeService"]]
    web, bridge = ecs.describe_services(cluster=cluster, services=arns)["services"]
    assert web["desiredCount"] == 2
    assert bridge["desiredCount"] == 1
    task = ecs.describe_task_definition(taskDefinition="onecs-web")["taskDefinition"]
    (container,) = task["containerDefinitions"]
    assert container["image"] == IMAGE
    assert container["command"] == ["web"]
    assert container["portMappings"][0]["containerPort"] == 8000
    env = _environment(container)
    assert env["DJANGO_ALLOWED_HOSTS"] == "chat.example.net"
    assert env["DJANGO_CSRF_TRUSTED_ORIGINS"] == "https://chat.example.net"
    assert env["METRICS_EMF"] == "1"
    assert env["HOBBIES_ENVIRONMENT"] == "staging"
    assert env["MESSAGING_BACKEND"] == "chime"
    assert env["CHIME_APP_INSTANCE_ARN"] == chime
    assert env["STORAGE_BACKEND"] == "s3"
    assert env["AWS_STORAGE_BUCKET_NAME"] == resources["AttachmentsBucket"]
    # The same values `manage.py aws_env` prints for servers run elsewhere.
    printed = dict(line.split("=", 1) for line in _aws_env(endpoint, "onecs").splitlines()[1:])
    assert {k: env[k] for k in printed} == printed
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert secrets == {
        "DATABASE_URL": _secret_arn("onecs", "DatabaseUrlSecret"),
        "DJANGO_SECRET_KEY": _secret_arn("onecs", "SecretKey"),
        "OIDC_CLIENT_SECRET": _secret_arn("onecs", "OidcClientSecret"),
        "REDIS_URL": _secret_arn("onecs", "RedisUrlSecret"),
    }
    log = container["logConfiguration"]
    assert log["logDriver"] == "awslogs"
    assert log["options"]["awslogs-group"] == outputs["AppLogGroupName"] == "/onecs/app"

    bridge_task = ecs.describe_task_definition(taskDefinition="onecs-chime-bridge")
    assert bridge_task["taskDefinition"]["containerDefinitions"][0]["command"] == ["worker"]

    # The load balancer: HTTPS with the certificate, HTTP redirected, /readyz health checks.
    elb = boto3.client("elbv2", region_name=REGION, endpoint_url=endpoint)
    balancer = elb.describe_load_balancers(LoadBalancerArns=[resources["LoadBalancer"]])
    assert balancer["LoadBalancers"][0]["DNSName"] == outputs["LoadBalancerDnsName"]
    listeners = {
        listener["Port"]: listener
        for listener in elb.describe_listeners(LoadBalancerArn=resources["LoadBalancer"])[
            "Listeners"
        ]
    }
    assert listeners[443]["Protocol"] == "HTTPS"
    certificate = network["CertificateArn"]
    assert listeners[443]["Certificates"][0]["CertificateArn"] == certificate
    assert listeners[443]["DefaultActions"][0]["TargetGroupArn"] == resources["WebTargetGroup"]
    redirect = listeners[80]["DefaultActions"][0]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    group = elb.describe_target_groups(TargetGroupArns=[resources["WebTargetGroup"]])
    group = group["TargetGroups"][0]
    assert (group["HealthCheckPath"], group["Port"], group["TargetType"]) == ("/readyz", 8000, "ip")

    # Who may reach what: the internet the load balancer, it the tasks, they the data stores.
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
    alb_sg, task_sg = resources["LoadBalancerSecurityGroup"], resources["TaskSecurityGroup"]
    assert _ingress(ec2, alb_sg) == [(80, 80, "0.0.0.0/0"), (443, 443, "0.0.0.0/0")]
    assert _ingress(ec2, task_sg) == [(8000, 8000, alb_sg)]
    assert _ingress(ec2, resources["DatabaseSecurityGroup"]) == [(5432, 5432, task_sg)]
    assert _ingress(ec2, resources["CacheSecurityGroup"]) == [(6379, 6379, task_sg)]

    # PostgreSQL: encrypted, private, Multi-AZ, with backups, in the private subnets.
    rds = boto3.client("rds", region_name=REGION, endpoint_url=endpoint)
    (database,) = rds.describe_db_instances(DBInstanceIdentifier=resources["Database"])[
        "DBInstances"
    ]
    assert database["Engine"] == "postgres"
    assert database["StorageEncrypted"] is True
    assert database["PubliclyAccessible"] is False
    assert database["MultiAZ"] is True
    assert database["BackupRetentionPeriod"] == 7
    assert {s["SubnetIdentifier"] for s in database["DBSubnetGroup"]["Subnets"]} == set(private)

    # The one-off migrate task, ready to paste.
    migrate = outputs["MigrateCommand"]
    assert migrate.startswith("aws ecs run-task ")
    assert f"--cluster {cluster} " in migrate
    assert f"--task-definition {resources['MigrateTaskDefinition']}" in migrate
    assert f"subnets=[{','.join(private)}]" in migrate
    assert f"securityGroups=[{task_sg}]" in migrate
    # Quoted, so that a shell pastes it as one argument rather than expanding the braces.
    assert "--network-configuration 'awsvpcConfiguration={" in migrate
    assert outputs["TaskSecurityGroupId"] == task_sg


def test_an_existing_database_and_redis_are_used_instead(endpoint):
    _deploy(
        endpoint,
        "existing",
        "",
        ContainerImage=IMAGE,
        DatabaseUrl="postgres://hobbies:pw@db.internal:5432/hobbies",
        RedisUrl="rediss://cache.internal:6379/0",
        **_network(endpoint),
    )
    outputs, resources = _stack(endpoint, "existing")
    assert "LoadBalancerDnsName" in outputs
    assert "WebService" in resources
    assert not {"Database", "DatabaseSecurityGroup", "CacheSecurityGroup"} & resources.keys()
    # No Chime: no bridge service, and the app mirrors nowhere.
    assert "BridgeService" not in resources
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=endpoint)
    task = ecs.describe_task_definition(taskDefinition="existing-web")
    env = _environment(task["taskDefinition"]["containerDefinitions"][0])
    assert env["MESSAGING_BACKEND"] == "local"
    assert "CHIME_APP_INSTANCE_ARN" not in env


# --- The parts moto does not keep, checked in the template itself ------------------------------
def _task_containers() -> dict[str, Any]:
    return {
        key: RESOURCES[key]["Properties"]["ContainerDefinitions"][0] for key in TASK_DEFINITIONS
    }


def _entry_names(entries: list[Any]) -> set[str]:
    """The names in an Environment or Secrets list; an `!If` entry counts with its set side."""
    names = set()
    for entry in entries:
        if "Fn::If" in entry:
            entry = entry["Fn::If"][1]
        names.add(entry["Name"])
    return names


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_variable_a_task_gets_is_a_documented_setting():
    assert TASK_DEFINITIONS == [
        "BridgeTaskDefinition",
        "MigrateTaskDefinition",
        "WebTaskDefinition",
    ]
    for key, container in _task_containers().items():
        names = _entry_names(container["Environment"]) | _entry_names(container["Secrets"])
        assert names <= DOCUMENTED, f"{key}: {sorted(names - DOCUMENTED)} not in configuration.md"
        assert {"METRICS_EMF", "HOBBIES_ENVIRONMENT", "METRICS_NAMESPACE"} <= names, key


def test_every_task_gets_the_same_settings_and_secrets():
    containers = _task_containers()
    web, migrate, bridge = (
        containers[k]
        for k in ("WebTaskDefinition", "MigrateTaskDefinition", "BridgeTaskDefinition")
    )
    assert migrate["Environment"] == web["Environment"]
    assert migrate["Secrets"] == bridge["Secrets"] == web["Secrets"]
    # The bridge runs only with Chime on, so its Chime entries are unconditional.
    assert _entry_names(bridge["Environment"]) == _entry_names(web["Environment"])
    assert {"Name": "MESSAGING_BACKEND", "Value": "chime"} in bridge["Environment"]
    assert [c["Command"] for c in containers.values()] == [["worker"], ["manage", "setup"], ["web"]]


def test_secrets_come_from_secrets_manager_and_only_the_execution_role_reads_them():
    secrets = {
        s["Name"]: s["ValueFrom"] for s in _task_containers()["WebTaskDefinition"]["Secrets"]
    }
    assert set(secrets) == {"DATABASE_URL", "DJANGO_SECRET_KEY", "OIDC_CLIENT_SECRET", "REDIS_URL"}
    referenced = [ref["Ref"] for ref in secrets.values()]
    assert all(RESOURCES[key]["Type"] == "AWS::SecretsManager::Secret" for key in referenced)
    # Every secret is either given to the tasks or the database's own master user.
    assert sorted([*referenced, "DatabaseMasterSecret"]) == SECRETS
    master = RESOURCES["DatabaseMasterSecret"]["Properties"]
    assert "GenerateSecretString" in master
    assert "GenerateSecretString" in RESOURCES["SecretKey"]["Properties"]
    statements = RESOURCES["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    reads = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    assert sorted(r["Ref"] for r in reads[0]["Resource"]) == sorted(referenced)
    actions = sorted(a for s in statements for a in _as_list(s["Action"]))
    assert actions == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetAuthorizationToken",
        "ecr:GetDownloadUrlForLayer",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
    ]
    # No secret in the template itself: each is generated, or made from parameters or resources.
    for key in SECRETS:
        assert not isinstance(RESOURCES[key]["Properties"].get("SecretString"), str), key


def test_tasks_run_as_the_app_role_in_the_private_subnets():
    for key in TASK_DEFINITIONS:
        props = RESOURCES[key]["Properties"]
        assert props["TaskRoleArn"] == {"Fn::GetAtt": ["AppRole", "Arn"]}, key
        assert props["ExecutionRoleArn"] == {"Fn::GetAtt": ["ExecutionRole", "Arn"]}, key
        assert (props["RequiresCompatibilities"], props["NetworkMode"]) == (["FARGATE"], "awsvpc")
        log = props["ContainerDefinitions"][0]["LogConfiguration"]["Options"]
        assert log["awslogs-group"] == {"Ref": "AppLogGroup"}, key
    for key in ("WebService", "BridgeService"):
        props = RESOURCES[key]["Properties"]
        assert props["LaunchType"] == "FARGATE"
        assert props["NetworkConfiguration"]["AwsvpcConfiguration"] == {
            "AssignPublicIp": "DISABLED",
            "Subnets": {"Ref": "PrivateSubnetIds"},
            "SecurityGroups": [{"Ref": "TaskSecurityGroup"}],
        }
    web = RESOURCES["WebService"]["Properties"]
    assert web["DesiredCount"] == {"Ref": "WebDesiredCount"}
    assert TEMPLATE["Parameters"]["WebDesiredCount"]["MinValue"] >= 2
    assert web["LoadBalancers"] == [
        {"ContainerName": "app", "ContainerPort": 8000, "TargetGroupArn": {"Ref": "WebTargetGroup"}}
    ]
    bridge = RESOURCES["BridgeService"]
    assert (bridge["Condition"], bridge["Properties"]["DesiredCount"]) == ("RunBridge", 1)
    # Never two bridges, even during a deployment.
    assert bridge["Properties"]["DeploymentConfiguration"]["MaximumPercent"] == 100


def test_the_load_balancer_keeps_websockets_open_without_stickiness():
    balancer = RESOURCES["LoadBalancer"]["Properties"]
    attributes = {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]}
    assert int(attributes["idle_timeout.timeout_seconds"]) > 20  # the clients' ping interval
    assert balancer["Subnets"] == {"Ref": "PublicSubnetIds"}
    group = RESOURCES["WebTargetGroup"]["Properties"]
    group_attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    assert group_attributes["stickiness.enabled"] == "false"
    assert (group["HealthCheckPath"], group["Matcher"]) == ("/readyz", {"HttpCode": "200"})


def test_security_groups_open_only_the_described_ports():
    rules = set()
    for key, resource in RESOURCES.items():
        assert resource["Type"] not in (
            "AWS::EC2::SecurityGroupIngress",
            "AWS::EC2::SecurityGroupEgress",
        ), key
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            props = resource["Properties"]
            assert "SecurityGroupEgress" not in props, key
            for rule in props["SecurityGroupIngress"]:
                source = rule.get("CidrIp") or rule["SourceSecurityGroupId"]["Ref"]
                rules.add((key, rule["IpProtocol"], rule["FromPort"], rule["ToPort"], source))
    assert rules == {
        ("LoadBalancerSecurityGroup", "tcp", 443, 443, "0.0.0.0/0"),
        ("LoadBalancerSecurityGroup", "tcp", 80, 80, "0.0.0.0/0"),
        ("TaskSecurityGroup", "tcp", 8000, 8000, "LoadBalancerSecurityGroup"),
        ("DatabaseSecurityGroup", "tcp", 5432, 5432, "TaskSecurityGroup"),
        ("CacheSecurityGroup", "tcp", 6379, 6379, "TaskSecurityGroup"),
    }


def test_the_data_stores_are_private_and_encrypted_and_made_only_when_not_given():
    database = RESOURCES["Database"]
    props = database["Properties"]
    assert database["Condition"] == "CreateDatabase"
    assert (props["StorageEncrypted"], props["PubliclyAccessible"]) == (True, False)
    assert props["MultiAZ"] == {"Ref": "MultiAz"}
    assert props["BackupRetentionPeriod"] == {"Ref": "DatabaseBackupRetentionDays"}
    cache = RESOURCES["Cache"]
    assert cache["Condition"] == "CreateCache"
    assert cache["Properties"]["TransitEncryptionEnabled"] is True
    assert cache["Properties"]["AtRestEncryptionEnabled"] is True
    conditions = TEMPLATE["Conditions"]
    assert {"Fn::Equals": [{"Ref": "DatabaseUrl"}, ""]} in conditions["CreateDatabase"]["Fn::And"]
    assert {"Fn::Equals": [{"Ref": "RedisUrl"}, ""]} in conditions["CreateCache"]["Fn::And"]
    # The URL the tasks get for the cache the stack makes is TLS (rediss://).
    redis_url = RESOURCES["RedisUrlSecret"]["Properties"]["SecretString"]["Fn::If"][2]
    assert redis_url["Fn::Sub"].startswith("rediss://")
    for key in ("DatabaseUrl", "RedisUrl"):
        assert TEMPLATE["Parameters"][key]["NoEcho"] is True
