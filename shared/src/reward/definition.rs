//! What a reward is: its kinds, the operator's requests to define and change one, the
//! stored reward and the refusals of the catalog.

use crate::coupon::CouponTemplate;
use crate::tier_code::TierCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// The dearest reward (a typo guard: 10,000,000 points are 100,000 CNY).
pub const MAX_PRICE: i64 = 10_000_000;
pub const MAX_STOCK: u64 = 10_000_000;
pub const MAX_LIMIT: u32 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// Issues a coupon (a named template of the rules or an inline one).
    Coupon,
    /// A physical or digital item the shop fulfils.
    Gift,
}

/// What a per-member limit counts: every claim ever, or the claims of one program month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitPeriod {
    #[default]
    Lifetime,
    Month,
}

/// A coupon reward's coupon: the name of a template of the rules' `couponTemplates`, or a
/// template given inline (as `POST /members/{id}/coupons` takes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TemplateRef {
    Named(String),
    Inline(Box<CouponTemplate>),
}

fn yes() -> bool {
    true
}

/// `POST /rewards` (operators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewardRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// In points.
    pub price: i64,
    pub kind: RewardKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<TemplateRef>,
    /// Units in all; none means as many as are claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_member_limit: Option<u32>,
    #[serde(default)]
    pub limit_period: LimitPeriod,
    /// Tiers that may claim it; empty means every tier.
    #[serde(default)]
    pub tiers: Vec<TierCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_until: Option<DateTime<Utc>>,
    #[serde(default = "yes")]
    pub active: bool,
}

/// A reward of the catalog. `version` grows with every change an operator makes; claims do
/// not change it (they count on the stored item's own counter), so claims of different
/// members never invalidate each other's read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reward {
    pub reward_id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    pub price: i64,
    pub kind: RewardKind,
    /// The rules' template a coupon reward was defined with, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_template: Option<String>,
    /// What a claim of a coupon reward issues: resolved when the reward is defined, so a claim
    /// gives what the member was shown even if the rules' template changes later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<CouponTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_member_limit: Option<u32>,
    #[serde(default)]
    pub limit_period: LimitPeriod,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_until: Option<DateTime<Utc>>,
    pub active: bool,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `Some(value)` for a value or `null`, `None` when the field is left out: a patch tells
/// "remove" (null) from "keep" (absent).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /rewards/{id}` (operators): the fields to change; `null` removes an optional one
/// (no stock limit, no per-member limit, no image, an open window). `version`, when sent,
/// must be the reward's current version (the one the operator edited).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewardPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub image_url: Option<Option<String>>,
    #[serde(default)]
    pub price: Option<i64>,
    #[serde(default)]
    pub coupon: Option<TemplateRef>,
    #[serde(default, deserialize_with = "present")]
    pub stock: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub per_member_limit: Option<Option<u32>>,
    #[serde(default)]
    pub limit_period: Option<LimitPeriod>,
    #[serde(default)]
    pub tiers: Option<Vec<TierCode>>,
    #[serde(default, deserialize_with = "present")]
    pub available_from: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    pub available_until: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub version: Option<u64>,
}

/// Why a reward definition or change is refused; each maps to a stable problem `code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewardError {
    #[error("name must be 1..100 characters")]
    InvalidName,
    #[error("description must be at most 2000 characters")]
    InvalidDescription,
    #[error("imageUrl must be an https URL of at most 1000 characters")]
    InvalidImageUrl,
    #[error("price must be 1..{MAX_PRICE} points")]
    InvalidPrice,
    #[error("a coupon reward names its coupon: a template of the rules or an inline one")]
    CouponRequired,
    #[error("coupon: {0}")]
    InvalidCoupon(String),
    #[error("no coupon template named {0:?}")]
    UnknownTemplate(String),
    #[error("{0}")]
    InvalidTiers(String),
    #[error("stock must be 0..{MAX_STOCK} units")]
    InvalidStock,
    #[error("{0}")]
    InvalidLimit(&'static str),
    #[error("{0}")]
    InvalidWindow(&'static str),
    #[error("{claimed} units are claimed already: the stock cannot be less")]
    StockBelowClaimed { claimed: u64 },
    #[error("the reward is at version {current}: read it again and apply the change to that")]
    VersionConflict { current: u64 },
}

impl RewardError {
    pub fn code(&self) -> &'static str {
        match self {
            RewardError::InvalidName => "invalid_name",
            RewardError::InvalidDescription => "invalid_description",
            RewardError::InvalidImageUrl => "invalid_image_url",
            RewardError::InvalidPrice => "invalid_price",
            RewardError::CouponRequired => "coupon_required",
            RewardError::InvalidCoupon(_) => "invalid_coupon",
            RewardError::UnknownTemplate(_) => "unknown_template",
            RewardError::InvalidTiers(_) => "invalid_tiers",
            RewardError::InvalidStock => "invalid_stock",
            RewardError::InvalidLimit(_) => "invalid_limit",
            RewardError::InvalidWindow(_) => "invalid_window",
            RewardError::StockBelowClaimed { .. } => "stock_below_claimed",
            RewardError::VersionConflict { .. } => "version_conflict",
        }
    }

    /// 409 where the reward's current state stands in the way, 422 for a bad definition.
    pub fn status(&self) -> u16 {
        match self {
            RewardError::StockBelowClaimed { .. } | RewardError::VersionConflict { .. } => 409,
            _ => 422,
        }
    }
}
