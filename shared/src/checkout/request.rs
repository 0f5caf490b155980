//! What the order system and the member send to checkout, what a quote says, and why a
//! checkout is refused.

use crate::coupon::RedeemError;
use crate::money::Fen;
use crate::points::Channel;
use crate::rules::Rules;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /internal/members/{id}/checkouts` (order system): quote and hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckoutRequest {
    pub order_id: String,
    /// The order's amount before loyalty discounts, in fen, as the order system priced it.
    pub amount: Fen,
    pub currency: String,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coupon_codes: Vec<String>,
    #[serde(default)]
    pub points: i64,
    /// Rebate balance to pay with, in fen.
    #[serde(default, skip_serializing_if = "Fen::is_zero")]
    pub rebate: Fen,
    /// The partner's tracking code, resolved at the quote and
    /// credited at the confirm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_code: Option<String>,
}

/// `POST /members/{id}/checkout-preview` (the member): the same quote, nothing held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreviewRequest {
    pub amount: Fen,
    #[serde(default)]
    pub coupon_codes: Vec<String>,
    #[serde(default)]
    pub points: i64,
    #[serde(default)]
    pub rebate: Fen,
}

/// `POST /internal/members/{id}/checkouts/{orderId}/confirm`: `paid`, when sent, must be the
/// quote's payable amount (the order system charged what we quoted); `occurredAt` is when the
/// payment happened as the order system recorded it (default: now), which dates the points
/// lot and the spend and decides the member-day multiplier, as for a plain purchase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid: Option<Fen>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedCoupon {
    pub code: String,
    pub title: String,
    pub discount: Fen,
    pub free_shipping: bool,
}

/// What an order costs the member: each discount and what is left to pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    pub amount: Fen,
    pub member_discount: Fen,
    pub coupons: Vec<AppliedCoupon>,
    pub coupon_discount: Fen,
    pub points_used: i64,
    pub points_discount: Fen,
    /// Rebate balance paying for the order (fen off, one for one).
    pub rebate_used: Fen,
    pub payable: Fen,
    pub free_shipping: bool,
    /// The most points this order could use now: the per-order cap and the member's
    /// available points, in whole redemption steps.
    pub max_points: i64,
    /// The most rebate balance this order could use now (cap and available balance).
    pub max_rebate: Fen,
}

impl Quote {
    /// The same money terms (`max_points` and `max_rebate` move with the member's balances).
    pub fn same_terms(&self, other: &Quote) -> bool {
        let terms = |q: &Quote| Quote { max_points: 0, max_rebate: Fen::ZERO, ..q.clone() };
        terms(self) == terms(other)
    }
}

/// Why a checkout is refused; each maps to one status and a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    #[error("amount must be a positive number of fen")]
    InvalidAmount,
    #[error("amount is larger than the largest order accepted ({0})")]
    AmountTooLarge(Fen),
    #[error("currency must be CNY, got {0}")]
    UnsupportedCurrency(String),
    #[error("a coupon code is named twice")]
    DuplicateCoupon,
    #[error("at most {0} coupons on one order")]
    TooManyCoupons(u8),
    #[error("only stackable coupons may share an order; use one coupon")]
    NotStackable,
    #[error("coupon {0} is not one of this member's coupons")]
    CouponNotFound(String),
    #[error("coupon {code}: {why}")]
    Coupon { code: String, why: RedeemError },
    #[error("coupon {0} is held by another open checkout of this member")]
    CouponOnHold(String),
    #[error("points must be a non-negative multiple of {0}")]
    InvalidPoints(i64),
    #[error("{available} points are available (the rest are pending or held by open checkouts), {asked} asked")]
    InsufficientPoints { available: i64, asked: i64 },
    #[error("points may pay at most {max} points' worth of this order, {asked} asked")]
    PointsOverCap { max: i64, asked: i64 },
    #[error("rebate must be a non-negative number of fen")]
    InvalidRebate,
    #[error("{available} of rebate balance is available (the rest is pending or held by open checkouts), {asked} asked")]
    InsufficientRebate { available: Fen, asked: Fen },
    #[error("the rebate balance may pay at most {max} of this order, {asked} asked")]
    RebateOverCap { max: Fen, asked: Fen },
    #[error("the member already has {0} open checkouts; confirm or cancel one")]
    TooManyOpenCheckouts(u8),
    #[error("the hold expired and the order now prices differently; quote it again")]
    QuoteChanged,
}

impl CheckoutError {
    pub fn code(&self) -> &'static str {
        match self {
            CheckoutError::InvalidAmount => "invalid_amount",
            CheckoutError::AmountTooLarge(_) => "amount_too_large",
            CheckoutError::UnsupportedCurrency(_) => "unsupported_currency",
            CheckoutError::DuplicateCoupon => "duplicate_coupon",
            CheckoutError::TooManyCoupons(_) => "too_many_coupons",
            CheckoutError::NotStackable => "coupons_not_stackable",
            CheckoutError::CouponNotFound(_) => "coupon_not_found",
            CheckoutError::Coupon { why, .. } => why.code(),
            CheckoutError::CouponOnHold(_) => "coupon_on_hold",
            CheckoutError::InvalidPoints(_) => "invalid_points",
            CheckoutError::InsufficientPoints { .. } => "insufficient_points",
            CheckoutError::PointsOverCap { .. } => "points_over_cap",
            CheckoutError::InvalidRebate => "invalid_rebate",
            CheckoutError::InsufficientRebate { .. } => "insufficient_rebate",
            CheckoutError::RebateOverCap { .. } => "rebate_over_cap",
            CheckoutError::TooManyOpenCheckouts(_) => "too_many_open_checkouts",
            CheckoutError::QuoteChanged => "quote_changed",
        }
    }

    /// 409 where the member's state stands in the way (used, held, changed), 422 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            CheckoutError::Coupon { why: RedeemError::AlreadyUsed, .. }
            | CheckoutError::CouponOnHold(_)
            | CheckoutError::TooManyOpenCheckouts(_)
            | CheckoutError::QuoteChanged => 409,
            _ => 422,
        }
    }
}

/// Checks the order's amount and currency against the rules.
pub fn validate_order(rules: &Rules, amount: Fen, currency: &str) -> Result<(), CheckoutError> {
    if amount.0 <= 0 {
        return Err(CheckoutError::InvalidAmount);
    }
    if amount > rules.points.max_order_amount {
        return Err(CheckoutError::AmountTooLarge(rules.points.max_order_amount));
    }
    if currency != rules.currency {
        return Err(CheckoutError::UnsupportedCurrency(currency.chars().take(8).collect()));
    }
    Ok(())
}

/// Checks the list of codes before anything is read: no repeats, not too many.
pub fn validate_codes(rules: &Rules, codes: &[String]) -> Result<(), CheckoutError> {
    let max = rules.checkout.max_coupons_per_order;
    if codes.len() > max as usize {
        return Err(CheckoutError::TooManyCoupons(max));
    }
    let mut sorted: Vec<&String> = codes.iter().collect();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != codes.len() {
        return Err(CheckoutError::DuplicateCoupon);
    }
    Ok(())
}
