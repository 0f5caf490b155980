//! KPIs: the program's daily figures, kept as counters per program-calendar day while the
//! table's stream goes by (`store::kpi` decides what each stored change adds; events-out
//! applies it), and the report computed from them. Pure: no I/O.
//!
//! A change adds to counters through a `Bump`: the counters it adds to and a marker, a key
//! that names the source change. The store writes the marker on condition that it is new, in
//! the same transaction as the counters, so a stream record delivered again adds nothing. A
//! bump may carry facts that count once whatever change brings them ("this member bought on
//! this day"), each a bump of its own marker, written with the change's in one transaction:
//! a fact met a second time falls to its `otherwise` (the member's second order of a month
//! counts as a repeat buyer, the first one as a buyer), and a change already counted adds
//! none of its facts again.

use crate::churn::Band;
use crate::money::Fen;
use crate::tier::TierCode;
use chrono::{Datelike, Duration, NaiveDate};
use std::collections::BTreeMap;

// Counters of a day (top-level numbers of the day's item). Names are part of the stored
// items: changing one loses its history.
pub const JOINED: &str = "joined";
pub const ERASED: &str = "erased";
pub const PURCHASES: &str = "purchases";
pub const GMV: &str = "gmv";
pub const BUYERS: &str = "buyers";
pub const MONTH_BUYERS: &str = "monthBuyers";
pub const MONTH_REPEAT_BUYERS: &str = "monthRepeatBuyers";
pub const REFUNDS: &str = "refunds";
pub const REFUNDED: &str = "refunded";
pub const POINTS_EARNED: &str = "pointsEarned";
pub const POINTS_PENDING: &str = "pointsPending";
pub const POINTS_RELEASED: &str = "pointsReleased";
pub const POINTS_REDEEMED: &str = "pointsRedeemed";
pub const POINTS_EXPIRED: &str = "pointsExpired";
pub const POINTS_CLAWED_BACK: &str = "pointsClawedBack";
pub const POINTS_RETURNED: &str = "pointsReturned";
/// Σ of every ledger change (available and pending): the day's change of the liability.
pub const LIABILITY: &str = "liability";
/// Order rebates (fen): credited by purchases (pending or at once), released after the
/// return window, reversed by refunds, spent at checkout, given back by refunds; and the
/// running rebate liability (Σ of every ledger rebate change, available and pending).
pub const REBATE_CREDITED: &str = "rebateCredited";
pub const REBATE_RELEASED: &str = "rebateReleased";
pub const REBATE_REVERSED: &str = "rebateReversed";
pub const REBATE_SPENT: &str = "rebateSpent";
pub const REBATE_RETURNED: &str = "rebateReturned";
pub const REBATE_LIABILITY: &str = "rebateLiability";
pub const COUPONS_ISSUED: &str = "couponsIssued";
pub const COUPONS_REDEEMED: &str = "couponsRedeemed";
pub const COUPONS_RETURNED: &str = "couponsReturned";
pub const CHECKOUTS: &str = "checkouts";
pub const MEMBER_DISCOUNT: &str = "memberDiscount";
pub const COUPON_DISCOUNT: &str = "couponDiscount";
pub const POINTS_DISCOUNT: &str = "pointsDiscount";
pub const POINTS_USED: &str = "pointsUsed";
pub const REBATE_DISCOUNT: &str = "rebateDiscount";
pub const REWARDS_CLAIMED: &str = "rewardsClaimed";
/// On the join day: members who joined that day and placed a first order within 30 / 60 /
/// 90 days, and what they have paid net of refunds (to date).
pub const COHORT_BOUGHT_30: &str = "cohortBought30";
pub const COHORT_BOUGHT_60: &str = "cohortBought60";
pub const COHORT_BOUGHT_90: &str = "cohortBought90";
pub const COHORT_SPEND: &str = "cohortSpend";

// Counters of a grant (a campaign run's coupons).
pub const GRANT_ISSUED: &str = "issued";
pub const GRANT_REDEEMED: &str = "redeemed";
pub const GRANT_RETURNED: &str = "returned";
pub const GRANT_ORDERS: &str = "orders";
pub const GRANT_GMV: &str = "gmv";
pub const GRANT_DISCOUNT: &str = "discount";
/// Members who bought within `reports.conversionDays` of their coupon's issue (once each).
pub const GRANT_CONVERTED: &str = "converted";

/// Per experiment arm, on the grant's item: members recorded in the arm (a coupon issued, or
/// held out), those who converted, and what they paid within the conversion window.
pub fn arm_members(arm: &str) -> String {
    format!("members@{arm}")
}
pub fn arm_converted(arm: &str) -> String {
    format!("converted@{arm}")
}
pub fn arm_gmv(arm: &str) -> String {
    format!("gmv@{arm}")
}

/// A member's campaign coupon (or holdout record), on the member's touch item: the day it was
/// issued, as days from the common era (what a counter can hold), named by the grant and, in
/// an experiment, the arm (`t@<grant>@<arm>`: grants and arm names hold no `@`).
pub fn touch_of(grant: &str, arm: Option<&str>) -> String {
    match arm {
        Some(arm) => format!("t@{grant}@{arm}"),
        None => format!("t@{grant}"),
    }
}

/// The grant and arm a touch counter names.
pub fn parse_touch(counter: &str) -> Option<(String, Option<String>)> {
    let rest = counter.strip_prefix("t@")?;
    Some(match rest.split_once('@') {
        Some((grant, arm)) => (grant.to_string(), Some(arm.to_string())),
        None => (rest.to_string(), None),
    })
}

/// A member's touch by a campaign run: when, and in which arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    pub day: NaiveDate,
    pub arm: Option<String>,
}

/// The touches of a touch item's counters, by grant.
pub fn touches(c: &Counters) -> BTreeMap<String, Touch> {
    c.iter()
        .filter_map(|(k, v)| {
            let (grant, arm) = parse_touch(k)?;
            let day = NaiveDate::from_num_days_from_ce_opt(i32::try_from(*v).ok()?)?;
            Some((grant, Touch { day, arm }))
        })
        .collect()
}

/// The runs whose touch of the member is at most `days` days before an order on `day`.
fn in_window(
    day: NaiveDate,
    touched: &BTreeMap<String, Touch>,
    days: u32,
) -> impl Iterator<Item = (&String, &Touch)> {
    touched.iter().filter(move |(_, t)| (0..=i64::from(days)).contains(&(day - t.day).num_days()))
}

/// Conversion facts of a member's order on `day`: each campaign run whose coupon the member
/// got (or, in a holdout, would have got) at most `days` days before, counted once per member
/// and run. A held-out member converts in its arm only: the run's `converted` counts coupons.
pub fn conversion_facts(
    member: &str,
    day: NaiveDate,
    touched: &BTreeMap<String, Touch>,
    days: u32,
) -> Vec<Bump> {
    in_window(day, touched, days)
        .map(|(grant, t)| {
            let target = Target::Grant(grant.clone(), t.day);
            let held_out = t.arm.as_deref() == Some(crate::campaign::experiment::HOLDOUT_ARM);
            let mut b = Bump::new(format!("conv#{grant}#{member}"), FACT_DAYS);
            if !held_out {
                b = b.add(target.clone(), GRANT_CONVERTED, 1);
            }
            match &t.arm {
                Some(arm) => b.add(target, &arm_converted(arm), 1),
                None => b,
            }
        })
        .collect()
}

/// What an order paid, added to the arm of every experiment run that touched the member at
/// most `days` days before it (each order once: it rides on the order's own bump).
pub fn arm_spend(
    day: NaiveDate,
    paid: i64,
    touched: &BTreeMap<String, Touch>,
    days: u32,
) -> Vec<Add> {
    in_window(day, touched, days)
        .filter_map(|(grant, t)| {
            let arm = t.arm.as_deref()?;
            Some(Add {
                target: Target::Grant(grant.clone(), t.day),
                counter: arm_gmv(arm),
                n: paid,
            })
        })
        .filter(|a| a.n != 0)
        .collect()
}

/// Coupons of a grant family issued / redeemed on a day.
pub fn issued_of(family: &str) -> String {
    format!("couponsIssued@{family}")
}
pub fn redeemed_of(family: &str) -> String {
    format!("couponsRedeemed@{family}")
}
/// Tier moves of a day, from → to.
pub fn tier_move(from: TierCode, to: TierCode) -> String {
    format!("move@{}@{}", from.as_str(), to.as_str())
}
/// The change of a tier's live members (a day's delta; the running total on the total item).
pub fn tier_count(tier: TierCode) -> String {
    format!("tier@{}", tier.as_str())
}
/// The change of a churn band's live members, as scored (a running figure like the tiers').
pub fn churn_count(band: Band) -> String {
    format!("churn@{}", band.as_str())
}

/// The family a grant is counted under by day: one per campaign run, welcome, birthday (any
/// year), reward (one grant per claim, so never one each).
pub fn grant_family(grant: &str) -> &str {
    if grant.starts_with("reward:") {
        "reward"
    } else if grant.starts_with("birthday-") {
        "birthday"
    } else {
        grant
    }
}

/// Whether a grant gets results of its own (campaign runs: member days, one-offs, win-back).
pub fn has_results(grant: &str) -> bool {
    grant.starts_with("campaign:") || grant.starts_with("winback:")
}

mod bump;
mod figures;
mod range;
mod report;
#[cfg(test)]
mod tests;

pub use bump::*;
pub use figures::*;
pub use range::{parse_range, read_from, RangeError, DEFAULT_DAYS, MAX_DAYS};
pub use report::*;
