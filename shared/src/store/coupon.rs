//! Issued coupons live in their member's partition under `COUPON#<code>`.

use super::keys::ItemKey;
use super::keys::{self, member_pk};
use super::{Store, StoreError};
use crate::coupon::Coupon;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CouponItem {
    #[serde(flatten)]
    pub key: ItemKey,
    /// The campaign batch that issued it, so a redelivery of that batch counts it as issued.
    #[serde(rename = "batchId", default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// The experiment arm (variant) the member was in when the campaign issued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    #[serde(flatten)]
    pub coupon: Coupon,
}

impl CouponItem {
    pub fn new(coupon: Coupon) -> CouponItem {
        CouponItem {
            key: ItemKey::new(
                member_pk(&coupon.member_id),
                keys::coupon_sk(&coupon.code),
                "coupon",
            ),
            batch_id: None,
            arm: None,
            coupon,
        }
    }
}

/// The grant slot a coupon fills (`keys::grant_sk`): written in the same transaction as the
/// coupon, on the condition that it does not exist yet. It names the coupon's code, so a
/// member who already holds the slot is answered with their coupon even after the code secret
/// changed, and the batch that wrote it, so a redelivery of that batch counts it as issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantItem {
    #[serde(flatten)]
    pub key: ItemKey,
    pub grant: String,
    pub slot: u32,
    pub code: String,
    #[serde(rename = "batchId", default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    #[serde(rename = "issuedAt")]
    pub issued_at: chrono::DateTime<chrono::Utc>,
}

impl GrantItem {
    pub fn of(coupon: &Coupon, batch_id: Option<&str>) -> GrantItem {
        GrantItem {
            key: ItemKey::new(
                member_pk(&coupon.member_id),
                keys::grant_sk(&coupon.grant, coupon.slot),
                "grant",
            ),
            grant: coupon.grant.clone(),
            slot: coupon.slot,
            code: coupon.code.clone(),
            batch_id: batch_id.map(str::to_string),
            arm: None,
            issued_at: coupon.issued_at,
        }
    }
}

impl Store {
    /// All of a member's coupons (one Query; a member holds tens, not thousands).
    pub async fn coupons(&self, member_id: &str) -> Result<Vec<Coupon>, StoreError> {
        Ok(self
            .member_items::<CouponItem>(member_id, keys::COUPON_PREFIX)
            .await?
            .into_iter()
            .map(|i| i.coupon)
            .collect())
    }
}
