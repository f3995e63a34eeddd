"""CloudFormation custom resource: the Chime AppInstance and its bridge user, as chime_setup does.

Create/Update: adopt the AppInstance named `Name` or create it, ensure the bridge
AppInstanceUser `BridgeUserId` and make it AppInstanceAdmin, set `RetentionDays` (0: as is).
Delete: keeps the AppInstance (it holds the messages). Always answers the ResponseURL.
"""

import json
import urllib.request

import boto3
from botocore.exceptions import ClientError


def _all(call, key, **params):
    while True:
        page = call(**params)
        yield from page.get(key, [])
        if not page.get("NextToken"):
            return
        params["NextToken"] = page["NextToken"]


def ensure(identity, name, bridge_id, retention_days):
    found = [
        item["AppInstanceArn"]
        for item in _all(identity.list_app_instances, "AppInstances")
        if item.get("Name") == name
    ]
    if found:
        arn = found[0]
    else:
        token = f"{name}-setup"[:64]
        arn = identity.create_app_instance(Name=name, ClientRequestToken=token)["AppInstanceArn"]
    bridge = f"{arn}/user/{bridge_id}"
    try:
        identity.describe_app_instance_user(AppInstanceUserArn=bridge)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
        identity.create_app_instance_user(
            AppInstanceArn=arn,
            AppInstanceUserId=bridge_id,
            Name="Hobbies bridge",
            ClientRequestToken=bridge_id[:64],
        )
    admins = _all(identity.list_app_instance_admins, "AppInstanceAdmins", AppInstanceArn=arn)
    if bridge not in {item["Admin"]["Arn"] for item in admins}:
        identity.create_app_instance_admin(AppInstanceArn=arn, AppInstanceAdminArn=bridge)
    if retention_days:
        identity.put_app_instance_retention_settings(
            AppInstanceArn=arn,
            AppInstanceRetentionSettings={
                "ChannelRetentionSettings": {"RetentionDays": retention_days}
            },
        )
    return arn, bridge


def handler(event, context):
    answer = {
        "Status": "SUCCESS",
        "PhysicalResourceId": event.get("PhysicalResourceId", "chime-app-instance"),
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": {},
    }
    try:
        if event["RequestType"] in ("Create", "Update"):
            props = event["ResourceProperties"]
            arn, bridge = ensure(
                boto3.client("chime-sdk-identity"),
                props["Name"],
                props["BridgeUserId"],
                int(props.get("RetentionDays", 0)),
            )
            answer["PhysicalResourceId"] = arn
            answer["Data"] = {"AppInstanceArn": arn, "BridgeUserArn": bridge}
    except Exception as exc:
        answer["Status"] = "FAILED"
        answer["Reason"] = f"{type(exc).__name__}: {exc}"[:500]
    print(json.dumps({k: v for k, v in answer.items() if k != "Data"}, sort_keys=True))
    url = event["ResponseURL"]
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"ResponseURL is not HTTP(S): {url[:40]}")
    body = json.dumps(answer).encode()
    # The scheme is checked above.
    request = urllib.request.Request(url, body, {"Content-Type": ""}, method="PUT")  # noqa: S310
    urllib.request.urlopen(request, timeout=30).close()  # noqa: S310
