"""End to end, through the real functions: `scripts/dev` on its own stack profile (e2e, state
in .local/e2e/) on free ports (or LOYALTY_E2E_DDB_PORT / LOYALTY_E2E_SQS_PORT /
LOYALTY_E2E_HTTP_PORT / LOYALTY_E2E_INVOKE_PORT), then the schedule trigger (scripts/fire),
the local queues and pollers (scripts/local_events.py) and the one public HTTP API
(scripts/gateway.py) with real member tokens and SigV4 signatures, as a user would run them.

scripts/dev builds the functions first (scripts/functions.py, debug, as built for AWS): the
fixture (devstack.py) waits up to LOYALTY_E2E_BUILD_TIMEOUT seconds (default 900) for that.
Everything it started is stopped afterwards, also when a test fails. LOYALTY_SKIP_E2E=1 skips
these tests.
"""
import datetime as dt
import json
import os
import re
import subprocess
import time

import pytest

import demo
import devstack
import local_events
from devstack import tail

pytestmark = pytest.mark.e2e

REPO = demo.REPO
DRAIN_TIMEOUT = 180


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    with devstack.running(tmp_path_factory) as d:
        yield d


def test_member_day_schedule_flows_through_the_local_queues_and_drains_with_counts_that_add_up(dev):
    api = dev["api"]
    run_tag = f"e2e-{int(time.time())}"
    members = [f"{run_tag}-m{i:02d}" for i in range(12)]
    for m in members:
        api.expect({201}, "POST", "/members", sub=m,
                   body={"email": f"{m}@example.com", "name": "E2E Member", "marketingConsent": True})
    member_day = demo.last_member_day(dt.datetime.now(dt.timezone.utc))

    job = demo.fire(dev["port"], "MemberDayFunction", "MemberDay", member_day.isoformat(), env=dev["env"])
    started = {s["campaignId"]: s for s in job["started"]}
    assert "member-day" in started and started["member-day"]["created"], job
    run_id, grant = started["member-day"]["runId"], started["member-day"]["grant"]

    try:
        drained = demo.wait_drained(api, {"member-day": run_id}, DRAIN_TIMEOUT)["member-day"]
    except demo.SetupError as e:
        pytest.fail(f"{e}\n{tail(dev['log'])}")
    assert drained["state"] == "drained"
    # A fresh stack: every member is in the built-in member day's segment (every tier).
    assert drained["targeted"] == len(members), drained
    assert drained["targeted"] == drained["issued"] + drained["skipped"] + drained["failed"], drained
    assert drained["issued"] == len(members) and drained["failed"] == 0, drained
    for m in members:
        coupons = api.expect({200}, "GET", f"/members/{m}/coupons", sub=m)["coupons"]
        assert [c["grant"] for c in coupons].count(grant) == 1, (m, coupons)

    # EventBridge delivers at least once: the same firing again starts no second run.
    again = demo.fire(dev["port"], "MemberDayFunction", "MemberDay", member_day.isoformat(), env=dev["env"])
    assert not any(s["created"] for s in again["started"] if s["campaignId"] == "member-day"), again
    show = api.expect({200}, "GET", "/campaigns/member-day", iam="operator")
    assert [r["runId"] for r in show["runs"]] == [run_id], show
    for m in members[:3]:
        coupons = api.expect({200}, "GET", f"/members/{m}/coupons", sub=m)["coupons"]
        assert [c["grant"] for c in coupons].count(grant) == 1, (m, coupons)


def test_scripts_export_downloads_the_files_the_api_counted(dev, tmp_path):
    """scripts/export as an operator runs it: POST /exports through the one API, the segments
    through the local queue and the migration function, GET /exports/{id} to done, the files
    downloaded. Each kind's downloaded lines and points are the counts the API reported, the
    members who just joined are in it, and no personal data is (none was asked for)."""
    api = dev["api"]
    tag = f"e2e-export-{int(time.time())}"
    joined = [f"{tag}-m{i}" for i in range(3)]
    for m in joined:
        api.expect({201}, "POST", "/members", sub=m, body={"email": f"{m}@example.com", "name": "Export Member"})
    out = tmp_path / "export"
    done = subprocess.run([os.path.join(REPO, "scripts", "export"), "--segments", "3", "--timeout", "120", "--out", str(out)],
                          cwd=REPO, env=dev["env"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"scripts/export: {done.stdout}{done.stderr}\n{tail(dev['log'])}"
    counted = {k: (int(n), int(p)) for k, n, p in re.findall(r"^  (\w+): (\d+) lines, (-?\d+) points$", done.stdout, re.M)}
    assert set(counted) == {"members", "ledger", "coupons"}, done.stdout
    assert (out / "manifest.json").exists()
    for kind, (lines, points) in counted.items():
        rows = [json.loads(line) for f in sorted(out.glob(f"{kind}-*.jsonl")) for line in f.read_text().splitlines() if line]
        assert len(rows) == lines, (kind, len(rows), done.stdout)
        if kind != "coupons":
            assert sum(r["points"] for r in rows) == points, (kind, done.stdout)
        if kind == "members":
            ids = {r["id"] for r in rows}
            assert set(joined) <= ids, "the members who joined are exported"
            assert not any("email" in r or "name" in r or "phone" in r for r in rows), "no personal data unless asked"


def test_the_demo_runs_and_its_numbers_add_up(dev):
    out = subprocess.run([os.path.join(REPO, "scripts", "demo"), "--members", "40", "--seed", "7", "--timeout",
                          str(DRAIN_TIMEOUT)], cwd=REPO, env=dev["env"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"demo exit {out.returncode}\n{out.stdout}\n{out.stderr[-3000:]}"
    assert "All checks hold" in out.stdout, out.stdout
    assert "Members per tier" in out.stdout and "points liability" in out.stdout, out.stdout
    # The KPI section is the report API's, with the experiment's arms and their uplift.
    assert "KPIs (GET /reports/kpis" in out.stdout and "uplift" in out.stdout, out.stdout


# --- Every example of openapi.yaml through the one API ----------------------------------------
OPENAPI_NOW = "2026-11-27T10:00:00Z"  # tests/tests/openapi.rs's NOW: the examples' dates hold then
WELCOME_COUPON = "ABCDEFGHJKMN"  # the examples' name for the member's welcome coupon
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def openapi_order():
    """tests/tests/openapi.rs's ORDER (its test proves it names every documented operation):
    the order in which each operation's examples build what the next ones need."""
    with open(os.path.join(REPO, "tests", "tests", "openapi.rs")) as f:
        src = f.read()
    block = re.search(r"const ORDER: \[&str; \d+\] = \[(.*?)\];", src, re.S).group(1)
    return re.findall(r'"(\w+)"', block)


def shifted(value, delta):
    """The example with its timestamps moved by `delta` (now - OPENAPI_NOW): the same relation
    to the functions' real clock as to openapi.rs's fixed one."""
    if isinstance(value, dict):
        return {k: shifted(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [shifted(v, delta) for v in value]
    if isinstance(value, str) and STAMP.match(value):
        t = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc) + delta
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def test_every_request_example_gets_its_documented_status_through_the_one_api(dev):
    """openapi.rs's every_operation_answers_as_documented, through the one local API and the
    real functions: in its ORDER (a member joins, buys, checks out, ..., is erased), every
    request example with the credentials its route takes on AWS (the member's token, with the
    example's `x-claims`, on member routes; SigV4 of the order system on /internal routes, of an
    operator on the other IAM routes; `x-caller` where the example names another) gets the
    documented success status (an issue asked again: 200), and every problem example with
    `x-request` its documented status and code; the first example as the wrong caller gets the
    function's 403 where documented. Timestamps are moved by now - openapi.rs's NOW."""
    import yaml

    import gateway

    api = dev["api"]
    env = local_events.load_env(api.env_json)
    with open(os.path.join(REPO, "openapi.yaml")) as f:
        doc = yaml.safe_load(f)
    delta = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.datetime.fromisoformat(OPENAPI_NOW.replace("Z", "+00:00"))
    ops = {op["operationId"]: (method, path, op, iam) for method, path, op, iam in operations()}
    order = openapi_order()
    assert set(order) == set(ops), "openapi.rs's ORDER and the document's operations differ"
    tag = f"e2e-ex-{int(time.time())}"
    state = {"member": None, "coupon": None, "campaign": None, "reward": None, "partner": None, "award": None, "export": None,
             "held": [], "claims": []}
    # The import getImport reads: migration/example.jsonl uploaded to the bucket and followed
    # to done by scripts/import (the notification, the pollers, the function, GET /imports).
    imported = subprocess.run([os.path.join(REPO, "scripts", "import"), "--key", f"imports/{tag}.jsonl", "--timeout", "120",
                               os.path.join(REPO, "migration", "example.jsonl")],
                              cwd=REPO, env=dev["env"], capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, f"scripts/import: {imported.stdout}{imported.stderr}\n{tail(dev['log'])}"
    state["import"] = re.search(r"^import (\w+): done", imported.stdout, re.M).group(1)
    tokens = {}
    failures, successes, problems, forbidden = [], 0, 0, 0

    def deref(v):
        ref = v.get("$ref") if isinstance(v, dict) else None
        if not ref:
            return v
        node = doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node

    def path_value(name, path, op, ex):
        if name in (ex.get("x-path") or {}):
            return ex["x-path"][name]
        if name == "id" and path.startswith("/partners"):
            return state["partner"]
        if name == "id" and path.startswith("/imports"):
            return state["import"]
        if name == "id" and path.startswith("/awards"):
            return state["award"]
        if name == "id" and path.startswith("/exports"):
            return state["export"]
        if name == "id":
            return state["campaign"] if path.startswith("/campaigns") else state["reward"] if path.startswith("/rewards") else state["member"]
        if name == "month":  # as openapi.rs: a month that is over for the payment, else the examples' month
            return "2026-10" if op["operationId"] == "markStatementPaid" else "2026-11"
        made = {"claimId": state["claims"], "orderId": state["held"]}.get(name)
        if made is not None:
            n = ex.get("x-reward-claim", 0) if name == "claimId" else -1 if op["operationId"] == "cancelCheckout" else 0
            if len(made) <= max(n, 0):  # an earlier example failed to make it
                pytest.fail(f"{path}: nothing made for {{{name}}} yet; so far:\n" + "\n".join(failures))
            return made[n]
        raise AssertionError(f"{path}: no value for {{{name}}}")

    def url_of(path, op, ex):
        url = re.sub(r"\{(\w+)\}", lambda m: path_value(m.group(1), path, op, ex), path)
        return url + (f"?{ex['x-query']}" if ex.get("x-query") else "")

    def caller(path, op, iam, ex):
        """(who, extra claims): a principal name, a member id or None."""
        named = {"member": state["member"], "other-member": f"{tag}-other", "operator": "operator",
                 "order-system": "order-system", "nobody": None}
        if "x-caller" in ex:
            who = named[ex["x-caller"]]
        elif iam:
            who = "order-system" if path.startswith("/internal/") else "operator"
        elif op["operationId"] == "join":
            who = f"{tag}-joiner-{len(tokens)}"
        elif "{id}" in path:
            who = path_value("id", path, op, ex)
        else:
            who = state["member"]
        return who, ex.get("x-claims")

    def body_of(value):
        if value is None:
            return None
        b = shifted(value, delta)
        if isinstance(b, dict):
            if b.get("memberId") == "m-1":
                b["memberId"] = state["member"]
            if isinstance(b.get("couponCodes"), list):
                b["couponCodes"] = [state["coupon"] if c == WELCOME_COUPON else c for c in b["couponCodes"]]
        return b

    def call(method, path, op, iam, ex, value):
        import urllib.error
        import urllib.request

        who, claims = caller(path, op, iam, ex)
        body = body_of(value)
        data = json.dumps(body).encode() if body is not None else None
        url = api.base + url_of(path, op, ex)
        headers = {k.lower(): v for k, v in (ex.get("x-headers") or {}).items()}
        if data is not None:
            headers["content-type"] = "application/json"
        if claims is not None:
            key = (who, json.dumps(claims, sort_keys=True))
            tokens.setdefault(key, gateway.mint(env, who, extra=claims))
            headers["authorization"] = f"Bearer {tokens[key]}"
        else:
            tokens.setdefault((who, None), True)
            headers = api.credentials(who, method, url, data, headers)
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=150) as r:
                status, raw, ctype = r.status, r.read(), r.headers.get("content-type")
        except urllib.error.HTTPError as e:
            status, raw, ctype = e.code, e.read(), e.headers.get("content-type")
        answer = json.loads(raw) if raw.strip() else None
        return status, answer, ctype, who

    def problem_examples(op):
        out = []
        for status, resp in op["responses"].items():
            media = (deref(resp).get("content") or {}).get("application/problem+json") or {}
            for name, ex in (media.get("examples") or {}).items():
                if "x-request" in ex:
                    out.append((int(status), name, ex))
        return out

    erased = False
    for oid in order:
        method, path, op, iam = ops[oid]
        where = f"{method} {path} ({oid})"
        if erased:  # after the erasure the member is gone
            status, answer, _, _ = call(method, path, op, iam, {}, None)
            if (status, (answer or {}).get("code")) != (404, "member_not_found"):
                failures.append(f"{where} after the erasure: {status} {answer}")
            continue
        rb = deref(op.get("requestBody") or {})
        examples = list((((rb.get("content") or {}).get("application/json") or {}).get("examples") or {}).items()) \
            or [("(no body)", {"value": None})]
        errors = problem_examples(op)

        def send_errors(before):
            nonlocal problems
            for status, name, ex in errors:
                if bool(ex.get("x-before")) != before:
                    continue
                got, answer, ctype, _ = call(method, path, op, iam, ex, ex.get("x-request"))
                want = ex["value"]["code"]
                problems += 1
                if (got, ctype, (answer or {}).get("code")) != (status, "application/problem+json", want):
                    failures.append(f"{where} problem example {name}: got {got} {ctype} {answer}, documented {status} {want}")

        send_errors(True)
        want = next(int(s) for s in ("201", "202", "200", "204") if s in op["responses"])
        for i, (name, ex) in enumerate(examples):
            status, answer, _, who = call(method, path, op, iam, ex, ex.get("value"))
            if status != want:
                failures.append(f"{where} example {name}: got {status} {answer}, documented {want}")
                continue
            successes += 1
            if oid == "quoteCheckout":
                state["held"].append(answer["orderId"])
            if oid == "claimReward":
                state["claims"].append(answer["claimId"])
            if i == 0:
                if oid == "join":
                    state["member"], state["coupon"] = who, answer["welcomeCoupon"]["code"]
                elif oid == "createCampaign":
                    state["campaign"] = answer["campaignId"]
                elif oid == "createReward":
                    state["reward"] = answer["rewardId"]
                elif oid == "createPartner":
                    state["partner"] = answer["partnerId"]
                elif oid == "createAward":
                    state["award"] = answer["awardId"]
                elif oid == "createExport":
                    state["export"] = answer["exportId"]
                if want == 201 and "200" in op["responses"] and oid != "join":
                    again, answer, _, _ = call(method, path, op, iam, ex, ex.get("value"))
                    if again != 200:
                        failures.append(f"{where} example {name} again: got {again} {answer}, documented 200")
        if oid == "join":
            assert state["member"], f"no member joined: {failures}"
        # The wrong caller with the first example: the function's 403 (another member on a
        # member's route; the other local IAM principal on a route for one kind only).
        if "403" in op["responses"] and oid != "join" and len(op.get("x-callers") or []) < 2:
            wrong = {"x-caller": ("operator" if path.startswith("/internal/") else "order-system") if iam else "other-member"}
            wrong.update({k: v for k, v in examples[0][1].items() if k in ("x-path", "x-query", "x-reward-claim")})
            got, answer, ctype, _ = call(method, path, op, iam, wrong, examples[0][1].get("value"))
            forbidden += 1
            if (got, ctype, (answer or {}).get("code")) != (403, "application/problem+json", "forbidden"):
                failures.append(f"{where} as {wrong['x-caller']}: got {got} {ctype} {answer}, documented 403 forbidden")
        if oid == "eraseMember":
            erased = True
        send_errors(False)
    assert not failures, f"{len(failures)} of the examples differ through the one API:\n" + "\n".join(failures) + "\n" + tail(dev["log"])
    print(f"openapi examples through the one API: {successes} request examples, {problems} problem examples, {forbidden} wrong callers")
    assert successes >= 20 and problems >= 60 and forbidden >= 15, (successes, problems, forbidden)


# Contract fuzzing: bounded so that the whole suite stays within its time (about a minute here).
FUZZ_EXAMPLES = int(os.environ.get("LOYALTY_FUZZ_EXAMPLES", "10"))


CHECKOUT_CHAIN = ("join", "quoteCheckout", "confirmCheckout", "getLedger")


def schemathesis(dev, cwd, name, *args):
    """One schemathesis run (scripts/tests/schemathesis.toml) against the one API: (stdout,
    the report for an assertion, its VCR cassette)."""
    import sys

    env = dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_hooks",
               PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH", "")]),
               LOYALTY_FUZZ_ENV_JSON=os.path.join(REPO, ".local", "e2e", "env.json"),
               LOYALTY_FUZZ_MEMBER_PREFIX=f"fuzz-{int(time.time())}")
    cwd = cwd / name
    cwd.mkdir()
    cmd = [os.path.join(os.path.dirname(sys.executable), "schemathesis"), "--config-file",
           os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemathesis.toml"), "run", os.path.join(REPO, "openapi.yaml"),
           "--url", f"http://127.0.0.1:{dev['port']}", "--seed", "17", "--workers", "2", "--request-timeout", "130",
           "--report", "vcr", "--report-vcr-path", str(cwd / "cassette.yaml"),
           "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                       "response_schema_conformance,negative_data_rejection", *args]
    # Its caches (.hypothesis, .schemathesis) go to tmp_path, not into the checkout.
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    report = out.stdout[-12000:] + out.stderr[-3000:]
    assert out.returncode == 0, f"schemathesis ({name}) exit {out.returncode}\n{report}\n{tail(dev['log'])}"
    assert "Stateful" in out.stdout and " passed" in out.stdout, report
    assert "failures" not in out.stdout.split("SUMMARY")[-1], report
    links = re.search(r"API Links:\s+(\d+) covered / (\d+)", out.stdout)
    print(f"schemathesis {name}: {' '.join(links.group(0).split()) if links else 'no API Links line'}")
    return out.stdout, report, cwd / "cassette.yaml", links


def test_schemathesis_finds_no_contract_failure_through_the_one_api(dev, tmp_path):
    """schemathesis (pinned in scripts/requirements-tools.txt) against the one local API, with a
    member token or the right SigV4 signature on every request (schemathesis_hooks.py): the
    request examples, fuzzed requests (valid and invalid) of every operation, and stateful
    sequences along openapi.yaml's links (signup -> checkout -> confirm -> ledger, the catalog,
    campaigns; valid requests, up to 16 steps: scripts/tests/schemathesis.toml). Then a
    stateful run over the checkout chain's operations alone (join, quoteCheckout,
    confirmCheckout, getLedger), which must go signup -> quote -> confirm of that quote ->
    ledger for at least one member (read from its VCR cassette): the random walk over all 23
    links does not reach the end of that chain on every run. Checks: no 5xx, a documented
    status, content type and schema, and invalid data rejected. Zero failures;
    LOYALTY_FUZZ_EXAMPLES examples per operation (default 10) and 30 stateful scenarios: some
    650 requests and 30 for the chain, about 1.5 minutes."""
    out, report, _, links = schemathesis(dev, tmp_path, "all", "--max-examples", str(FUZZ_EXAMPLES),
                                         "--phases", "examples,fuzzing,stateful")
    assert links and int(links.group(1)) >= 14, report
    chain_args = [a for op in CHECKOUT_CHAIN for a in ("--include-operation-id", op)]
    out, report, cassette, links = schemathesis(dev, tmp_path, "checkout-chain", "--phases", "stateful", "--max-examples", "10", *chain_args)
    chains = stateful_chains(cassette)
    print(f"schemathesis checkout-chain: signup -> checkout -> confirm -> ledger for {len(chains)} member(s)")
    assert chains, "the stateful phase never went signup -> checkout quote -> confirm -> ledger:\n" + report


def stateful_chains(cassette):
    """Members for whom schemathesis's stateful phase (its VCR cassette) went signup (201) ->
    checkout quote (201) -> confirm of that quote (200) -> ledger (200), in that order."""
    import urllib.parse

    import yaml

    with open(cassette) as f:
        interactions = yaml.safe_load(f)["http_interactions"]
    steps = {}  # member -> the chain's steps done so far
    done = set()
    for it in interactions:
        if (it.get("phase") or {}).get("name") != "stateful":
            continue
        method, status = it["request"]["method"], int(it["response"]["status"]["code"])
        path = urllib.parse.urlsplit(it["request"]["uri"]).path
        body = (it["response"].get("body") or {}).get("string") or ""
        if method == "POST" and path == "/members" and status == 201:
            steps[json.loads(body)["memberId"]] = {"joined"}
            continue
        m = re.fullmatch(r"(?:/internal)?/members/([^/]+)(/.*)", path)
        if not m or m.group(1) not in steps:
            continue
        member, rest, seen = m.group(1), m.group(2), steps[m.group(1)]
        if method == "POST" and rest == "/checkouts" and status == 201:
            seen.add("quote:" + json.loads(body)["orderId"])
        elif method == "POST" and rest.endswith("/confirm") and status == 200:
            order = urllib.parse.unquote(rest.split("/")[2])
            if "quote:" + order in seen:
                seen.add("confirmed")
        elif method == "GET" and rest == "/ledger" and status == 200 and "confirmed" in seen:
            done.add(member)
    return done


def operations():
    import yaml

    with open(os.path.join(REPO, "openapi.yaml")) as f:
        doc = yaml.safe_load(f)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op:
                iam = any("sigv4" in s for s in op.get("security", doc.get("security", [])))
                yield method.upper(), path, op, iam


def request_examples(op):
    media = ((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {}
    examples = [e["value"] for e in (media.get("examples") or {}).values() if "value" in e]
    return examples or [None]


def send(api, method, path, body=None, who=None, raw=None):
    """One request to the one API: (status, content type, body)."""
    import urllib.error
    import urllib.request

    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    url = api.base + path
    headers = {"content-type": "application/json"} if data is not None else {}
    if who:
        headers = api.credentials(who, method, url, data, headers)
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=150) as r:
            return r.status, r.headers.get("content-type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type"), e.read()


def test_every_request_example_needs_its_credentials_and_a_body_that_is_not_utf8_is_the_function_s_4xx(dev):
    api = dev["api"]
    member = f"e2e-raw-{int(time.time())}"
    api.expect({201}, "POST", "/members", sub=member, body={"email": f"{member}@example.com", "name": "Raw Body", "marketingConsent": False})
    checked = 0
    for method, template, op, iam in operations():
        path = template.replace("{id}", member).replace("{orderId}", "o-raw").replace("{claimId}", "c-raw")
        for body in request_examples(op):
            # The same request without credentials: API Gateway's 401.
            status, ctype, raw = send(api, method, path, body)
            assert (status, json.loads(raw)) == (401, {"message": "Unauthorized"}), (method, template, status, raw)
            if iam:  # a member token on an IAM route: the authorizer's 403
                status, ctype, raw = send(api, method, path, body, who=member)
                assert (status, json.loads(raw)) == (403, {"message": "Forbidden"}), (method, template, status, raw)
            checked += 1
        if method in ("POST", "PUT", "PATCH") and op.get("requestBody"):
            who = ("order-system" if template.startswith("/internal/") else "operator") if iam else member
            status, ctype, raw = send(api, method, path, who=who, raw=b'\xff\xfe{"not": "utf-8"}')
            assert 400 <= status < 500 and ctype == "application/problem+json", (method, template, status, raw)
    assert checked >= 25

