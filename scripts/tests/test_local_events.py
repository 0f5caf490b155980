"""The local event sources (scripts/local_events.py, scripts/fire) against a real local SQS
(moto) and a fake Lambda Invoke endpoint: no Rust function is needed."""
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

import local_events as le

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UTC = dt.timezone.utc


def queue(stack, lid):
    return stack["env"]["queues"][lid]


def counts(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def until(what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = what()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what.__doc__ or what}")


@pytest.fixture()
def poller(stack, fake_lambda):
    """`local_events.py run` as scripts/dev starts it, pointed at the fake functions."""
    procs = []

    def start(*extra):
        p = subprocess.Popen([sys.executable, os.path.join(SCRIPTS, "local_events.py"), "run", "--env-json", stack["path"],
                              "--invoke-url", fake_lambda.url, *extra],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
        print(out)  # shown by pytest when a test fails


def test_poison_message_reaches_the_dlq_and_its_good_batch_mates_are_not_redelivered(stack, sqs, fake_lambda, poller):
    work, dlq = queue(stack, "WorkQueue"), queue(stack, "WorkDeadLetterQueue")
    bodies = ['{"n": 1}', '{"n": 2, "poison": true}', '{"n": 3}', '{"n": 4}']
    sent = sqs.send_message_batch(QueueUrl=work["url"], Entries=[
        {"Id": str(i), "MessageBody": b, "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "test"}}}
        for i, b in enumerate(bodies)])
    assert len(sent["Successful"]) == 4
    poller()

    def dead_lettered():
        """the poison message in the DLQ"""
        return sqs.receive_message(QueueUrl=dlq["url"], MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages")

    dead = until(dead_lettered)
    assert [m["Body"] for m in dead] == [bodies[1]]
    # Longer than the visibility timeout (1 s) and the batching window: a good message that
    # was wrongly kept would be delivered again by now.
    time.sleep(3)
    records = fake_lambda.records()
    for b in bodies:
        seen = [r for r in records if r["body"] == b]
        want = 2 if "poison" in b else 1  # maxReceiveCount 2: received twice, then moved
        assert len(seen) == want, f"{b} delivered {len(seen)} times, want {want}"
    assert counts(sqs, work["url"]) == (0, 0), "the work queue is empty"

    # The first invocation got the whole batch, shaped as Lambda shapes SQS records.
    first = fake_lambda.calls[0]
    assert first[0] == "worker"
    batch = first[1]["Records"]
    assert sorted(r["body"] for r in batch) == sorted(bodies)
    for r in batch:
        assert r["eventSource"] == "aws:sqs"
        assert r["eventSourceARN"] == work["arn"]
        assert r["awsRegion"] == stack["env"]["env"]["AWS_REGION"]
        assert r["md5OfBody"] == hashlib.md5(r["body"].encode()).hexdigest()
        assert r["attributes"]["ApproximateReceiveCount"] == "1"
        assert {"SentTimestamp", "ApproximateFirstReceiveTimestamp", "SenderId"} <= set(r["attributes"])
        assert r["messageAttributes"]["kind"] == {"stringValue": "test", "binaryValue": None, "stringListValues": [],
                                                  "binaryListValues": [], "dataType": "String"}
        assert r["receiptHandle"] and r["messageId"]
    retry = [r for r in records if "poison" in r["body"]][1]
    assert retry["attributes"]["ApproximateReceiveCount"] == "2"


def test_a_function_error_deletes_nothing(stack, sqs, fake_lambda, poller):
    work, dlq = queue(stack, "WorkQueue"), queue(stack, "WorkDeadLetterQueue")
    sqs.send_message_batch(QueueUrl=work["url"], Entries=[
        {"Id": "1", "MessageBody": "good"}, {"Id": "2", "MessageBody": "crash"}])
    poller()

    def both_dead_lettered():
        """both messages of the crashed batch in the DLQ"""
        got = sqs.receive_message(QueueUrl=dlq["url"], MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages") or []
        both_dead_lettered.seen += [m["Body"] for m in got]
        return sorted(both_dead_lettered.seen) == ["crash", "good"]

    both_dead_lettered.seen = []
    until(both_dead_lettered)
    # Each batch failed whole: both were delivered maxReceiveCount times.
    bodies = [r["body"] for r in fake_lambda.records()]
    assert bodies.count("good") == 2 and bodies.count("crash") == 2


def test_failed_ids_reads_batch_item_failures_like_lambda():
    ids = {"a", "b"}
    assert le.failed_ids({"batchItemFailures": []}, ids) == set()
    assert le.failed_ids(None, ids) == set()
    assert le.failed_ids({}, ids) == set()
    assert le.failed_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, ids) == {"b"}
    # Invalid answers fail the whole batch.
    assert le.failed_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) is None
    assert le.failed_ids({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, ids) is None
    assert le.failed_ids({"batchItemFailures": [{}]}, ids) is None
    assert le.failed_ids([1], ids) is None


def fire(stack, fake_lambda, *args):
    env = dict(os.environ, LOYALTY_TOOLS_DIR=os.path.dirname(os.path.dirname(os.path.dirname(sys.executable))))
    return subprocess.run([os.path.join(SCRIPTS, "fire"), "--env-json", stack["path"], "--invoke-url", fake_lambda.url, *args],
                          env=env, capture_output=True, text=True)


def test_fire_sends_the_template_input(stack, fake_lambda):
    r = fire(stack, fake_lambda, "WorkerFunction", "Nightly")
    assert r.returncode == 0, r.stderr
    name, payload = fake_lambda.calls[-1]
    assert name == "worker"
    assert payload == {"detail-type": "Scheduled Event", "source": "loyalty.schedule", "detail": {"job": "nightly"}}

    r = fire(stack, fake_lambda, "worker", "Nightly", "--now", "2026-12-18T00:00:00+08:00")
    assert r.returncode == 0, r.stderr
    assert fake_lambda.calls[-1][1]["detail"] == {"job": "nightly", "now": "2026-12-17T16:00:00Z"}


def test_fire_without_input_sends_the_scheduled_event_envelope(stack, fake_lambda):
    r = fire(stack, fake_lambda, "WorkerFunction", "Hourly", "--now", "2026-11-27T10:00:00Z")
    assert r.returncode == 0, r.stderr
    p = fake_lambda.calls[-1][1]
    assert p["detail-type"] == "Scheduled Event" and p["source"] == "aws.events" and p["version"] == "0"
    assert p["detail"] == {"now": "2026-11-27T10:00:00Z"}
    assert p["time"] == "2026-11-27T10:00:00Z"
    assert p["resources"][0].startswith("arn:aws:events:us-east-1:123456789012:rule/")


def test_fire_substitutes_scheduler_context_attributes(stack, fake_lambda):
    r = fire(stack, fake_lambda, "WorkerFunction", "MemberDay", "--print")
    assert r.returncode == 0, r.stderr
    assert fake_lambda.calls == [], "--print invokes nothing"
    p = json.loads(r.stdout)
    assert p["detail"] == {"job": "member-day"}
    dt.datetime.strptime(p["time"], "%Y-%m-%dT%H:%M:%SZ")


def test_fire_names_the_choices_when_ambiguous_or_unknown(stack, fake_lambda):
    r = fire(stack, fake_lambda, "WorkerFunction")
    assert r.returncode != 0 and "Nightly" in r.stderr and "MemberDay" in r.stderr
    r = fire(stack, fake_lambda, "NoSuchFunction")
    assert r.returncode != 0 and "WorkerFunction (worker): Nightly" in r.stderr
    assert fake_lambda.calls == []


def test_scheduled_mode_fires_on_the_expression(stack, fake_lambda, poller, monkeypatch):
    # A rate of one minute is the shortest EventBridge allows; check the schedule thread's
    # plan rather than waiting for it, and that it fires a due entry with the right payload.
    s = le.Scheduler(stack["env"], fake_lambda.url)
    names = {e["ev"]["Name"]: e for e in s.entries}
    assert set(names) == {"Nightly", "Hourly", "MemberDay"}
    now = dt.datetime.now(UTC)
    assert names["Nightly"]["next"].hour == 18 and names["Nightly"]["next"] > now
    md = names["MemberDay"]["next"].astimezone(le.ZoneInfo("Asia/Shanghai"))
    assert (md.day, md.hour, md.minute) == (18, 0, 0)
    s.fire(names["MemberDay"], dt.datetime(2026, 12, 17, 16, 0, tzinfo=UTC))
    assert fake_lambda.calls[-1][1]["time"] == "2026-12-17T16:00:00Z"


def at(s):
    return dt.datetime.fromisoformat(s).astimezone(UTC)


@pytest.mark.parametrize("expr,tz,after,want", [
    ("cron(0 18 * * ? *)", None, "2026-11-27T18:00:00+00:00", "2026-11-28T18:00:00+00:00"),
    ("cron(0 0 18 * ? *)", "Asia/Shanghai", "2026-11-27T00:00:00+00:00", "2026-12-17T16:00:00+00:00"),
    ("cron(15 10 ? * 6L 2026-2027)", None, "2026-11-01T00:00:00+00:00", "2026-11-27T10:15:00+00:00"),
    ("cron(0 9 ? * MON-FRI *)", None, "2026-11-27T09:00:00+00:00", "2026-11-30T09:00:00+00:00"),
    ("cron(0 9 ? * 1 *)", None, "2026-11-27T00:00:00+00:00", "2026-11-29T09:00:00+00:00"),  # 1 = Sunday
    ("cron(0 0 L * ? *)", None, "2027-02-01T00:00:00+00:00", "2027-02-28T00:00:00+00:00"),
    ("cron(0 12 ? * 2#1 *)", None, "2026-11-27T00:00:00+00:00", "2026-12-07T12:00:00+00:00"),
    ("cron(0/20 * * * ? *)", None, "2026-11-27T10:41:00+00:00", "2026-11-27T11:00:00+00:00"),
    ("cron(0 0 29 2 ? *)", None, "2026-03-01T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
])
def test_cron_next_fire(expr, tz, after, want):
    ev = {"Type": "ScheduleV2" if tz else "Schedule", "Schedule": expr, "ScheduleExpressionTimezone": tz}
    assert le.next_fire(ev, at(after)) == at(want)


def test_rate_counts_from_the_start():
    ev = {"Type": "Schedule", "Schedule": "rate(5 minutes)"}
    r = le.parse_expression(ev["Schedule"])
    t0 = at("2026-11-27T10:00:30+00:00")
    assert le.next_fire(ev, t0, r) == at("2026-11-27T10:05:30+00:00")
    assert le.next_fire(ev, at("2026-11-27T10:05:30+00:00"), r) == at("2026-11-27T10:10:30+00:00")


@pytest.mark.parametrize("expr", ["cron(0 18 * * *)", "cron(0 18 * * 1 *)", "rate(1 minutes)", "rate(5 minute)",
                                  "cron(61 * * * ? *)", "every day"])
def test_bad_expressions_are_refused(expr):
    with pytest.raises(le.BadExpression):
        le.parse_expression(expr)


def test_the_schedule_thread_fires_a_due_schedule(stack, fake_lambda):
    s = le.Scheduler(stack["env"], fake_lambda.url)
    due = dt.datetime.now(UTC) + dt.timedelta(seconds=1)
    for e in s.entries:
        e["next"] = due if e["ev"]["Name"] == "Nightly" else None
    s.start()
    try:
        until(lambda: fake_lambda.calls, timeout=10)
        assert fake_lambda.calls[0] == ("worker", {"detail-type": "Scheduled Event", "source": "loyalty.schedule", "detail": {"job": "nightly"}})
        nightly = next(e for e in s.entries if e["ev"]["Name"] == "Nightly")
        assert nightly["next"] > due and (nightly["next"].hour, nightly["next"].minute) == (18, 0), "planned again on its cron"
    finally:
        le.STOP.set()
        s.join(timeout=5)
        le.STOP.clear()


def test_a_secret_gets_a_local_file_stand_in_that_survives_a_restart(stack, moto_port):
    """A Secrets Manager secret named as <NAME>_ARN is <NAME>_FILE locally: no call to
    Secrets Manager, and the value stays the same when the stack is bootstrapped again."""
    env = stack["env"]
    path = env["env"]["FIXTURE_KEY_FILE"]
    assert "FIXTURE_KEY_ARN" not in env["env"]
    assert env["functions"]["WorkerFunction"]["env"]["FIXTURE_KEY_FILE"] == path
    value = open(path).read()
    assert len(value) == 40 and value.isalnum()
    assert os.stat(path).st_mode & 0o077 == 0, "readable by its owner only"
    out = os.path.dirname(stack["path"])
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "bootstrap.py"), "--template",
                    os.path.join(SCRIPTS, "tests", "fixtures", "template.yaml"), "--ddb-port", "1",
                    "--sqs-port", str(moto_port), "--out", out, "--profile", "test"],
                   check=True, env=dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local"),
                   capture_output=True)
    assert open(path).read() == value


@pytest.mark.parametrize("body", ["hang-once", "drop-once"])
def test_an_invocation_past_the_timeout_or_cut_off_leaves_its_messages_to_the_visibility_timeout(stack, sqs, fake_lambda, poller, body):
    """A function stuck past its Timeout (the fixture's worker has Lambda's default, 3 s), or
    restarted by the watcher mid-invocation: the poller fails the invocation, deletes nothing,
    and the message comes back after the queue's visibility timeout (1 s) and is done; the
    queue never waits for the stuck invocation (the fake holds it for 60 s)."""
    work, dlq = queue(stack, "WorkQueue"), queue(stack, "WorkDeadLetterQueue")
    assert stack["env"]["functions"]["WorkerFunction"]["Timeout"] == 3
    # The first build is not in question here: no allowance on top of the Timeout.
    os.environ["LOYALTY_BUILD_TIMEOUT"] = "0"
    try:
        proc = poller()
    finally:
        del os.environ["LOYALTY_BUILD_TIMEOUT"]
    started = time.monotonic()
    sqs.send_message(QueueUrl=work["url"], MessageBody=f'{{"{body}": true}}')

    def delivered_twice():
        """the message delivered again after the failed invocation"""
        return [r for r in fake_lambda.records() if body in r["body"]][1:]

    again = until(delivered_twice, timeout=20)
    took = time.monotonic() - started
    assert took < 3 + 1 + 1 + 5, f"redelivered after {took:.1f}s: the poller waited for the stuck invocation"
    assert again[0]["attributes"]["ApproximateReceiveCount"] == "2"
    until(lambda: counts(sqs, work["url"]) == (0, 0), timeout=10)
    assert not sqs.receive_message(QueueUrl=dlq["url"], MaxNumberOfMessages=10).get("Messages")
    assert proc.poll() is None
