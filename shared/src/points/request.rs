//! What the order system and members send, what an order keeps, and why a points
//! change is refused.

use crate::money::Fen;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Most refunds one order may carry (each is kept on the order item).
pub const MAX_REFUNDS_PER_ORDER: usize = 100;

/// Why a points request is refused although it is well-formed (422, with a stable code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointsError {
    #[error("amount must be a positive number of fen")]
    InvalidAmount,
    #[error("amount is larger than the largest order accepted ({0})")]
    AmountTooLarge(Fen),
    #[error("currency must be CNY, got {0}")]
    UnsupportedCurrency(String),
    #[error("occurredAt is in the future")]
    OccurredInFuture,
    #[error("occurredAt is older than {0} days: its points would already have expired")]
    OccurredTooLongAgo(u32),
    #[error("refunds would total {asked}, more than the {paid} paid for the order")]
    RefundExceedsPaid { paid: Fen, asked: Fen },
    #[error("the order already has {MAX_REFUNDS_PER_ORDER} refunds")]
    TooManyRefunds,
    #[error("points must be a positive multiple of {0}")]
    InvalidRedemptionPoints(i64),
    #[error("the balance ({balance} points) is below the {asked} points asked")]
    InsufficientPoints { balance: i64, asked: i64 },
    #[error("already checked in today")]
    AlreadyCheckedIn,
    #[error("this order has already been reviewed")]
    AlreadyReviewed,
    #[error("at most {0} shares earn points per day")]
    ShareLimitReached(u32),
    #[error("at most {0} activity points per day; today's are used up")]
    DailyActivityCapReached(i64),
}

impl PointsError {
    pub fn code(&self) -> &'static str {
        match self {
            PointsError::InvalidAmount => "invalid_amount",
            PointsError::AmountTooLarge(_) => "amount_too_large",
            PointsError::UnsupportedCurrency(_) => "unsupported_currency",
            PointsError::OccurredInFuture => "occurred_at_in_future",
            PointsError::OccurredTooLongAgo(_) => "occurred_at_too_old",
            PointsError::RefundExceedsPaid { .. } => "refund_exceeds_paid",
            PointsError::TooManyRefunds => "too_many_refunds",
            PointsError::InvalidRedemptionPoints(_) => "invalid_points",
            PointsError::InsufficientPoints { .. } => "insufficient_points",
            PointsError::AlreadyCheckedIn => "already_checked_in",
            PointsError::AlreadyReviewed => "already_reviewed",
            PointsError::ShareLimitReached(_) => "share_limit_reached",
            PointsError::DailyActivityCapReached(_) => "daily_activity_cap_reached",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Online,
    Store,
}

/// `POST /members/{id}/purchases` (and the `purchase` order event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseRequest {
    pub order_id: String,
    pub amount: Fen,
    pub currency: String,
    pub channel: Channel,
    pub occurred_at: DateTime<Utc>,
    /// The partner's tracking code the order came with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_code: Option<String>,
}

/// `POST /members/{id}/refunds` (and the `refund` order event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefundRequest {
    pub order_id: String,
    pub refund_id: String,
    pub amount: Fen,
}

/// `POST /members/{id}/redemptions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedemptionRequest {
    pub points: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityKind {
    Checkin,
    Review,
    Share,
}

/// `POST /members/{id}/activities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivityRequest {
    #[serde(rename = "type")]
    pub kind: ActivityKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_id: Option<String>,
}

/// A purchase as kept on its order item: what was paid and earned, and the refunds so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRecord {
    pub order_id: String,
    pub paid: Fen,
    pub earned: i64,
    /// The program-calendar day of the purchase (its lot and its spend day).
    pub day: NaiveDate,
    pub occurred_at: DateTime<Utc>,
    pub refunded: Fen,
    pub clawed_back: i64,
    #[serde(default)]
    pub refunds: Vec<RefundRecord>,
    /// The purchase request's fingerprint and first answer (replayed to a retry).
    pub fingerprint: String,
    pub answer: String,
    /// Points the order spent at checkout, and how many of them refunds gave back.
    #[serde(default, skip_serializing_if = "crate::money::is_zero")]
    pub points_spent: i64,
    #[serde(default, skip_serializing_if = "crate::money::is_zero")]
    pub points_returned: i64,
    /// The earning day of the oldest lot the order spent: given-back points keep it, so a
    /// refund never lengthens a point's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_from: Option<NaiveDate>,
    /// The order's rebate (fen) and how much of it refunds have taken back so far.
    #[serde(default, skip_serializing_if = "Fen::is_zero")]
    pub rebate: Fen,
    #[serde(default, skip_serializing_if = "Fen::is_zero")]
    pub rebate_reversed: Fen,
    /// Rebate balance the order spent at checkout, and how much refunds gave back.
    #[serde(default, skip_serializing_if = "Fen::is_zero")]
    pub rebate_spent: Fen,
    #[serde(default, skip_serializing_if = "Fen::is_zero")]
    pub rebate_returned: Fen,
    /// Coupons the order redeemed at checkout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coupons: Vec<UsedCoupon>,
    /// Whether a full refund gave the coupons back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub coupons_returned: bool,
    /// When the order was recorded (it counts toward tiers reached from then on); orders
    /// recorded before this field existed use `occurred_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<DateTime<Utc>>,
    /// The member this order's referral reward went to (a first purchase of a referred
    /// member): a full refund inside the window cancels that reward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsedCoupon {
    pub code: String,
    pub valid_until: DateTime<Utc>,
}

impl OrderRecord {
    /// A plain purchase (no checkout) as first recorded.
    pub fn purchase(
        req: &PurchaseRequest,
        earned: i64,
        day: NaiveDate,
        fingerprint: String,
        answer: String,
    ) -> OrderRecord {
        OrderRecord {
            order_id: req.order_id.clone(),
            paid: req.amount,
            earned,
            day,
            occurred_at: req.occurred_at,
            refunded: Fen::ZERO,
            clawed_back: 0,
            refunds: Vec::new(),
            fingerprint,
            answer,
            points_spent: 0,
            points_returned: 0,
            spent_from: None,
            rebate: Fen::ZERO,
            rebate_reversed: Fen::ZERO,
            rebate_spent: Fen::ZERO,
            rebate_returned: Fen::ZERO,
            coupons: Vec::new(),
            coupons_returned: false,
            recorded_at: None,
            referral_to: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRecord {
    pub refund_id: String,
    pub amount: Fen,
    pub clawed_back: i64,
    /// The rebate (fen) it took back.
    #[serde(default, skip_serializing_if = "Fen::is_zero")]
    pub rebate_reversed: Fen,
    pub fingerprint: String,
    pub answer: String,
    /// When it was recorded (the KPIs count it on that day); refunds recorded before this
    /// field existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}
