//! An experiment's holdout members: each is recorded by its grant slot's item with no coupon,
//! `MEMBER#<id>` / `GRANT#<grant>#0` of entity `holdout`. One plain conditional PutItem (a
//! small item: 1 write unit, against 4 for a coupon's transaction) that does three jobs: the
//! KPI counters count the member into the holdout arm from its stream record (so the holdout's
//! conversion is measured like the variants'), a re-run of the grant finds the slot taken and
//! gives the member nothing, and no second record can exist for the member and grant.

use super::keys::{self, member_pk, ItemKey};
use super::{from_item, sdk, to_item, Store, StoreError};
use crate::campaign::IssueBatch;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldoutItem {
    #[serde(flatten)]
    pub key: ItemKey,
    pub member_id: String,
    pub grant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    pub held_at: DateTime<Utc>,
}

impl HoldoutItem {
    pub fn new(member_id: &str, grant: &str, batch_id: &str, at: DateTime<Utc>) -> HoldoutItem {
        HoldoutItem {
            key: ItemKey::new(member_pk(member_id), keys::grant_sk(grant, 0), "holdout"),
            member_id: member_id.into(),
            grant: grant.into(),
            batch_id: Some(batch_id.into()),
            held_at: at,
        }
    }
}

#[derive(Deserialize)]
struct SlotHolder {
    #[serde(rename = "batchId", default)]
    batch_id: Option<String>,
}

impl Store {
    /// Records `member_id` in the holdout of `batch`'s grant. True when this batch holds the
    /// slot (written now, or by an earlier delivery of the same batch); false when the slot
    /// was taken before (an earlier run of the grant).
    pub async fn hold_out(
        &self,
        member_id: &str,
        batch: &IssueBatch,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let item = HoldoutItem::new(member_id, &batch.grant, &batch.batch_id, now);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(PK)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) => match e.into_service_error() {
                PutItemError::ConditionalCheckFailedException(c) => {
                    let holder = c.item.map(from_item::<SlotHolder>).transpose()?;
                    Ok(holder.and_then(|h| h.batch_id).as_deref() == Some(batch.batch_id.as_str()))
                }
                other => Err(sdk(other)),
            },
        }
    }
}
