"""The demo's affiliate partners, kept apart from demo.py: an operator registers two
partners, one of them an influencer who is also a member; some members arrive through a
partner (their orders carry its tracking code, the last one their shop saw); the report reads
each partner's statement of the month the orders were recorded in and checks it against what
the order and refund answers said.
"""
import collections
import datetime as dt

# Share of the members whose orders come with a partner's code.
ARRIVE_THROUGH_A_PARTNER = 0.3


def register(api, prefix, members, rng):
    """Two partners (under Idempotency-Keys of this run), and which members arrive through
    which: each such member gets `tracking_code` and `partner_id`. The influencer is the run's
    first member, who also orders with their own code: those orders earn nothing."""
    shop = api.expect({201}, "POST", "/partners", iam="operator", key=f"{prefix}-partner-shop",
                      body={"name": "Panda Deals", "rateBasisPoints": 800, "channelRates": {"online": 1000}})
    influencer = members[0]
    star = api.expect({201}, "POST", "/partners", iam="operator", key=f"{prefix}-partner-star",
                      body={"name": "Li Wei (influencer)", "rateBasisPoints": 1500, "memberId": influencer["id"]})
    partners = [shop, star]
    for m in members:
        if m is influencer or rng.random() < ARRIVE_THROUGH_A_PARTNER:
            p = star if m is influencer else partners[rng.randrange(len(partners))]
            m["tracking_code"], m["partner_id"] = p["trackingCode"], p["partnerId"]
    return partners


def count_order(tally, member, confirmed):
    """What a confirm's answer said the order's code earned."""
    a = confirmed.get("affiliate")
    if not a:
        return
    if a.get("reason") == "self_referral":
        tally.add(affiliate_self_referrals=1)
    if a.get("partnerId") != member.get("partner_id"):
        tally.error(f"{member['id']}: the order's code earned partner {a.get('partnerId')}, not {member.get('partner_id')}")
    # An order that earns nothing (a reason) is no order of the partner's statement.
    tally.add(**{f"affiliate_orders:{a['partnerId']}": 0 if a.get("reason") else 1,
                 f"affiliate_accrued:{a['partnerId']}": a["commission"]})


def count_refund(tally, refunded):
    a = refunded.get("affiliate")
    if a:
        tally.add(**{f"affiliate_reversed:{a['partnerId']}": a["commissionReversed"]})


def statements(api, partners, tally, now):
    """Each partner's statement of this month (the month the demo's orders were recorded in),
    the report's lines, and the checks against the answers."""
    month = now.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    lines, errors = [], []
    t = collections.Counter(tally.c)
    for p in partners:
        pid = p["partnerId"]
        s = api.expect({200}, "GET", f"/partners/{pid}/statements/{month}", iam="operator")
        lines.append(f"  {p['name'][:24]:<24} {month}: {s['orders']:>4} orders, paid {s['paidAmount'] / 100:>12,.2f} CNY; "
                     f"commission accrued {s['commissionAccrued'] / 100:,.2f}, reversed {s['commissionReversed'] / 100:,.2f}, "
                     f"pending {s['pending'] / 100:,.2f}, payable {s['payable'] / 100:,.2f} CNY ({s['state']})")
        for what, got, want in [("orders", s["orders"], t[f"affiliate_orders:{pid}"]),
                                ("commission accrued", s["commissionAccrued"], t[f"affiliate_accrued:{pid}"]),
                                ("commission reversed", s["commissionReversed"], t[f"affiliate_reversed:{pid}"])]:
            if got != want:
                errors.append(f"partner {pid} {what}: the statement says {got}, the answers said {want}")
        if s["commissionAccrued"] - s["commissionReversed"] - s["adjustments"] != s["pending"] + s["payable"] + s["paid"]:
            errors.append(f"partner {pid}: the statement's figures do not add up: {s}")
    lines.append(f"  self-referral: {t['affiliate_self_referrals']} orders of the influencer with their own code earned nothing")
    return lines, errors
