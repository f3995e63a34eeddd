"""Print the settings a CloudFormation stack of deploy/cloudformation.yaml provides, as an env file.

    python manage.py aws_env --stack hobbies [--region eu-west-1] > aws.env

One `VAR=value` line for each output of the stack that maps onto a setting (OUTPUT_SETTINGS);
the other outputs (role, secret, alarm topic …) are for the operator, not the app.
"""

from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

# Stack output → the environment variable it sets (docs/configuration.md).
OUTPUT_SETTINGS = {
    "CognitoIssuer": "OIDC_ISSUER",
    "CognitoClientId": "OIDC_CLIENT_ID",
    "CognitoAuthorizationEndpoint": "OIDC_AUTHORIZATION_ENDPOINT",
    "CognitoTokenEndpoint": "OIDC_TOKEN_ENDPOINT",
    "CognitoLogoutUrl": "OIDC_LOGOUT_URL",
    "AttachmentsBucketName": "AWS_STORAGE_BUCKET_NAME",
    "AttachmentsBucketRegion": "AWS_S3_REGION_NAME",
    "AwsRegion": "AWS_REGION",
    "ChimeAppInstanceArn": "CHIME_APP_INSTANCE_ARN",
    "ChimeBridgeUserArn": "CHIME_BRIDGE_USER_ARN",
    "Environment": "HOBBIES_ENVIRONMENT",
    "MetricsNamespace": "METRICS_NAMESPACE",
}


def stack_outputs(stack: str, region: str, endpoint_url: str | None) -> dict[str, str]:
    client = boto3.client("cloudformation", region_name=region, endpoint_url=endpoint_url)
    try:
        stacks = client.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            raise CommandError(f"No stack named {stack!r} in {region}.") from exc
        raise CommandError(f"Could not read stack {stack!r} in {region}: {exc}") from exc
    except BotoCoreError as exc:
        raise CommandError(f"Could not read stack {stack!r} in {region}: {exc}") from exc
    if not stacks:
        raise CommandError(f"No stack named {stack!r} in {region}.")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


class Command(BaseCommand):
    help = "Print the environment variables a deploy/cloudformation.yaml stack provides."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stack", required=True, help="Name or id of the stack.")
        parser.add_argument("--region", help="The stack's region (default: AWS_REGION).")
        parser.add_argument("--endpoint-url", help="Another CloudFormation API endpoint.")

    def handle(self, *args: Any, **options: Any) -> None:
        stack = options["stack"]
        region = options["region"] or settings.AWS_REGION
        outputs = stack_outputs(stack, region, options["endpoint_url"])
        lines = [f"{var}={outputs[key]}" for key, var in OUTPUT_SETTINGS.items() if key in outputs]
        if not lines:
            raise CommandError(
                f"Stack {stack!r} in {region} has none of the outputs of "
                f"deploy/cloudformation.yaml ({', '.join(OUTPUT_SETTINGS)}); "
                "is it still being created, or another stack?"
            )
        self.stdout.write(f"# From CloudFormation stack {stack} ({region}).")
        for line in lines:
            self.stdout.write(line)
