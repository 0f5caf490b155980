//! Issued coupons live in their member's partition under `COUPON#<code>`.

use super::keys::{self, member_pk};
use super::{from_item, sdk, Store, StoreError};
use crate::coupon::Coupon;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CouponItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub entity: String,
    /// The campaign batch that issued it, so a redelivery of that batch counts it as issued.
    #[serde(rename = "batchId", default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    #[serde(flatten)]
    pub coupon: Coupon,
}

impl CouponItem {
    pub fn new(coupon: Coupon) -> CouponItem {
        CouponItem { pk: member_pk(&coupon.member_id), sk: keys::coupon_sk(&coupon.code), entity: "coupon".into(), batch_id: None, coupon }
    }
}

impl Store {
    /// All of a member's coupons (one Query; a member holds tens, not thousands).
    pub async fn coupons(&self, member_id: &str) -> Result<Vec<Coupon>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
                .expression_attribute_values(":pk", AttributeValue::S(member_pk(member_id)))
                .expression_attribute_values(":p", AttributeValue::S(keys::COUPON_PREFIX.into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk)?;
            for item in page.items.unwrap_or_default() {
                out.push(from_item::<CouponItem>(item)?.coupon);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}
