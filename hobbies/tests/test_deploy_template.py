"""deploy/cloudformation.yaml against the metric contract and the Chime IAM list of docs."""

import re
from pathlib import Path

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = cfn_yaml.load(str(ROOT / "deploy" / "cloudformation.yaml"))
RESOURCES = TEMPLATE["Resources"]

CONTRACT_METRICS = {
    "MessagesPublished",
    "SendFailures",
    "DeliveryLatency",
    "WebSocketsOpen",
    "BridgeConnected",
    "HttpRequests",
    "Http5xx",
}


def _alarm_metrics(alarm):
    props = alarm["Properties"]
    if "MetricName" in props:
        return [props]
    return [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]


def test_the_four_contract_alarms_exist_and_notify_the_alarm_topic():
    alarms = {
        name: res for name, res in RESOURCES.items() if res["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert set(alarms) == {
        "SendErrorRateAlarm",
        "DeliveryLatencyP99Alarm",
        "NoMessagesWhileConnectedAlarm",
        "BridgeDisconnectedAlarm",
    }
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert alarms["BridgeDisconnectedAlarm"]["Condition"] == "ChimeEnabled"
    assert alarms["BridgeDisconnectedAlarm"]["Properties"]["TreatMissingData"] == "breaching"
    assert alarms["DeliveryLatencyP99Alarm"]["Properties"]["ExtendedStatistic"] == "p99"


def test_alarms_use_contract_names_namespace_and_environment_dimension():
    for res in RESOURCES.values():
        if res["Type"] != "AWS::CloudWatch::Alarm":
            continue
        for metric in _alarm_metrics(res):
            assert metric["MetricName"] in CONTRACT_METRICS
            assert metric["Namespace"] == {"Ref": "MetricsNamespace"}
            assert metric["Dimensions"] == [
                {"Name": "Environment", "Value": {"Ref": "EnvironmentName"}}
            ]
    assert TEMPLATE["Parameters"]["MetricsNamespace"]["Default"] == "HobbiesCommunity"


def test_dashboard_shows_only_contract_metrics():
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    names = set(re.findall(r'"\$\{Ns\}", "(\w+)"', body))
    assert names == CONTRACT_METRICS


def test_app_role_chime_actions_are_exactly_those_of_docs_chime():
    doc = (ROOT / "docs" / "chime.md").read_text()
    section = doc.split("## IAM permissions", 1)[1].split("`chime_setup` additionally", 1)[0]
    documented = set(re.findall(r"chime:\w+", section))
    statements = RESOURCES["ChimeAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    granted: set[str] = set()
    for st in statements:
        actions = st["Action"]
        granted.update([actions] if isinstance(actions, str) else actions)
    assert granted == documented


def test_chime_setup_role_has_only_documented_chime_actions():
    doc = (ROOT / "docs" / "chime.md").read_text()
    section = doc.split("## IAM permissions", 1)[1].split("## Limits", 1)[0]
    documented = set(re.findall(r"chime:\w+", section))
    role = RESOURCES["ChimeSetupRole"]
    assert role["Condition"] == "ChimeCreated"
    granted: set[str] = set()
    for policy in role["Properties"]["Policies"]:
        for st in policy["PolicyDocument"]["Statement"]:
            actions = st["Action"]
            granted.update([actions] if isinstance(actions, str) else actions)
    chime = {a for a in granted if a.startswith("chime:")}
    assert chime and chime <= documented
    assert granted - chime == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert RESOURCES["ChimeAppInstance"]["DeletionPolicy"] == "Retain"
