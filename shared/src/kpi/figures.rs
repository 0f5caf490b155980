//! The report's figures as answered (`GET /reports/kpis`): every number has its definition in
//! the README's KPI table.

use super::*;
use crate::campaign::uplift::ArmResult;
use serde::Serialize;

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
