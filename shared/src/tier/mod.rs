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

pub use crate::tier_code::{Reach, TierCode};

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

/// The first program date on which the nightly evaluation may lower the member's tier: the
/// day after the protection's last day (see the module notes); a tier entered by stepping
/// down is not protected.
pub fn first_downgrade_date(member: &crate::member::Member, rules: &Rules) -> NaiveDate {
    let since = crate::calendar::program_date(rules.time_zone, member.tier_since);
    if member.stepped_down_at == Some(member.tier_since) {
        return since;
    }
    since + Duration::days(rules.tier_protection_days as i64 + 1)
}

/// Whether the tier is protected on program date `today`.
pub fn is_protected(member: &crate::member::Member, rules: &Rules, today: NaiveDate) -> bool {
    today < first_downgrade_date(member, rules)
}

/// The instant protection ends: the start of the first day the evaluation may lower the tier.
pub fn protected_until(member: &crate::member::Member, rules: &Rules) -> DateTime<Utc> {
    crate::calendar::start_of_day(rules.time_zone, first_downgrade_date(member, rules))
}

/// The profile's view of protection: none for the regular tier (nothing to lose) nor for a
/// tier entered by stepping down.
pub fn protection(member: &crate::member::Member, rules: &Rules) -> Option<DateTime<Utc>> {
    (member.tier != TierCode::Regular && member.stepped_down_at != Some(member.tier_since))
        .then(|| protected_until(member, rules))
}

/// Spend still needed to keep the current tier on the first day it can be lowered (today if
/// protection is already over): the threshold minus the spend that will still be inside the
/// window that day. Zero for the regular tier or when already enough.
pub fn spend_to_keep(member: &crate::member::Member, rules: &Rules, today: NaiveDate) -> Fen {
    let at = first_downgrade_date(member, rules).max(today);
    Fen((rules.tier(member.tier).threshold.0 - member.rolling_spend(at, rules.tier_window_days).0)
        .max(0))
}

/// The pure tier rule of one evaluation on `today` (see the module notes). `None`: no change.
pub fn decide(member: &crate::member::Member, rules: &Rules, today: NaiveDate) -> Option<Decision> {
    let earned = earned_tier(rules, member.rolling_spend(today, rules.tier_window_days));
    if earned > member.tier {
        return Some(Decision { to: earned, reason: ChangeReason::NightlyUpgrade });
    }
    if earned < member.tier && !is_protected(member, rules, today) {
        // One level down; `earned < tier` makes the level below at least `earned`.
        return member.tier.below().map(|to| Decision { to, reason: ChangeReason::StepDown });
    }
    None
}

/// The result of evaluating a member: the member as it should be stored and the change to
/// record, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub member: crate::member::Member,
    pub change: Option<TierChange>,
    /// How many spend days fell out of the window and were dropped.
    pub trimmed: usize,
}

/// The nightly evaluation of one member at `now` (its program date is the evaluation date).
/// `None` when there is nothing to evaluate: the member is erased, was already evaluated on
/// that date or later, or changed tier or spent after that date (a replay of an older night
/// must not overrule a newer state; a purchase stamped just past midnight defers the member
/// to the next night, as it stays due in the review index). Otherwise the tier rule is applied, spend days outside the
/// window are dropped and the evaluation date is recorded. The version is left as read.
pub fn evaluate(
    member: &crate::member::Member,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Option<Evaluation> {
    let today = crate::calendar::program_date(rules.time_zone, now);
    let newer = member.tier_since > now || member.spend_days.last().is_some_and(|s| s.day > today);
    let stale = member.last_tier_evaluation.is_some_and(|d| d >= today) || newer;
    if member.is_erased() || stale {
        return None;
    }
    let mut m = member.clone();
    let change = decide(member, rules, today).map(|d| {
        let change =
            TierChange { from: m.tier, to: d.to, reason: d.reason.as_str().into(), at: now };
        m.tier = d.to;
        m.tier_since = now;
        m.stepped_down_at = (d.reason == ChangeReason::StepDown).then_some(now);
        change
    });
    let from = window_start(rules, today);
    let before = m.spend_days.len();
    m.spend_days.retain(|s| s.day >= from);
    let trimmed = before - m.spend_days.len();
    m.last_tier_evaluation = Some(today);
    Some(Evaluation { member: m, change, trimmed })
}

/// The first day inside the tier window that ends on `today`.
pub fn window_start(rules: &Rules, today: NaiveDate) -> NaiveDate {
    today - Duration::days(rules.tier_window_days as i64 - 1)
}

/// The ByTierReview (GSI5) sort date: the earliest program date on which the nightly
/// evaluation could lower this member's tier if nothing else happens. Only time moves the
/// tier down: protection ends, and spend days leave the window (day d leaves on d+window).
/// So the answer is the first of {protection end, each roll-off date after it} on which the
/// rolling spend, from the spend days stored now, falls below the tier's threshold. Never
/// on or before the last evaluation date (a re-run finds nobody twice), and never before the
/// latest spend day (the item was written on or after it, so earlier dates are past).
///
/// Everything else that changes a tier rewrites the member item and so recomputes this
/// date: purchases (raise spend, upgrade at once), refunds (lower spend), a step down (then
/// the next day, since the lower tier is not protected). Regular members cannot go lower and
/// are not indexed; nor are erased members. Raises the index cannot foresee (a rules change
/// lowering thresholds) are found by the rules-change sweep over ByTier.
pub fn review_date(member: &crate::member::Member, rules: &Rules) -> Option<NaiveDate> {
    if member.is_erased() || member.tier == TierCode::Regular {
        return None;
    }
    let window = rules.tier_window_days;
    let threshold = rules.tier(member.tier).threshold;
    let mut from = first_downgrade_date(member, rules);
    if let Some(last) = member.last_tier_evaluation {
        from = from.max(last + Duration::days(1));
    }
    if let Some(latest) = member.spend_days.iter().map(|s| s.day).max() {
        from = from.max(latest);
    }
    let below = |d: NaiveDate| member.rolling_spend(d, window) < threshold;
    if below(from) {
        return Some(from);
    }
    let mut roll_offs: Vec<NaiveDate> = member
        .spend_days
        .iter()
        .map(|s| s.day + Duration::days(window as i64))
        .filter(|d| *d > from)
        .collect();
    roll_offs.sort_unstable();
    // Once every day has rolled off the spend is zero, below any non-regular threshold, so the
    // last roll-off is always an answer; `from` covers a member without spend days.
    Some(
        roll_offs.iter().copied().find(|d| below(*d)).or(roll_offs.last().copied()).unwrap_or(from),
    )
}

/// A fingerprint of the rules the tier evaluation depends on (thresholds, window,
/// protection): when it changes, the next nightly run sweeps every member (ByTier), because
/// the review dates in the index were computed with the old rules.
pub fn rules_fingerprint(rules: &Rules) -> String {
    use sha2::{Digest, Sha256};
    let thresholds: Vec<i64> = rules.tiers.iter().map(|t| t.threshold.0).collect();
    let text = format!("{thresholds:?}/{}/{}", rules.tier_window_days, rules.tier_protection_days);
    Sha256::digest(text.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
