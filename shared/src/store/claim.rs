//! Members' reward claims and the counters of their per-member limits.

use super::keys::ItemKey;
use super::keys::{self, member_pk};
use super::{Cond, Store, StoreError};
use crate::reward::Claim;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(rename = "memberId")]
    pub member_id: String,
    #[serde(flatten)]
    pub claim: Claim,
}

impl ClaimItem {
    pub fn new(member_id: &str, claim: Claim) -> ClaimItem {
        ClaimItem {
            key: ItemKey::new(
                member_pk(member_id),
                keys::reward_claim_sk(&claim.claim_id),
                "reward_claim",
            ),
            member_id: member_id.into(),
            claim,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LimitItem {
    #[serde(default)]
    pub(super) n: u32,
}

impl Store {
    /// Counts a claim against the member's limit: only below `limit`. A monthly counter may
    /// vanish (TTL) once its month is long over.
    pub fn limit_take_write(
        &self,
        member_id: &str,
        reward_id: &str,
        period: &str,
        limit: u32,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Cond::new("ADD #n :one SET #entity = :entity")
            .name("#n", "n")
            .name("#entity", "entity")
            .value(":one", n(1))
            .value(":entity", AttributeValue::S("reward_limit".into()));
        if let Some(t) = expires_at {
            update = Cond { expr: format!("{}, #exp = :exp", update.expr), ..update }
                .name("#exp", "expiresAt")
                .value(":exp", n(t.timestamp()));
        }
        let cond = Cond::new("attribute_not_exists(#n) OR #n < :limit").value(":limit", n(limit));
        self.update(&member_pk(member_id), &keys::reward_limit_sk(reward_id, period), update, cond)
    }

    /// A cancelled claim no longer counts against the member's limit.
    pub fn limit_give_back_write(
        &self,
        member_id: &str,
        reward_id: &str,
        period: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Cond::new("ADD #n :minus").name("#n", "n").value(":minus", n(-1));
        self.update(
            &member_pk(member_id),
            &keys::reward_limit_sk(reward_id, period),
            update,
            Cond::new("#n >= :one").value(":one", n(1)),
        )
    }

    /// A new claim.
    pub fn new_claim_write(
        &self,
        member_id: &str,
        claim: Claim,
    ) -> Result<TransactWriteItem, StoreError> {
        self.put(&ClaimItem::new(member_id, claim), Some(Cond::absent()))
    }

    /// A claim fulfilled (shipped or cancelled): only from `pending`, so it moves once.
    pub fn fulfilled_claim_write(
        &self,
        member_id: &str,
        claim: Claim,
    ) -> Result<TransactWriteItem, StoreError> {
        let cond = Cond::new("#status = :pending")
            .name("#status", "status")
            .value(":pending", AttributeValue::S("pending".into()));
        self.put(&ClaimItem::new(member_id, claim), Some(cond))
    }

    /// A member's claims (one Query; a member claims tens, not thousands).
    pub async fn claims(&self, member_id: &str) -> Result<Vec<Claim>, StoreError> {
        Ok(self
            .member_items::<ClaimItem>(member_id, keys::REWARD_CLAIM_PREFIX)
            .await?
            .into_iter()
            .map(|i| i.claim)
            .collect())
    }
}

/// A number attribute.
pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
