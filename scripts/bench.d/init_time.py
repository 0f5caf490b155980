"""Measures a Lambda binary's init: process start until it first asks the Runtime API for
work (that is when Lambda considers it ready). A stand-in Runtime API on loopback records the
moment; the binary's DynamoDB/SQS endpoints point at a closed port, so any network call at
init would show up as a delay or a crash.

usage: init_time.py BINARY RUNS [NAME=VALUE...]  -> prints JSON {median_ms, p90_ms, min_ms, runs}
With INIT_FLOOR=<binary> (tests/src/bin/init_floor.rs: a process that only polls the Runtime API)
each run of BINARY is paired with a run of the floor, and the JSON adds floor_median_ms and
over_floor_ms (the median of the paired differences): on a busy machine process start and
the harness vary by tens of milliseconds, and the pairing takes them out.

The coupon-code key is given as a plain COUPON_CODE_SECRET (loyalty::secrets' local path, no
network); NAME=VALUE arguments override the environment, e.g. COUPON_CODE_SECRET_ARN=... with
AWS_ENDPOINT_URL_SECRETS_MANAGER=... to time the deployed path's one GetSecretValue.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

binary, runs = sys.argv[1], int(sys.argv[2])
overrides = dict(a.split("=", 1) for a in sys.argv[3:])
ready = threading.Event()


class RuntimeApi(BaseHTTPRequestHandler):
    def do_GET(self):  # /2018-06-01/runtime/invocation/next
        ready.set()
        time.sleep(0.2)  # hold the poll; the process is killed meanwhile
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
threading.Thread(target=server.serve_forever, daemon=True).start()
closed = f"http://127.0.0.1:{free_port()}"
env = dict(
    os.environ,
    AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
    AWS_LAMBDA_FUNCTION_NAME="bench",
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
    AWS_LAMBDA_FUNCTION_VERSION="1",
    AWS_LAMBDA_LOG_STREAM_NAME="bench",
    AWS_LAMBDA_LOG_GROUP_NAME="bench",
    AWS_REGION="us-east-1",
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_EC2_METADATA_DISABLED="true",
    AWS_ENDPOINT_URL_DYNAMODB=closed,
    AWS_ENDPOINT_URL_SQS=closed,
    AWS_ENDPOINT_URL_SECRETS_MANAGER=closed,
    AWS_ENDPOINT_URL_EVENTBRIDGE=closed,
    LOYALTY_EVENT_BUS="bench-bus",
    LOYALTY_TABLE="LoyaltyTable",
    COUPON_CODE_SECRET="bench-secret-bench-secret-bench-secret-00",
    CONTACT_KEY="bench-contact-key-bench-contact-key-0000",
    RUST_LOG="warn",
)
for k in ("CAMPAIGN_QUEUE_URL", "ORDER_EVENTS_QUEUE_URL", "TIER_SHARD_QUEUE_URL", "CONTINUATION_QUEUE_URL"):
    env.setdefault(k, closed + "/000000000000/bench")
# The stack's env (sourced by scripts/bench) names a file stand-in; the plain value is measured.
for k in ("COUPON_CODE_SECRET_ARN", "COUPON_CODE_SECRET_FILE"):
    env.pop(k, None)
env.update(overrides)


def start_to_ready(program):
    ready.clear()
    t0 = time.perf_counter()
    p = subprocess.Popen([program], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ok = ready.wait(10)
    t1 = time.perf_counter()
    p.kill()
    _, err = p.communicate()
    if not ok:
        sys.exit(f"{program} never became ready: {err.decode(errors='replace')[-500:]}")
    return (t1 - t0) * 1000


floor_binary = os.environ.get("INIT_FLOOR")
samples, floors, over = [], [], []
for _ in range(runs):
    samples.append(start_to_ready(binary))
    if floor_binary:
        floors.append(start_to_ready(floor_binary))
        over.append(samples[-1] - floors[-1])
samples.sort()
result = {
    "median_ms": round(statistics.median(samples), 2),
    "p90_ms": round(samples[int(len(samples) * 0.9) - 1], 2),
    "min_ms": round(samples[0], 2),
    "runs": runs,
}
if floor_binary:
    result["floor_median_ms"] = round(statistics.median(floors), 2)
    result["over_floor_ms"] = round(statistics.median(over), 2)
print(json.dumps(result))
server.shutdown()
