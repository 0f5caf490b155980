"""Fixtures for the tests of scripts/local_events.py: a moto server on a free port with the
queues of fixtures/template.yaml (created by scripts/bootstrap.py, as the real stack does) —
or the table, stream, queues and bus of fixtures/stream-template.yaml, moto standing in for
DynamoDB Local too — and a fake Lambda Invoke endpoint standing in for the functions."""
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.dirname(HERE)
sys.path.insert(0, SCRIPTS)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_port():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield port
    server.stop()


def bootstrap(moto_port, tmp_path, template, ddb_port, extra_env=None):
    """bootstrap.py run on a template against moto (after a reset): the env.json the tools read."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{moto_port}/moto-api/reset", method="POST")).read()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", **(extra_env or {}))
    r = subprocess.run([sys.executable, os.path.join(SCRIPTS, "bootstrap.py"), "--template", template,
                        "--ddb-port", str(ddb_port), "--sqs-port", str(moto_port), "--out", str(tmp_path), "--profile", "test"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    path = tmp_path / "env.json"
    return {"path": str(path), "env": json.loads(path.read_text()), "out": r.stdout}


@pytest.fixture()
def stack(moto_port, tmp_path):
    """The fixture template's queues on moto (no table: DynamoDB is never asked).
    Each test gets fresh queues (moto is reset first)."""
    return bootstrap(moto_port, tmp_path, os.path.join(HERE, "fixtures", "template.yaml"), free_port())


@pytest.fixture()
def stream_stack(moto_port, tmp_path):
    """The stream fixture template on moto, which serves DynamoDB, its streams, SQS and
    EventBridge alike."""
    return bootstrap(moto_port, tmp_path, os.path.join(HERE, "fixtures", "stream-template.yaml"), moto_port)


class FakeLambda:
    """The Lambda Invoke API of `cargo lambda watch`, answering like a worker that fails the
    records whose body contains "poison" (batchItemFailures) and errors out (500) on a batch
    with a "crash" record. Stream batches alike: a record whose new image has an attribute
    `poison` is the one reported (its SequenceNumber), one with `crash` fails the batch.
    The first delivery of a record whose body contains "hang-once" never gets an answer (a
    function stuck past its Timeout); the first of one with "drop-once" loses its connection
    (the watcher restarting the function mid-invocation). An API Gateway payload 2.0 event is
    answered with `http_answer` (a payload 2.0 response)."""

    def __init__(self):
        self.calls = []  # (function name, payload)
        self.seen = set()  # bodies delivered before
        self.http_answer = {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                parts = self.path.strip("/").split("/")
                if len(parts) != 4 or parts[:2] != ["2015-03-31", "functions"] or parts[3] != "invocations":
                    return self.answer(404, {"title": "no such route"})
                payload = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with fake.lock:
                    fake.calls.append((parts[2], payload))
                if isinstance(payload, dict) and payload.get("version") == "2.0":
                    return self.answer(200, fake.http_answer)
                records = payload.get("Records") if isinstance(payload, dict) else None
                if records is None:
                    return self.answer(200, {"ok": True})
                with fake.lock:
                    first = {r.get("body", "") for r in records} - fake.seen
                    fake.seen |= first
                if any("hang-once" in b for b in first):
                    fake.stopping.wait(60)
                    return
                if any("drop-once" in b for b in first):
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if records and records[0].get("eventSource") == "aws:dynamodb":
                    images = [r["dynamodb"].get("NewImage") or {} for r in records]
                    if any("crash" in i for i in images):
                        return self.answer(500, {"errorType": "Crash", "errorMessage": "crashed"})
                    poisoned = [r["dynamodb"]["SequenceNumber"] for r, i in zip(records, images) if "poison" in i]
                    return self.answer(200, {"batchItemFailures": [{"itemIdentifier": s} for s in poisoned[:1]]})
                if any("crash" in r["body"] for r in records):
                    return self.answer(500, {"errorType": "Crash", "errorMessage": "crashed"})
                failures = [{"itemIdentifier": r["messageId"]} for r in records if "poison" in r["body"]]
                self.answer(200, {"batchItemFailures": failures})

            def answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def records(self):
        with self.lock:
            return [r for _, p in self.calls if isinstance(p, dict) for r in p.get("Records") or []]


@pytest.fixture()
def fake_lambda():
    fake = FakeLambda()
    yield fake
    fake.stopping.set()
    fake.server.shutdown()


@pytest.fixture()
def sqs(stack):
    import boto3

    e = stack["env"]["env"]
    return boto3.client("sqs", endpoint_url=e["AWS_ENDPOINT_URL_SQS"], region_name=e["AWS_REGION"],
                        aws_access_key_id="local", aws_secret_access_key="local")


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end to end through scripts/dev and the real functions "
                            "(test_e2e.py; LOYALTY_SKIP_E2E=1 skips them)")
