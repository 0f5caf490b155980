//! Tiers: which tier a rolling spend earns, and the instant upgrade on purchase.
//! The nightly evaluation (protected, one-step downgrades) builds on these.

use crate::money::Fen;
use crate::rules::{Rules, TierRule};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierCode {
    Regular,
    Silver,
    Gold,
    Diamond,
}

impl TierCode {
    pub const ALL: [TierCode; 4] = [TierCode::Regular, TierCode::Silver, TierCode::Gold, TierCode::Diamond];

    pub fn as_str(self) -> &'static str {
        match self {
            TierCode::Regular => "regular",
            TierCode::Silver => "silver",
            TierCode::Gold => "gold",
            TierCode::Diamond => "diamond",
        }
    }

    pub fn parse(s: &str) -> Option<TierCode> {
        TierCode::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn rank(self) -> usize {
        self as usize
    }

    pub fn below(self) -> Option<TierCode> {
        self.rank().checked_sub(1).map(|r| TierCode::ALL[r])
    }

    pub fn above(self) -> Option<TierCode> {
        TierCode::ALL.get(self.rank() + 1).copied()
    }
}

impl fmt::Display for TierCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    Some(NextTier { tier: next, threshold: rule.threshold, spend_needed: Fen((rule.threshold.0 - rolling_spend.0).max(0)) })
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
    pub birthday_coupon: &'a crate::coupon::CouponTemplate,
}

pub fn benefits(rule: &TierRule) -> Benefits<'_> {
    Benefits {
        points_multiplier: rule.multiplier,
        member_discount_percent: rule.discount_percent,
        birthday_coupon: &rule.birthday_coupon,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earned_tier_is_inclusive_at_the_threshold() {
        let r = Rules::default();
        assert_eq!(earned_tier(&r, Fen::from_cny(1_999) + Fen(99)), TierCode::Regular);
        assert_eq!(earned_tier(&r, Fen::from_cny(2_000)), TierCode::Silver);
        assert_eq!(earned_tier(&r, Fen::from_cny(10_000)), TierCode::Gold);
        assert_eq!(earned_tier(&r, Fen::from_cny(50_000)), TierCode::Diamond);
    }

    #[test]
    fn purchase_never_lowers_a_tier() {
        let r = Rules::default();
        assert_eq!(upgrade_on_purchase(&r, TierCode::Gold, Fen::ZERO), TierCode::Gold);
        assert_eq!(upgrade_on_purchase(&r, TierCode::Regular, Fen::from_cny(12_000)), TierCode::Gold);
    }

    #[test]
    fn next_tier_counts_the_missing_spend() {
        let r = Rules::default();
        let n = next_tier(&r, TierCode::Regular, Fen::from_cny(500)).unwrap();
        assert_eq!((n.tier, n.spend_needed), (TierCode::Silver, Fen::from_cny(1_500)));
        assert!(next_tier(&r, TierCode::Diamond, Fen::ZERO).is_none());
    }
}

/// The tier is protected until this instant (365 days from reaching it, by default).
pub fn protected_until(member: &crate::member::Member, rules: &Rules) -> DateTime<Utc> {
    member.tier_since + chrono::Duration::days(rules.tier_protection_days as i64)
}

/// The next program-calendar day on which the nightly evaluation could lower this member's
/// tier: not before protection ends, and not before the oldest counted spend leaves the
/// window. Regular members can't go lower, so they are not indexed.
pub fn review_date(member: &crate::member::Member, rules: &Rules) -> Option<chrono::NaiveDate> {
    if member.is_erased() || member.tier == TierCode::Regular {
        return None;
    }
    let protected = crate::calendar::program_date(rules.time_zone, protected_until(member, rules));
    let roll_off = member.spend_days.first().map(|s| s.day + chrono::Duration::days(rules.tier_window_days as i64));
    Some(roll_off.map_or(protected, |r| r.max(protected)))
}
