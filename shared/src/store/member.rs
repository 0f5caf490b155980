//! Member items, their index attributes, signup and erasure transactions, receipts.

use super::change::Attempt;
use super::coupon::CouponItem;
use super::keys::ItemKey;
use super::keys::{self, member_pk, PROFILE_SK};
use super::{entity, from_item, Cond, Store, StoreError};
use crate::calendar;
use crate::churn;
use crate::coupon::Coupon;
use crate::member::Member;
use crate::money::Fen;
use crate::rules::Rules;
use crate::tier;
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

/// The member as stored: the model plus the sparse index keys derived from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(flatten)]
    pub member: Member,
    /// Rolling spend as of the last write; segment filters read it from the tier index.
    #[serde(rename = "rollingSpend")]
    pub rolling_spend: Fen,
    #[serde(rename = "birthMonth", skip_serializing_if = "Option::is_none", default)]
    pub birth_month: Option<u32>,
    /// Churn risk as of the last write: the band's letter and the RFM score
    /// (`churn::Assessment::mark`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub churn: Option<String>,
    #[serde(rename = "GSI1PK", skip_serializing_if = "Option::is_none", default)]
    pub gsi1pk: Option<String>,
    #[serde(rename = "GSI1SK", skip_serializing_if = "Option::is_none", default)]
    pub gsi1sk: Option<String>,
    #[serde(rename = "GSI2PK", skip_serializing_if = "Option::is_none", default)]
    pub gsi2pk: Option<String>,
    #[serde(rename = "GSI2SK", skip_serializing_if = "Option::is_none", default)]
    pub gsi2sk: Option<String>,
    #[serde(rename = "GSI3PK", skip_serializing_if = "Option::is_none", default)]
    pub gsi3pk: Option<String>,
    #[serde(rename = "GSI3SK", skip_serializing_if = "Option::is_none", default)]
    pub gsi3sk: Option<String>,
    #[serde(rename = "GSI4PK", skip_serializing_if = "Option::is_none", default)]
    pub gsi4pk: Option<String>,
    #[serde(rename = "GSI4SK", skip_serializing_if = "Option::is_none", default)]
    pub gsi4sk: Option<String>,
    #[serde(rename = "GSI5PK", skip_serializing_if = "Option::is_none", default)]
    pub gsi5pk: Option<String>,
    #[serde(rename = "GSI5SK", skip_serializing_if = "Option::is_none", default)]
    pub gsi5sk: Option<String>,
}

impl MemberItem {
    /// The stored form of `member` as of `now`: index keys follow the member's state, so an
    /// erased member leaves the segment indexes and a member without points leaves the
    /// expiry index.
    pub fn new(member: &Member, rules: &Rules, now: DateTime<Utc>) -> MemberItem {
        let id = member.member_id.as_str();
        let shard = keys::shard(id);
        let today = calendar::program_date(rules.time_zone, now);
        let active = !member.is_erased();
        // The day, not the instant: the key (and its two index writes) changes once a day at
        // most however often the member buys, and dormancy is counted in program days.
        let seen = calendar::program_date(
            rules.time_zone,
            member.last_purchase_at.unwrap_or(member.joined_at),
        )
        .to_string();
        // The daily sweep visits a member on the first day a lot expires or pending points are released.
        let expiry = member
            .wallet
            .next_expiry(rules.points.expiry_days)
            .into_iter()
            .chain(member.wallet.next_release())
            .min();
        let churn = active.then(|| {
            let seen = calendar::program_date(
                rules.time_zone,
                member.last_purchase_at.unwrap_or(member.joined_at),
            );
            churn::assess(&rules.churn, seen, today, member.order_count, member.lifetime_spend)
        });
        // The nightly visits a member when the tier could fall or the churn band could rise,
        // whichever comes first.
        let review = tier::review_date(member, rules)
            .into_iter()
            .chain(churn.and_then(|c| c.next_change))
            .min();
        let birthday = member.birthday.filter(|_| active);
        MemberItem {
            key: ItemKey::new(member_pk(id), PROFILE_SK, "member"),
            rolling_spend: member.rolling_spend(today, rules.tier_window_days),
            birth_month: birthday.map(|b| b.month()),
            gsi1pk: active.then(|| keys::tier_segment_pk(member.tier.as_str(), shard)),
            // The band first, so a segment reads one band of a tier partition as a key range.
            gsi1sk: churn.map(|c| keys::tier_segment_sk(c.band)),
            churn: churn.map(|c| c.mark()),
            gsi2pk: birthday
                .map(|b| keys::birthday_pk(&format!("{:02}-{:02}", b.month(), b.day()))),
            gsi2sk: birthday.map(|_| keys::UNORDERED_SK.to_string()),
            gsi3pk: active.then(|| keys::seen_pk(shard)),
            gsi3sk: active.then_some(seen),
            // The day alone: the sweeps ask for every day below a bound and read the member
            // from the table key (items written before carry `<day>#<id>`, which sorts alike).
            gsi4pk: expiry.map(|_| keys::expiry_pk(shard)),
            gsi4sk: expiry.map(|d| d.to_string()),
            gsi5pk: review.map(|_| keys::tier_review_pk(shard)),
            gsi5sk: review.map(|d| d.to_string()),
            member: member.clone(),
        }
    }
}

impl Store {
    pub async fn member(&self, id: &str) -> Result<Option<Member>, StoreError> {
        Ok(self.get::<MemberItem>(&member_pk(id), PROFILE_SK).await?.map(|i| i.member))
    }

    /// The profile and all of the member's coupons, in one Query.
    pub async fn member_with_coupons(
        &self,
        id: &str,
    ) -> Result<Option<(Member, Vec<Coupon>)>, StoreError> {
        let (mut member, mut coupons) = (None, Vec::new());
        for item in self.member_range(id, PROFILE_SK, keys::COUPONS_END).await? {
            match entity(&item) {
                Some("member") => member = Some(from_item::<MemberItem>(item)?.member),
                Some("coupon") => coupons.push(from_item::<CouponItem>(item)?.coupon),
                _ => {}
            }
        }
        Ok(member.map(|m| (m, coupons)))
    }
}

/// A recorded tier change, in the member's partition (`TIER#<time>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TierChangeItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(rename = "memberId")]
    pub member_id: String,
    #[serde(flatten)]
    pub change: crate::tier::TierChange,
}

impl TierChangeItem {
    pub fn new(member_id: &str, change: crate::tier::TierChange) -> TierChangeItem {
        TierChangeItem {
            key: ItemKey::new(member_pk(member_id), keys::tier_change_sk(change.at), "tier_change"),
            member_id: member_id.into(),
            change,
        }
    }
}

/// What a support change of the birthday did.
#[derive(Debug, Clone)]
pub enum BirthdayChanged {
    NoSuchMember,
    /// The member after the change; false when it already had that birthday (nothing written).
    Done(Box<Member>, bool),
}

impl Store {
    /// Support sets or changes a member's birthday (`Member::change_birthday`): one read and
    /// one version-checked write, retried from a fresh read when another write came between.
    pub async fn change_birthday(
        &self,
        id: &str,
        change: &crate::birthday::BirthdayChange,
        by: &str,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<BirthdayChanged, StoreError> {
        self.change_member(async || {
            let Some(mut m) = self.member(id).await?.filter(|m| !m.is_erased()) else {
                return Ok(Attempt::Answer(BirthdayChanged::NoSuchMember));
            };
            let version = m.version;
            if !m.change_birthday(change.clone(), by, now) {
                return Ok(Attempt::Answer(BirthdayChanged::Done(Box::new(m), false)));
            }
            m.version += 1;
            let write = self.member_write(&m, version, rules, now)?;
            Ok(Attempt::Commit(vec![write], BirthdayChanged::Done(Box::new(m), true)))
        })
        .await
    }

    /// The write of a changed member: `member.version` must already be one past `read_version`,
    /// the version that was read, and the write only lands if nobody wrote in between.
    pub fn member_write(
        &self,
        member: &Member,
        read_version: u64,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        debug_assert_eq!(member.version, read_version + 1);
        self.put(&MemberItem::new(member, rules, now), Some(Cond::version(read_version)))
    }

    /// A member's tier history, oldest first.
    pub async fn tier_history(
        &self,
        member_id: &str,
    ) -> Result<Vec<crate::tier::TierChange>, StoreError> {
        Ok(self
            .member_items::<TierChangeItem>(member_id, keys::TIER_CHANGE_PREFIX)
            .await?
            .into_iter()
            .map(|t| t.change)
            .collect())
    }
}
