"""Deployability of the real template.yaml: `sam validate --lint` (AWS SAM CLI from
.tools/sam-venv, installed by scripts/install-tools) and the samconfig defaults."""
import json
import os
import subprocess
import sys
import tomllib

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.environ.get("LOYALTY_TOOLS_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(sys.executable)))
SAM = os.path.join(TOOLS, "sam-venv", "bin", "sam")


@pytest.mark.skipif(not os.path.exists(SAM), reason=f"{SAM} not installed (scripts/install-tools installs it)")
def test_sam_validate_lint_passes():
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    r = subprocess.run([SAM, "validate", "--lint", "--template-file", os.path.join(REPO, "template.yaml")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "is a valid SAM Template" in r.stdout + r.stderr


def test_samconfig_defaults_and_no_secret():
    with open(os.path.join(REPO, "samconfig.toml"), "rb") as f:
        cfg = tomllib.load(f)
    assert cfg["default"]["global"]["parameters"]["stack_name"] == "loyalty"
    assert cfg["default"]["build"]["parameters"]["beta_features"] is True, "rust-cargolambda is a SAM beta feature"
    deploy = cfg["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["confirm_changeset"] is True
    # The coupon code and contact keys are generated into Secrets Manager by the stack: never parameters.
    assert "CouponCodeSecret" not in deploy.get("parameter_overrides", "")
    assert "ContactKeySecret" not in deploy.get("parameter_overrides", "")


def template():
    from cfnlint.decode import decode

    t, errors = decode(os.path.join(REPO, "template.yaml"))
    assert not errors, errors
    return json.loads(json.dumps(t, default=str))


def functions(t):
    return {lid: r["Properties"] for lid, r in t["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


def test_the_keys_are_generated_secrets_that_only_their_readers_may_read():
    t = template()
    # Our own keys are never typed in (the webhook endpoint's API key, a third party's, is).
    assert not [n for n, p in t["Parameters"].items() if text(p.get("NoEcho")) == "true" and n != "WebhookApiKey"], "no key of ours is a parameter"
    # Each key: the secret resource, the variable that names it, the functions that read it.
    # purchase-points issues the coupons of coupon rewards (a reward claim); migration reserves
    # the uniqueness items of imported members' contacts.
    keys = {"CouponCodeSecret": ("COUPON_CODE_SECRET", {"SignupFunction", "CouponIssueFunction", "PurchasePointsFunction"}),
            "ContactKeySecret": ("CONTACT_KEY", {"SignupFunction", "MigrationFunction"})}
    for secret_id, (name, want_readers) in keys.items():
        secret = t["Resources"][secret_id]
        assert secret["Type"] == "AWS::SecretsManager::Secret" and "GenerateSecretString" in secret["Properties"], secret_id
        readers = set()
        for lid, props in functions(t).items():
            env = ((props.get("Environment") or {}).get("Variables") or {})
            assert name not in env, f"{lid}: {name} is never a plain environment variable"
            grants = [g["Resource"] for p in props.get("Policies", []) for g in p.get("Statement", [])
                      if "secretsmanager:GetSecretValue" in g["Action"]]
            if f"{name}_ARN" in env:
                readers.add(lid)
                assert env[f"{name}_ARN"] == {"Ref": secret_id}, lid
                assert {"Ref": secret_id} in grants, f"{lid} may read {secret_id}"
            else:
                assert {"Ref": secret_id} not in grants, f"{lid} may not read {secret_id}"
        assert readers == want_readers, (secret_id, readers)


def test_every_schedule_retries_and_dead_letters_and_failures_alarm():
    t = template()
    scheduled = []
    for lid, props in functions(t).items():
        events = [(n, e) for n, e in (props.get("Events") or {}).items() if e["Type"] in ("Schedule", "ScheduleV2")]
        for name, e in events:
            assert e["Type"] == "ScheduleV2", f"{lid}.{name}: every schedule is an EventBridge Scheduler schedule"
            assert e["Properties"]["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ScheduleDLQ", "Arn"]}}, f"{lid}.{name}"
            assert e["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1, f"{lid}.{name}"
        if events:
            scheduled.append(lid)
            on_failure = props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
            assert on_failure == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["ScheduleDLQ", "Arn"]}}, lid
    assert len(scheduled) == 4
    alarms = [r["Properties"] for r in t["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert any(a.get("Dimensions") == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["ScheduleDLQ", "QueueName"]}}] for a in alarms)
    watched = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"] for a in alarms for m in a.get("Metrics", [])
               if "MetricStat" in m and m["MetricStat"]["Metric"]["MetricName"] == "Errors"}
    assert watched == set(scheduled), "an alarm watches the errors of every function that runs a schedule"


def test_throttled_routes_exist_and_the_access_log_holds_no_personal_data():
    t = template()
    api = t["Resources"]["LoyaltyApi"]["Properties"]
    routes = {f'{e["Properties"]["Method"].upper()} {e["Properties"]["Path"]}'
              for props in functions(t).values() for e in (props.get("Events") or {}).values() if e["Type"] == "HttpApi"}
    assert set(api["RouteSettings"]) <= routes, set(api["RouteSettings"]) - routes
    assert {"POST /members", "POST /members/{id}/activities", "POST /members/{id}/checkout-preview"} <= set(api["RouteSettings"])
    assert set(api["DefaultRouteSettings"]) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}
    fmt = json.loads(api["AccessLogSettings"]["Format"])  # one JSON object per request
    for personal in ("sourceIp", "userAgent", "$context.path", "authorizer", "identity"):
        assert personal not in api["AccessLogSettings"]["Format"], personal
    assert {"requestId", "routeKey", "status"} <= set(fmt)


def text(v):
    return str(v).lower() if isinstance(v, bool) else str(v)
