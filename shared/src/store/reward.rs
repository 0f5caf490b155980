//! The rewards catalog and members' claims.
//!
//! | PK | SK | item |
//! |---|---|---|
//! | `REWARDS` | `REWARD#<id>` | a reward: its definition (`version`) and the units `claimed` |
//! | `MEMBER#<id>` | `REWARD_CLAIM#<claimId>` | a claim: what was charged, its status (`claim.rs`) |
//! | `MEMBER#<id>` | `REWARD_LIMIT#<rewardId>#<period>` | `n`: the member's claims of the reward in the period (`claim.rs`) |
//!
//! Stock is a counter on the reward item: a claim adds one to `claimed` under the condition
//! that the reward is still at the version read and `claimed` is below the stock. Claims never
//! write the definition, so claims by different members never invalidate each other's read:
//! the only contention on a limited drop is the counter itself, which DynamoDB serializes.
//! Operators change the definition with an UpdateItem that sets every field of the new
//! version and leaves `claimed` alone, under the version they read.

pub use super::claim::ClaimItem;
use super::claim::{n, LimitItem};
use super::keys::ItemKey;
use super::keys::{self, member_pk};
use super::member::MemberItem;
use super::receipt::Receipt;
use super::{entity, from_item, key, to_item, Cond, Item, Store, StoreError, BATCH_GET_MAX};
use crate::member::Member;
use crate::reward::Reward;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

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
