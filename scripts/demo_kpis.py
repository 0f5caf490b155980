"""The demo's KPI report and A/B experiment, kept apart from demo.py.

The figures printed are the engine's own: `GET /reports/kpis` (operator), which events-out keeps
from the table's stream. The script only subtracts the report read before the run from the one
read after it (the stack may hold earlier runs) and checks the difference against what the API
answered during the run.

The experiment: a one-off campaign for every tier with two variants (10 and 30 CNY off) and a
20% holdout, run now. Members are simulated as shoppers who react to what they got: a holder of
the 30-off coupon orders with it more often than a holder of the 10-off one, and a held-out
member sometimes orders anyway. The uplift, its interval and its verdict are the report's.
"""
import datetime as dt
import time

RANGE_DAYS = 365  # the report's longest range is 366 days; the demo's orders span 330
HOLDOUT = 0.2
# Variant name -> (coupon value in fen, the chance that a member holding it orders today).
VARIANTS = {"ten-off": (1000, 0.3), "thirty-off": (3000, 0.6)}
HOLDOUT_ORDERS = 0.15  # a held-out member orders anyway (the baseline the uplift is over)
ORDER_FEN = 25000  # above the coupons' 150 CNY minimum after any tier's member price


def report_range(today):
    return (today - dt.timedelta(days=RANGE_DAYS)).isoformat(), today.isoformat()


def read(api, today):
    frm, to = report_range(today)
    return api.expect({200}, "GET", f"/reports/kpis?from={frm}&to={to}", iam="operator")


def read_settled(api, today, timeout=60):
    """The report once events-out has caught up with what happened before (a run that just
    ended may still be on the stream): two reads 2 s apart with the same totals."""
    deadline = time.monotonic() + timeout
    last = read(api, today)
    while True:
        time.sleep(2)
        doc = read(api, today)
        if doc["totals"] == last["totals"] or time.monotonic() > deadline:
            return doc
        last = doc


def coupon(title, value):
    return {"title": title, "offer": {"kind": "amount_off", "value": value, "minSpend": 15000}, "validDays": 7}


def run_experiment(api, prefix, members, now, each, wait_drained, timeout):
    """Defines the experiment, runs it now and waits until it is drained. Answers the campaign
    id, its run (GET /campaigns/{id}) and each of this run's members' arm, read from the coupon
    they hold (no coupon of the grant: held out)."""
    variants = [{"name": n, "weight": 1, "coupon": coupon(f"A/B {v // 100} CNY off", v)}
                for n, (v, _) in VARIANTS.items()]
    created = api.expect({201}, "POST", "/campaigns", iam="operator", key=f"{prefix}-experiment", body={
        "name": f"Demo A/B {prefix}"[:100], "segment": {"tiers": ["regular", "silver", "gold", "diamond"]},
        "coupon": coupon("A/B 10 CNY off", 1000),
        "schedule": {"kind": "once", "at": (now + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "variants": variants, "holdout": HOLDOUT})
    cid = created["campaignId"]
    started = api.expect({202}, "POST", f"/campaigns/{cid}/run", iam="operator")
    run = wait_drained(api, {cid: started["runId"]}, timeout)[cid]
    by_title = {f"A/B {v // 100} CNY off": n for n, (v, _) in VARIANTS.items()}

    def arm(m):
        cs = api.expect({200}, "GET", f"/members/{m['id']}/coupons?status=active", sub=m["id"])["coupons"]
        mine = [c for c in cs if c["grant"] == run["grant"]]
        m["experiment_coupon"] = mine[0]["code"] if mine else None
        m["arm"] = by_title[mine[0]["title"]] if mine else "holdout"

    each(arm, members)
    return cid, run


def shop(members, each, order):
    """Each member reacts to their arm; `order(member, codes)` places one order through checkout.
    Answers the members who ordered, per arm (each converts once)."""
    converted = {}

    def react(m):
        chance = HOLDOUT_ORDERS if m["arm"] == "holdout" else VARIANTS[m["arm"]][1]
        if m["rng"].random() < chance:
            order(m, [m["experiment_coupon"]] if m["experiment_coupon"] else [])
            return m["arm"]

    for arm in (r for r in map_all(each, react, members) if r):
        converted[arm] = converted.get(arm, 0) + 1
    return converted


def map_all(each, fn, items):
    out = [None] * len(items)

    def at(i):
        out[i] = fn(items[i])

    each(at, range(len(items)))
    return out


def wait_counted(api, today, before, want, timeout, log):
    """Reads the report until every change of the run is counted: the flows' difference from
    `before` reaches `want` (figure -> count). The stream is read asynchronously (events-out),
    so the report lags the answers by a few seconds."""
    deadline = time.monotonic() + timeout
    while True:
        doc = read(api, today)
        got = delta(before, doc)
        if all(got[k] >= v for k, v in want.items()):
            return doc
        if time.monotonic() > deadline:
            missing = {k: (got[k], v) for k, v in want.items() if got[k] < v}
            raise RuntimeError(f"the KPI report did not count the run within {timeout:.0f}s (counted, expected): "
                               f"{missing}. Is events-out reading the stream (scripts/dev starts it)?")
        log("waiting for the KPI report to count the run: " +
            ", ".join(f"{k} {got[k]}/{v}" for k, v in want.items()))
        time.sleep(2)


def delta(before, after):
    """The run's share of the period's totals."""
    b, a = before["totals"], after["totals"]
    return {
        "joined": a["joined"] - b["joined"],
        "purchases": a["purchases"] - b["purchases"],
        "gmv": a["gmv"] - b["gmv"],
        "refunds": a["refunds"] - b["refunds"],
        "refunded": a["refunded"] - b["refunded"],
        "rewardsClaimed": a["rewardsClaimed"] - b["rewardsClaimed"],
        "couponsRedeemed": a["coupons"]["redeemed"] - b["coupons"]["redeemed"],
    }


def campaign_result(report, grant):
    return next((c for c in report["campaigns"] if c["grant"] == grant), None)


def check(before, after, tally, grant, converted, errors):
    """The report against the run's answers: the report's figures, not the script's sums, are
    what gets printed; this says whether they agree."""
    t = tally.c
    got = delta(before, after)
    want = {"joined": t["signups"], "purchases": t["orders"], "gmv": t["spend_fen"], "refunds": t["refunds"],
            "refunded": t["refunded_fen"], "rewardsClaimed": t["reward_claims"]}
    for k, v in want.items():
        if got[k] != v:
            errors.append(f"KPI report: {k} of the run {got[k]}, the API's answers said {v}")
    result = campaign_result(after, grant)
    if result is None:
        errors.append(f"KPI report: no campaign result for the experiment's grant {grant}")
        return
    arms = {a["arm"]: a for a in result.get("arms", [])}
    for arm, n in converted.items():
        if arm not in arms or arms[arm]["converted"] != n:
            errors.append(f"KPI report: arm {arm} converted {arms.get(arm, {}).get('converted')}, "
                          f"{n} of this run's members ordered")


def lines(before, after, grant):
    """The report's section of the demo's output."""
    got = delta(before, after)
    tot = after["totals"]
    out = [f"KPIs (GET /reports/kpis {after['from']}..{after['to']}, {after['timeZone']}; this run's share first):",
           f"  joined {got['joined']}, orders {got['purchases']} ({got['gmv'] / 100:,.2f} CNY), refunds "
           f"{got['refunds']} ({got['refunded'] / 100:,.2f} CNY), rewards claimed {got['rewardsClaimed']}",
           f"  period totals:   orders {tot['purchases']}, GMV {tot['gmv'] / 100:,.2f} CNY, average order "
           f"{(tot['averageOrderValue'] or 0) / 100:,.2f} CNY, coupon redemption rate "
           f"{tot['coupons']['redemptionRate']}",
           f"  points liability at the end: {tot['liabilityAtEnd']['points']:,} points = "
           f"{tot['liabilityAtEnd']['value'] / 100:,.2f} CNY; members per tier: " +
           ", ".join(f"{k} {v}" for k, v in tot["tiersAtEnd"].items())]
    months = [m for m in after["months"] if m["activeMembers"]][-3:]
    if months:
        out.append("  repurchase: " + "; ".join(
            f"{m['month']} {m['repeatBuyers']}/{m['activeMembers']} = {m['repurchaseRate']}" for m in months))
    result = campaign_result(after, grant)
    if result:
        out.append(f"  experiment {grant}: conversion within {after['conversionDays']} days; uplift over the holdout "
                   "(95% interval, two-proportion z-test)")
        for a in result["arms"]:
            u = a.get("uplift")
            extra = (f"  uplift {u['difference']:+.3f} [{u['ciLow']:+.3f}, {u['ciHigh']:+.3f}] p={u['pValue']:.4f} "
                     f"{u['verdict']}" if u else "")
            out.append(f"    {a['arm']:<11} members {a['members']:>5}  converted {a['converted']:>4}  rate "
                       f"{a['conversionRate'] or 0:.3f}  GMV/member {(a['gmvPerMember'] or 0) / 100:>8,.2f} CNY{extra}")
    return out
