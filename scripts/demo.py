#!/usr/bin/env python3
"""The guided demo (scripts/demo): a year of a loyalty program, through the public HTTP API
of the functions that `scripts/dev` serves and the schedule triggers (scripts/fire) only.

1. Signs up N members (a unique run prefix, so it can run again on the same stack): some
   with a birthday, some referred by an earlier member's referral code.
2. Each member's story, members in parallel: orders spread over the last ~11 months (within
   the points expiry window), each through the order system's checkout (quote and hold, then
   confirm with the day it was paid), some on a member day (the 18th: 2x), some using the
   welcome coupon or paying part with points; a partial refund, a check-in.
3. Fires the nightly tier evaluation (scripts/fire TierRecomputeFunction) and, after defining
   a monthly member-day campaign for silver and up (POST /campaigns), the member-day
   schedule (scripts/fire MemberDayFunction MemberDay --now <the last 18th>), which starts the
   built-in member day and every monthly campaign; waits until their runs are drained
   through the local queues (dispatcher -> campaign queue -> coupon worker), then uses a few
   of the member-day coupons at checkout.
   Some members arrive through an affiliate partner (scripts/demo_affiliates.py): their orders
   carry its tracking code; the influencer partner's own member orders with it and earns nothing.
4. The rewards catalog (积分兑换): an operator defines two rewards (POST /rewards): a coupon
   of the rules' amount-20 template and a gift with a small stock; some members look at their
   catalog and claim what they can with their available points (members race for the gift's
   stock); the order system ships some gift claims and an operator cancels others (their
   points come back).
5. Reads every member's profile, ledger and coupons back and prints the report; checks that
   the numbers add up (ledger sums = balances = what the answers said, campaign counts, points
   spent on rewards, the gift's stock) and exits 1 if not.
"""
import argparse
import collections
import datetime as dt
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_affiliates  # noqa: E402  (affiliates)
import demo_kpis  # noqa: E402  (the KPI report and an experiment)
import gateway  # noqa: E402  (credentials: member tokens, SigV4)
import local_events  # noqa: E402

UTC = dt.timezone.utc
PROGRAM_TZ = ZoneInfo("Asia/Shanghai")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIERS = ["regular", "silver", "gold", "diamond"]
MEMBER_DAY = 18
# The birthday job runs this many days on: a birthday must be known birthday.minDaysKnown (30) days ahead.
BIRTHDAY_AHEAD_DAYS = 40
# The default rules (shared/rules/default.json): the member-day check below uses them.
MEMBER_DAY_MULTIPLIER_THOUSANDTHS = 2000


class SetupError(Exception):
    pass


def log(*parts):
    print(f"{dt.datetime.now(UTC):%H:%M:%S} demo:", *parts, file=sys.stderr, flush=True)


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Api:
    """The one local HTTP API at http://127.0.0.1:<port>/ (scripts/dev), called with real
    credentials: a member token (`sub`: the member id) or a SigV4 signature of a local IAM
    principal (`iam`: "operator" or "order-system"), made by scripts/gateway.py's Signer from
    the stack profile's env.json."""

    def __init__(self, port, env_json=None):
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.env_json = env_json or local_events.default_env_json()
        self.signer = None
        self.requests = 0
        self.lock = threading.Lock()

    def credentials(self, who, method, url, data, headers):
        with self.lock:
            if self.signer is None:
                self.signer = gateway.Signer(local_events.load_env(self.env_json))
        return self.signer.headers(who, method, url, data or b"", headers)

    def call(self, method, path, body=None, sub=None, iam=None, key=None, timeout=15, attempts=4):
        headers = {"accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if key:
            headers["idempotency-key"] = key
        url = f"{self.base}{path}"
        for attempt in range(attempts):
            with self.lock:
                self.requests += 1
            # Signed anew each attempt: a SigV4 signature holds for 5 minutes.
            sent = self.credentials(iam or sub, method, url, data, headers)
            req = urllib.request.Request(url, data=data, method=method, headers=sent)
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    status, raw = resp.status, resp.read()
            except urllib.error.HTTPError as e:
                status, raw = e.code, e.read()
            except (TimeoutError, urllib.error.URLError) as e:
                # scripts/dev restarts a function when one of its sources changes or its process
                # died, and an invocation in flight then fails (a 500) or waits for the new
                # process: every call here is idempotent (natural keys, Idempotency-Key), so ask again.
                if isinstance(getattr(e, "reason", e), TimeoutError) and attempt + 1 < attempts:
                    log(f"{method} {path}: no answer in {timeout:.0f}s; asking again")
                    continue
                raise SetupError(f"cannot reach {url}: {e}. Is scripts/dev running "
                                 f"(LOYALTY_HTTP_PORT={self.port})?") from None
            except (ConnectionError, OSError) as e:
                raise SetupError(f"cannot reach {url}: {e}. Is scripts/dev running "
                                 f"(LOYALTY_HTTP_PORT={self.port})?") from None
            # Every mutation here is idempotent (natural key or Idempotency-Key): a 5xx is retried as is.
            if status >= 500 and attempt + 1 < attempts:
                time.sleep(0.2 * (attempt + 1))
                continue
            try:
                doc = json.loads(raw) if raw.strip() else None
            except ValueError:
                doc = {"raw": raw[:300].decode(errors="replace")}
            return status, doc

    def expect(self, status_ok, method, path, **kw):
        status, doc = self.call(method, path, **kw)
        if status not in status_ok:
            raise RuntimeError(f"{method} {path} answered {status}: {json.dumps(doc)[:400]}")
        return doc


def wait_ready(api, timeout):
    """scripts/dev builds the functions before they answer (scripts/functions.py): wait until each
    answers (a 404 or an empty page for a member that does not exist is an answer)."""
    probes = [("/members/demo-probe", {"sub": "demo-probe"}),
              ("/members/demo-probe/ledger", {"sub": "demo-probe"}),
              ("/members/demo-probe/coupons", {"sub": "demo-probe"}),
              ("/campaigns/demo-probe", {"iam": "operator"})]
    log(f"waiting for the functions behind {api.base} (the first call builds them; up to {timeout:.0f}s)")
    started = time.monotonic()

    def probe(p):
        path, kw = p
        status, doc = api.call("GET", path, timeout=timeout, attempts=1, **kw)
        if status in (401, 403):
            raise SetupError(f"GET {path} answered {status}: the credentials were refused: {json.dumps(doc)[:300]}")
        if status not in (200, 404):
            raise SetupError(f"GET {path} answered {status}: {json.dumps(doc)[:300]}")

    with ThreadPoolExecutor(len(probes)) as pool:
        list(pool.map(probe, probes))
    log(f"functions ready after {time.monotonic() - started:.0f}s")


def fire(port, function, event, now, env=None):
    """scripts/fire: the payload EventBridge would send, invoked through cargo lambda (the
    stack profile's env.json from LOYALTY_STACK, as scripts/fire reads it)."""
    cmd = [os.path.join(REPO, "scripts", "fire"), function, event, "--now", now]
    env = dict(env if env is not None else os.environ, LOYALTY_HTTP_PORT=str(port))
    log("$ " + " ".join(["scripts/fire"] + cmd[1:]))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    if out.returncode != 0:
        raise SetupError(f"scripts/fire {function} {event} failed (exit {out.returncode}): {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout)


def last_member_day(now):
    """The latest 18th, 00:00 program time, at or before `now`."""
    local = now.astimezone(PROGRAM_TZ)
    y, m = local.year, local.month
    if local.day < MEMBER_DAY:
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return dt.datetime(y, m, MEMBER_DAY, tzinfo=PROGRAM_TZ)


def member_days_between(start, end):
    out, d = [], last_member_day(end)
    while d >= start:
        out.append(d)
        d = last_member_day(d - dt.timedelta(days=1))
    return out


# --- the simulation -----------------------------------------------------------------------------
class Tally:
    """What the API's answers said, to compare with what it reads back."""

    def __init__(self):
        self.lock = threading.Lock()
        self.c = collections.Counter()
        self.errors = []

    def add(self, **kw):
        with self.lock:
            self.c.update(kw)

    def error(self, msg):
        with self.lock:
            self.errors.append(msg)


def plan_story(rng, now):
    """A member's purchases: (occurredAt, amount in fen), oldest first, totalling a spend that
    lands them in some tier (Regular 0 / Silver 2,000 / Gold 10,000 / Diamond 50,000 CNY)."""
    r = rng.random()
    total_cny = (rng.randint(200, 1800) if r < 0.5 else rng.randint(2100, 9000) if r < 0.78
                 else rng.randint(10500, 40000) if r < 0.95 else rng.randint(52000, 90000))
    n = rng.randint(3, 9)
    cuts = sorted(rng.sample(range(1, total_cny), n - 1))
    parts = [b - a for a, b in zip([0] + cuts, cuts + [total_cny])]
    start, end = now - dt.timedelta(days=330), now - dt.timedelta(hours=2)
    times = sorted(start + (end - start) * rng.random() for _ in range(n))
    if rng.random() < 0.45:  # one purchase on a member day, in the afternoon, program time
        days = [d for d in member_days_between(start, end) if d + dt.timedelta(hours=20) < end]
        d = rng.choice(days)
        times[rng.randrange(n)] = d + dt.timedelta(hours=rng.randint(10, 19), minutes=rng.randint(0, 59))
        times.sort()
    return [(t, cny * 100 + rng.randint(0, 99)) for t, cny in zip(times, parts)]


def signup(api, tally, member):
    body = {"email": f"{member['id']}@example.com", "name": f"Demo Member {member['n']}",
            "marketingConsent": member["rng"].random() < 0.6}
    if member["birthday"]:
        body["birthday"] = member["birthday"]
    if member.get("referral_code"):
        body["referralCode"] = member["referral_code"]
    doc = api.expect({201}, "POST", "/members", body=body, sub=member["id"])
    member["referral"] = doc["referralCode"]
    member["welcome"] = doc["welcomeCoupon"]["code"]
    member["tier"] = doc["tier"]
    member["balance"] = doc["points"]
    tally.add(signups=1, welcome_points=doc["points"], referred=1 if member.get("referral_code") else 0)


def checkout(api, tally, mid, order, fen, codes=(), points=0, at=None, channel="online", rebate=0,
             tracking_code=None):
    """One order through the order system's checkout: quote and hold, then confirm (dated
    `at`, when the order was paid). Answers (quote, confirm)."""
    base = f"/internal/members/{mid}/checkouts"
    body = {"orderId": order, "amount": fen, "currency": "CNY", "channel": channel,
            "couponCodes": list(codes), "points": points, "rebate": rebate}
    if tracking_code:  # affiliates: the partner's code the shopper came with
        body["trackingCode"] = tracking_code
    quote = api.expect({201}, "POST", base, iam="order-system", body=body)
    body = {"paid": quote["payable"]}
    if at is not None:
        body["occurredAt"] = iso(at)
    done = api.expect({200}, "POST", f"{base}/{order}/confirm", iam="order-system", body=body)
    tally.add(orders=1, spend_fen=quote["payable"], purchase_points=done["pointsEarned"],
              member_discount_fen=quote["memberDiscount"], coupon_discount_fen=quote["couponDiscount"],
              coupons_used=len(done["couponsRedeemed"]), orders_with_coupon=1 if done["couponsRedeemed"] else 0,
              redeemed_points=done["pointsUsed"], redeemed_fen=quote["pointsDiscount"],
              orders_with_points=1 if done["pointsUsed"] else 0,
              rebate_earned=done["rebateEarned"], rebate_used=done["rebateUsed"],
              orders_with_rebate=1 if done["rebateUsed"] else 0)
    return quote, done


def story(api, tally, member, now, multipliers):
    rng, mid = member["rng"], member["id"]
    purchases = plan_story(rng, now)
    redeem_on = None
    if rng.random() < 0.35:  # the welcome coupon (20 CNY off from 100 CNY after the member price) on an order big enough
        big = [i for i, (_, fen) in enumerate(purchases) if fen >= 15000]
        redeem_on = big[-1] if big else None
    pay_with_points = rng.random() < 0.3  # some members pay part of their last order with points
    pay_with_rebate = rng.random() < 0.5  # and (silver and up) part of it with their order rebates
    for i, (at, fen) in enumerate(purchases):
        order = f"{mid}-o{i + 1}"
        codes = [member["welcome"]] if i == redeem_on else []
        points = 0
        if pay_with_points and i == len(purchases) - 1 and member["balance"] >= 300:
            # Points pay at most half of what is left after the member price and coupon: a
            # quarter of the order stays inside that cap for every tier.
            points = min(member["balance"] // 2, fen // 4) // 100 * 100
        rebate = 0
        if pay_with_rebate and i == len(purchases) - 1:
            # What the member may spend now, from a read-only preview (the member's own view).
            pv = api.expect({200}, "POST", f"/members/{mid}/checkout-preview", sub=mid,
                            body={"amount": fen, "couponCodes": codes, "points": points})
            rebate = pv["maxRebate"]
        tier_before = member["tier"]
        _, doc = checkout(api, tally, mid, order, fen, codes, points, at, rng.choice(["online", "store"]), rebate,
                          member.get("tracking_code"))
        demo_affiliates.count_order(tally, member, doc)
        tally.add(purchases=1, welcome_redeemed=len(codes))
        if at.astimezone(PROGRAM_TZ).day == MEMBER_DAY:
            tally.add(member_day_purchases=1)
            m = multipliers.get(tier_before)
            if m is not None:
                expected = (doc["paid"] // 100) * m * MEMBER_DAY_MULTIPLIER_THOUSANDTHS // 1_000_000
                if doc["pointsEarned"] != expected:
                    tally.error(f"{mid} {order} on a member day earned {doc['pointsEarned']} points, "
                                f"expected {expected} ({tier_before}, 2x)")
        member["tier"], member["balance"] = doc["tier"], doc["points"]
        member["orders"] = member.get("orders", []) + [(order, doc["paid"])]
    if purchases and rng.random() < 0.15:
        order, paid = rng.choice(member["orders"])
        doc = api.expect({201}, "POST", f"/internal/members/{mid}/refunds", iam="order-system",
                         body={"orderId": order, "refundId": f"{order}-r1", "amount": max(1, paid // 2)})
        tally.add(refunds=1, refunded_fen=max(1, paid // 2), clawed_back=doc["pointsClawedBack"],
                  returned_points=doc["pointsReturned"], rebate_reversed=doc["rebateReversed"],
                  rebate_returned=doc["rebateReturned"])
        demo_affiliates.count_refund(tally, doc)
        member["balance"] = doc["points"]
    if rng.random() < 0.5:
        doc = api.expect({201}, "POST", f"/members/{mid}/activities", sub=mid,
                         body={"type": "checkin", "refId": now.astimezone(PROGRAM_TZ).date().isoformat()})
        tally.add(checkins=1, activity_points=doc["pointsEarned"])
        member["balance"] = doc["points"]
    if purchases and member.get("referral_code"):
        tally.add(referred_buyers=1)


def define_rewards(api, prefix, members):
    """An operator defines the demo's two rewards (an Idempotency-Key per run names them)."""
    coupon = api.expect({201}, "POST", "/rewards", iam="operator", key=f"{prefix}-reward-coupon", body={
        "name": "20 CNY off orders from 100 CNY", "description": "The rules' amount-20 coupon, for points",
        "imageUrl": "https://cdn.example.com/rewards/coupon-20.png", "price": 500, "kind": "coupon",
        "coupon": "amount-20", "perMemberLimit": 1})
    gift = api.expect({201}, "POST", "/rewards", iam="operator", key=f"{prefix}-reward-gift", body={
        "name": "Celadon tea set", "description": "Six cups and a pot, shipped by the shop",
        "imageUrl": "https://cdn.example.com/rewards/tea-set.jpg", "price": 1500, "kind": "gift",
        "stock": max(3, len(members) // 15), "perMemberLimit": 1})
    return coupon["rewardId"], gift["rewardId"]


def claim_rewards(api, tally, member, rewards):
    """Some members look at their catalog and claim what they can: the coupon reward, the gift
    (whose stock other members race for), or both."""
    rng, mid = member["rng"], member["id"]
    wants = [r for r, p in zip(rewards, (0.35, 0.3)) if rng.random() < p]
    if not wants:
        return
    catalog = api.expect({200}, "GET", f"/members/{mid}/rewards", sub=mid)
    offered = {r["rewardId"]: r for r in catalog["rewards"]}
    left = catalog["pointsAvailable"]  # after each claim, the claim's answer says what is left
    for rid in wants:
        r = offered.get(rid)
        if r is None or left < r["price"]:
            continue
        status, doc = api.call("POST", f"/members/{mid}/reward-claims", sub=mid, key=f"{mid}-{rid}",
                               body={"rewardId": rid, "price": r["price"]})
        if status == 409 and doc.get("code") == "out_of_stock":
            tally.add(reward_out_of_stock=1)
            continue
        if status != 201:
            raise RuntimeError(f"POST purchase-points/members/{mid}/reward-claims answered {status}: {json.dumps(doc)[:400]}")
        tally.add(reward_claims=1, reward_points=doc["price"], **{f"reward_{doc['kind']}s": 1})
        member["balance"], left = doc["points"], doc["pointsAvailable"]
        if doc["kind"] == "gift":
            member.setdefault("gifts", []).append(doc["claimId"])


def fulfil_gifts(api, tally, member):
    """The order system ships most gift claims; an operator cancels the rest (points back)."""
    mid = member["id"]
    for cid in member.get("gifts", []):
        cancel = member["rng"].random() < 0.3
        doc = api.expect({200}, "POST", f"/internal/members/{mid}/reward-claims/{cid}/fulfilment",
                         iam="operator" if cancel else "order-system",
                         body={"status": "cancelled", "note": "damaged in the warehouse"} if cancel
                         else {"status": "shipped", "note": f"SF{cid[-10:]}"})
        if cancel:
            tally.add(gifts_cancelled=1, reward_returned=doc["pointsReturned"])
        else:
            tally.add(gifts_shipped=1)


def read_back(api, member):
    mid = member["id"]
    profile = api.expect({200}, "GET", f"/members/{mid}", sub=mid)
    entries, cursor = [], None
    while True:
        q = "?limit=100" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        page = api.expect({200}, "GET", f"/members/{mid}/ledger{q}", sub=mid)
        entries += page["entries"]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    coupons = api.expect({200}, "GET", f"/members/{mid}/coupons", sub=mid)["coupons"]
    return {"profile": profile, "ledger": entries, "coupons": coupons}


def wait_drained(api, runs, timeout):
    """Polls GET /campaigns/{id} (operator) until each started run is drained."""
    deadline, last = time.monotonic() + timeout, {}
    pending = dict(runs)  # campaign id -> run id
    while pending:
        for cid, rid in list(pending.items()):
            doc = api.expect({200}, "GET", f"/campaigns/{cid}", iam="operator")
            run = next((r for r in doc["runs"] if r["runId"] == rid), None)
            if run is None:
                raise RuntimeError(f"campaign {cid} does not show its run {rid}")
            last[cid] = run
            if run["state"] == "drained":
                del pending[cid]
            elif run["state"] == "failed":
                raise RuntimeError(f"campaign {cid} run {rid} failed (superseded before it drained): {json.dumps(run)}")
        if pending:
            if time.monotonic() > deadline:
                states = ", ".join(f"{c} {pending[c]}: {json.dumps(last.get(c))}" for c in pending)
                raise SetupError(f"campaign runs not drained after {timeout:.0f}s: {states}. Are the local event "
                                 "sources running (scripts/dev starts scripts/local_events.py; see its output)?")
            time.sleep(1)
    return last


def main(argv=None):
    ap = argparse.ArgumentParser(description="The guided demo (run after scripts/dev is up).")
    ap.add_argument("--members", type=int, default=300)
    ap.add_argument("--workers", type=int, default=8, help="parallel requests")
    ap.add_argument("--seed", type=int, default=None, help="the simulation's random seed (default: random)")
    ap.add_argument("--ready-timeout", type=float, default=900, help="seconds to wait for the functions to build")
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for the campaign runs to drain")
    ap.add_argument("--port", type=int, default=int(os.environ.get("LOYALTY_HTTP_PORT", "9000")))
    a = ap.parse_args(argv)
    if a.members < 2 or a.workers < 1:
        ap.error("--members must be at least 2 and --workers at least 1")
    try:
        return run(a)
    except SetupError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # an answer the demo did not expect: the program misbehaved
        print(f"demo: {e}", file=sys.stderr)
        return 1


def run(a):
    t0 = time.monotonic()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    prefix = f"demo-{now:%Y%m%d%H%M%S}-{seed % 100000:05d}"
    api, tally = Api(a.port), Tally()
    wait_ready(api, a.ready_timeout)
    log(f"run {prefix}: {a.members} members, seed {seed}")

    local_today = now.astimezone(PROGRAM_TZ).date()
    today = (local_today.year, local_today.month, local_today.day)
    # The KPI report before the run: the run's figures are what it adds (the stack may hold others).
    kpis_before = demo_kpis.read_settled(api, local_today)
    # A birthday brings a coupon only if it was recorded birthday.minDaysKnown (30) days ahead, and
    # the members sign up today: the demo runs the birthday job as it will run on the gift day,
    # 40 days from now, for the members whose birthday falls then.
    gift_day = local_today + dt.timedelta(days=BIRTHDAY_AHEAD_DAYS)
    members = []
    for n in range(a.members):
        rng = random.Random(seed * 1_000_003 + n)
        bd = None
        if rng.random() < 0.4:  # a birthday; a quarter of them on the gift day (the birthday job's members)
            if rng.random() < 0.25 and (gift_day.month, gift_day.day) != (2, 29):
                bd = dt.date(rng.randint(1960, 2005), gift_day.month, gift_day.day).isoformat()
            else:
                bd = dt.date(rng.randint(1960, 2005), rng.randint(1, 12), rng.randint(1, 28)).isoformat()
        members.append({"n": n, "id": f"{prefix}-m{n:04d}", "rng": rng, "birthday": bd})
    first = members[: max(1, len(members) * 2 // 5)]
    pool = ThreadPoolExecutor(a.workers)

    def each(fn, items):
        list(pool.map(fn, items))  # re-raises the first failure

    each(lambda m: signup(api, tally, m), first)
    for m in members[len(first):]:
        if m["rng"].random() < 0.5:
            referrer = first[m["rng"].randrange(len(first))]
            m["referral_code"], m["referrer"] = referrer["referral"], referrer["id"]
    each(lambda m: signup(api, tally, m), members[len(first):])
    log(f"{len(members)} members signed up ({tally.c['referred']} referred) in {time.monotonic() - t0:.0f}s")

    # The tier multipliers, for the member-day check: from the profile of one member per tier later
    # on; the regular one now (every member starts regular).
    probe = api.expect({200}, "GET", f"/members/{members[0]['id']}", sub=members[0]["id"])
    multipliers = {probe["tier"]: round(probe["benefits"]["pointsMultiplier"] * 1000)}
    # Affiliates: two partners; some members arrive through one (their orders carry its code).
    partners = demo_affiliates.register(api, prefix, members, random.Random(seed))
    t1 = time.monotonic()
    each(lambda m: story(api, tally, m, now, multipliers), members)
    log(f"{tally.c['purchases']} purchases, {tally.c['refunds']} refunds, {tally.c['checkins']} check-ins, "
        f"{tally.c['orders_with_points']} orders partly paid with points, {tally.c['welcome_redeemed']} welcome coupons used "
        f"in {time.monotonic() - t1:.0f}s")

    # The daily birthday job on the gift day (00:05 program time): that day's birthdays get their
    # tier's coupon through CampaignQueue.
    gift_at = dt.datetime.combine(gift_day, dt.time(0, 5), tzinfo=PROGRAM_TZ)
    birthday_job = fire(a.port, "CouponIssueFunction", "BirthdayCoupons", iso(gift_at))
    birthday_grant = birthday_job.get("grant") or f"birthday-{gift_day.year}"
    birthday_today = [m for m in members if m["birthday"] and m["birthday"][5:] == gift_day.isoformat()[5:]]
    log(f"birthday job on {gift_day}: {birthday_job.get('members')} members with a birthday that day "
        f"({len(birthday_today)} of this run)")

    # The nightly tier evaluation, as its schedule would run it now (fans out through TierShardQueue).
    tiers_job = fire(a.port, "TierRecomputeFunction", "Nightly", iso(now))
    log(f"tier evaluation: {tiers_job.get('tasks')} shard tasks queued")

    # A monthly campaign for silver and up, then the member-day schedule of the last 18th.
    created = api.expect({201}, "POST", "/campaigns", iam="operator", key=f"{prefix}-campaign", body={
        "name": f"Demo member day {prefix}"[:100], "segment": {"tiers": ["silver", "gold", "diamond"]},
        "coupon": {"title": "Member day: 30 CNY off", "offer": {"kind": "amount_off", "value": 3000, "minSpend": 15000},
                   "validDays": 3},
        "schedule": {"kind": "monthly_member_day"}, "budget": 100000})
    demo_campaign = created["campaignId"]
    md = last_member_day(now)
    job = fire(a.port, "MemberDayFunction", "MemberDay", md.isoformat())
    started = {s["campaignId"]: s for s in job.get("started", [])}
    if demo_campaign not in started:
        raise RuntimeError(f"the member-day schedule did not start the demo campaign {demo_campaign}: {json.dumps(job)}")
    runs = {cid: s["runId"] for cid, s in started.items() if s["created"]}
    log(f"member day {md.date()}: runs started: " + ", ".join(f"{c} {r}" for c, r in runs.items()))
    t2 = time.monotonic()
    drained = wait_drained(api, runs, a.timeout)
    log(f"campaign runs drained in {time.monotonic() - t2:.0f}s")

    # The birthday coupons travel through the campaign queue too: wait until each has arrived.
    deadline = time.monotonic() + a.timeout
    waiting = list(birthday_today)
    while waiting:
        def has(m):
            cs = api.expect({200}, "GET", f"/members/{m['id']}/coupons", sub=m["id"])["coupons"]
            return any(c["grant"] == birthday_grant for c in cs)
        waiting = [m for m, ok in zip(waiting, pool.map(has, waiting)) if not ok]
        if waiting and time.monotonic() > deadline:
            raise SetupError(f"{len(waiting)} birthday coupons did not arrive within {a.timeout:.0f}s "
                             f"(e.g. {waiting[0]['id']}): are the local event sources running?")
        if waiting:
            time.sleep(1)

    # Some members use their member-day coupon.
    grants = {cid: started[cid]["grant"] for cid in runs}

    def use_member_day_coupon(m):
        if m["rng"].random() >= 0.25:
            return
        coupons = api.expect({200}, "GET", f"/members/{m['id']}/coupons?status=active", sub=m["id"])["coupons"]
        mine = [c for c in coupons if c["grant"] == grants[demo_campaign]]
        if mine:
            # 250 CNY: above the 150 CNY minimum after any tier's member price.
            checkout(api, tally, m["id"], f"{m['id']}-md", 25000, [mine[0]["code"]])
            tally.add(member_day_redeemed=1)

    each(use_member_day_coupon, members)

    # The rewards catalog: an operator defines two rewards; members claim; gifts are fulfilled.
    rewards = define_rewards(api, prefix, members)
    each(lambda m: claim_rewards(api, tally, m, rewards), members)
    each(lambda m: fulfil_gifts(api, tally, m), members)
    catalog = {r["rewardId"]: r for r in api.expect({200}, "GET", "/rewards", iam="operator")["rewards"]}
    log(f"rewards: {tally.c['reward_claims']} claims ({tally.c['reward_coupons']} coupons, {tally.c['reward_gifts']} gifts, "
        f"{tally.c['reward_out_of_stock']} refused out of stock), {tally.c['gifts_shipped']} shipped, "
        f"{tally.c['gifts_cancelled']} cancelled")
    # Everything so far counted first, so that only the experiment's own orders can convert.
    counted = lambda: {"purchases": tally.c["orders"], "joined": tally.c["signups"]}  # noqa: E731
    demo_kpis.wait_counted(api, local_today, kpis_before, counted(), a.timeout, log)
    # An A/B experiment run now: two coupons and a holdout; members react to what they got.
    xcid, xrun = demo_kpis.run_experiment(api, prefix, members, now, each, wait_drained, a.timeout)
    converted = demo_kpis.shop(members, each, lambda m, codes: checkout(
        api, tally, m["id"], f"{m['id']}-ab", demo_kpis.ORDER_FEN, codes))
    kpis_after = demo_kpis.wait_counted(api, local_today, kpis_before, counted(), a.timeout, log)
    log(f"experiment {xcid} run {xrun['runId']}: {xrun['issued']} coupons, {xrun['skippedReasons']['holdout']} held "
        f"out; this run's orders per arm: {converted}")
    kpis = (kpis_before, kpis_after, xrun["grant"], converted)
    views = dict(zip((m["id"] for m in members), pool.map(lambda m: read_back(api, m), members)))
    pool.shutdown()
    affiliates = demo_affiliates.statements(api, partners, tally, now)
    return report(a, prefix, md, members, views, tally, tiers_job, drained, grants, demo_campaign, api, t0,
                  birthday_grant, {m['id'] for m in birthday_today}, [catalog[r] for r in rewards], affiliates,
                  kpis)


def report(a, prefix, md, members, views, tally, tiers_job, drained, grants, demo_campaign, api, t0,
           birthday_grant, birthday_today, rewards, affiliates=((), ()), kpis=None):
    errors = list(tally.errors) + list(affiliates[1])
    if kpis:
        demo_kpis.check(kpis[0], kpis[1], tally, kpis[2], kpis[3], errors)
    t = tally.c
    tiers = collections.Counter(v["profile"]["tier"] for v in views.values())
    kinds = collections.Counter()
    referral_entries = 0
    coupon_count = collections.Counter()
    redeemed = collections.Counter()
    holders = collections.Counter()
    available_total, pending_total = [0], [0]
    rebate_kinds = collections.Counter()
    rebate_owed = 0
    for mid, v in views.items():
        p, ledger = v["profile"], v["ledger"]
        # Each entry moves available points (`points`) and pending ones (`pending`, inside the
        # return window); a release moves points from pending to available.
        # A release not yet written (the profile shows it lazily) moves points between the two
        # sums but not their total.
        total = sum(e["points"] + e.get("pending", 0) for e in ledger)
        if total != p["points"] + p["pointsPending"]:
            errors.append(f"{mid}: ledger sums to {total}, the profile says {p['points']} available + "
                          f"{p['pointsPending']} pending")
        rebate_sum = sum(e.get("rebate", 0) + e.get("rebatePending", 0) for e in ledger)
        if rebate_sum != p["rebate"] + p["rebatePending"]:
            errors.append(f"{mid}: the ledger's rebates sum to {rebate_sum}, the profile says {p['rebate']} "
                          f"available + {p['rebatePending']} pending")
        rebate_owed += p["rebate"] + p["rebatePending"]
        for e in ledger:
            rebate_kinds[e["kind"]] += e.get("rebate", 0) + e.get("rebatePending", 0)
            kinds[e["kind"]] += e["points"] + e.get("pending", 0)
            referral_entries += e["kind"] == "referral" and e["points"] + e.get("pending", 0) > 0
        available_total[0] += p["points"]
        pending_total[0] += p["pointsPending"]
        per_grant = collections.Counter(c["grant"] for c in v["coupons"])
        for c in v["coupons"]:
            kind = ("welcome" if c["grant"] == "welcome" else "member day" if c["grant"] in grants.values()
                    else c["grant"].split(":")[0].split("-")[0])
            coupon_count[kind] += 1
            redeemed[kind] += c["status"] == "redeemed"
        if per_grant[birthday_grant] != (mid in birthday_today):
            errors.append(f"{mid} holds {per_grant[birthday_grant]} {birthday_grant} coupons; "
                          f"birthday on the gift day: {mid in birthday_today}")
        if per_grant["welcome"] != 1:
            errors.append(f"{mid} holds {per_grant['welcome']} welcome coupons, not 1")
        for cid, g in grants.items():
            if per_grant[g] > 1:
                errors.append(f"{mid} holds {per_grant[g]} coupons of the run grant {g}")
            holders[cid] += per_grant[g]
        if p["tier"] in ("silver", "gold", "diamond") and per_grant[grants[demo_campaign]] != 1:
            errors.append(f"{mid} ({p['tier']}) has no coupon of the demo campaign {demo_campaign}")

    def same(what, got, want):
        if got != want:
            errors.append(f"{what}: the ledgers say {got}, the API's answers said {want}")

    same("welcome points", kinds["welcome"], t["welcome_points"])
    same("purchase points", kinds["purchase"], t["purchase_points"])
    same("refund clawbacks", -kinds["refund"], t["clawed_back"])
    same("points spent at checkout", -kinds["redemption"], t["redeemed_points"])
    same("points given back by refunds", kinds.get("returned", 0), t["returned_points"])
    same("activity points", kinds["activity"], t["activity_points"])
    same("order rebates credited (fen)", rebate_kinds["purchase"], t["rebate_earned"])
    same("rebate spent at checkout (fen)", -rebate_kinds["rebate"], t["rebate_used"])
    same("rebate reversed by refunds (fen)", -rebate_kinds["refund"], t["rebate_reversed"])
    same("rebate given back by refunds (fen)", rebate_kinds.get("returned", 0), t["rebate_returned"])
    if t["rebate_earned"] - t["rebate_used"] - t["rebate_reversed"] + t["rebate_returned"] != rebate_owed:
        errors.append(f"rebates: credited {t['rebate_earned']} - spent {t['rebate_used']} - reversed "
                      f"{t['rebate_reversed']} + given back {t['rebate_returned']} != owed {rebate_owed}")
    same("referral rewards", referral_entries, t["referred_buyers"])
    same("welcome coupons redeemed", redeemed["welcome"], t["welcome_redeemed"])
    same("member-day coupons redeemed", redeemed["member day"], t["member_day_redeemed"])
    same("points spent on rewards (net of cancelled gifts)", -kinds.get("reward", 0), t["reward_points"] - t["reward_returned"])
    same("reward coupons issued", coupon_count["reward"], t["reward_coupons"])
    coupon_reward, gift_reward = rewards
    same("reward coupons claimed (the catalog's count)", coupon_reward["claimed"], t["reward_coupons"])
    same("tea sets claimed and not cancelled (the catalog's count)", gift_reward["claimed"], t["reward_gifts"] - t["gifts_cancelled"])
    if gift_reward["stockLeft"] != gift_reward["stock"] - gift_reward["claimed"]:
        errors.append(f"the gift's stock left {gift_reward['stockLeft']} != stock {gift_reward['stock']} - claimed {gift_reward['claimed']}")
    # Every claim came before any fulfilment: a refusal for stock means none was left then, so
    # what is left now is exactly what cancelled claims gave back.
    if t["reward_out_of_stock"] and gift_reward["stockLeft"] != t["gifts_cancelled"]:
        errors.append(f"{t['reward_out_of_stock']} claims were refused out of stock and {t['gifts_cancelled']} cancelled, "
                      f"but {gift_reward['stockLeft']} tea sets are left")
    for cid, run in drained.items():
        if run["targeted"] != run["issued"] + run["skipped"] + run["failed"]:
            errors.append(f"campaign {cid} run {run['runId']}: targeted {run['targeted']} != issued {run['issued']} "
                          f"+ skipped {run['skipped']} + failed {run['failed']}")
        if holders[cid] > run["issued"]:
            errors.append(f"campaign {cid}: {holders[cid]} of this run's members hold its coupon, but it issued {run['issued']}")

    issued = sum(v for k, v in kinds.items() if v > 0 and k in ("welcome", "purchase", "activity", "referral"))
    spent, returned = -kinds["redemption"], kinds.get("returned", 0)
    on_rewards = -kinds.get("reward", 0)
    clawed, expired = -kinds["refund"], -kinds["expiry"]
    outstanding = available_total[0] + pending_total[0]
    if issued - spent - on_rewards + returned - clawed - expired != outstanding:
        errors.append(f"issued {issued} - spent {spent} - on rewards {on_rewards} + given back {returned} - clawed back "
                      f"{clawed} - expired {expired} != outstanding {outstanding}")

    w = print
    w()
    w(f"Loyalty demo {prefix}: {len(members)} members, {api.requests} API calls, {time.monotonic() - t0:.0f}s")
    w("=" * 78)
    w(f"Members per tier:   " + "   ".join(f"{k} {tiers[k]}" for k in TIERS))
    w(f"Activity:           {t['orders']} orders through checkout ({t['spend_fen'] / 100:,.2f} CNY paid, "
      f"{t['member_day_purchases']} on a member day at 2x), {t['refunds']} refunds ({t['refunded_fen'] / 100:,.2f} CNY), "
      f"{t['checkins']} check-ins, {t['referred']} referred members")
    orders = max(t["orders"], 1)
    w(f"Per order:          coupons used on {t['orders_with_coupon']} of {t['orders']} orders "
      f"({t['coupons_used'] / orders:.3f} coupons/order), points on {t['orders_with_points']} "
      f"({t['redeemed_points'] / orders:,.1f} points/order); discounts: member price "
      f"{t['member_discount_fen'] / 100:,.2f} CNY, coupons {t['coupon_discount_fen'] / 100:,.2f} CNY, "
      f"points {t['redeemed_fen'] / 100:,.2f} CNY")
    w("Points:")
    w(f"  issued            {issued:>12,}   (welcome {kinds['welcome']:,}, purchases {kinds['purchase']:,}, "
      f"activities {kinds['activity']:,}, referrals {kinds['referral']:,})")
    w(f"  spent at checkout {spent:>12,}   (on {t['orders_with_points']} orders, {t['redeemed_fen'] / 100:,.2f} CNY off)")
    w(f"  spent on rewards  {on_rewards:>12,}   ({t['reward_claims']} claims, net of {t['reward_returned']:,} given back "
      f"by cancelled gift claims: {t['gifts_cancelled']})")
    w(f"  given back        {returned:>12,}   (points spent on refunded orders)")
    w(f"  clawed back       {clawed:>12,}   (refunds)")
    w(f"  expired           {expired:>12,}")
    w(f"  outstanding       {outstanding:>12,}   = points liability {outstanding / 100:,.2f} CNY at 100 points per CNY")
    w(f"    available       {available_total[0]:>12,}")
    w(f"    pending         {pending_total[0]:>12,}   (inside the {7}-day return window: not spendable yet)")
    w("Order rebates (返利: silver 1%, gold 2%, diamond 3% of what each order paid, pending 7 days):")
    w(f"  credited          {t['rebate_earned'] / 100:>12,.2f} CNY")
    w(f"  spent at checkout {t['rebate_used'] / 100:>12,.2f} CNY   (on {t['orders_with_rebate']} orders)")
    w(f"  reversed          {t['rebate_reversed'] / 100:>12,.2f} CNY   (refunds; {t['rebate_returned'] / 100:,.2f} CNY spent on refunded orders given back)")
    w(f"  owed              {rebate_owed / 100:>12,.2f} CNY   = rebate liability (available and pending)")
    w("Coupons (this run's members):")
    for k in sorted(coupon_count):
        w(f"  {k:<16}  issued {coupon_count[k]:>5}   redeemed {redeemed[k]:>5}")
    w(f"  discounts given   {t['coupon_discount_fen'] / 100:,.2f} CNY")
    w("Rewards (the catalog an operator defined; members claim with available points only):")
    for r in rewards:
        stock = f", stock {r['stock']}, {r['stockLeft']} left" if "stock" in r else ""
        w(f"  {r['name']:<32} {r['kind']:<6} {r['price']:>6,} points   claimed {r['claimed']:>4}{stock}")
    w(f"  claims            {t['reward_claims']:>5}   (coupons {t['reward_coupons']}, gifts {t['reward_gifts']}: "
      f"{t['gifts_shipped']} shipped, {t['gifts_cancelled']} cancelled; {t['reward_out_of_stock']} refused out of stock)")
    w(f"  points on rewards {on_rewards:>12,}   vs at checkout {spent:,} (points paid "
      f"{on_rewards / max(on_rewards + spent, 1):.0%} for rewards, {spent / max(on_rewards + spent, 1):.0%} off orders)")
    w("Affiliate partners (orders that came with a partner's tracking code; the month's statements):")
    for line in affiliates[0]:
        w(line)
    w(f"Birthday job:       {len(birthday_today)} of this run's members have their birthday on the gift day "
      f"({BIRTHDAY_AHEAD_DAYS} days on, as birthdays must be known 30 days ahead) and got "
      f"their tier's {birthday_grant} coupon")
    w(f"Tier evaluation:    {tiers_job.get('date')}: {tiers_job.get('tasks')} shard tasks through TierShardQueue")
    w(f"Member day {md.date()} (scripts/fire MemberDayFunction MemberDay), runs through the local queues:")
    for cid, run in drained.items():
        sr = run.get("skippedReasons", {})
        w(f"  {cid:<20} {run['runId']:<12} {run['state']}: targeted {run['targeted']} = issued {run['issued']} "
          f"+ skipped {run['skipped']} (already had {sr.get('alreadyHad', 0)}, budget {sr.get('budgetSpent', 0)}, "
          f"not eligible {sr.get('notEligible', 0)}) + failed {run['failed']}")
    if kpis:
        for line in demo_kpis.lines(kpis[0], kpis[1], kpis[2]):
            w(line)
    w("=" * 78)
    if errors:
        w(f"demo: {len(errors)} check(s) failed:")
        for e in errors[:30]:
            w(f"  - {e}")
        return 1
    w("All checks hold: ledgers = balances = the API's answers; campaign counts add up; one coupon per grant;\n"
      "birthday coupons exactly for the gift day's birthdays; reward points, coupons and stock add up;\n"
      "the KPI report counted exactly what the API answered.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
