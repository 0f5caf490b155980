#!/usr/bin/env python3
"""Generates an import file of N members (JSON Lines, the fields of migration/line.schema.json)
for scripts/bench: deterministic for a seed, dated relative to today so every line is valid
(lots inside the expiry window, tiers reached within protection). Usage:
    gen_members.py N OUT [--seed S] [--prefix P]"""
import argparse
import datetime as dt
import json
import random

TIERS = [("regular", 0.70), ("silver", 0.18), ("gold", 0.09), ("diamond", 0.03)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--prefix", default="bench-import")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    # The program's calendar (Asia/Shanghai, UTC+8 all year): "today" as the import judges it.
    today = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=8)).date()
    day = lambda back: (today - dt.timedelta(days=back)).isoformat()
    lots_total = 0
    with open(a.out, "w") as f:
        for i in range(a.n):
            mid = f"{a.prefix}-{i:07d}"
            tier = rnd.choices([t for t, _ in TIERS], [w for _, w in TIERS])[0]
            joined = rnd.randint(30, 2000)
            line = {"id": mid, "email": f"{mid}@example.com", "name": f"Member {i}", "joinedAt": day(joined)}
            if rnd.random() < 0.5:
                line["phone"] = f"+86139{i:08d}"
            if rnd.random() < 0.6:
                line["birthday"] = dt.date(rnd.randint(1960, 2005), rnd.randint(1, 12), rnd.randint(1, 28)).isoformat()
            if tier != "regular":
                line["tier"] = tier
                line["tierReachedAt"] = day(rnd.randint(0, min(joined, 360)))
            lots = [{"points": rnd.randint(1, 5000), "earnedOn": day(rnd.randint(0, 360))} for _ in range(rnd.randint(0, 4))]
            if lots:
                line["lots"] = lots
                lots_total += len(lots)
            line["lifetimeSpend"] = rnd.randint(0, 20_000_000)
            line["spend"] = [{"on": day(rnd.randint(0, 364)), "amount": rnd.randint(100, 2_000_000)} for _ in range(rnd.randint(0, 3))]
            line["marketingConsent"] = rnd.random() < 0.4
            f.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(json.dumps({"members": a.n, "lots": lots_total}))


if __name__ == "__main__":
    main()
