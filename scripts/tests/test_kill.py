"""A function process killed mid-invocation while a campaign dispatches, end to end: scripts/dev
(devstack.py, the e2e profile on free ports) with the real functions, queues and pollers; the
members seeded through the one API; a member-day run started by its schedule (scripts/fire).
The member-day process is killed with SIGKILL while it dispatches the run (one dispatch
message, paging the segment into many campaign batches), then the coupon-issue process while
it issues a batch. scripts/functions.py must start each again, as Lambda starts a new
execution environment; the invocation that died fails (Runtime.ExitError), its message comes
back after its queue's visibility timeout, and the run drains within the dispatch queue's
visibility timeout plus a minute of the first kill, with counts that add up and exactly one
coupon per member.

The visibility timeouts are the template's, scaled down so that the test takes about two
minutes: the stack runs a copy of template.yaml in which CampaignDispatchQueue's
VisibilityTimeout is LOYALTY_KILL_VISIBILITY seconds (default 60; 720 in the template) and
CampaignQueue's is scaled by the same factor (360 -> 30); nothing else differs.
LOYALTY_KILL_VISIBILITY=template runs the template as it is (about 13 minutes).
LOYALTY_KILL_MEMBERS (default 300) members are seeded. LOYALTY_SKIP_E2E=1 skips the test.
"""
import datetime as dt
import json
import os
import re
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

import demo
import devstack
import local_events
from devstack import tail

pytestmark = pytest.mark.e2e

REPO = demo.REPO
VISIBILITY = os.environ.get("LOYALTY_KILL_VISIBILITY", "60")
MEMBERS = int(os.environ.get("LOYALTY_KILL_MEMBERS", "300"))


def visibility_timeout(text, queue):
    m = re.search(rf"^  {queue}:\n(?:    .*\n|\s*\n)*?      VisibilityTimeout: (\d+)$", text, re.M)
    assert m, f"{queue} has no VisibilityTimeout in the template"
    return m


def scaled_template(text, dispatch_seconds):
    """template.yaml with CampaignDispatchQueue's visibility timeout set to `dispatch_seconds`
    and CampaignQueue's scaled by the same factor."""
    dispatch = int(visibility_timeout(text, "CampaignDispatchQueue").group(1))
    for queue in ("CampaignDispatchQueue", "CampaignQueue"):
        m = visibility_timeout(text, queue)
        seconds = max(1, round(int(m.group(1)) * dispatch_seconds / dispatch))
        text = text[:m.start(1)] + str(seconds) + text[m.end(1):]
    return text


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    with open(os.path.join(REPO, "template.yaml")) as f:
        text = f.read()
    extra = {}
    if VISIBILITY != "template":
        text = scaled_template(text, int(VISIBILITY))
        path = tmp_path_factory.mktemp("kill") / "template.yaml"
        path.write_text(text)
        extra["LOYALTY_TEMPLATE"] = str(path)
    with devstack.running(tmp_path_factory, extra) as d:
        d["visibility"] = {q: int(visibility_timeout(text, q).group(1)) for q in ("CampaignDispatchQueue", "CampaignQueue")}
        yield d


def function_status(dev):
    """scripts/functions.py's view: binary -> {pid, starts, invocation}."""
    with open(os.path.join(dev["state"], "functions", "status-url")) as f:
        url = f.read().strip()
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def log_text(dev):
    with open(dev["log"], errors="replace") as f:
        return f.read()


def kill_mid_invocation(dev, binary, within, busy_for=0.0):
    """SIGKILL `binary`'s process once it has been handling one invocation for `busy_for`
    seconds, and wait until scripts/functions.py failed that invocation (Runtime.ExitError): the
    kill hit it mid-invocation. Tried again (up to 3 times) when the invocation ended just
    before the kill. Returns (killed pid, request id)."""
    deadline = time.monotonic() + within
    seen = None  # (request id, since)
    for _ in range(3):
        while True:
            if time.monotonic() > deadline:
                pytest.fail(f"{binary} handled no invocation to kill within {within}s\n{tail(dev['log'])}")
            st = function_status(dev)[binary]
            rid = st["invocation"]
            if rid and st["pid"]:
                if seen is None or seen[0] != rid:
                    seen = (rid, time.monotonic())
                if time.monotonic() - seen[1] >= busy_for:
                    break
            time.sleep(0.01)
        pid = st["pid"]
        os.kill(pid, signal.SIGKILL)
        demo.log(f"test: killed {binary} (pid {pid}) during invocation {rid}")
        failed = f"{binary}: invocation {rid} failed: Runtime.ExitError (signal: killed)"
        until = time.monotonic() + 5
        while time.monotonic() < until:
            if failed in log_text(dev):
                return pid, rid
            time.sleep(0.1)
        seen = None
    pytest.fail(f"three kills of {binary} found no invocation in flight\n{tail(dev['log'])}")


def test_a_function_killed_mid_invocation_comes_back_and_the_run_drains_within_the_visibility_timeout(dev):
    api, env = dev["api"], local_events.load_env(dev["api"].env_json)
    tag = f"kill-{int(time.time())}"
    members = [f"{tag}-m{i:03d}" for i in range(MEMBERS)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda m: api.expect({201}, "POST", "/members", sub=m, body={
            "email": f"{m}@example.com", "name": "Kill Test", "marketingConsent": True}), members))
    member_day = demo.last_member_day(dt.datetime.now(dt.timezone.utc))
    job = demo.fire(dev["port"], "MemberDayFunction", "MemberDay", member_day.isoformat(), env=dev["env"])
    started = {s["campaignId"]: s for s in job["started"]}
    assert "member-day" in started and started["member-day"]["created"], job
    run_id, grant = started["member-day"]["runId"], started["member-day"]["grant"]
    before = function_status(dev)

    # The dispatcher a second into its dispatch (some batches sent, the cursor part way), then
    # the coupon worker during a batch.
    md_pid, md_request = kill_mid_invocation(dev, "member-day", within=30, busy_for=1.0)
    killed_at = time.monotonic()
    ci_pid, ci_request = kill_mid_invocation(dev, "coupon-issue", within=dev["visibility"]["CampaignDispatchQueue"] + 30)

    bound = dev["visibility"]["CampaignDispatchQueue"] + 60
    try:
        drained = demo.wait_drained(api, {"member-day": run_id}, bound - (time.monotonic() - killed_at))["member-day"]
    except demo.SetupError as e:
        pytest.fail(f"not drained within the dispatch queue's visibility timeout + 60 s ({bound}s) of the kill: {e}\n"
                    f"{json.dumps(function_status(dev))}\n{tail(dev['log'], 80)}")
    took = time.monotonic() - killed_at
    demo.log(f"test: drained {took:.0f}s after the first kill (bound {bound}s): {json.dumps(drained)}")
    assert drained["state"] == "drained" and drained["dispatchDone"], drained
    assert drained["targeted"] == drained["issued"] + drained["skipped"] + drained["failed"], drained
    # A fresh stack: every member is in the built-in member day's segment, and gets its coupon.
    assert drained["targeted"] == MEMBERS and drained["issued"] == MEMBERS and drained["failed"] == 0, drained

    with ThreadPoolExecutor(8) as pool:
        held = dict(zip(members, pool.map(lambda m: [c["grant"] for c in api.expect(
            {200}, "GET", f"/members/{m}/coupons", sub=m)["coupons"]].count(grant), members)))
    assert {m: n for m, n in held.items() if n != 1} == {}, f"members without exactly one {grant} coupon"

    # Each killed process was replaced by a new one, which served what came after.
    after = function_status(dev)
    for binary, pid in (("member-day", md_pid), ("coupon-issue", ci_pid)):
        assert after[binary]["pid"] not in (None, pid), (binary, pid, after[binary])
        assert after[binary]["starts"] > before[binary]["starts"], (binary, before[binary], after[binary])
    # The pollers saw the failed invocations (nothing deleted) and the messages came back.
    log = log_text(dev)
    assert "MemberDayFunction.Dispatch: batch of 1 failed, nothing deleted" in log, tail(dev["log"], 80)
    assert re.search(r"CouponIssueFunction\.CampaignBatches: batch of \d+ failed, nothing deleted", log), tail(dev["log"], 80)
    # Nothing went to a dead-letter queue.
    sqs = local_events.sqs_client(env)
    for dlq in ("CampaignDispatchDLQ", "CampaignDLQ"):
        attrs = sqs.get_queue_attributes(QueueUrl=env["queues"][dlq]["url"], AttributeNames=["All"])["Attributes"]
        assert int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0, (dlq, attrs)
