//! Tiers: which tier a rolling spend earns, the instant upgrade on purchase, and the
//! nightly evaluation (protected, one-step downgrades).
//!
//! The rules of the nightly evaluation, all in program-calendar days (`Rules::time_zone`):
//! - **Rolling spend** on day D sums the member's spend days from D-364 to D (365 days, not
//!   "a year": across a Feb 29 the window starts one calendar date later).
//! - **Protection**: a tier reached on day S (the program date of `tier_since`) is kept through
//!   day S+365 *inclusive*; day S+366 is the first evaluation that may lower it. The nightly run
//!   starts at 00:30, so lowering on S+365 could cut a tier reached late on day S before 365
//!   full days had passed; with S+366 every member gets at least 365 x 24 hours.
//! - **Upgrade**: if the rolling spend earns a higher tier (a rules change lowered thresholds,
//!   or a missed purchase-time upgrade), the tier is raised at once to the earned one, with a
//!   fresh protection period.
//! - **Step down**: once protection is over, a tier above the earned one goes down ONE level per
//!   evaluation, never below the earned tier. `tier_since` becomes the time of the step (the
//!   profile says since when the member holds the lower tier) but a tier entered by stepping
//!   down is *not* protected again (`stepped_down_at`): otherwise "one level per evaluation"
//!   would mean one level per year and a diamond member gone quiet would keep diamond
//!   benefits for three years. A member gone quiet thus steps down one level per night.
//! - **Idempotent**: the evaluation date is recorded (`last_tier_evaluation`); evaluating again
//!   on that date (or an earlier one) changes nothing, so a re-run night steps nobody twice.
//! - **Rules changes** apply at the next evaluation, with the protection above: a raised
//!   threshold never lowers anyone before protection ends.

mod nightly;

pub use crate::tier_code::{Reach, TierCode};
pub use nightly::*;

use crate::money::Fen;
use crate::rules::{Rules, TierRule};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The highest tier whose threshold the qualifying spend reaches.
pub fn earned_tier(rules: &Rules, rolling_spend: Fen) -> TierCode {
    rules
        .tiers
        .iter()
        .rev()
        .find(|t| rolling_spend >= t.threshold)
        .map(|t| t.code)
        .unwrap_or(TierCode::Regular)
}

/// Upgrades happen at once: the tier after a purchase is the higher of the current one and
/// the one the new rolling spend earns. Never lowers a tier.
pub fn upgrade_on_purchase(rules: &Rules, current: TierCode, rolling_spend: Fen) -> TierCode {
    current.max(earned_tier(rules, rolling_spend))
}

/// After a purchase: every tier the rolling spend now meets was reached now, with all of it
/// kept. Reaches whose protection is over are dropped (at most one per tier is kept).
pub fn record_reach(
    member: &mut crate::member::Member,
    rules: &Rules,
    rolling: Fen,
    now: DateTime<Utc>,
) {
    let today = crate::calendar::program_date(rules.time_zone, now);
    member
        .reached
        .retain(|r| reach_protects(rules, r, today) && rolling < rules.tier(r.tier).threshold);
    for t in rules.tiers.iter().skip(1).filter(|t| rolling >= t.threshold) {
        member.reached.push(Reach { tier: t.code, at: now, kept: rolling });
    }
    member.reached.sort_by_key(|r| r.tier);
}

fn reach_protects(rules: &Rules, r: &Reach, today: NaiveDate) -> bool {
    crate::calendar::program_date(rules.time_zone, r.at)
        + Duration::days(rules.tier_protection_days as i64)
        >= today
}

/// A refund of `amount` of an order of program day `order_day`, recorded at `recorded_at`:
/// every reach that counted that order loses it. Then the tier is re-decided: the member keeps
/// the higher of what the rolling spend earns now and the highest tier still reached, within
/// its protection, by kept spend — never more than the tier held. A drop is recorded with
/// reason `refund`; a tier kept by an earlier reach keeps that reach's protection, one kept
/// only by today's spend starts none (as a nightly step down).
pub fn redecide_after_refund(
    member: &mut crate::member::Member,
    rules: &Rules,
    order_day: NaiveDate,
    recorded_at: DateTime<Utc>,
    amount: Fen,
    now: DateTime<Utc>,
) -> Option<TierChange> {
    let tz = rules.time_zone;
    let today = crate::calendar::program_date(tz, now);
    let window = Duration::days(rules.tier_window_days as i64 - 1);
    for r in member.reached.iter_mut() {
        if r.at >= recorded_at && order_day >= crate::calendar::program_date(tz, r.at) - window {
            r.kept = Fen((r.kept.0 - amount.0).max(0));
        }
    }
    let rolling = member.rolling_spend(today, rules.tier_window_days);
    let earned = earned_tier(rules, rolling);
    let protected = member
        .reached
        .iter()
        .filter(|r| reach_protects(rules, r, today) && r.kept >= rules.tier(r.tier).threshold)
        .max_by_key(|r| (r.tier, r.at))
        .copied();
    let keep = protected.map_or(earned, |p| p.tier.max(earned)).min(member.tier);
    if keep >= member.tier {
        return None;
    }
    let change = TierChange {
        from: member.tier,
        to: keep,
        reason: ChangeReason::Refund.as_str().into(),
        at: now,
    };
    member.tier = keep;
    match protected.filter(|p| p.tier == keep) {
        Some(p) => {
            member.tier_since = p.at;
            member.stepped_down_at = None;
        }
        None => {
            member.tier_since = now;
            member.stepped_down_at = Some(now);
        }
    }
    Some(change)
}

/// Progress toward the next tier: which tier and how much more qualifying spend it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NextTier {
    pub tier: TierCode,
    pub threshold: Fen,
    pub spend_needed: Fen,
}

pub fn next_tier(rules: &Rules, current: TierCode, rolling_spend: Fen) -> Option<NextTier> {
    let next = current.above()?;
    let rule = rules.tier(next);
    Some(NextTier {
        tier: next,
        threshold: rule.threshold,
        spend_needed: Fen((rule.threshold.0 - rolling_spend.0).max(0)),
    })
}

/// A recorded tier change (tier history item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierChange {
    pub from: TierCode,
    pub to: TierCode,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// The benefits a tier gives, as shown on the profile.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Benefits<'a> {
    pub points_multiplier: crate::money::Multiplier,
    pub member_discount_percent: u8,
    /// The order rebate, in basis points of the paid amount (100 = 1%).
    pub rebate_basis_points: u16,
    pub birthday_coupon: &'a crate::coupon::CouponTemplate,
}

pub fn benefits(rule: &TierRule) -> Benefits<'_> {
    Benefits {
        points_multiplier: rule.multiplier,
        member_discount_percent: rule.discount_percent,
        rebate_basis_points: rule.rebate_basis_points,
        birthday_coupon: &rule.birthday_coupon,
    }
}

/// Why a tier changed (the `reason` of a tier history entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeReason {
    /// The nightly evaluation found the rolling spend earns a higher tier.
    NightlyUpgrade,
    /// Protection over and the rolling spend earns less: one level down.
    StepDown,
    /// A refund took away spend the tier was reached with.
    Refund,
}

impl ChangeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeReason::NightlyUpgrade => "nightly_upgrade",
            ChangeReason::StepDown => "step_down",
            ChangeReason::Refund => "refund",
        }
    }
}

/// What an evaluation decides for a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub to: TierCode,
    pub reason: ChangeReason,
}

#[cfg(test)]
mod tests;
