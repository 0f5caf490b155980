//! Whether a rules document makes a program that can run: checked once, at start, so a bad
//! deployment fails its init instead of answering members with wrong numbers.

use super::{Rules, RulesError, Step, MAX_REBATE_BASIS_POINTS};
use crate::money::{Fen, Multiplier};
use crate::tier_code::TierCode;

impl Rules {
    pub fn validate(&self) -> Result<(), RulesError> {
        let bad = |m: String| Err(RulesError::Invalid(m));
        if self.currency != "CNY" {
            return bad(format!(
                "currency must be CNY (money is kept in fen), got {}",
                self.currency
            ));
        }
        if self.tiers.len() != TierCode::ALL.len() {
            return bad(format!(
                "expected {} tiers, got {}",
                TierCode::ALL.len(),
                self.tiers.len()
            ));
        }
        for (rule, code) in self.tiers.iter().zip(TierCode::ALL) {
            if rule.code != code {
                return bad(format!("tiers must be listed regular, silver, gold, diamond; found {} where {code} belongs", rule.code));
            }
            if rule.multiplier < Multiplier::ONE {
                return bad(format!(
                    "tier {code}: multiplier must be at least 1, got {}",
                    rule.multiplier.as_f64()
                ));
            }
            if rule.discount_percent > 100 {
                return bad(format!("tier {code}: discountPercent must be 0..100"));
            }
            if rule.rebate_basis_points > MAX_REBATE_BASIS_POINTS {
                return bad(format!(
                    "tier {code}: rebateBasisPoints must be 0..{MAX_REBATE_BASIS_POINTS} (at most 20% of an order)"
                ));
            }
            rule.birthday_coupon
                .validate()
                .map_err(|e| RulesError::Invalid(format!("tier {code} birthday coupon: {e}")))?;
        }
        if self.tiers[0].threshold != Fen::ZERO {
            return bad("the regular tier's threshold must be 0".into());
        }
        for w in self.tiers.windows(2) {
            if w[1].threshold <= w[0].threshold {
                return bad(format!(
                    "tier thresholds must ascend: {} is not above {}",
                    w[1].code, w[0].code
                ));
            }
            if w[1].multiplier < w[0].multiplier {
                return bad(format!(
                    "tier multipliers must not fall: {} is below {}",
                    w[1].code, w[0].code
                ));
            }
        }
        if self.tier_window_days == 0 || self.tier_protection_days == 0 {
            return bad("tierWindowDays and tierProtectionDays must be positive".into());
        }
        if self.return_window_days > 90 {
            return bad("returnWindowDays must be 0..90".into());
        }
        if self.reports.conversion_days > 90 {
            return bad("reports.conversionDays must be 0..90".into());
        }
        let af = &self.affiliates;
        if af.max_rate_basis_points > 10_000
            || !(6..=16).contains(&af.code_length)
            || !(1..=50).contains(&af.max_codes_per_partner)
        {
            return bad("affiliates: maxRateBasisPoints must be 0..10000, codeLength 6..16, maxCodesPerPartner 1..50".into());
        }
        self.churn.validate().map_err(RulesError::Invalid)?;
        let p = &self.points;
        if p.per_cny < 1
            || p.expiry_days == 0
            || p.redemption_points_per_cny < 1
            || p.redemption_step < 1
        {
            return bad("points: perCny, expiryDays, redemptionPointsPerCny and redemptionStep must be positive".into());
        }
        if p.expiry_notice_days > 60 || p.expiry_notice_days >= p.expiry_days {
            return bad("points: expiryNoticeDays must be 0..60 and below expiryDays".into());
        }
        if p.redemption_step % p.redemption_points_per_cny != 0 {
            return bad("points: redemptionStep must be a multiple of redemptionPointsPerCny (whole fen off)".into());
        }
        if p.max_order_amount.0 <= 0 || p.max_order_amount.0 > 1_000_000_000_000 {
            return bad("points: maxOrderAmount must be positive and at most 10^12 fen".into());
        }
        let a = &self.activities;
        if [a.checkin, a.review, a.share, a.daily_cap].iter().any(|v| *v < 0) {
            return bad("activities: points must not be negative".into());
        }
        if self.signup.welcome_points < 0 || self.referral.referrer_points < 0 {
            return bad("welcome and referral points must not be negative".into());
        }
        self.signup
            .welcome_coupon
            .validate()
            .map_err(|e| RulesError::Invalid(format!("welcome coupon: {e}")))?;
        if self.birthday.min_days_known > 365 {
            return bad(format!("birthday.minDaysKnown must be 0..365 (a birthday known a year ahead is always in time), got {}", self.birthday.min_days_known));
        }
        let md = &self.member_day;
        if !(1..=28).contains(&md.day_of_month) {
            return bad("memberDay.dayOfMonth must be 1..28 so that every month has one".into());
        }
        if md.multiplier < Multiplier::ONE {
            return bad("memberDay.multiplier must be at least 1".into());
        }
        md.coupon.validate().map_err(|e| RulesError::Invalid(format!("member day coupon: {e}")))?;
        self.winback
            .coupon
            .validate()
            .map_err(|e| RulesError::Invalid(format!("win-back coupon: {e}")))?;
        let c = &self.checkout;
        if !(1..=24 * 60).contains(&c.hold_minutes) {
            return bad("checkout.holdMinutes must be 1..1440".into());
        }
        if c.max_points_percent > 100 || c.max_coupons_per_order == 0 || c.max_open_checkouts == 0 {
            return bad("checkout: maxPointsPercent must be 0..100, maxCouponsPerOrder and maxOpenCheckouts at least 1".into());
        }
        let mut steps = c.apply_order.clone();
        steps.sort();
        steps.dedup();
        let named = |s: Step| c.apply_order.contains(&s);
        if steps.len() != c.apply_order.len()
            || ![Step::MemberDiscount, Step::Coupons, Step::Points].into_iter().all(named)
        {
            return bad(
                "checkout.applyOrder must name member_discount, coupons and points once each (and rebate at most once)"
                    .into(),
            );
        }
        if self.rebates.max_checkout_percent > 100 {
            return bad("rebates.maxCheckoutPercent must be 0..100".into());
        }
        if !(1..=1000).contains(&self.limits.member_writes_per_minute) {
            return bad("limits.memberWritesPerMinute must be 1..1000".into());
        }
        for (name, t) in &self.coupon_templates {
            let ok = (1..=64).contains(&name.len())
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                return bad(format!(
                    "couponTemplates: name {name:?} must be 1..64 of a-z, 0-9, - and _"
                ));
            }
            t.validate()
                .map_err(|e| RulesError::Invalid(format!("coupon template {name}: {e}")))?;
        }
        Ok(())
    }
}
