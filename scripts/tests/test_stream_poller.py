"""The DynamoDB stream event source of scripts/local_events.py, the event bus bootstrap.py
creates with its local sink, and `scripts/events tail`: against moto (which serves DynamoDB,
its streams, SQS and EventBridge) and a fake Lambda Invoke endpoint."""
import json
import os
import subprocess
import sys
import time

import boto3
import pytest

import local_events as le
from conftest import bootstrap
from test_local_events import until

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(SCRIPTS)


def aws(stack, service):
    e = stack["env"]["env"]
    return boto3.client(service, endpoint_url=e["AWS_ENDPOINT_URL_SQS"], region_name=e["AWS_REGION"],
                        aws_access_key_id="local", aws_secret_access_key="local")


def put_items(stack, items):
    ddb = aws(stack, "dynamodb")
    table = stack["env"]["tables"]["Table"]
    for sk, extra in items:
        item = {"PK": {"S": "k"}, "SK": {"S": sk}}
        item.update({k: {"S": v} for k, v in extra.items()})
        ddb.put_item(TableName=table, Item=item)


@pytest.fixture()
def poller(stream_stack, fake_lambda):
    procs = []

    def start():
        p = subprocess.Popen([sys.executable, os.path.join(SCRIPTS, "local_events.py"), "run", "--env-json", stream_stack["path"],
                              "--invoke-url", fake_lambda.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.terminate()
        try:
            out, _ = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        print(out)


def sks(records):
    return [r["dynamodb"]["Keys"]["SK"]["S"] for r in records]


def batches(fake):
    return [p["Records"] for _, p in fake.calls if isinstance(p, dict) and p.get("Records")]


def parked(stack):
    sqs = aws(stack, "sqs")
    url = stack["env"]["queues"]["ParkedQueue"]["url"]
    got = []
    for _ in range(3):
        got += [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []]
    return got


def test_bootstrap_reads_the_stream_event_source_and_the_bus_from_the_template(stream_stack):
    env = stream_stack["env"]
    ev = env["functions"]["PublisherFunction"]["events"][0]
    assert ev["Type"] == "DynamoDB" and ev["StreamArn"] == env["streams"]["Table"] and ev["Table"] == env["tables"]["Table"]
    assert (ev["BatchSize"], ev["StartingPosition"], ev["MaximumRetryAttempts"], ev["BisectBatchOnFunctionError"]) == (4, "TRIM_HORIZON", 2, True)
    assert ev["OnFailure"] == {"QueueUrl": env["queues"]["ParkedQueue"]["url"], "QueueArn": env["queues"]["ParkedQueue"]["arn"]}
    bus = env["buses"]["Bus"]
    assert bus["name"] == "loyalty-local-bus" and bus["arn"].endswith(":event-bus/loyalty-local-bus")
    assert bus["sink"]["name"] == "loyalty-local-bus-local-sink"
    fenv = env["functions"]["PublisherFunction"]["env"]
    assert (fenv["BUS"], fenv["BUS_ARN"], fenv["EXTRA"]) == (bus["name"], bus["arn"], "none")
    assert "ExtraQueue" not in env["queues"], "a resource whose condition is false is not created"
    e = env["env"]
    assert e["AWS_ENDPOINT_URL_EVENTBRIDGE"] == e["AWS_ENDPOINT_URL_SQS"]
    assert e["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] == e["AWS_ENDPOINT_URL_DYNAMODB"]


def test_a_true_condition_creates_its_resource(moto_port, tmp_path):
    s = bootstrap(moto_port, tmp_path, os.path.join(SCRIPTS, "tests", "fixtures", "stream-template.yaml"), moto_port,
                  {"LOYALTY_PARAM_Extra": "yes"})
    assert "ExtraQueue" in s["env"]["queues"]
    assert s["env"]["functions"]["PublisherFunction"]["env"]["EXTRA"] == s["env"]["queues"]["ExtraQueue"]["url"]


def test_stream_records_reach_the_function_in_order_in_batches_shaped_like_lambdas(stream_stack, fake_lambda, poller):
    put_items(stream_stack, [(f"{i:02d}", {}) for i in range(10)])
    put_items(stream_stack, [("03", {"note": "changed"})])
    poller()
    until(lambda: len(fake_lambda.records()) >= 11, timeout=30)
    time.sleep(1.5)  # nothing more comes: every batch was acknowledged
    records = fake_lambda.records()
    assert sks(records) == [f"{i:02d}" for i in range(10)] + ["03"], "in stream order, each once"
    assert all(len(b) <= 4 for b in batches(fake_lambda)), "BatchSize"
    env = stream_stack["env"]
    seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert seqs == sorted(seqs, key=int)
    for r in records:
        assert (r["eventSource"], r["eventSourceARN"], r["awsRegion"]) == ("aws:dynamodb", env["streams"]["Table"], env["env"]["AWS_REGION"])
        assert r["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES" and isinstance(r["dynamodb"]["ApproximateCreationDateTime"], float)
        assert r["dynamodb"]["NewImage"]["PK"] == {"S": "k"}
    last = records[-1]
    assert last["eventName"] == "MODIFY" and last["dynamodb"]["OldImage"] == {"PK": {"S": "k"}, "SK": {"S": "03"}}
    assert last["dynamodb"]["NewImage"]["note"] == {"S": "changed"}
    assert fake_lambda.calls[0][0] == "publisher"


def test_a_reported_failure_is_retried_from_its_sequence_number_and_a_poison_record_is_parked_alone(stream_stack, fake_lambda, poller):
    put_items(stream_stack, [(f"{i:02d}", {"poison": "yes"} if i == 3 else {}) for i in range(10)])
    poller()
    found = until(lambda: parked(stream_stack), timeout=40)
    until(lambda: "09" in sks(fake_lambda.records()), timeout=30)
    time.sleep(1.5)
    seq = {r["dynamodb"]["Keys"]["SK"]["S"]: r["dynamodb"]["SequenceNumber"] for r in fake_lambda.records()}
    info = found[0]["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (seq["03"], seq["03"], 1), found
    assert info["streamArn"] == stream_stack["env"]["streams"]["Table"]
    assert found[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    got = batches(fake_lambda)
    assert sks(got[0]) == ["00", "01", "02", "03"]
    assert sks(got[1])[0] == "03", "retried from the record the function named, not from the batch's start"
    delivered = sks(fake_lambda.records())
    for sk in ["00", "01", "02"]:
        assert delivered.count(sk) == 1, f"{sk} was acknowledged with the first batch"
    for sk in ["04", "05", "06", "07", "08", "09"]:
        assert sk in delivered, f"{sk} after the poison record still reached the function"
    assert delivered.count("03") >= 3, "the poison record was retried (MaximumRetryAttempts 2) before it was parked"
    assert delivered[-1] == "09"


def test_a_function_error_bisects_the_batch_down_to_the_poison_record(stream_stack, fake_lambda, poller):
    put_items(stream_stack, [(f"{i:02d}", {"crash": "yes"} if i == 2 else {}) for i in range(6)])
    poller()
    found = until(lambda: parked(stream_stack), timeout=40)
    until(lambda: "05" in sks(fake_lambda.records()), timeout=30)
    seq = {r["dynamodb"]["Keys"]["SK"]["S"]: r["dynamodb"]["SequenceNumber"] for r in fake_lambda.records()}
    assert found[0]["DDBStreamBatchInfo"]["startSequenceNumber"] == seq["02"] and found[0]["DDBStreamBatchInfo"]["batchSize"] == 1
    sizes = [len(b) for b in batches(fake_lambda)]
    assert sizes[:3] == [4, 2, 2], f"the failing batch is halved: {sizes}"
    ok = [b for b in batches(fake_lambda) if not any("crash" in (r["dynamodb"].get("NewImage") or {}) for r in b)]
    assert sorted(set(sks([r for b in ok for r in b]))) == ["00", "01", "03", "04", "05"], "every other record was delivered in a batch that succeeded"


def test_events_on_the_bus_reach_the_local_sink_and_tail_prints_them(stream_stack):
    events = aws(stream_stack, "events")
    bus = stream_stack["env"]["buses"]["Bus"]["name"]
    detail = {"eventId": "e1", "memberId": "m-1", "points": 250}
    out = events.put_events(Entries=[
        {"Source": "loyalty", "DetailType": "PointsPending", "Detail": json.dumps(detail), "EventBusName": bus},
        {"Source": "loyalty", "DetailType": "TierChanged", "Detail": json.dumps({"memberId": "m-2"}), "EventBusName": bus},
    ])
    assert out["FailedEntryCount"] == 0
    tools = os.path.dirname(os.path.dirname(os.path.dirname(sys.executable)))
    env = dict(os.environ, LOYALTY_TOOLS_DIR=tools)
    tail = [os.path.join(SCRIPTS, "events"), "tail", "--env-json", stream_stack["path"], "--once"]
    r = subprocess.run(tail + ["--json", "--type", "PointsPending", "--keep"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(e["source"], e["detail-type"], e["detail"]) for e in lines] == [("loyalty", "PointsPending", detail)]
    # Kept: the next tail prints both, and takes them off the sink.
    r = subprocess.run(tail, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "PointsPending" in r.stdout and "TierChanged" in r.stdout and '"memberId":"m-2"' in r.stdout, r.stdout
    r = subprocess.run(tail, env=env, capture_output=True, text=True, timeout=30)
    assert r.stdout == "", "tail takes what it printed off the sink"


def test_the_real_template_bootstraps_with_its_stream_publisher_and_bus(moto_port, tmp_path):
    s = bootstrap(moto_port, tmp_path, os.path.join(REPO, "template.yaml"), moto_port)
    env = s["env"]
    fn = env["functions"]["EventsOutFunction"]
    assert fn["binary"] == "events-out"
    (ev,) = [e for e in fn["events"] if e["Type"] == "DynamoDB"]
    assert ev["StreamArn"] == env["streams"]["LoyaltyTable"] and ev["Table"] == env["tables"]["LoyaltyTable"]
    assert ev["OnFailure"]["QueueArn"] == env["queues"]["EventsOutDLQ"]["arn"]
    assert "ReportBatchItemFailures" in ev["FunctionResponseTypes"] and ev["BisectBatchOnFunctionError"]
    assert env["env"]["LOYALTY_EVENT_BUS"] == env["buses"]["LoyaltyEventBus"]["name"]
    assert not any(q.startswith("Webhook") for q in env["queues"]), "webhooks are off by default"
    ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    spec = ddb.describe_table(TableName=env["tables"]["LoyaltyTable"])["Table"]["StreamSpecification"]
    assert spec == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_a_table_without_the_templates_stream_is_refused(moto_port, tmp_path):
    template = os.path.join(SCRIPTS, "tests", "fixtures", "stream-template.yaml")
    bootstrap(moto_port, tmp_path, template, moto_port)
    ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    ddb.update_table(TableName="Table", StreamSpecification={"StreamEnabled": False})
    env = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    r = subprocess.run([sys.executable, os.path.join(SCRIPTS, "bootstrap.py"), "--template", template, "--ddb-port", str(moto_port),
                        "--sqs-port", str(moto_port), "--out", str(tmp_path / "again"), "--profile", "test"],
                       env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "stream" in r.stderr, r.stdout + r.stderr


def test_failed_sequence_reads_a_stream_answer_like_lambda():
    seqs = ["10", "11", "12"]
    assert le.failed_sequence({"batchItemFailures": []}, seqs) is None
    assert le.failed_sequence(None, seqs) is None
    assert le.failed_sequence({"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "11"}]}, seqs) == "11"
    assert le.failed_sequence({"batchItemFailures": [{"itemIdentifier": "99"}]}, seqs) == "invalid"
    assert le.attribute_json({"M": {"b": {"B": b"\x00\x01"}, "l": {"L": [{"N": "1"}]}}}) == {"M": {"b": {"B": "AAE="}, "l": {"L": [{"N": "1"}]}}}


def test_streams_can_be_left_out_locally(moto_port, tmp_path):
    s = bootstrap(moto_port, tmp_path, os.path.join(SCRIPTS, "tests", "fixtures", "stream-template.yaml"), moto_port,
                  {"LOYALTY_LOCAL_STREAMS": "0"})
    env = s["env"]
    (ev,) = env["functions"]["PublisherFunction"]["events"]
    assert ev["Enabled"] is False and "LOYALTY_LOCAL_STREAMS=0" in ev["Disabled"]
    assert env["streams"] == {}
    ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    assert not (ddb.describe_table(TableName=env["tables"]["Table"])["Table"].get("StreamSpecification") or {}).get("StreamEnabled")
    p = subprocess.Popen([sys.executable, os.path.join(SCRIPTS, "local_events.py"), "run", "--env-json", s["path"], "--invoke-url", "http://127.0.0.1:9"],
                         stderr=subprocess.PIPE, text=True)
    lines = [p.stderr.readline(), p.stderr.readline()]
    p.terminate()
    p.communicate(timeout=10)
    assert "not polled" in lines[0] and "nothing to do" in lines[1], lines
