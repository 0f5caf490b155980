//! Coupons: templates (what a coupon gives), issued coupons, unguessable deterministic
//! codes, and the redeem rules.

use crate::money::Fen;
use crate::tier_code::TierCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

mod code;
pub use code::{looks_like_code, CodeKey};

/// What a coupon gives. `minSpend` is the smallest order (fen) it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Offer {
    AmountOff {
        value: Fen,
        #[serde(default)]
        min_spend: Fen,
    },
    PercentOff {
        percent: u8,
        /// Most the discount may be (fen).
        cap: Fen,
        #[serde(default)]
        min_spend: Fen,
    },
    FreeShipping {
        #[serde(default)]
        min_spend: Fen,
    },
}

impl Offer {
    pub fn min_spend(&self) -> Fen {
        match self {
            Offer::AmountOff { min_spend, .. }
            | Offer::PercentOff { min_spend, .. }
            | Offer::FreeShipping { min_spend } => *min_spend,
        }
    }

    /// The discount on an order of `amount`: never more than the order, percent rounded
    /// down then capped; free shipping takes nothing off the goods.
    pub fn discount(&self, amount: Fen) -> Fen {
        let d = match self {
            Offer::AmountOff { value, .. } => *value,
            Offer::PercentOff { percent, cap, .. } => {
                Fen((amount.0 as i128 * *percent as i128 / 100) as i64).min(*cap)
            }
            Offer::FreeShipping { .. } => Fen::ZERO,
        };
        d.min(amount).max(Fen::ZERO)
    }
}

/// A coupon as a template: the offer, how long an issued coupon is valid, who may hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CouponTemplate {
    pub title: String,
    pub offer: Offer,
    /// Valid for this many days from issue...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_days: Option<u32>,
    /// ...or in a fixed window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
    /// Tiers that may redeem it; empty means every tier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierCode>,
    /// How many coupons of one grant a member may hold.
    #[serde(default = "one")]
    pub per_member_limit: u32,
    /// May share an order with other stackable coupons (otherwise one coupon per order).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stackable: bool,
}

fn one() -> u32 {
    1
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl CouponTemplate {
    pub fn validate(&self) -> Result<(), String> {
        if self.title.trim().is_empty() || self.title.chars().count() > 80 {
            return Err("title must be 1..80 characters".into());
        }
        match &self.offer {
            Offer::AmountOff { value, min_spend } if value.0 <= 0 || min_spend.0 < 0 => {
                return Err("amount_off needs a positive value and a minSpend of at least 0".into())
            }
            Offer::PercentOff { percent, cap, min_spend }
                if !(1..=100).contains(percent) || cap.0 <= 0 || min_spend.0 < 0 =>
            {
                return Err(
                    "percent_off needs percent 1..100, a positive cap and a minSpend of at least 0"
                        .into(),
                )
            }
            Offer::FreeShipping { min_spend } if min_spend.0 < 0 => {
                return Err("free_shipping minSpend must be at least 0".into())
            }
            _ => {}
        }
        match (self.valid_days, self.valid_from, self.valid_until) {
            (Some(d), None, None) if d > 0 && d <= 3660 => {}
            (None, Some(from), Some(until)) if from < until => {}
            (None, Some(_), Some(_)) => return Err("validUntil must be after validFrom".into()),
            _ => {
                return Err(
                    "give either validDays (1..3660) or both validFrom and validUntil".into()
                )
            }
        }
        if self.per_member_limit == 0 || self.per_member_limit > 100 {
            return Err("perMemberLimit must be 1..100".into());
        }
        Ok(())
    }

    /// The validity window of a coupon issued at `issued_at`.
    pub fn window(&self, issued_at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        match (self.valid_days, self.valid_from, self.valid_until) {
            (_, Some(from), Some(until)) => (from, until),
            (days, _, _) => (issued_at, issued_at + Duration::days(days.unwrap_or(1) as i64)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CouponStatus {
    Active,
    Redeemed,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redemption {
    pub order_id: String,
    pub order_amount: Fen,
    pub discount: Fen,
    pub at: DateTime<Utc>,
}

/// An issued coupon. Stored status is `active` or `redeemed`; `expired` is derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Coupon {
    pub code: String,
    pub member_id: String,
    /// What issued it: `welcome`, `birthday-2026`, a campaign run... One per member per grant and slot.
    pub grant: String,
    /// Which of the grant's slots (`perMemberLimit`) it fills; the store keeps one coupon per
    /// member, grant and slot with a key item that does not depend on the code's secret.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slot: u32,
    pub title: String,
    pub offer: Offer,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierCode>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    pub status: CouponStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redemption: Option<Redemption>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stackable: bool,
}

impl Coupon {
    pub fn status_at(&self, now: DateTime<Utc>) -> CouponStatus {
        match self.status {
            CouponStatus::Active if now >= self.valid_until => CouponStatus::Expired,
            s => s,
        }
    }
}

/// The coupon a template gives `member_id` for `grant` (slot < per-member limit), issued now.
pub fn issue(
    key: &CodeKey,
    template: &CouponTemplate,
    member_id: &str,
    grant: &str,
    slot: u32,
    now: DateTime<Utc>,
) -> Coupon {
    let (valid_from, valid_until) = template.window(now);
    Coupon {
        code: key.code(member_id, grant, slot),
        member_id: member_id.to_string(),
        grant: grant.to_string(),
        slot,
        title: template.title.clone(),
        offer: template.offer.clone(),
        tiers: template.tiers.clone(),
        valid_from,
        valid_until,
        issued_at: now,
        status: CouponStatus::Active,
        redemption: None,
        stackable: template.stackable,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedeemError {
    #[error("the coupon has expired")]
    Expired,
    #[error("the coupon is not valid yet")]
    NotYetValid,
    #[error("the order is below the coupon's minimum spend")]
    BelowMinimumSpend,
    #[error("the member's tier may not use this coupon")]
    WrongTier,
    #[error("the coupon has already been used")]
    AlreadyUsed,
}

impl RedeemError {
    pub fn code(self) -> &'static str {
        match self {
            RedeemError::Expired => "coupon_expired",
            RedeemError::NotYetValid => "coupon_not_yet_valid",
            RedeemError::BelowMinimumSpend => "below_minimum_spend",
            RedeemError::WrongTier => "tier_not_eligible",
            RedeemError::AlreadyUsed => "coupon_already_used",
        }
    }
}

/// Whether `coupon` may take part in an order of `order_amount` (after the discounts that
/// apply before coupons) by a member of `tier` at `now`.
pub fn check_usable(
    coupon: &Coupon,
    tier: TierCode,
    order_amount: Fen,
    now: DateTime<Utc>,
) -> Result<(), RedeemError> {
    if coupon.redemption.is_some() || coupon.status == CouponStatus::Redeemed {
        return Err(RedeemError::AlreadyUsed);
    }
    if now < coupon.valid_from {
        return Err(RedeemError::NotYetValid);
    }
    if now >= coupon.valid_until {
        return Err(RedeemError::Expired);
    }
    if !coupon.tiers.is_empty() && !coupon.tiers.contains(&tier) {
        return Err(RedeemError::WrongTier);
    }
    if order_amount < coupon.offer.min_spend() {
        return Err(RedeemError::BelowMinimumSpend);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CodeKey {
        CodeKey::new(&[7u8; 32]).unwrap()
    }

    fn t0() -> DateTime<Utc> {
        "2026-03-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn codes_are_deterministic_per_grant_and_distinct_across() {
        let k = key();
        let a = k.code("m1", "welcome", 0);
        assert_eq!(a, k.code("m1", "welcome", 0));
        assert_ne!(a, k.code("m2", "welcome", 0));
        assert_ne!(a, k.code("m1", "welcome", 1));
        assert_ne!(a, CodeKey::new(&[8u8; 32]).unwrap().code("m1", "welcome", 0));
        assert!(looks_like_code(&a), "{a}");
    }

    #[test]
    fn percent_off_rounds_down_and_caps() {
        let o = Offer::PercentOff { percent: 15, cap: Fen(3_000), min_spend: Fen::ZERO };
        assert_eq!(o.discount(Fen(10_099)), Fen(1_514));
        assert_eq!(o.discount(Fen(100_000)), Fen(3_000));
    }

    #[test]
    fn amount_off_never_exceeds_the_order() {
        let o = Offer::AmountOff { value: Fen(2_000), min_spend: Fen::ZERO };
        assert_eq!(o.discount(Fen(1_500)), Fen(1_500));
    }

    #[test]
    fn usable_rules() {
        let tpl = Rules::default().signup.welcome_coupon;
        let c = issue(&key(), &tpl, "m1", "welcome", 0, t0());
        let day = Duration::days(1);
        assert_eq!(check_usable(&c, TierCode::Regular, Fen(10_000), t0() + day), Ok(()));
        assert_eq!(
            check_usable(&c, TierCode::Regular, Fen(9_999), t0() + day),
            Err(RedeemError::BelowMinimumSpend)
        );
        assert_eq!(
            check_usable(&c, TierCode::Regular, Fen(10_000), t0() + day * 30),
            Err(RedeemError::Expired)
        );
        assert_eq!(
            check_usable(&c, TierCode::Regular, Fen(10_000), t0() - day),
            Err(RedeemError::NotYetValid)
        );
        let gold_only = Coupon { tiers: vec![TierCode::Gold], ..c.clone() };
        assert_eq!(
            check_usable(&gold_only, TierCode::Silver, Fen(10_000), t0()),
            Err(RedeemError::WrongTier)
        );
        let used = Coupon {
            status: CouponStatus::Redeemed,
            redemption: Some(Redemption {
                order_id: "o1".into(),
                order_amount: Fen(10_000),
                discount: Fen(2_000),
                at: t0(),
            }),
            ..c
        };
        assert_eq!(
            check_usable(&used, TierCode::Regular, Fen(10_000), t0()),
            Err(RedeemError::AlreadyUsed)
        );
    }

    #[test]
    fn template_validation() {
        let mut t = Rules::default().signup.welcome_coupon;
        assert!(t.validate().is_ok());
        t.valid_from = Some(t0());
        assert!(t.validate().is_err(), "both validDays and a window");
        t.valid_days = None;
        t.valid_until = Some(t0() - Duration::days(1));
        assert!(t.validate().unwrap_err().contains("after"));
    }

    use crate::rules::Rules;
}
