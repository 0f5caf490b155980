//! The rewards catalog and members' claims.
//!
//! | PK | SK | item |
//! |---|---|---|
//! | `REWARDS` | `REWARD#<id>` | a reward: its definition (`version`) and the units `claimed` |
//! | `MEMBER#<id>` | `REWARD_CLAIM#<claimId>` | a claim: what was charged, its status |
//! | `MEMBER#<id>` | `REWARD_LIMIT#<rewardId>#<period>` | `n`: the member's claims of the reward in the period |
//!
//! Stock is a counter on the reward item: a claim adds one to `claimed` under the condition
//! that the reward is still at the version read and `claimed` is below the stock. Claims never
//! write the definition, so claims by different members never invalidate each other's read:
//! the only contention on a limited drop is the counter itself, which DynamoDB serializes.
//! Operators change the definition with an UpdateItem that sets every field of the new
//! version and leaves `claimed` alone, under the version they read.

use super::keys::ItemKey;
use super::keys::{self, member_pk};
use super::member::MemberItem;
use super::receipt::Receipt;
use super::{entity, from_item, key, to_item, Cond, Item, Store, StoreError, BATCH_GET_MAX};
use crate::member::Member;
use crate::reward::{Claim, Reward};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RewardItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(flatten)]
    pub reward: Reward,
    /// Units claimed and not cancelled (only claims and cancels change it).
    #[serde(default)]
    pub claimed: u64,
    /// The fingerprint of the request that defined it: a retry under the same Idempotency-Key
    /// is told from another definition under it.
    #[serde(rename = "requestFingerprint", default)]
    pub fingerprint: String,
}

impl RewardItem {
    pub fn new(reward: Reward, fingerprint: String) -> RewardItem {
        RewardItem {
            key: ItemKey::new(keys::REWARDS_PK, keys::reward_sk(&reward.reward_id), "reward"),
            reward,
            claimed: 0,
            fingerprint,
        }
    }
}

/// The reward's optional attributes: an operator's change that drops one removes it.
const OPTIONAL: [&str; 8] = [
    "imageUrl",
    "couponTemplate",
    "coupon",
    "stock",
    "perMemberLimit",
    "tiers",
    "availableFrom",
    "availableUntil",
];

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
struct LimitItem {
    #[serde(default)]
    n: u32,
}

/// What one BatchGetItem of a reward call returned, typed.
#[derive(Debug, Default)]
pub struct RewardRead {
    pub member: Option<Member>,
    pub reward: Option<RewardItem>,
    pub receipt: Option<Receipt>,
    pub claim: Option<ClaimItem>,
    /// The member's limit counters read, by sort key.
    pub counts: HashMap<String, u32>,
}

impl RewardRead {
    pub fn count(&self, reward_id: &str, period: Option<&str>) -> u32 {
        period
            .and_then(|p| self.counts.get(&keys::reward_limit_sk(reward_id, p)))
            .copied()
            .unwrap_or(0)
    }
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl Store {
    /// One BatchGetItem (strongly consistent) of the member's profile, the items at
    /// `member_sks` in their partition and, if named, a reward: everything a claim, a
    /// fulfilment or the member's catalog needs about the member. Unprocessed keys (throttling)
    /// are asked again, and more than 100 keys (a catalog of over 99 limited rewards) take one
    /// request per 100: the only cases of a second request.
    pub async fn reward_read(
        &self,
        member_id: &str,
        member_sks: &[String],
        reward_id: Option<&str>,
    ) -> Result<RewardRead, StoreError> {
        let pk = member_pk(member_id);
        let mut all: Vec<Item> = vec![key(&pk, keys::PROFILE_SK)];
        all.extend(member_sks.iter().map(|sk| key(&pk, sk)));
        all.extend(reward_id.map(|id| key(keys::REWARDS_PK, &keys::reward_sk(id))));
        let mut out = RewardRead::default();
        for chunk in all.chunks(BATCH_GET_MAX) {
            for item in self.batch_get(chunk.to_vec()).await? {
                let sk = item.get("SK").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                match entity(&item) {
                    Some("member") => out.member = Some(from_item::<MemberItem>(item)?.member),
                    Some("reward") => out.reward = Some(from_item(item)?),
                    Some("receipt") => out.receipt = Some(from_item(item)?),
                    Some("reward_claim") => out.claim = Some(from_item(item)?),
                    _ => {
                        out.counts.insert(sk, from_item::<LimitItem>(item)?.n);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The whole catalog (one Query, paged only past 1 MB).
    pub async fn rewards(&self) -> Result<Vec<RewardItem>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::REWARDS_PK.into()))
            .expression_attribute_values(":p", AttributeValue::S(keys::REWARD_PREFIX.into()))
            .consistent_read(true);
        self.query_all(query).await
    }

    pub async fn reward(&self, reward_id: &str) -> Result<Option<RewardItem>, StoreError> {
        self.get(keys::REWARDS_PK, &keys::reward_sk(reward_id)).await
    }

    /// A new reward: only if the id is free.
    pub fn new_reward_write(&self, item: &RewardItem) -> Result<TransactWriteItem, StoreError> {
        self.put(item, Some(Cond::absent()))
    }

    /// An operator's change: every field of the new version is set (absent optional ones
    /// removed) and `claimed` is left as it is, if the reward is still at `read_version` and,
    /// with a stock, no more units are claimed than the new stock.
    pub fn reward_change_write(
        &self,
        reward: &Reward,
        read_version: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let item = to_item(reward)?;
        let mut update = Cond::default();
        let mut set = Vec::new();
        for (i, (name, value)) in item.iter().enumerate() {
            set.push(format!("#a{i} = :a{i}"));
            update = update.name(&format!("#a{i}"), name).value(&format!(":a{i}"), value.clone());
        }
        let mut remove = Vec::new();
        for (j, name) in OPTIONAL.iter().filter(|n| !item.contains_key(**n)).enumerate() {
            remove.push(format!("#r{j}"));
            update = update.name(&format!("#r{j}"), name);
        }
        update.expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            update.expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut cond = Cond::new("#rv = :rv").name("#rv", "version").value(":rv", n(read_version));
        if let Some(stock) = reward.stock {
            cond = Cond { expr: format!("{} AND #claimed <= :stock", cond.expr), ..cond }
                .name("#claimed", "claimed")
                .value(":stock", n(stock));
        }
        self.update(keys::REWARDS_PK, &keys::reward_sk(&reward.reward_id), update, cond)
    }

    /// A claim takes a unit: only while the reward is at the version the claim was priced on
    /// and, with a stock, a unit is left. Not conditional on anything another claim changes
    /// but `claimed` itself.
    pub fn reward_take_write(&self, reward: &Reward) -> Result<TransactWriteItem, StoreError> {
        let update = Cond::new("ADD #claimed :one").name("#claimed", "claimed").value(":one", n(1));
        let mut cond =
            Cond::new("#rv = :rv").name("#rv", "version").value(":rv", n(reward.version));
        if let Some(stock) = reward.stock {
            cond = Cond { expr: format!("{} AND #claimed < :stock", cond.expr), ..cond }
                .value(":stock", n(stock));
        }
        self.update(keys::REWARDS_PK, &keys::reward_sk(&reward.reward_id), update, cond)
    }

    /// A cancelled gift gives its unit back to the stock.
    pub fn reward_give_back_write(&self, reward_id: &str) -> Result<TransactWriteItem, StoreError> {
        let update =
            Cond::new("ADD #claimed :minus").name("#claimed", "claimed").value(":minus", n(-1));
        self.update(
            keys::REWARDS_PK,
            &keys::reward_sk(reward_id),
            update,
            Cond::new("#claimed >= :one").value(":one", n(1)),
        )
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_optional_fields_are_the_reward_s_skippable_ones() {
        let now: DateTime<Utc> = "2026-11-27T00:00:00Z".parse().unwrap();
        let bare = Reward {
            reward_id: "r-1".into(),
            name: "N".into(),
            description: String::new(),
            image_url: None,
            price: 1,
            kind: crate::reward::RewardKind::Gift,
            coupon_template: None,
            coupon: None,
            stock: None,
            per_member_limit: None,
            limit_period: Default::default(),
            tiers: vec![],
            available_from: None,
            available_until: None,
            active: true,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let item = to_item(&bare).unwrap();
        // Every attribute a bare reward lacks must be removable, or a change could not drop it.
        let all = [
            "rewardId",
            "name",
            "description",
            "imageUrl",
            "price",
            "kind",
            "couponTemplate",
            "coupon",
            "stock",
            "perMemberLimit",
            "limitPeriod",
            "tiers",
            "availableFrom",
            "availableUntil",
            "active",
            "version",
            "createdAt",
            "updatedAt",
        ];
        for a in all {
            assert!(
                item.contains_key(a) || OPTIONAL.contains(&a),
                "{a} is neither always there nor removable"
            );
        }
    }
}
