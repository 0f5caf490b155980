//! The nightly evaluation: protection, the one-step rule, and the review date the index
//! sorts members by (the rules are in the module notes of `tier`).

use super::{earned_tier, ChangeReason, Decision, TierChange, TierCode};
use crate::money::Fen;
use crate::rules::Rules;
use chrono::{DateTime, Duration, NaiveDate, Utc};

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
