//! Issued coupons live in their member's partition under `COUPON#<code>`.

use super::keys::{self, member_pk};
use super::{Store, StoreError};
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
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
            .expression_attribute_values(":pk", AttributeValue::S(member_pk(member_id)))
            .expression_attribute_values(":p", AttributeValue::S(keys::COUPON_PREFIX.into()));
        Ok(self.query_all::<CouponItem>(query).await?.into_iter().map(|i| i.coupon).collect())
    }
}
