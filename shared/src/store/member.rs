//! Member items, their index attributes, signup and erasure transactions, receipts.

use super::coupon::CouponItem;
use super::keys::{self, member_pk, PROFILE_SK, UNIQUE_SK};
use super::ledger::LedgerItem;
use super::{from_item, sdk, Cond, Store, StoreError, TxFailure};
use crate::calendar;
use crate::coupon::Coupon;
use crate::ledger::LedgerEntry;
use crate::member::Member;
use crate::money::Fen;
use crate::rules::Rules;
use crate::tier;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The member as stored: the model plus the sparse index keys derived from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub entity: String,
    #[serde(flatten)]
    pub member: Member,
    /// Rolling spend as of the last write; segment filters read it from the tier index.
    #[serde(rename = "rollingSpend")]
    pub rolling_spend: Fen,
    #[serde(rename = "birthMonth", skip_serializing_if = "Option::is_none", default)]
    pub birth_month: Option<u32>,
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
        let seen = member.last_purchase_at.unwrap_or(member.joined_at).to_rfc3339_opts(SecondsFormat::Secs, true);
        let expiry = member.wallet.next_expiry(rules.points.expiry_days);
        let review = tier::review_date(member, rules);
        let birthday = member.birthday.filter(|_| active);
        MemberItem {
            pk: member_pk(id),
            sk: PROFILE_SK.into(),
            entity: "member".into(),
            rolling_spend: member.rolling_spend(today, rules.tier_window_days),
            birth_month: birthday.map(|b| b.month()),
            gsi1pk: active.then(|| keys::tier_segment_pk(member.tier.as_str(), shard)),
            gsi1sk: active.then(|| id.to_string()),
            gsi2pk: birthday.map(|b| keys::birthday_pk(&format!("{:02}-{:02}", b.month(), b.day()))),
            gsi2sk: birthday.map(|_| id.to_string()),
            gsi3pk: active.then(|| keys::seen_pk(shard)),
            gsi3sk: active.then_some(seen),
            gsi4pk: expiry.map(|_| keys::expiry_pk(shard)),
            gsi4sk: expiry.map(|d| format!("{d}#{id}")),
            gsi5pk: review.map(|_| keys::tier_review_pk(shard)),
            gsi5sk: review.map(|d| format!("{d}#{id}")),
            member: member.clone(),
        }
    }
}

/// The first answer to an idempotent request, kept so a retry gets it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub entity: String,
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    pub at: DateTime<Utc>,
    /// TTL (epoch seconds) for receipts that may vanish; natural-key receipts keep none.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none", default)]
    pub expires_at: Option<i64>,
}

impl Receipt {
    pub fn new(member_id: &str, scope: &str, key: &str, fingerprint: String, status: u16, body: String, at: DateTime<Utc>) -> Receipt {
        Receipt { pk: member_pk(member_id), sk: keys::receipt_sk(scope, key), entity: "receipt".into(), fingerprint, status, body, at, expires_at: None }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct UniqueItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    #[serde(rename = "memberId")]
    member_id: String,
}

/// Everything signup writes, in one transaction.
pub struct NewMemberWrite<'a> {
    pub member: &'a Member,
    pub welcome: LedgerEntry,
    pub coupon: Coupon,
    pub receipt: Receipt,
    /// The referral code used at signup: it must still exist when the transaction commits.
    pub referral_code_used: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupConflict {
    AlreadyMember,
    EmailTaken,
    PhoneTaken,
    /// The generated referral code collided: generate another and try again.
    ReferralCodeTaken,
    UnknownReferralCode,
}

impl Store {
    pub async fn member(&self, id: &str) -> Result<Option<Member>, StoreError> {
        Ok(self.get::<MemberItem>(&member_pk(id), PROFILE_SK).await?.map(|i| i.member))
    }

    /// The profile and all of the member's coupons, in one Query.
    pub async fn member_with_coupons(&self, id: &str) -> Result<Option<(Member, Vec<Coupon>)>, StoreError> {
        let mut member = None;
        let mut coupons = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND SK BETWEEN :a AND :b")
                .expression_attribute_values(":pk", AttributeValue::S(member_pk(id)))
                .expression_attribute_values(":a", AttributeValue::S(PROFILE_SK.into()))
                .expression_attribute_values(":b", AttributeValue::S(keys::COUPONS_END.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk)?;
            for item in page.items.unwrap_or_default() {
                match item.get("entity").and_then(|e| e.as_s().ok()).map(String::as_str) {
                    Some("member") => member = Some(from_item::<MemberItem>(item)?.member),
                    Some("coupon") => coupons.push(from_item::<CouponItem>(item)?.coupon),
                    _ => {}
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(member.map(|m| (m, coupons)));
            }
        }
    }

    /// The member a referral code belongs to.
    pub async fn referrer(&self, code: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get::<UniqueItem>(&keys::refcode_pk(code), UNIQUE_SK).await?.map(|u| u.member_id))
    }

    pub async fn receipt(&self, member_id: &str, scope: &str, key: &str) -> Result<Option<Receipt>, StoreError> {
        self.get(&member_pk(member_id), &keys::receipt_sk(scope, key)).await
    }

    /// Creates the member with its uniqueness items, welcome points, welcome coupon and
    /// receipt in one transaction. Each uniqueness item's condition makes a taken email,
    /// phone or code fail the whole write: no read-then-write race.
    pub async fn create_member(&self, w: NewMemberWrite<'_>, rules: &Rules, now: DateTime<Utc>) -> Result<Result<(), SignupConflict>, StoreError> {
        let m = w.member;
        let id = m.member_id.as_str();
        let unique = |pk: String| UniqueItem { pk, sk: UNIQUE_SK.into(), entity: "unique".into(), member_id: id.into() };
        let mut items: Vec<(TransactWriteItem, SignupConflict)> = vec![
            (self.put(&MemberItem::new(m, rules, now), Some(Cond::absent()))?, SignupConflict::AlreadyMember),
            (self.put(&unique(keys::refcode_pk(&m.referral_code)), Some(Cond::absent()))?, SignupConflict::ReferralCodeTaken),
            (self.put(&LedgerItem::new(id, w.welcome), Some(Cond::absent()))?, SignupConflict::AlreadyMember),
            (self.put(&CouponItem::new(w.coupon.clone()), Some(Cond::absent()))?, SignupConflict::AlreadyMember),
            // The welcome coupon's grant slot, as every coupon has (store::issue).
            (self.put(&super::coupon::GrantItem::of(&w.coupon, None), Some(Cond::absent()))?, SignupConflict::AlreadyMember),
            (self.put(&w.receipt, None)?, SignupConflict::AlreadyMember),
        ];
        if let Some(e) = &m.email {
            items.push((self.put(&unique(keys::email_pk(e)), Some(Cond::absent()))?, SignupConflict::EmailTaken));
        }
        if let Some(p) = &m.phone {
            items.push((self.put(&unique(keys::phone_pk(p)), Some(Cond::absent()))?, SignupConflict::PhoneTaken));
        }
        if let Some(code) = w.referral_code_used {
            items.push((self.check(&keys::refcode_pk(code), UNIQUE_SK, Cond::present())?, SignupConflict::UnknownReferralCode));
        }
        let (writes, meaning): (Vec<_>, Vec<_>) = items.into_iter().unzip();
        for attempt in 0..super::MAX_ATTEMPTS {
            match self.transact(writes.clone()).await {
                Ok(()) => return Ok(Ok(())),
                // The member item comes first: if it exists, that explains everything else.
                Err(TxFailure::Conditions(failed)) => return Ok(Err(meaning[failed[0]])),
                Err(TxFailure::Conflict) => super::backoff(attempt).await,
                Err(TxFailure::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Contended)
    }

    /// Erases personal data: the member item is rewritten without it (version-checked), the
    /// contact uniqueness items and the signup receipt are deleted, ledger and coupons stay.
    pub async fn erase_member(&self, id: &str, rules: &Rules, now: DateTime<Utc>) -> Result<bool, StoreError> {
        for attempt in 0..super::MAX_ATTEMPTS {
            let Some(mut m) = self.member(id).await? else { return Ok(false) };
            if m.is_erased() {
                return Ok(true);
            }
            let (email, phone, version) = (m.email.clone(), m.phone.clone(), m.version);
            m.erase(now);
            m.version += 1;
            let mine = || Cond::new("attribute_not_exists(PK) OR memberId = :m").value(":m", AttributeValue::S(id.into()));
            let mut writes = vec![
                self.put(&MemberItem::new(&m, rules, now), Some(Cond::version(version)))?,
                self.delete(&member_pk(id), &keys::receipt_sk("signup", "-"), None)?,
            ];
            if let Some(e) = email {
                writes.push(self.delete(&keys::email_pk(&e), UNIQUE_SK, Some(mine()))?);
            }
            if let Some(p) = phone {
                writes.push(self.delete(&keys::phone_pk(&p), UNIQUE_SK, Some(mine()))?);
            }
            match self.transact(writes).await {
                Ok(()) => return Ok(true),
                Err(TxFailure::Conditions(_) | TxFailure::Conflict) => super::backoff(attempt).await,
                Err(TxFailure::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Contended)
    }
}

/// A recorded tier change, in the member's partition (`TIER#<time>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TierChangeItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub entity: String,
    #[serde(rename = "memberId")]
    pub member_id: String,
    #[serde(flatten)]
    pub change: crate::tier::TierChange,
}

impl TierChangeItem {
    pub fn new(member_id: &str, change: crate::tier::TierChange) -> TierChangeItem {
        TierChangeItem { pk: member_pk(member_id), sk: keys::tier_change_sk(change.at), entity: "tier_change".into(), member_id: member_id.into(), change }
    }
}

impl Store {
    /// The write of a changed member: `member.version` must already be one past `read_version`,
    /// the version that was read, and the write only lands if nobody wrote in between.
    pub fn member_write(&self, member: &Member, read_version: u64, rules: &Rules, now: DateTime<Utc>) -> Result<TransactWriteItem, StoreError> {
        debug_assert_eq!(member.version, read_version + 1);
        self.put(&MemberItem::new(member, rules, now), Some(Cond::version(read_version)))
    }

    /// A member's tier history, oldest first.
    pub async fn tier_history(&self, member_id: &str) -> Result<Vec<crate::tier::TierChange>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
            .expression_attribute_values(":pk", AttributeValue::S(member_pk(member_id)))
            .expression_attribute_values(":p", AttributeValue::S("TIER#".into()))
            .send()
            .await
            .map_err(sdk)?;
        out.items.unwrap_or_default().into_iter().map(|i| from_item::<TierChangeItem>(i).map(|t| t.change)).collect()
    }
}
