//! Redeeming a coupon: ONE read (BatchGetItem of the member's standing and the coupon) and
//! ONE conditional write (the coupon goes from active to redeemed, carrying its redemption).

use super::coupon::CouponItem;
use super::keys::{self, member_pk, PROFILE_SK};
use super::{backoff, from_item, key, sdk, to_item, Store, StoreError, MAX_ATTEMPTS};
use crate::coupon::Redemption;
use crate::tier::TierCode;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// What a redeem needs of the member.
#[derive(Debug, Clone, Deserialize)]
pub struct Standing {
    pub tier: TierCode,
    #[serde(rename = "erasedAt", default)]
    pub erased_at: Option<DateTime<Utc>>,
}

impl Store {
    /// The member's standing and one of their coupons, in one strongly consistent BatchGetItem.
    pub async fn standing_and_coupon(&self, member_id: &str, code: &str) -> Result<(Option<Standing>, Option<CouponItem>), StoreError> {
        let pk = member_pk(member_id);
        let coupon_sk = keys::coupon_sk(code);
        let mut request = Some(KeysAndAttributes::builder().keys(key(&pk, PROFILE_SK)).keys(key(&pk, &coupon_sk)).consistent_read(true).build().map_err(sdk)?);
        let (mut standing, mut coupon) = (None, None);
        let mut attempt = 0;
        while let Some(req) = request.take() {
            let out = self.client.batch_get_item().request_items(&self.table, req).send().await.map_err(sdk)?;
            for item in out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                match item.get("SK").and_then(|s| s.as_s().ok()) {
                    Some(sk) if sk == PROFILE_SK => standing = Some(from_item::<Standing>(item)?),
                    Some(sk) if *sk == coupon_sk => coupon = Some(from_item::<CouponItem>(item)?),
                    _ => {}
                }
            }
            request = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).filter(|k| !k.keys().is_empty());
            if request.is_some() {
                if attempt >= MAX_ATTEMPTS {
                    return Err(StoreError::Throttled("BatchGetItem left keys unprocessed".into()));
                }
                backoff(attempt).await;
                attempt += 1;
            }
        }
        Ok((standing, coupon))
    }

    /// Marks the coupon redeemed by `redemption`, only if it is still active and unused (one
    /// conditional UpdateItem). When the condition fails, answers the coupon as it is stored
    /// (so the caller can replay the first answer or refuse), or None if it is gone.
    pub async fn redeem_coupon(&self, member_id: &str, code: &str, redemption: &Redemption) -> Result<Result<(), Option<CouponItem>>, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&member_pk(member_id), &keys::coupon_sk(code))))
            .update_expression("SET #status = :redeemed, #redemption = :r")
            .condition_expression("attribute_exists(PK) AND #status = :active AND attribute_not_exists(#redemption)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#redemption", "redemption")
            .expression_attribute_values(":redeemed", AttributeValue::S("redeemed".into()))
            .expression_attribute_values(":active", AttributeValue::S("active".into()))
            .expression_attribute_values(":r", AttributeValue::M(to_item(redemption)?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Ok(())),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(c) => match c.item.map(from_item::<CouponItem>).transpose()? {
                    Some(old) => Ok(Err(Some(old))),
                    // The database did not return the item: read it.
                    None => Ok(Err(self.coupon(member_id, code).await?)),
                },
                other => Err(sdk(other)),
            },
            Err(e) => Err(sdk(e)),
        }
    }
}
