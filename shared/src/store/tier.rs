//! Storage for the nightly tier evaluation: pages of member ids from the review and tier
//! indexes (resumable by an opaque cursor), and the mark of the tier rules last swept with.

use super::keys::ItemKey;
use super::keys::{self, PROGRAM_PK, TIER_RULES_SK};
use super::{sdk, Store, StoreError};
use crate::tier::TierCode;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Where a query stopped (the index's LastEvaluatedKey; every key attribute is a string).
pub type Cursor = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPage {
    pub member_ids: Vec<String>,
    pub next: Option<Cursor>,
}

/// The fingerprint of the tier rules the last rules-change sweep was started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TierRulesMark {
    #[serde(flatten)]
    pub key: ItemKey,
    pub fingerprint: String,
    pub at: DateTime<Utc>,
}

impl TierRulesMark {
    pub fn new(fingerprint: String, at: DateTime<Utc>) -> TierRulesMark {
        TierRulesMark {
            key: ItemKey::new(PROGRAM_PK, TIER_RULES_SK, "tier_rules_mark"),
            fingerprint,
            at,
        }
    }
}

impl Store {
    /// Members of `shard` whose tier review is due on or before `date` (ByTierReview).
    pub async fn tier_review_page(
        &self,
        shard: u32,
        date: NaiveDate,
        cursor: Option<Cursor>,
        limit: i32,
    ) -> Result<MemberPage, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("ByTierReview")
            .key_condition_expression("GSI5PK = :pk AND GSI5SK < :bound")
            .expression_attribute_values(":pk", AttributeValue::S(keys::tier_review_pk(shard)))
            .expression_attribute_values(
                ":bound",
                AttributeValue::S(keys::tier_review_due_bound(date)),
            );
        let out =
            q.set_exclusive_start_key(cursor.map(to_key)).limit(limit).send().await.map_err(sdk)?;
        page(out.items.unwrap_or_default(), out.last_evaluated_key)
    }

    /// Members of `shard` holding `tier` (ByTier): the rules-change sweep.
    pub async fn tier_segment_page(
        &self,
        tier: TierCode,
        shard: u32,
        cursor: Option<Cursor>,
        limit: i32,
    ) -> Result<MemberPage, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("ByTier")
            .key_condition_expression("GSI1PK = :pk")
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(keys::tier_segment_pk(tier.as_str(), shard)),
            );
        let out =
            q.set_exclusive_start_key(cursor.map(to_key)).limit(limit).send().await.map_err(sdk)?;
        page(out.items.unwrap_or_default(), out.last_evaluated_key)
    }

    pub async fn tier_rules_mark(&self) -> Result<Option<TierRulesMark>, StoreError> {
        self.get(PROGRAM_PK, TIER_RULES_SK).await
    }

    pub async fn set_tier_rules_mark(&self, mark: &TierRulesMark) -> Result<(), StoreError> {
        let item = super::to_item(mark)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(sdk)?;
        Ok(())
    }
}

fn to_key(cursor: Cursor) -> HashMap<String, AttributeValue> {
    cursor.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect()
}

fn page(
    items: Vec<HashMap<String, AttributeValue>>,
    last: Option<HashMap<String, AttributeValue>>,
) -> Result<MemberPage, StoreError> {
    let member_ids = items
        .iter()
        .map(|i| {
            let pk = i
                .get("PK")
                .and_then(|v| v.as_s().ok())
                .ok_or_else(|| StoreError::Mapping("index item without PK".into()))?;
            keys::member_id_of(pk)
                .map(str::to_string)
                .ok_or_else(|| StoreError::Mapping(format!("index item {pk} is not a member")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next = last
        .map(|k| {
            k.into_iter()
                .map(|(name, v)| {
                    v.as_s().map(|s| (name.clone(), s.clone())).map_err(|_| {
                        StoreError::Mapping(format!("cursor attribute {name} is not a string"))
                    })
                })
                .collect::<Result<Cursor, _>>()
        })
        .transpose()?;
    Ok(MemberPage { member_ids, next })
}
