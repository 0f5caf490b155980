//! The program is data: one rules document with bundled defaults (`rules/default.json`,
//! the default program), overridable per deployment by a JSON document that is merged
//! over the defaults and validated once, at start.

use crate::coupon::CouponTemplate;
use crate::money::{Fen, Multiplier};
use crate::tier_code::TierCode;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod load;
mod validate;

pub use load::RulesError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rules {
    pub currency: String,
    pub time_zone: Tz,
    /// Exactly one rule per tier, Regular first, thresholds ascending.
    pub tiers: Vec<TierRule>,
    /// Qualifying spend is summed over this many days back from today.
    pub tier_window_days: u32,
    /// A tier is kept at least this many days from when it was reached.
    pub tier_protection_days: u32,
    /// Points (and referral rewards) earned by an order are pending this many program days
    /// (七天无理由退货) before they can be spent; a refund inside the window cancels them.
    pub return_window_days: u32,
    pub points: PointsRules,
    pub activities: ActivityRules,
    pub signup: SignupRules,
    pub birthday: BirthdayRules,
    pub referral: ReferralRules,
    pub member_day: MemberDayRules,
    pub winback: WinbackRules,
    pub checkout: CheckoutRules,
    #[serde(default)]
    pub rebates: RebateRules,
    pub limits: LimitRules,
    #[serde(default)]
    pub reports: ReportRules,
    // Partner payout terms and tracking codes.
    #[serde(default)]
    pub affiliates: AffiliateRules,
    /// Churn risk bands (`churn`: the RFM thresholds).
    #[serde(default)]
    pub churn: crate::churn::ChurnRules,
    /// Named coupon templates operators and campaigns issue by name.
    #[serde(default)]
    pub coupon_templates: BTreeMap<String, CouponTemplate>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierRule {
    pub code: TierCode,
    pub name: String,
    /// Qualifying spend (fen) over the rolling window that earns this tier.
    pub threshold: Fen,
    pub multiplier: Multiplier,
    pub discount_percent: u8,
    /// The order rebate (返利) of this tier, in basis points of the paid amount (100 = 1%):
    /// credited to the member's rebate balance, pending through the return window. Absent: 0.
    #[serde(default)]
    pub rebate_basis_points: u16,
    pub birthday_coupon: CouponTemplate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PointsRules {
    /// Points per whole CNY paid, before multipliers.
    pub per_cny: i64,
    /// A lot of points expires this many days after it was earned.
    pub expiry_days: u32,
    /// The profile lists points expiring within this many days.
    pub expiring_soon_days: u32,
    /// The daily sweep tells a lot's expiry this many days ahead, once per lot (the event
    /// `PointsExpiringSoon`); 0 tells nothing.
    pub expiry_notice_days: u32,
    pub redemption_points_per_cny: i64,
    pub redemption_step: i64,
    /// The largest single order accepted (fen); larger is treated as a mistake.
    pub max_order_amount: Fen,
    /// How far in the future an `occurredAt` may be (clock skew between systems).
    pub clock_skew_seconds: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivityRules {
    pub checkin: i64,
    pub review: i64,
    pub share: i64,
    pub shares_per_day: u32,
    pub daily_cap: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupRules {
    pub welcome_points: i64,
    pub welcome_coupon: CouponTemplate,
}

/// Birthday coupons (the coupon itself is the tier's `birthdayCoupon`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BirthdayRules {
    /// A birthday brings a coupon only if it was recorded at least this many days before it
    /// (`birthday::gift_allowed`), so that nobody sets "today" to collect one.
    pub min_days_known: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReferralRules {
    pub referrer_points: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberDayRules {
    pub day_of_month: u32,
    pub multiplier: Multiplier,
    pub tiers: Vec<TierCode>,
    pub coupon: CouponTemplate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WinbackRules {
    pub dormant_days: u32,
    pub cooldown_days: u32,
    pub coupon: CouponTemplate,
}

/// Checkout: how long a quote holds its coupon and points, how much of an order points may
/// pay, and the order in which the discounts apply (each step works on what the steps before
/// it left).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckoutRules {
    pub hold_minutes: u32,
    /// Points may pay at most this percentage of what is left when the points step runs.
    pub max_points_percent: u8,
    /// Most coupons on one order (all of them stackable when more than one).
    pub max_coupons_per_order: u8,
    /// Most open (held, unexpired) checkouts a member may have at once.
    pub max_open_checkouts: u8,
    pub apply_order: Vec<Step>,
}

/// Paying with the rebate balance at checkout (`rebates`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RebateRules {
    /// The rebate balance may pay at most this percentage of what is left when the rebate
    /// step runs (0: rebates are never spent at checkout).
    pub max_checkout_percent: u8,
}

impl Default for RebateRules {
    fn default() -> Self {
        RebateRules { max_checkout_percent: 50 }
    }
}

/// Anti-flooding limits (`limits`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitRules {
    /// Writes one member may make per minute through activities and checkout quotes; more
    /// are answered 429 with `Retry-After`, writing nothing.
    pub member_writes_per_minute: u32,
}

/// What the KPI report counts (`reports`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportRules {
    /// A campaign run converted a member who bought within this many program days of the
    /// day their coupon was issued (0: the same day only).
    pub conversion_days: u32,
}

impl Default for ReportRules {
    fn default() -> Self {
        ReportRules { conversion_days: 7 }
    }
}

/// Affiliate partners (`affiliates`): the cap on what a partner may be paid, and their codes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AffiliateRules {
    /// The highest payout rate an operator may give a partner, in basis points of the paid
    /// amount (1500 = 15%), for the partner's rate and each channel's.
    pub max_rate_basis_points: u32,
    /// Characters of a generated tracking code (Crockford base32).
    pub code_length: u8,
    /// Codes one partner may have: a change of the partner's terms rewrites every code item
    /// in one transaction (at most 100 items), so this stays well below that.
    pub max_codes_per_partner: u8,
}

impl Default for AffiliateRules {
    fn default() -> Self {
        AffiliateRules { max_rate_basis_points: 1500, code_length: 8, max_codes_per_partner: 20 }
    }
}

impl Rules {
    pub fn tier(&self, code: TierCode) -> &TierRule {
        // `validate` guarantees one rule per tier, in rank order.
        &self.tiers[code.rank()]
    }
}

/// The discount steps, applied in the rules' `checkout.applyOrder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The tier's member price (9折/8折/7折).
    MemberDiscount,
    Coupons,
    Points,
    /// The rebate balance; last when `applyOrder` does not name it.
    Rebate,
}

/// The largest rebate rate a tier may have, in basis points.
pub const MAX_REBATE_BASIS_POINTS: u16 = 2000;

impl CheckoutRules {
    /// The discount steps in order: `applyOrder`, with the rebate step last if it is not named
    /// (rules written before rebates existed keep their order).
    pub fn steps(&self) -> Vec<Step> {
        let mut steps = self.apply_order.clone();
        if !steps.contains(&Step::Rebate) {
            steps.push(Step::Rebate);
        }
        steps
    }
}

#[cfg(test)]
mod tests;
