#!/usr/bin/env python3
"""Local event sources for the functions of template.yaml: what AWS does on a deployment
(SQS and DynamoDB stream event source mappings, EventBridge schedules) done against the
local stack.

  run   for every SQS event of every function: a poller that receives from the local queue
        and invokes the function with a real SQS event through cargo-lambda's Lambda Invoke
        endpoint, deleting only what succeeded (ReportBatchItemFailures honoured); for every
        DynamoDB event: a poller of the table's stream (DynamoDB Local serves it) that invokes
        the function with real stream batches, in order per shard; with --schedules (or
        LOYALTY_SCHEDULES=1) also fires every Schedule/ScheduleV2 event on its cron or rate.
  fire  invokes one function now with the payload its Schedule/ScheduleV2 event would get.
  tail  prints the events that reach the local sink of each event bus (scripts/events tail).

Everything comes from <state>/env.json, which scripts/bootstrap.py writes from template.yaml:
add a function, queue or schedule to the template, restart the stack, and it is picked up.
Run with .tools/venv/bin/python (boto3). scripts/dev runs `run`; scripts/fire runs `fire`.

What matches AWS, and what is local:
- SQS: long-polled ReceiveMessage, at most BatchSize messages per invocation (10 per
  receive), gathered for up to MaximumBatchingWindowInSeconds; records as Lambda builds them.
  A function error (the invoke endpoint answers non-200 or X-Amz-Function-Error) deletes
  nothing; with ReportBatchItemFailures only the listed messages stay, and an invalid
  response (an itemIdentifier that is empty or not in the batch) fails the whole batch.
  Each invocation is limited by the function's Timeout in the template (plus the first build
  of the functions by scripts/functions.py, up to LOYALTY_BUILD_TIMEOUT); one that times out,
  fails (also when its process died: Runtime.ExitError) or loses its connection deletes
  nothing, as on Lambda.
  Messages left on the queue reappear after the queue's visibility timeout; the local SQS
  (moto) moves a message to its dead-letter queue once it was received more than the
  RedrivePolicy's maxReceiveCount times, as SQS does. One poller per event source.
- DynamoDB streams: every shard of the stream from StartingPosition (TRIM_HORIZON: the
  oldest record; LATEST: records written after the poller started), parents before
  children, at most BatchSize records per invocation, gathered for up to
  MaximumBatchingWindowInSeconds; records as Lambda builds them (awsRegion is the stack's
  region, not DynamoDB Local's). The shard's position moves only past what was acknowledged:
  an answer naming a record (ReportBatchItemFailures, its SequenceNumber) retries from that
  record on (read again AT_SEQUENCE_NUMBER); a function error retries the whole batch, split
  in halves first when BisectBatchOnFunctionError is set (splits do not count as retries).
  A batch still failing after MaximumRetryAttempts retries (-1: until it succeeds) is halved
  down to one record too, so that only a poison record is given up: its description goes to
  the OnFailure queue (as Lambda's DDBStreamBatchInfo), and polling continues after it. AWS
  gives up the whole batch when bisecting is off; locally the records after a poison one are
  always tried again, which only ever delivers more, never less. MaximumRecordAgeInSeconds
  is not applied (a local stream is young).
- Schedule (EventBridge rule): the expression is UTC; without Input the function gets the
  "Scheduled Event" envelope, with Input exactly the Input.
- ScheduleV2 (EventBridge Scheduler): the expression is in ScheduleExpressionTimezone (UTC
  if unset); the function gets the Input with the <aws.scheduler.*> context attributes
  substituted. Scheduler sends no envelope of its own: without Input the payload is `{}`.
- fire --now T adds detail.now = T (what `runtime::job_time` reads to move the job's clock).
- Scheduled invocations are asynchronous on AWS (retried twice on error); here an error is
  logged and not retried.
"""
import argparse
import base64
import calendar
import datetime as dt
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
ACCOUNT = "123456789012"  # the account id of the local ARNs (moto's default), as bootstrap.py
# The first invocation of a function also waits for its build (scripts/dev); after that, each
# invocation is limited by the function's Timeout in the template, as Lambda limits it.
BUILD_TIMEOUT = float(os.environ.get("LOYALTY_BUILD_TIMEOUT", "900"))
LOCAL_SLACK = 1.0  # seconds for the local HTTP hops on top of the function's Timeout
STOP = threading.Event()


def log(*parts):
    print(f"{dt.datetime.now(UTC):%H:%M:%S} local-events:", *parts, file=sys.stderr, flush=True)


# --- the environment bootstrap.py wrote ------------------------------------------------
def load_env(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        sys.exit(f"local-events: {path} not found: start the stack first (scripts/stack up <profile>)")


def sqs_client(env):
    return client(env, "sqs", "AWS_ENDPOINT_URL_SQS")


def client(env, service, endpoint_var):
    import boto3
    from botocore.config import Config

    e = env["env"]
    endpoint = e.get(endpoint_var) or e["AWS_ENDPOINT_URL_DYNAMODB"]
    return boto3.client(
        service, endpoint_url=endpoint, region_name=e["AWS_REGION"],
        aws_access_key_id=e["AWS_ACCESS_KEY_ID"], aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"],
        config=Config(connect_timeout=3, read_timeout=40, retries={"max_attempts": 3}))


# --- invoking a function through cargo-lambda --------------------------------------------
class InvokeError(Exception):
    """The function failed (an error response, a timeout, a dropped connection) or could not
    be reached at all (reached=False: nothing ran)."""

    def __init__(self, message, reached=True, timed_out=False):
        super().__init__(message)
        self.reached, self.timed_out = reached, timed_out


def lambda_timeout(timeout, warm):
    """How long an invocation may take: the function's Timeout once it has answered (warm);
    before that, also the first build (LOYALTY_BUILD_TIMEOUT)."""
    return float(timeout) + LOCAL_SLACK if warm else max(float(timeout), BUILD_TIMEOUT)


class Warmth:
    """Which binaries have answered an invocation (so only their Timeout applies)."""

    def __init__(self):
        self.binaries, self.lock = set(), threading.Lock()

    def timeout(self, binary, timeout):
        with self.lock:
            return lambda_timeout(timeout, binary in self.binaries)

    def answered(self, binary):
        with self.lock:
            self.binaries.add(binary)


WARM = Warmth()


def invoke_fn(base_url, fn, payload):
    """invoke() with the function's Timeout (env.json) and the first-build allowance."""
    binary = fn["binary"]
    try:
        result = invoke(base_url, binary, payload, timeout=WARM.timeout(binary, fn.get("Timeout", 3)))
    except InvokeError as e:
        if e.reached and not e.timed_out:
            WARM.answered(binary)
        raise
    WARM.answered(binary)
    return result


def invoke(base_url, binary, payload, timeout=BUILD_TIMEOUT):
    """Synchronous Lambda Invoke (RequestResponse): the function's JSON answer.

    `cargo lambda watch` serves the Lambda Invoke API at
    POST /2015-03-31/functions/<binary>/invocations and answers 200 with the function's
    result, or 500 with the error the runtime reported. Real Lambda answers 200 with an
    X-Amz-Function-Error header instead; both count as a function error here."""
    url = f"{base_url.rstrip('/')}/2015-03-31/functions/{binary}/invocations"
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            if resp.headers.get("X-Amz-Function-Error"):
                raise InvokeError(f"{binary} failed: {body[:500]!r}")
    except urllib.error.HTTPError as e:
        raise InvokeError(f"{binary} answered {e.code}: {e.read()[:500]!r}") from None
    except TimeoutError:
        raise InvokeError(f"{binary} timed out after {timeout:g}s (the function's Timeout)", timed_out=True) from None
    except (urllib.error.URLError, ConnectionError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            raise InvokeError(f"{binary} timed out after {timeout:g}s (the function's Timeout)", timed_out=True) from None
        # Refused: nothing ran (the invoke endpoint is not up). Anything else (a reset or a
        # dropped connection: the function was stopped or restarted mid-invocation) is a
        # failed invocation, as on Lambda.
        refused = isinstance(reason, (ConnectionRefusedError, FileNotFoundError))
        raise InvokeError(f"{'cannot reach' if refused else 'invocation failed at'} {url}: {e}", reached=not refused) from None
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise InvokeError(f"{binary} answered a body that is not JSON: {body[:200]!r}") from None


def reachable(base_url):
    """Whether the invoke endpoint accepts connections (cargo lambda watch is up)."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(base_url)
    try:
        with socket.create_connection((u.hostname, u.port or 80), timeout=1):
            return True
    except OSError:
        return False


# --- SQS event sources ---------------------------------------------------------------------
def lambda_record(msg, queue_arn, region):
    """One record of an SQS Lambda event, as Lambda builds it from a received message."""
    attributes = {k: str(v) for k, v in (msg.get("Attributes") or {}).items()}
    message_attributes = {}
    for name, a in (msg.get("MessageAttributes") or {}).items():
        message_attributes[name] = {
            "stringValue": a.get("StringValue"),
            "binaryValue": base64.b64encode(a["BinaryValue"]).decode() if a.get("BinaryValue") is not None else None,
            "stringListValues": list(a.get("StringListValues") or []),
            "binaryListValues": [base64.b64encode(b).decode() for b in a.get("BinaryListValues") or []],
            "dataType": a.get("DataType"),
        }
    record = {
        "messageId": msg["MessageId"],
        "receiptHandle": msg["ReceiptHandle"],
        "body": msg.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": msg.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if msg.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = msg["MD5OfMessageAttributes"]
    return record


def failed_ids(response, batch_ids):
    """Message ids a ReportBatchItemFailures answer lists as failed; None if the answer is
    invalid, which (as on AWS) fails the whole batch."""
    if response is None:
        return set()
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids = set()
    for f in failures:
        item = f.get("itemIdentifier") if isinstance(f, dict) else None
        if not isinstance(item, str) or not item or item not in batch_ids:
            return None
        ids.add(item)
    return ids


class SqsPoller(threading.Thread):
    def __init__(self, env, fid, fn, event, invoke_url):
        super().__init__(name=f"{fid}.{event['Name']}", daemon=True)
        self.sqs = sqs_client(env)
        self.region = env["env"]["AWS_REGION"]
        self.fid, self.fn, self.binary, self.event, self.invoke_url = fid, fn, fn["binary"], event, invoke_url
        self.batch_size = max(1, int(event.get("BatchSize") or 10))
        self.window = float(event.get("MaximumBatchingWindowInSeconds") or 0)
        self.partial = "ReportBatchItemFailures" in (event.get("FunctionResponseTypes") or [])
        self.invocations = 0

    def run(self):
        log(f"{self.name}: polling {self.event['QueueUrl']} -> {self.binary} (batch {self.batch_size}, "
            f"window {self.window:g}s{', partial batch failures' if self.partial else ''})")
        while not STOP.is_set():
            try:
                if not reachable(self.invoke_url):  # never take messages the function cannot get
                    STOP.wait(1)
                    continue
                batch = self.receive()
                if batch:
                    self.deliver(batch)
            except Exception as e:  # keep polling: a bad moment of the local SQS is not fatal
                log(f"{self.name}: {type(e).__name__}: {e}")
                STOP.wait(2)

    def receive_once(self, max_messages, wait):
        resp = self.sqs.receive_message(
            QueueUrl=self.event["QueueUrl"], MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait,
            AttributeNames=["All"], MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"])
        return resp.get("Messages") or []

    def receive(self):
        """A batch as an event source mapping gathers it: long-poll for the first message,
        then keep receiving until BatchSize or the batching window ends."""
        batch = self.receive_once(min(10, self.batch_size), 20)
        if not batch:
            return []
        deadline = time.monotonic() + self.window
        while len(batch) < self.batch_size and not STOP.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = self.receive_once(min(10, self.batch_size - len(batch)), min(20, max(0, int(left))))
            if not more and left < 1:
                break
            batch.extend(more)
        return batch

    def deliver(self, batch):
        event = {"Records": [lambda_record(m, self.event["QueueArn"], self.region) for m in batch]}
        ids = {m["MessageId"] for m in batch}
        self.invocations += 1
        try:
            response = invoke_fn(self.invoke_url, self.fn, event)
        except InvokeError as e:
            log(f"{self.name}: batch of {len(batch)} failed, nothing deleted" +
                (" (they come back after the queue's visibility timeout)" if e.reached else "") + f": {e}")
            if not e.reached:  # the function was not there: let the messages come back at once
                self.release(batch)
            return
        failed = failed_ids(response, ids) if self.partial else set()
        if failed is None:
            log(f"{self.name}: invalid batchItemFailures answer {json.dumps(response)[:300]}; "
                f"the whole batch of {len(batch)} stays on the queue")
            return
        done = [m for m in batch if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            chunk = done[i:i + 10]
            resp = self.sqs.delete_message_batch(QueueUrl=self.event["QueueUrl"], Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)])
            for f in resp.get("Failed") or []:
                log(f"{self.name}: could not delete a message: {f}")
        log(f"{self.name}: batch of {len(batch)}: {len(done)} done" + (f", {len(failed)} failed (retried after "
            "the visibility timeout, then dead-lettered)" if failed else ""))

    def release(self, batch):
        try:
            self.sqs.change_message_visibility_batch(QueueUrl=self.event["QueueUrl"], Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for n, m in enumerate(batch[:10])])
        except Exception as e:
            log(f"{self.name}: could not release messages: {e}")


# --- DynamoDB stream event sources ------------------------------------------------------------
def attribute_json(value):
    """A DynamoDB attribute value as boto3 returns it, in the JSON of a Lambda event (binary
    values base64)."""
    (kind, v), = value.items()
    if kind == "B":
        return {"B": base64.b64encode(v).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(b).decode() for b in v]}
    if kind == "M":
        return {"M": {k: attribute_json(x) for k, x in v.items()}}
    if kind == "L":
        return {"L": [attribute_json(x) for x in v]}
    return {kind: v}


def stream_record(rec, stream_arn, region):
    """One record of a DynamoDB stream Lambda event, as Lambda builds it from GetRecords."""
    d = rec["dynamodb"]
    change = {}
    created = d.get("ApproximateCreationDateTime")
    if created is not None:
        change["ApproximateCreationDateTime"] = created.timestamp() if isinstance(created, dt.datetime) else float(created)
    for part in ("Keys", "NewImage", "OldImage"):
        if d.get(part) is not None:
            change[part] = {k: attribute_json(v) for k, v in d[part].items()}
    change.update(SequenceNumber=d["SequenceNumber"], SizeBytes=d.get("SizeBytes", 0), StreamViewType=d.get("StreamViewType"))
    out = {"eventID": rec["eventID"], "eventName": rec["eventName"], "eventVersion": rec.get("eventVersion", "1.1"),
           "eventSource": "aws:dynamodb", "awsRegion": region, "dynamodb": change, "eventSourceARN": stream_arn}
    if rec.get("userIdentity"):  # TTL deletions
        out["userIdentity"] = {"type": rec["userIdentity"].get("Type"), "principalId": rec["userIdentity"].get("PrincipalId")}
    return out


def failed_sequence(response, sequences):
    """The sequence number to retry from, from a ReportBatchItemFailures answer: the lowest
    one named, None when everything succeeded, or "invalid" (an identifier that is empty or
    not in the batch: the whole batch failed, as on AWS)."""
    named = failed_ids(response, set(sequences))
    if named is None:
        return "invalid"
    return min(named, key=sequences.index) if named else None


class Shard:
    def __init__(self, shard_id, parent, start):
        self.id, self.parent = shard_id, parent
        self.start = start  # where to begin while nothing is acknowledged
        self.iterator = None  # where to read next
        self.checkpoint = None  # the last sequence number acknowledged
        self.closed = False  # read to its end


class StreamPoller(threading.Thread):
    IDLE = 0.5  # seconds between reads of an idle stream (AWS polls a shard about 4 times a second)

    def __init__(self, env, fid, fn, event, invoke_url):
        super().__init__(name=f"{fid}.{event['Name']}", daemon=True)
        self.streams = client(env, "dynamodbstreams", "AWS_ENDPOINT_URL_DYNAMODB_STREAMS")
        self.sqs = sqs_client(env) if event.get("OnFailure") else None
        self.region = env["env"]["AWS_REGION"]
        self.fid, self.fn, self.binary, self.event, self.invoke_url = fid, fn, fn["binary"], event, invoke_url
        self.arn = event["StreamArn"]
        self.batch_size = max(1, int(event.get("BatchSize") or 100))
        self.window = float(event.get("MaximumBatchingWindowInSeconds") or 0)
        self.partial = "ReportBatchItemFailures" in (event.get("FunctionResponseTypes") or [])
        self.bisect = bool(event.get("BisectBatchOnFunctionError"))
        self.max_retries = int(event.get("MaximumRetryAttempts", -1))
        self.start_at = event.get("StartingPosition") or "LATEST"
        self.shards = {}
        self.invocations = 0
        self.parked = 0

    # -- shards --
    def discover(self, first):
        kwargs = {"StreamArn": self.arn}
        while True:
            d = self.streams.describe_stream(**kwargs)["StreamDescription"]
            for s in d.get("Shards") or []:
                if s["ShardId"] not in self.shards:
                    # A shard that appears after the poller started holds only new records: read it whole.
                    start = self.start_at if first else "TRIM_HORIZON"
                    self.shards[s["ShardId"]] = Shard(s["ShardId"], s.get("ParentShardId"), start)
            last = d.get("LastEvaluatedShardId")
            if not last:
                return
            kwargs["ExclusiveStartShardId"] = last

    def ready(self, shard):
        parent = self.shards.get(shard.parent) if shard.parent else None
        return not shard.closed and (parent is None or parent.closed)

    def iterator(self, shard, kind, sequence=None):
        kwargs = {"StreamArn": self.arn, "ShardId": shard.id, "ShardIteratorType": kind}
        if sequence:
            kwargs["SequenceNumber"] = sequence
        return self.streams.get_shard_iterator(**kwargs)["ShardIterator"]

    def position(self, shard):
        """An iterator at the first record not acknowledged."""
        if shard.checkpoint:
            return self.iterator(shard, "AFTER_SEQUENCE_NUMBER", shard.checkpoint)
        return self.iterator(shard, shard.start)

    # -- polling --
    def run(self):
        log(f"{self.name}: polling stream of {self.event['Table']} -> {self.binary} (batch {self.batch_size}, "
            f"from {self.start_at}{', partial batch failures' if self.partial else ''}{', bisect' if self.bisect else ''}"
            f", retries {self.max_retries})")
        first = True
        while not STOP.is_set():
            try:
                if not reachable(self.invoke_url):  # never read what the function cannot get
                    STOP.wait(1)
                    continue
                self.discover(first)
                moved = False
                for shard in list(self.shards.values()):
                    if self.ready(shard):
                        if shard.iterator is None:
                            shard.iterator = self.position(shard)
                        moved |= self.poll(shard)
                first = False
                if not moved:
                    STOP.wait(self.IDLE)
            except Exception as e:  # keep polling: a bad moment of the local stack is not fatal
                log(f"{self.name}: {type(e).__name__}: {e}")
                for shard in self.shards.values():
                    shard.iterator = None  # iterators may have expired: start again from the checkpoints
                STOP.wait(2)

    def read(self, shard, limit):
        """Up to `limit` records from the shard's iterator, gathered for the batching window."""
        records, deadline = [], time.monotonic() + self.window
        while len(records) < limit and not STOP.is_set():
            out = self.streams.get_records(ShardIterator=shard.iterator, Limit=limit - len(records))
            records.extend(out.get("Records") or [])
            shard.iterator = out.get("NextShardIterator")
            if shard.iterator is None or time.monotonic() >= deadline or (not out.get("Records") and records):
                break
            if not records:
                break  # nothing yet: poll again on the next round
            STOP.wait(min(0.2, max(0, deadline - time.monotonic())))
        return records

    def poll(self, shard):
        """Reads one batch and delivers it until it is acknowledged or given up; whether
        anything was read."""
        records = self.read(shard, self.batch_size)
        if not records:
            if shard.iterator is None:
                shard.closed = True
                log(f"{self.name}: shard {shard.id} read to its end")
            return False
        limit, retries = len(records), 0
        while not STOP.is_set():
            batch = records[:limit]
            outcome, at = self.deliver(batch)
            if outcome == "unreached":
                STOP.wait(1)
                continue
            if outcome == "done":
                shard.checkpoint = batch[-1]["dynamodb"]["SequenceNumber"]
                records = records[limit:]
                limit, retries = len(records), 0
                if not records:
                    break
                continue
            # Failed from record `at` on: what came before it is acknowledged.
            if at > 0:
                shard.checkpoint = batch[at - 1]["dynamodb"]["SequenceNumber"]
                records, retries = records[at:], 0
                limit = len(records)
            if (outcome == "error" and self.bisect) or (self.max_retries >= 0 and retries >= self.max_retries):
                if limit > 1:
                    limit = (limit + 1) // 2  # a split is no retry
                    continue
            if self.max_retries >= 0 and retries >= self.max_retries:
                self.give_up(shard, records[:1], retries + 1)
                shard.checkpoint = records[0]["dynamodb"]["SequenceNumber"]
                records = records[1:]
                limit, retries = len(records), 0
                if not records:
                    break
                continue
            retries += 1
            STOP.wait(min(0.1 * retries, 2))
            # Read again from the failed record, as the event source mapping does.
            records = self.read_at(shard, records[0]["dynamodb"]["SequenceNumber"], max(limit, len(records)))
            limit = min(limit, len(records))
        shard.iterator = None  # continue after the checkpoint
        return True

    def read_at(self, shard, sequence, limit):
        shard.iterator = self.iterator(shard, "AT_SEQUENCE_NUMBER", sequence)
        out = self.streams.get_records(ShardIterator=shard.iterator, Limit=limit)
        shard.iterator = out.get("NextShardIterator")
        return out.get("Records") or []

    def deliver(self, batch):
        """Invokes the function: ("done", None), ("failed", index of the first record to retry),
        ("error", 0) for a function error or an invalid answer, or ("unreached", 0)."""
        event = {"Records": [stream_record(r, self.arn, self.region) for r in batch]}
        sequences = [r["dynamodb"]["SequenceNumber"] for r in batch]
        self.invocations += 1
        try:
            response = invoke_fn(self.invoke_url, self.fn, event)
        except InvokeError as e:
            log(f"{self.name}: batch of {len(batch)} failed: {e}")
            return ("error", 0) if e.reached else ("unreached", 0)
        if not self.partial:
            return "done", None
        failed = failed_sequence(response, sequences)
        if failed == "invalid":
            log(f"{self.name}: invalid batchItemFailures answer {json.dumps(response)[:300]}; the whole batch is retried")
            return "error", 0
        if failed is None:
            log(f"{self.name}: batch of {len(batch)} done")
            return "done", None
        at = sequences.index(failed)
        log(f"{self.name}: batch of {len(batch)}: {at} done, retried from {failed}")
        return "failed", at

    def give_up(self, shard, records, attempts):
        """What Lambda sends the on-failure destination for a batch it gives up."""
        self.parked += len(records)
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        info = {
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{self.binary}",
                               "condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": None},
            "version": "1.0", "timestamp": iso(dt.datetime.now(UTC)),
            "DDBStreamBatchInfo": {"shardId": shard.id, "startSequenceNumber": first["SequenceNumber"],
                                   "endSequenceNumber": last["SequenceNumber"],
                                   "approximateArrivalOfFirstRecord": iso_any(first.get("ApproximateCreationDateTime")),
                                   "approximateArrivalOfLastRecord": iso_any(last.get("ApproximateCreationDateTime")),
                                   "batchSize": len(records), "streamArn": self.arn},
        }
        log(f"{self.name}: gave up {len(records)} record(s) from {first['SequenceNumber']} after {attempts} tries"
            + (", described in the OnFailure queue" if self.sqs else " (no OnFailure destination: dropped)"))
        if self.sqs:
            self.sqs.send_message(QueueUrl=self.event["OnFailure"]["QueueUrl"], MessageBody=json.dumps(info))


def iso_any(t):
    if isinstance(t, dt.datetime):
        return iso(t)
    return iso(dt.datetime.fromtimestamp(float(t), UTC)) if t is not None else None


# --- the local sinks of the event buses ---------------------------------------------------------
def sink_queues(env):
    return [(lid, bus) for lid, bus in (env.get("buses") or {}).items() if bus.get("sink")]


def cmd_tail(a):
    env = load_env(a.env_json)
    sinks = sink_queues(env)
    if not sinks:
        sys.exit("events: the template has no AWS::Events::EventBus, so there is no local sink to tail")
    sqs = sqs_client(env)
    types = set(a.type or [])
    if not a.once:
        log("tailing " + ", ".join(b["sink"]["name"] for _, b in sinks) + " (Ctrl-C stops)")
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    seen = set()  # with --keep, events stay visible: each is printed once
    while not STOP.is_set():
        new = 0
        for _, bus in sinks:
            url = bus["sink"]["url"]
            kwargs = {"VisibilityTimeout": 0} if a.keep else {}
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0 if a.once else 2, **kwargs).get("Messages") or []
            for m in msgs:
                if m["MessageId"] in seen:
                    continue
                new += 1
                seen.add(m["MessageId"]) if a.keep else None
                show(m["Body"], types, a.member, a.json)
            # Filters choose what is printed; what was read is taken off the sink all the same.
            if msgs and not a.keep:
                sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])
        if a.once and not new:
            return
        if a.keep and not new:
            STOP.wait(1)


def show(body, types, member, raw):
    try:
        event = json.loads(body)
    except ValueError:
        print(body, flush=True)
        return
    detail = event.get("detail") or {}
    if (types and event.get("detail-type") not in types) or (member and detail.get("memberId") != member):
        return
    if raw:
        print(json.dumps(event, separators=(",", ":")), flush=True)
    else:
        print(f"{event.get('time', '')} {event.get('detail-type', '?'):<20} {json.dumps(detail, separators=(',', ':'))}", flush=True)


# --- schedule expressions ------------------------------------------------------------------
MONTHS = {m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)}
DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}  # EventBridge: 1 = Sunday


class BadExpression(ValueError):
    pass


def parse_field(text, lo, hi, names=None):
    """A set of values for one cron field: *, lists, ranges, steps, names."""
    values = set()
    for part in text.split(","):
        step, stepped = 1, "/" in part
        if stepped:
            part, s = part.split("/", 1)
            if not s.isdigit() or int(s) == 0:
                raise BadExpression(f"bad step in {text!r}")
            step = int(s)
        if part in ("*", "?"):
            a, b = lo, hi
        else:
            def num(x):
                x = x.upper()
                if names and x in names:
                    return names[x]
                if not x.isdigit():
                    raise BadExpression(f"bad value {x!r} in {text!r}")
                return int(x)
            if "-" in part:
                a, b = (num(x) for x in part.split("-", 1))
            else:
                a = num(part)
                b = hi if stepped else a  # 5/15 = from 5 to the end, every 15
        if not (lo <= a <= hi and lo <= b <= hi):
            raise BadExpression(f"{text!r} is outside {lo}-{hi}")
        rng = range(a, b + 1, step) if a <= b else [*range(a, hi + 1, step)] + [*range(lo, b + 1, step)]
        values.update(rng)
    return values


class Cron:
    """An EventBridge cron(minutes hours day-of-month month day-of-week year) expression:
    *, ?, lists, ranges, steps, names; L (last day of month / last <weekday>), W (nearest
    weekday), # (nth weekday). Day-of-week 1-7 is SUN-SAT."""

    def __init__(self, body):
        f = body.split()
        if len(f) != 6:
            raise BadExpression(f"cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {body!r}")
        self.minutes = parse_field(f[0], 0, 59)
        self.hours = parse_field(f[1], 0, 23)
        self.dom, self.dow = f[2].upper(), f[4].upper()
        if (self.dom == "?") == (self.dow == "?"):
            raise BadExpression("exactly one of day-of-month and day-of-week must be ?")
        self.months = parse_field(f[3], 1, 12, MONTHS)
        self.years = parse_field(f[5], 1970, 2199)
        if self.dom not in ("?", "L", "LW") and not self.dom.endswith("W"):
            self.dom_set = parse_field(self.dom, 1, 31)
        if self.dow != "?" and "#" not in self.dow and not self.dow.endswith("L"):
            self.dow_set = parse_field(self.dow, 1, 7, DAYS)

    def day_matches(self, d):
        last = calendar.monthrange(d.year, d.month)[1]
        if self.dom != "?":
            if self.dom == "L":
                return d.day == last
            if self.dom.endswith("W"):
                target = last if self.dom == "LW" else min(int(self.dom[:-1]), last)
                t = d.replace(day=target)
                if t.weekday() == 5:  # Saturday -> Friday, or Monday if that leaves the month
                    t = t - dt.timedelta(days=1) if target > 1 else t + dt.timedelta(days=2)
                elif t.weekday() == 6:
                    t = t + dt.timedelta(days=1) if target < last else t - dt.timedelta(days=2)
                return d == t
            return d.day in self.dom_set
        eb_dow = (d.weekday() + 1) % 7 + 1  # Monday=0 -> 2, Sunday=6 -> 1
        if "#" in self.dow:
            day, nth = self.dow.split("#", 1)
            want = DAYS.get(day) or int(day)
            return eb_dow == want and (d.day - 1) // 7 + 1 == int(nth)
        if self.dow.endswith("L"):
            day = self.dow[:-1]
            want = DAYS.get(day) or int(day)
            return eb_dow == want and d.day + 7 > last
        return eb_dow in self.dow_set

    def next_after(self, after):
        """The first matching minute strictly after `after` (an aware datetime, in the
        schedule's zone)."""
        t = (after + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
        day = t.date()
        for _ in range(366 * 5):
            if day.year in self.years and day.month in self.months and self.day_matches(day):
                for h in sorted(self.hours):
                    for m in sorted(self.minutes):
                        cand = dt.datetime(day.year, day.month, day.day, h, m, tzinfo=t.tzinfo)
                        if cand >= t:
                            return cand
            day += dt.timedelta(days=1)
            t = dt.datetime(day.year, day.month, day.day, tzinfo=t.tzinfo)
        return None


class Rate:
    UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}

    def __init__(self, body):
        m = re.fullmatch(r"\s*(\d+)\s+(\w+)\s*", body)
        if not m or m.group(2) not in self.UNITS or int(m.group(1)) < 1:
            raise BadExpression(f"bad rate {body!r} (e.g. rate(5 minutes))")
        if (int(m.group(1)) == 1) != (m.group(2) in ("minute", "hour", "day")):
            raise BadExpression(f"rate({body}): use the singular unit for 1 and the plural otherwise")
        self.seconds = int(m.group(1)) * self.UNITS[m.group(2)]
        self.start = None

    def next_after(self, after):
        # A rate schedule counts from when it was created: here, from when the poller started.
        if self.start is None:
            self.start = after
        n = int((after - self.start).total_seconds() // self.seconds) + 1
        return self.start + dt.timedelta(seconds=n * self.seconds)


class At:
    def __init__(self, body):
        try:
            self.when = dt.datetime.strptime(body.strip(), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise BadExpression(f"bad at({body}) (yyyy-mm-ddThh:mm:ss)") from None

    def next_after(self, after):
        when = self.when.replace(tzinfo=after.tzinfo)
        return when if when > after else None


def parse_expression(expr):
    m = re.fullmatch(r"\s*(cron|rate|at)\((.*)\)\s*", expr or "")
    if not m:
        raise BadExpression(f"{expr!r} is not a cron(...), rate(...) or at(...) expression")
    kind, body = m.groups()
    if kind == "at":
        return At(body)
    return Cron(body) if kind == "cron" else Rate(body)


def zone_of(event):
    """Schedule (EventBridge rules) is always UTC; ScheduleV2 has its own time zone."""
    if event["Type"] == "ScheduleV2" and event.get("ScheduleExpressionTimezone"):
        return ZoneInfo(event["ScheduleExpressionTimezone"])
    return UTC


def next_fire(event, after_utc, parsed=None):
    parsed = parsed or parse_expression(event["Schedule"])
    zone = zone_of(event)
    nxt = parsed.next_after(after_utc.astimezone(zone))
    return nxt.astimezone(UTC) if nxt else None


# --- scheduled payloads --------------------------------------------------------------------
def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_payload(env, fid, event, scheduled_at, now=None):
    """What EventBridge sends the function for this event at `scheduled_at`."""
    region, stack = env["env"]["AWS_REGION"], env.get("profile", "local")
    name = f"loyalty-{stack}-{fid}{event['Name']}"
    raw = event.get("Input")
    if event["Type"] == "ScheduleV2":
        arn = f"arn:aws:scheduler:{region}:{ACCOUNT}:schedule/default/{name}"
        if raw is None:
            log(f"warning: {fid}.{event['Name']} is a ScheduleV2 event without Input: EventBridge Scheduler "
                "sends the Input alone (no envelope), so the function gets {}")
            payload = {}
        else:
            for key, value in (("schedule-arn", arn), ("scheduled-time", iso(scheduled_at)),
                               ("execution-id", uuid.uuid4().hex[:16]), ("attempt-number", "1")):
                raw = raw.replace(f"<aws.scheduler.{key}>", value)
            payload = json.loads(raw)
    elif raw is not None:
        payload = json.loads(raw)
    else:
        payload = {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": iso(now or scheduled_at), "region": region,
            "resources": [f"arn:aws:events:{region}:{ACCOUNT}:rule/{name}"], "detail": {},
        }
    if now is not None:
        if not isinstance(payload, dict) or not isinstance(payload.get("detail", {}), dict):
            raise SystemExit(f"fire: --now needs a JSON object payload with an object `detail`; {fid}.{event['Name']} has {raw}")
        payload.setdefault("detail", {})["now"] = iso(now) if isinstance(now, dt.datetime) else now
    return payload


def schedule_events(env):
    for fid, fn in env["functions"].items():
        for ev in fn["events"]:
            if ev["Type"] in ("Schedule", "ScheduleV2"):
                yield fid, fn, ev


class Scheduler(threading.Thread):
    """Fires every enabled Schedule/ScheduleV2 event on its expression."""

    def __init__(self, env, invoke_url):
        super().__init__(name="schedules", daemon=True)
        self.env, self.invoke_url = env, invoke_url
        self.entries = []
        now = dt.datetime.now(UTC)
        for fid, fn, ev in schedule_events(env):
            if not ev.get("Enabled", True):
                log(f"schedule {fid}.{ev['Name']} is disabled in the template; not fired")
                continue
            parsed = parse_expression(ev["Schedule"])
            self.entries.append({"fid": fid, "fn": fn, "ev": ev, "parsed": parsed, "next": next_fire(ev, now, parsed)})

    def run(self):
        for e in self.entries:
            log(f"schedule {e['fid']}.{e['ev']['Name']}: {e['ev']['Schedule']} ({zone_of(e['ev'])}), next {iso(e['next']) if e['next'] else 'never'}")
        while not STOP.is_set():
            due = [e for e in self.entries if e["next"]]
            if not due:
                return
            first = min(due, key=lambda e: e["next"])
            wait = (first["next"] - dt.datetime.now(UTC)).total_seconds()
            if wait > 0:
                STOP.wait(min(wait, 30))
                continue
            at = first["next"]
            first["next"] = next_fire(first["ev"], at, first["parsed"])
            threading.Thread(target=self.fire, args=(first, at), daemon=True).start()

    def fire(self, e, at):
        name = f"{e['fid']}.{e['ev']['Name']}"
        try:
            result = invoke_fn(self.invoke_url, e["fn"], schedule_payload(self.env, e["fid"], e["ev"], at))
            log(f"schedule {name} fired for {iso(at)}: {json.dumps(result)[:300]}")
        except (InvokeError, ValueError) as err:
            log(f"schedule {name} fired for {iso(at)} and failed: {err}")


# --- commands ------------------------------------------------------------------------------
def default_env_json():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(repo, ".local", os.environ.get("LOYALTY_STACK", "dev"), "env.json")


def default_invoke_url():
    """cargo lambda watch's invoke endpoint: LOYALTY_INVOKE_URL, else the one the running
    scripts/dev of the profile wrote to .local/<profile>/invoke-url, else port
    LOYALTY_INVOKE_PORT (default 9001)."""
    if os.environ.get("LOYALTY_INVOKE_URL"):
        return os.environ["LOYALTY_INVOKE_URL"]
    try:
        with open(os.path.join(os.path.dirname(default_env_json()), "invoke-url")) as f:
            return f.read().strip()
    except OSError:
        return f"http://127.0.0.1:{os.environ.get('LOYALTY_INVOKE_PORT', '9001')}"


def cmd_run(a):
    env = load_env(a.env_json)
    threads = []
    for fid, fn in env["functions"].items():
        for ev in fn["events"]:
            if ev["Type"] not in ("SQS", "DynamoDB"):
                continue
            if not ev.get("Enabled", True):
                log(f"{fid}.{ev['Name']}: {ev['Type']} event disabled ({ev.get('Disabled') or 'in the template'}); not polled")
                continue
            threads.append((SqsPoller if ev["Type"] == "SQS" else StreamPoller)(env, fid, fn, ev, a.invoke_url))
    schedules = a.schedules or os.environ.get("LOYALTY_SCHEDULES") == "1"
    if schedules:
        threads.append(Scheduler(env, a.invoke_url))
    elif any(True for _ in schedule_events(env)):
        log("schedules are not fired on their cron (LOYALTY_SCHEDULES=1 does); fire one now with scripts/fire")
    if not threads:
        log("nothing to do: the template has no SQS or DynamoDB event" + ("" if schedules else " (and schedules are off)"))
    for t in threads:
        t.start()
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    signal.signal(signal.SIGINT, lambda *_: STOP.set())
    while not STOP.is_set() and (not threads or any(t.is_alive() for t in threads)):
        STOP.wait(0.5)
    log("stopped")


def find_schedule(env, who, name):
    matches = [(fid, fn, ev) for fid, fn, ev in schedule_events(env) if who in (fid, fn["binary"])]
    if not matches:
        known = sorted({f"{fid} ({fn['binary']}): {ev['Name']}" for fid, fn, ev in schedule_events(env)})
        sys.exit(f"fire: {who!r} has no Schedule/ScheduleV2 event. Schedules:\n  " + ("\n  ".join(known) or "(none)"))
    if name:
        matches = [m for m in matches if m[2]["Name"] == name]
        if not matches:
            sys.exit(f"fire: {who} has no schedule event named {name!r}")
    elif len(matches) > 1:
        sys.exit(f"fire: {who} has several schedule events; name one: " + ", ".join(m[2]["Name"] for m in matches))
    return matches[0]


def cmd_fire(a):
    env = load_env(a.env_json)
    fid, fn, ev = find_schedule(env, a.function, a.event)
    now = None
    if a.now:
        try:
            now = dt.datetime.fromisoformat(a.now.replace("Z", "+00:00"))
        except ValueError:
            sys.exit(f"fire: --now {a.now!r} is not an RFC 3339 time (e.g. 2026-12-18T00:00:00+08:00)")
        if now.tzinfo is None:
            sys.exit("fire: --now needs a UTC offset (Z or +08:00)")
    payload = schedule_payload(env, fid, ev, dt.datetime.now(UTC), now)
    if a.print:
        print(json.dumps(payload, indent=2))
        return
    log(f"firing {fid}.{ev['Name']} -> {fn['binary']}: {json.dumps(payload)}")
    try:
        # Run by hand: the function may not be built yet, so the build allowance applies.
        result = invoke(a.invoke_url, fn["binary"], payload, timeout=lambda_timeout(fn.get("Timeout", 3), False))
    except InvokeError as e:
        sys.exit(f"fire: {e}")
    print(json.dumps(result, indent=2))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env-json", default=default_env_json(), help="default .local/$LOYALTY_STACK/env.json")
    common.add_argument("--invoke-url", default=default_invoke_url(),
                        help="cargo lambda watch's invoke endpoint (default: the one scripts/dev of the profile wrote "
                        "to .local/<profile>/invoke-url, else http://127.0.0.1:$LOYALTY_INVOKE_PORT, port 9001)")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", parents=[common], help="poll every SQS and DynamoDB stream event source; with --schedules fire schedules on their cron")
    r.add_argument("--schedules", action="store_true", help="also fire schedules (same as LOYALTY_SCHEDULES=1)")
    f = sub.add_parser("fire", parents=[common], help="invoke a function now with its schedule's payload")
    f.add_argument("function", help="the function's logical id (e.g. SignupFunction) or binary name")
    f.add_argument("event", nargs="?", help="the event's name, when the function has several schedules")
    f.add_argument("--now", help="RFC 3339 instant the job runs as (sent as detail.now)")
    f.add_argument("--print", action="store_true", help="print the payload instead of invoking")
    t = sub.add_parser("tail", parents=[common], help="print the events reaching the local sink of every event bus")
    t.add_argument("--type", action="append", help="only this detail type (repeatable)")
    t.add_argument("--member", help="only events of this member id")
    t.add_argument("--json", action="store_true", help="print each EventBridge event whole, one JSON per line")
    t.add_argument("--once", action="store_true", help="print what is there and stop")
    t.add_argument("--keep", action="store_true", help="leave the events in the sink (they come back after its visibility timeout)")
    a = ap.parse_args(argv)
    {"run": cmd_run, "fire": cmd_fire, "tail": cmd_tail}[a.command](a)


if __name__ == "__main__":
    main()
