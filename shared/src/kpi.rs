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

use crate::campaign::uplift::{arm_results, ArmFigures, ArmResult};
use crate::churn::Band;
use crate::money::Fen;
use crate::tier::TierCode;
use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;
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

/// What a counter belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A program-calendar day.
    Day(NaiveDate),
    /// The running totals (liability, live members per tier) as of the last change.
    Total,
    /// A grant's results; the day is the one it was first counted (its run's day).
    Grant(String, NaiveDate),
    /// A member's campaign coupons (their issue days), read when the member buys.
    Touch(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub target: Target,
    pub counter: String,
    pub n: i64,
}

/// Counters added once per marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bump {
    /// What makes this bump once: a stream change's identity, or a fact's.
    pub marker: String,
    /// How long the marker must be kept (days from now): as long as a repeat can come.
    pub keep_days: i64,
    pub adds: Vec<Add>,
    /// Tried instead when the marker exists already (a fact's).
    pub otherwise: Option<Box<Bump>>,
    /// Facts the change brings, counted with it or not at all.
    pub facts: Vec<Bump>,
    /// An order of this member on this day, and what it paid: the store adds its conversion
    /// facts (and the arms' spend) from the member's campaign coupons.
    pub bought: Option<(String, NaiveDate, i64)>,
}

impl Bump {
    pub fn new(marker: String, keep_days: i64) -> Bump {
        Bump {
            marker,
            keep_days,
            adds: Vec::new(),
            otherwise: None,
            facts: Vec::new(),
            bought: None,
        }
    }

    pub fn add(mut self, target: Target, counter: &str, n: i64) -> Bump {
        if n != 0 {
            self.adds.push(Add { target, counter: counter.into(), n });
        }
        self
    }

    pub fn day(self, day: NaiveDate, counter: &str, n: i64) -> Bump {
        self.add(Target::Day(day), counter, n)
    }

    /// A change of a running figure: the day's delta and the total.
    pub fn running(self, day: NaiveDate, counter: &str, n: i64) -> Bump {
        self.add(Target::Day(day), counter, n).add(Target::Total, counter, n)
    }

    pub fn or_else(mut self, other: Bump) -> Bump {
        self.otherwise = Some(Box::new(other));
        self
    }

    pub fn bought(mut self, member: &str, day: NaiveDate, paid: Fen) -> Bump {
        self.bought = Some((member.to_string(), day, paid.0));
        self
    }

    /// A campaign coupon issued to `member` on `day` (or the member held out), in `arm`.
    pub fn touch(self, member: &str, grant: &str, arm: Option<&str>, day: NaiveDate) -> Bump {
        let n = i64::from(day.num_days_from_ce());
        self.add(Target::Touch(member.to_string()), &touch_of(grant, arm), n)
    }

    pub fn with_facts(mut self, facts: Vec<Bump>) -> Bump {
        self.facts.extend(facts);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.otherwise.is_none() && self.facts.is_empty()
    }
}

/// A record's stream change adds nothing again for this long: DynamoDB Streams keeps records
/// 24 hours and the mapping gives up on a record a day old.
pub const REDELIVERY_DAYS: i64 = 3;
/// Facts dated by a purchase's day stay counted once while a purchase of that day can still
/// be reported (a purchase older than the points' life is refused).
pub const FACT_DAYS: i64 = 400;

/// A member's first order, `gap` program days after joining: counted on the join day in each
/// window it falls in.
pub fn cohort_windows(gap: i64) -> Vec<&'static str> {
    [(30, COHORT_BOUGHT_30), (60, COHORT_BOUGHT_60), (90, COHORT_BOUGHT_90)]
        .into_iter()
        .filter(|(days, _)| (0..=*days).contains(&gap))
        .map(|(_, c)| c)
        .collect()
}

/// The buyer facts of an order: the member's first order of the day (a buyer), and the first
/// and second of the month (the month's buyers and repeat buyers).
pub fn buyer_facts(member: &str, day: NaiveDate) -> Vec<Bump> {
    let month = format!("{:04}-{:02}", day.year(), day.month());
    let buyer = Bump::new(format!("buyer#{member}#{day}"), FACT_DAYS).day(day, BUYERS, 1);
    let second =
        Bump::new(format!("month#{member}#{month}#2"), FACT_DAYS).day(day, MONTH_REPEAT_BUYERS, 1);
    let first = Bump::new(format!("month#{member}#{month}#1"), FACT_DAYS)
        .day(day, MONTH_BUYERS, 1)
        .or_else(second);
    vec![buyer, first]
}

// ---------------------------------------------------------------------------------------
// The report

/// The most days one report covers.
pub const MAX_DAYS: i64 = 366;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{0} is not a date (YYYY-MM-DD)")]
    NotADate(&'static str),
    #[error("from is after to")]
    Reversed,
    #[error("at most {MAX_DAYS} days a report")]
    TooLong,
}

impl RangeError {
    pub fn code(&self) -> &'static str {
        match self {
            RangeError::NotADate(_) => "invalid_date",
            RangeError::Reversed => "invalid_range",
            RangeError::TooLong => "range_too_long",
        }
    }
}

/// Days a report covers when `from` is not given: `to` and the 29 days before it.
pub const DEFAULT_DAYS: i64 = 30;

/// The report's days, from the query's `from` and `to` (default: `today`, and the 30 days
/// ending on `to`).
pub fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), RangeError> {
    let date = |v: &str, name: &'static str| -> Result<NaiveDate, RangeError> {
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .ok()
            .filter(|_| v.len() == 10)
            .ok_or(RangeError::NotADate(name))
    };
    let to = to.map(|t| date(t, "to")).transpose()?.unwrap_or(today);
    let from = match from {
        Some(f) => date(f, "from")?,
        None => to - Duration::days(DEFAULT_DAYS - 1),
    };
    if from > to {
        return Err(RangeError::Reversed);
    }
    if (to - from).num_days() + 1 > MAX_DAYS {
        return Err(RangeError::TooLong);
    }
    Ok((from, to))
}

/// The first day the report reads: the first of `from`'s month, so that monthly figures and
/// cohorts are whole months.
pub fn read_from(from: NaiveDate) -> NaiveDate {
    from.with_day(1).unwrap_or(from)
}

pub type Counters = BTreeMap<String, i64>;

fn get(c: &Counters, name: &str) -> i64 {
    c.get(name).copied().unwrap_or(0)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Points {
    pub earned: i64,
    pub pending: i64,
    pub released: i64,
    pub redeemed: i64,
    pub expired: i64,
    pub clawed_back: i64,
    pub returned: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CouponCount {
    pub issued: i64,
    pub redeemed: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Coupons {
    pub issued: i64,
    pub redeemed: i64,
    pub returned: i64,
    /// (redeemed − returned) ÷ issued, of the same days; none without issues.
    pub redemption_rate: Option<f64>,
    pub by_grant: BTreeMap<String, CouponCount>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Discounts {
    pub checkouts: i64,
    pub member: Fen,
    pub coupon: Fen,
    pub points: Fen,
    pub points_used: i64,
    /// Paid with the rebate balance.
    pub rebate: Fen,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TierMove {
    pub from: TierCode,
    pub to: TierCode,
    pub members: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Liability {
    pub points: i64,
    /// What the points are worth at the rules' redemption rate, fen.
    pub value: Fen,
    /// Order rebates owed to members, available and pending, net of rebate debts (fen).
    pub rebate: Fen,
}

/// Order rebates of a day or period, in fen.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rebates {
    pub credited: Fen,
    pub released: Fen,
    pub reversed: Fen,
    pub spent: Fen,
    pub returned: Fen,
}

/// The flows of a day or of the period (sums of days).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Flows {
    pub joined: i64,
    pub erased: i64,
    pub purchases: i64,
    pub gmv: Fen,
    pub refunds: i64,
    pub refunded: Fen,
    pub net_gmv: Fen,
    /// gmv ÷ purchases, fen rounded down; none without purchases.
    pub average_order_value: Option<Fen>,
    pub points: Points,
    pub rebates: Rebates,
    pub coupons: Coupons,
    pub discounts: Discounts,
    pub rewards_claimed: i64,
    pub tier_moves: Vec<TierMove>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Day {
    pub date: NaiveDate,
    /// Members with at least one order that day.
    pub buyers: i64,
    #[serde(flatten)]
    pub flows: Flows,
    /// At the end of the day.
    pub liability: Liability,
    /// Live (not erased) members per tier at the end of the day.
    pub tiers: BTreeMap<TierCode, i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Month {
    pub month: String,
    /// Members with at least one order in the calendar month (active members).
    pub active_members: i64,
    /// Of them, members with at least two orders in the month.
    pub repeat_buyers: i64,
    pub repurchase_rate: Option<f64>,
    /// Whether every day of the month is inside the report's range.
    pub whole: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cohort {
    pub month: String,
    pub joined: i64,
    /// Members of the cohort whose first order came within 30 / 60 / 90 days of joining.
    pub bought_within30: i64,
    pub bought_within60: i64,
    pub bought_within90: i64,
    pub retention30: Option<f64>,
    pub retention60: Option<f64>,
    pub retention90: Option<f64>,
    /// What the cohort paid to date, net of refunds, and per member who joined.
    pub spend: Fen,
    pub average_spend: Option<Fen>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CampaignResult {
    pub grant: String,
    pub first_day: NaiveDate,
    pub issued: i64,
    pub redeemed: i64,
    pub returned: i64,
    pub redemption_rate: Option<f64>,
    /// Members who bought within `conversionDays` of their coupon's issue, and ÷ issued.
    pub converted: i64,
    pub conversion_rate: Option<f64>,
    /// Confirmed checkouts that redeemed the grant's coupons, and what they paid.
    pub orders: i64,
    pub gmv: Fen,
    pub discount: Fen,
    /// An experiment's arms (none for a run without one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arms: Vec<ArmResult>,
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

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    #[serde(flatten)]
    pub flows: Flows,
    /// Σ of the days' buyers: a member buying on two days counts twice.
    pub buyer_days: i64,
    pub liability_at_end: Liability,
    pub tiers_at_end: BTreeMap<TierCode, i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub time_zone: String,
    pub conversion_days: u32,
    pub days: Vec<Day>,
    pub totals: Totals,
    pub months: Vec<Month>,
    pub cohorts: Vec<Cohort>,
    pub campaigns: Vec<CampaignResult>,
    /// Live members per churn risk band now, as last scored (whatever the range; members not
    /// scored since churn was deployed are in none).
    pub churn_risk: BTreeMap<Band, i64>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_are_dates_in_order_and_at_most_a_year() {
        let today = d("2026-11-20");
        let r = |f, t| parse_range(f, t, today);
        assert_eq!(
            r(Some("2026-01-01"), Some("2026-12-31")),
            Ok((d("2026-01-01"), d("2026-12-31")))
        );
        assert_eq!(
            r(Some("2024-01-01"), Some("2024-12-31")).map(|_| ()),
            Ok(()),
            "a leap year is 366 days"
        );
        assert_eq!(r(Some("2026-01-01"), Some("2027-01-02")), Err(RangeError::TooLong));
        assert_eq!(r(Some("2026-02-01"), Some("2026-01-31")), Err(RangeError::Reversed));
        assert_eq!(r(None, None), Ok((d("2026-10-22"), today)), "the last 30 days");
        assert_eq!(r(None, Some("2026-01-31")), Ok((d("2026-01-02"), d("2026-01-31"))));
        assert_eq!(r(Some("2026-11-01"), None), Ok((d("2026-11-01"), today)));
        assert_eq!(r(Some("2026-2-1"), Some("2026-03-01")), Err(RangeError::NotADate("from")));
        assert_eq!(r(Some("2026-02-30"), Some("2026-03-01")), Err(RangeError::NotADate("from")));
        assert_eq!(r(Some("2026-02-01"), Some("tomorrow")), Err(RangeError::NotADate("to")));
    }

    #[test]
    fn a_first_order_counts_in_each_cohort_window_it_falls_in() {
        assert_eq!(cohort_windows(0), [COHORT_BOUGHT_30, COHORT_BOUGHT_60, COHORT_BOUGHT_90]);
        assert_eq!(cohort_windows(31), [COHORT_BOUGHT_60, COHORT_BOUGHT_90]);
        assert_eq!(cohort_windows(90), [COHORT_BOUGHT_90]);
        assert!(cohort_windows(91).is_empty());
    }

    #[test]
    fn a_member_converts_for_runs_issued_at_most_the_window_before() {
        let t = |day: &str| Touch { day: d(day), arm: None };
        let touched: BTreeMap<String, Touch> = [
            ("campaign:a:once".to_string(), t("2026-11-10")),
            ("campaign:b:once".to_string(), t("2026-11-03")),
            ("campaign:c:once".to_string(), t("2026-11-18")),
        ]
        .into();
        let facts = conversion_facts("m", d("2026-11-17"), &touched, 7);
        assert_eq!(
            facts.iter().map(|f| f.marker.as_str()).collect::<Vec<_>>(),
            ["conv#campaign:a:once#m"],
            "b is 14 days old, c not issued yet"
        );
        assert_eq!(
            facts[0].adds[0].target,
            Target::Grant("campaign:a:once".into(), d("2026-11-10"))
        );
        let c: Counters =
            [(touch_of("campaign:a:once", None), i64::from(d("2026-11-10").num_days_from_ce()))]
                .into();
        assert_eq!(touches(&c)["campaign:a:once"], t("2026-11-10"));
        assert!(arm_spend(d("2026-11-17"), 500, &touched, 7).is_empty(), "no arms, no arm spend");
    }

    #[test]
    fn an_arm_converts_and_spends_in_its_own_counters_and_the_holdout_not_in_the_runs() {
        let day = d("2026-11-12");
        let touched: BTreeMap<String, Touch> = [
            ("campaign:x:once".to_string(), Touch { day, arm: Some("b".into()) }),
            ("campaign:y:once".to_string(), Touch { day, arm: Some("holdout".into()) }),
        ]
        .into();
        let c: Counters = [
            (touch_of("campaign:x:once", Some("b")), i64::from(day.num_days_from_ce())),
            (touch_of("campaign:y:once", Some("holdout")), i64::from(day.num_days_from_ce())),
        ]
        .into();
        assert_eq!(touches(&c), touched, "the arm survives the touch item");
        let facts = conversion_facts("m", d("2026-11-19"), &touched, 7);
        let adds: Vec<(&str, &str)> = facts
            .iter()
            .flat_map(|f| &f.adds)
            .map(|a| match &a.target {
                Target::Grant(g, _) => (g.as_str(), a.counter.as_str()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            adds,
            [
                ("campaign:x:once", GRANT_CONVERTED),
                ("campaign:x:once", "converted@b"),
                ("campaign:y:once", "converted@holdout"),
            ]
        );
        let spend = arm_spend(d("2026-11-19"), 12_800, &touched, 7);
        assert_eq!(
            spend.iter().map(|a| (a.counter.as_str(), a.n)).collect::<Vec<_>>(),
            [("gmv@b", 12_800), ("gmv@holdout", 12_800)]
        );
        assert!(arm_spend(d("2026-11-20"), 12_800, &touched, 7).is_empty(), "8 days later");
        assert_eq!(
            parse_touch("t@campaign:x:once@b"),
            Some(("campaign:x:once".into(), Some("b".into())))
        );
    }

    #[test]
    fn grant_families_bound_the_day_counters() {
        assert_eq!(grant_family("reward:cl-1"), "reward");
        assert_eq!(grant_family("birthday-2026"), "birthday");
        assert_eq!(grant_family("campaign:c-1:2026-11"), "campaign:c-1:2026-11");
        assert!(has_results("campaign:c-1:once") && has_results("winback:2026-07-01"));
        assert!(!has_results("welcome"));
    }

    #[test]
    fn end_of_day_figures_are_the_totals_less_later_changes() {
        let mut days = BTreeMap::new();
        let c = |pairs: &[(&str, i64)]| -> Counters {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        days.insert(
            d("2026-11-01"),
            c(&[
                (LIABILITY, 100),
                ("tier@regular", 2),
                (PURCHASES, 2),
                (GMV, 301),
                (BUYERS, 1),
                (MONTH_BUYERS, 1),
                (MONTH_REPEAT_BUYERS, 1),
                (JOINED, 2),
            ]),
        );
        days.insert(
            d("2026-11-03"),
            c(&[
                (LIABILITY, -40),
                ("tier@regular", -1),
                ("tier@silver", 1),
                ("move@regular@silver", 1),
            ]),
        );
        days.insert(d("2026-12-01"), c(&[(LIABILITY, 7)]));
        let total = c(&[(LIABILITY, 67), ("tier@regular", 1), ("tier@silver", 1)]);
        let r = report(
            d("2026-11-01"),
            d("2026-11-03"),
            &crate::Rules::default(),
            &days,
            &total,
            vec![],
        );
        assert_eq!(r.days.len(), 3);
        assert_eq!(r.days.iter().map(|x| x.liability.points).collect::<Vec<_>>(), [100, 100, 60]);
        assert_eq!(r.days[2].liability.value, Fen(60));
        assert_eq!(r.days[0].tiers[&TierCode::Regular], 2);
        assert_eq!(
            (r.days[2].tiers[&TierCode::Regular], r.days[2].tiers[&TierCode::Silver]),
            (1, 1)
        );
        assert_eq!(r.totals.flows.average_order_value, Some(Fen(150)));
        assert_eq!(
            r.totals.flows.tier_moves,
            [TierMove { from: TierCode::Regular, to: TierCode::Silver, members: 1 }]
        );
        assert_eq!(
            (r.months[0].active_members, r.months[0].repurchase_rate, r.months[0].whole),
            (1, Some(1.0), false)
        );
        assert_eq!(r.cohorts[0].joined, 2);
    }
}
