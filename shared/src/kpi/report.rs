//! The report, computed from the counters of the days read (pure).

use super::*;
use crate::campaign::uplift::{arm_results, ArmFigures, ArmResult};

pub type Counters = BTreeMap<String, i64>;

fn get(c: &Counters, name: &str) -> i64 {
    c.get(name).copied().unwrap_or(0)
}

/// The arms a grant's counters hold, with their results.
fn arms_of(c: &Counters) -> Vec<ArmResult> {
    let figures = c
        .keys()
        .filter_map(|k| k.strip_prefix("members@"))
        .map(|arm| ArmFigures {
            arm: arm.to_string(),
            members: get(c, &arm_members(arm)),
            converted: get(c, &arm_converted(arm)),
            gmv: get(c, &arm_gmv(arm)),
        })
        .collect();
    arm_results(figures)
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

fn flows(c: &Counters) -> Flows {
    let (purchases, gmv, refunded) = (get(c, PURCHASES), get(c, GMV), get(c, REFUNDED));
    let (issued, redeemed, returned) =
        (get(c, COUPONS_ISSUED), get(c, COUPONS_REDEEMED), get(c, COUPONS_RETURNED));
    let mut by_grant: BTreeMap<String, CouponCount> = BTreeMap::new();
    let mut tier_moves = Vec::new();
    for (name, n) in c {
        if let Some(f) = name.strip_prefix("couponsIssued@") {
            by_grant.entry(f.into()).or_insert(CouponCount { issued: 0, redeemed: 0 }).issued += n;
        } else if let Some(f) = name.strip_prefix("couponsRedeemed@") {
            by_grant.entry(f.into()).or_insert(CouponCount { issued: 0, redeemed: 0 }).redeemed +=
                n;
        } else if let Some(m) = name.strip_prefix("move@") {
            let mut parts = m.split('@').map(TierCode::parse);
            if let (Some(Some(from)), Some(Some(to))) = (parts.next(), parts.next()) {
                if *n != 0 {
                    tier_moves.push(TierMove { from, to, members: *n });
                }
            }
        }
    }
    Flows {
        joined: get(c, JOINED),
        erased: get(c, ERASED),
        purchases,
        gmv: Fen(gmv),
        refunds: get(c, REFUNDS),
        refunded: Fen(refunded),
        net_gmv: Fen(gmv - refunded),
        average_order_value: (purchases > 0).then(|| Fen(gmv / purchases)),
        points: Points {
            earned: get(c, POINTS_EARNED),
            pending: get(c, POINTS_PENDING),
            released: get(c, POINTS_RELEASED),
            redeemed: get(c, POINTS_REDEEMED),
            expired: get(c, POINTS_EXPIRED),
            clawed_back: get(c, POINTS_CLAWED_BACK),
            returned: get(c, POINTS_RETURNED),
        },
        rebates: Rebates {
            credited: Fen(get(c, REBATE_CREDITED)),
            released: Fen(get(c, REBATE_RELEASED)),
            reversed: Fen(get(c, REBATE_REVERSED)),
            spent: Fen(get(c, REBATE_SPENT)),
            returned: Fen(get(c, REBATE_RETURNED)),
        },
        coupons: Coupons {
            issued,
            redeemed,
            returned,
            redemption_rate: rate(redeemed - returned, issued),
            by_grant,
        },
        discounts: Discounts {
            checkouts: get(c, CHECKOUTS),
            member: Fen(get(c, MEMBER_DISCOUNT)),
            coupon: Fen(get(c, COUPON_DISCOUNT)),
            points: Fen(get(c, POINTS_DISCOUNT)),
            points_used: get(c, POINTS_USED),
            rebate: Fen(get(c, REBATE_DISCOUNT)),
        },
        rewards_claimed: get(c, REWARDS_CLAIMED),
        tier_moves,
    }
}

fn liability(c: &Counters, points_per_cny: i64) -> Liability {
    let points = get(c, LIABILITY);
    Liability {
        points,
        value: Fen(points * 100 / points_per_cny.max(1)),
        rebate: Fen(get(c, REBATE_LIABILITY)),
    }
}

fn tiers(c: &Counters) -> BTreeMap<TierCode, i64> {
    TierCode::ALL.into_iter().map(|t| (t, get(c, &tier_count(t)))).collect()
}

fn add_into(sum: &mut Counters, c: &Counters) {
    for (k, v) in c {
        *sum.entry(k.clone()).or_default() += v;
    }
}

fn sub_from(sum: &mut Counters, c: &Counters) {
    for (k, v) in c {
        *sum.entry(k.clone()).or_default() -= v;
    }
}

/// The report over `[from, to]` from the days read (from the first of `from`'s month on,
/// every day with counters up to the latest), the running totals and the grants' results.
/// Running figures at the end of a day are the totals less every later day's change.
pub fn report(
    from: NaiveDate,
    to: NaiveDate,
    rules: &crate::Rules,
    days: &BTreeMap<NaiveDate, Counters>,
    total: &Counters,
    grants: Vec<(String, NaiveDate, Counters)>,
) -> Report {
    let points_per_cny = rules.points.redemption_points_per_cny;
    // Running figures at the end of `to`: the totals less the changes of the days after it.
    let mut running = total.clone();
    for (_, c) in days.range(to.succ_opt().unwrap_or(to)..) {
        sub_from(&mut running, c);
    }
    let mut out_days = Vec::new();
    let mut at_end = running.clone();
    let mut day = to;
    loop {
        let empty = Counters::new();
        let c = days.get(&day).unwrap_or(&empty);
        out_days.push(Day {
            date: day,
            buyers: get(c, BUYERS),
            flows: flows(c),
            liability: liability(&at_end, points_per_cny),
            tiers: tiers(&at_end),
        });
        sub_from(&mut at_end, c);
        if day <= from {
            break;
        }
        day = day.pred_opt().unwrap_or(from);
    }
    out_days.reverse();
    let mut sum = Counters::new();
    for (_, c) in days.range(from..=to) {
        add_into(&mut sum, c);
    }
    let totals = Totals {
        flows: flows(&sum),
        buyer_days: get(&sum, BUYERS),
        liability_at_end: liability(&running, points_per_cny),
        tiers_at_end: tiers(&running),
    };
    // Months and cohorts: every month the range touches, whole (the days were read from the
    // first of `from`'s month; a month's later days past `to` are in `days` too).
    let mut months = Vec::new();
    let mut cohorts = Vec::new();
    let mut first = read_from(from);
    while first <= to {
        let next = add_month(first);
        let mut m = Counters::new();
        for (_, c) in days.range(first..next) {
            add_into(&mut m, c);
        }
        let label = format!("{:04}-{:02}", first.year(), first.month());
        let (buyers, repeat) = (get(&m, MONTH_BUYERS), get(&m, MONTH_REPEAT_BUYERS));
        months.push(Month {
            month: label.clone(),
            active_members: buyers,
            repeat_buyers: repeat,
            repurchase_rate: rate(repeat, buyers),
            whole: first >= from && next - Duration::days(1) <= to,
        });
        let joined = get(&m, JOINED);
        let spend = get(&m, COHORT_SPEND);
        cohorts.push(Cohort {
            month: label,
            joined,
            bought_within30: get(&m, COHORT_BOUGHT_30),
            bought_within60: get(&m, COHORT_BOUGHT_60),
            bought_within90: get(&m, COHORT_BOUGHT_90),
            retention30: rate(get(&m, COHORT_BOUGHT_30), joined),
            retention60: rate(get(&m, COHORT_BOUGHT_60), joined),
            retention90: rate(get(&m, COHORT_BOUGHT_90), joined),
            spend: Fen(spend),
            average_spend: (joined > 0).then(|| Fen(spend / joined)),
        });
        first = next;
    }
    let campaigns = grants
        .into_iter()
        .filter(|(_, day, _)| (from..=to).contains(day))
        .map(|(grant, first_day, c)| {
            let (issued, redeemed, returned) =
                (get(&c, GRANT_ISSUED), get(&c, GRANT_REDEEMED), get(&c, GRANT_RETURNED));
            CampaignResult {
                grant,
                first_day,
                issued,
                redeemed,
                returned,
                redemption_rate: rate(redeemed - returned, issued),
                converted: get(&c, GRANT_CONVERTED),
                conversion_rate: rate(get(&c, GRANT_CONVERTED), issued),
                orders: get(&c, GRANT_ORDERS),
                gmv: Fen(get(&c, GRANT_GMV)),
                discount: Fen(get(&c, GRANT_DISCOUNT)),
                arms: arms_of(&c),
            }
        })
        .collect();
    Report {
        from,
        to,
        time_zone: rules.time_zone.name().into(),
        conversion_days: rules.reports.conversion_days,
        days: out_days,
        totals,
        months,
        cohorts,
        campaigns,
        churn_risk: Band::ALL.into_iter().map(|b| (b, get(total, &churn_count(b)))).collect(),
    }
}

fn add_month(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 { (d.year() + 1, 1) } else { (d.year(), d.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d)
}
