"""The cost model section of BENCHMARKS.md: the figures `scripts/bench` measured (capacity
units, requests, durations, item sizes; the bench binary's BENCH_MEASURES JSON) priced with
the on-demand list prices of one region (scripts/bench.d/prices.json) and the memory sizes
of template.yaml.

    python cost_model.py MEASURES_JSON PRICES_JSON TEMPLATE_YAML  > markdown

Every number printed is derived from a measured figure; the assumptions are printed next to
the numbers they shape.
"""
import json
import math
import sys

from cfnlint.decode import decode

MILLION = 1_000_000


def memory_by_binary(template_path):
    """MemorySize (MB) of each function, keyed by its cargo binary name."""
    template, errors = decode(template_path)
    if errors or template is None:
        sys.exit(f"cost_model: cannot parse {template_path}: {errors}")
    template = json.loads(json.dumps(template, default=str))
    default = template.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
    sizes = {}
    for res in template["Resources"].values():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        binary = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if binary:
            sizes[binary] = res.get("Properties", {}).get("MemorySize", default)
    return sizes


def usd(x):
    return f"${x:,.2f}" if x >= 0.01 or x == 0 else f"${x:,.4f}"


class Model:
    def __init__(self, measures, prices, memory):
        self.m, self.p, self.memory = measures, prices, memory

    def ddb(self, read_units, write_units):
        d = self.p["dynamodb"]
        return read_units * d["readRequestUnitPerMillion"] / MILLION + write_units * d["writeRequestUnitPerMillion"] / MILLION

    def lambda_(self, binary, invocations, ms_each):
        """Lambda bills duration rounded up to the millisecond, at the function's memory."""
        lam = self.p["lambda"]
        gb = self.memory[binary] / 1024
        return invocations * (lam["requestPerMillion"] / MILLION + math.ceil(ms_each) / 1000 * gb * lam["arm64GbSecond"])

    def events(self, n):
        return n * self.p["eventbridge"]["customEventPerMillion"] / MILLION

    def sqs(self, n):
        return n * self.p["sqs"]["requestPerMillion"] / MILLION

    def api(self, n):
        return n * self.p["apiGateway"]["httpApiRequestPerMillion"] / MILLION


def purchases(model, calls, label, n=MILLION):
    """n purchases through the order system's IAM route, and their events."""
    m, ev = model.m, model.m.get("eventsOut")
    op = calls["purchase (order system)"]
    rows = [
        ("DynamoDB", model.ddb(op["readUnits"] * n, op["writeUnits"] * n),
         f"{op['readUnits']:.1f} read + {op['writeUnits']:.1f} write units per purchase"),
        ("Lambda (purchase-points)", model.lambda_("purchase-points", n, op["p50Ms"]),
         f"{n:,} invocations x {math.ceil(op['p50Ms'])} ms at {model.memory['purchase-points']} MB"),
        ("API Gateway (HTTP API)", model.api(n), "one request per purchase"),
    ]
    if ev:
        per_purchase = ev["events"] / ev["purchases"]
        batches = n * (ev["records"] / ev["purchases"]) / ev["recordsPerBatch"]
        rows.append(("EventBridge", model.events(n * per_purchase), f"{per_purchase:.2f} events per purchase (PutEvents entries)"))
        rows.append(("Lambda (events-out)", model.lambda_("events-out", batches, ev["p50MsPerBatch"]),
                     f"{batches:,.0f} stream batches of {ev['recordsPerBatch']} records x {math.ceil(ev['p50MsPerBatch'])} ms; stream reads by Lambda are free"))
    return label, rows


def member_day(model, n=MILLION):
    run = model.m["campaignRun"]
    issued = max(run["issued"], 1)
    scale = n / issued
    worker_batch = model.m.get("couponBatch")
    # Lambda's event source mapping receives and deletes: at most one receive and one delete
    # per batch message (it takes up to BatchSize messages per receive, so fewer in practice).
    messages = run["batchMessages"] + run["dispatchMessages"]
    sqs_requests = (run["sqsSends"] + 2 * messages) * scale
    rows = [
        ("DynamoDB", model.ddb(run["readUnits"] * scale, run["writeUnits"] * scale),
         f"{run['writeUnits'] / issued:.2f} write and {run['readUnits'] / issued:.2f} read units per coupon (the whole run: segment pages, coupons, progress)"),
        ("SQS", model.sqs(sqs_requests),
         f"{sqs_requests / n * 1000:.1f} requests per 1,000 members: the functions' sends plus one receive and one delete per message (an upper bound)"),
    ]
    if worker_batch:
        ms_per_coupon = worker_batch["seconds"] * 1000 / worker_batch["coupons"]
        batch_size = worker_batch["coupons"]
        invocations = n / batch_size
        rows.append(("Lambda (coupon-issue worker)", model.lambda_("coupon-issue", invocations, ms_per_coupon * batch_size),
                     f"{invocations:,.0f} messages of {batch_size} members x {ms_per_coupon * batch_size / 1000:.1f} s measured"))
    rows.append(("EventBridge", model.events(n), "one CouponIssued event per coupon"))
    return f"A member day issuing {n:,} coupons", rows


def storage(model, n=MILLION):
    y = model.m["yearMember"]
    # DynamoDB counts 100 bytes of overhead per item; index copies are not included.
    per_member = y["partitionBytes"] + 100 * y["partitionItems"]
    gb = per_member * n / 1e9
    return f"Storing {n:,} members with a year of history, one month", [
        ("DynamoDB storage", gb * model.p["dynamodb"]["storageGbMonth"],
         f"{per_member / 1024:.0f} KB per member ({y['partitionItems']} items for {y['days']} days of a purchase and a check-in; index copies not counted) = {gb:,.1f} GB"),
    ]


def render(sections, prices):
    out = ["## Cost model", ""]
    out.append(f"On-demand prices of {prices['region']} ({prices['taken']}), in scripts/bench.d/prices.json.")
    out.append("Durations are the in-process handler latencies measured above against DynamoDB Local")
    out.append("(in a region DynamoDB answers in single-digit milliseconds, so Lambda time would be")
    out.append("lower); units and requests are as measured. Free tiers are not deducted.")
    for title, rows in sections:
        total = sum(r[1] for r in rows)
        out += ["", f"### {title}: {usd(total)}", "", "| service | USD | from |", "|---|---|---|"]
        out += [f"| {name} | {usd(cost)} | {why} |" for name, cost, why in rows]
    return "\n".join(out) + "\n"


def main():
    measures = json.load(open(sys.argv[1]))
    prices = json.load(open(sys.argv[2]))
    model = Model(measures, prices, memory_by_binary(sys.argv[3]))
    sections = [purchases(model, measures["calls"], "1,000,000 purchases by new members")]
    if "yearCalls" in measures:
        sections.append(purchases(model, measures["yearCalls"], "1,000,000 purchases by members with a year of daily purchases"))
    if "campaignRun" in measures:
        sections.append(member_day(model))
    if "yearMember" in measures:
        sections.append(storage(model))
    sys.stdout.write(render(sections, prices))


if __name__ == "__main__":
    main()
