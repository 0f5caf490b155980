//! Member items, their index attributes, signup and erasure transactions, receipts.

use super::change::Attempt;
use super::coupon::CouponItem;
use super::keys::ItemKey;
use super::keys::{self, member_pk, PROFILE_SK, UNIQUE_SK};
use super::ledger::LedgerItem;
use super::{from_item, key, sdk, to_attribute, Cond, Item, Store, StoreError, TxFailure};
use crate::calendar;
use crate::churn;
use crate::contact::{ContactDigest, ContactKey, PriorGifts};
use crate::coupon::Coupon;
use crate::ledger::LedgerEntry;
use crate::member::Member;
use crate::money::Fen;
use crate::rules::Rules;
use crate::tier;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

/// The first answer to an idempotent request, kept so a retry gets it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    #[serde(flatten)]
    pub key: ItemKey,
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    pub at: DateTime<Utc>,
    /// TTL (epoch seconds) for receipts that may vanish; natural-key receipts keep none.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none", default)]
    pub expires_at: Option<i64>,
}

impl Receipt {
    pub fn new(
        member_id: &str,
        scope: &str,
        key: &str,
        fingerprint: String,
        status: u16,
        body: String,
        at: DateTime<Utc>,
    ) -> Receipt {
        Receipt {
            key: ItemKey::new(member_pk(member_id), keys::receipt_sk(scope, key), "receipt"),
            fingerprint,
            status,
            body,
            at,
            expires_at: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct UniqueItem {
    #[serde(flatten)]
    pub(super) key: ItemKey,
    #[serde(rename = "memberId")]
    pub(super) member_id: String,
}

/// The tombstone an erased member leaves for each verified contact (`GIFTED#<hmac>`): what
/// memberships of that contact received. It holds neither the contact (the key is its keyed
/// digest) nor the member id, which would tie the contact back to the anonymized record and
/// its ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TombstoneItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(flatten)]
    pub gifts: PriorGifts,
    /// The erasure that last wrote it: a signup that read it writes only while it is unchanged.
    #[serde(rename = "erasedAt")]
    pub erased_at: DateTime<Utc>,
}

impl TombstoneItem {
    pub fn new(
        contact: &ContactDigest,
        gifts: PriorGifts,
        erased_at: DateTime<Utc>,
    ) -> TombstoneItem {
        TombstoneItem {
            key: ItemKey::new(keys::gifted_pk(contact), keys::GIFTED_SK, "gifted"),
            gifts,
            erased_at,
        }
    }
}

/// What signup reads before it writes, in one BatchGetItem: the tombstones of the signup's
/// contacts and the owner of the referral code it names.
#[derive(Debug, Clone, Default)]
pub struct SignupLookup {
    /// Each contact's tombstone as read; None for a contact no erased member had verified.
    pub tombstones: Vec<(ContactDigest, Option<TombstoneItem>)>,
    pub referrer: Option<String>,
}

impl SignupLookup {
    /// What erased memberships of these contacts received, all together.
    pub fn prior_gifts(&self) -> PriorGifts {
        self.tombstones
            .iter()
            .filter_map(|(_, t)| t.as_ref())
            .fold(PriorGifts::default(), |acc, t| acc.merge(t.gifts))
    }
}

/// Everything signup writes, in one transaction.
pub struct NewMemberWrite<'a> {
    pub member: &'a Member,
    /// The welcome points and coupon; None when an erased membership of a contact had them.
    pub welcome: Option<(LedgerEntry, Coupon)>,
    pub receipt: Receipt,
    /// The referral code used at signup: it must still exist when the transaction commits.
    pub referral_code_used: Option<&'a str>,
    /// The digests of the member's verified contacts: each reserves its uniqueness item.
    /// Unverified contacts reserve nothing (anyone may type any address).
    pub reserve_email: Option<ContactDigest>,
    pub reserve_phone: Option<ContactDigest>,
    /// The tombstones read by `signup_lookup`: the write lands only if each is still as read,
    /// so an erasure that commits in between cannot let a second welcome gift through.
    pub tombstones_read: &'a [(ContactDigest, Option<TombstoneItem>)],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupConflict {
    AlreadyMember,
    EmailTaken,
    PhoneTaken,
    /// The generated referral code collided: generate another and try again.
    ReferralCodeTaken,
    UnknownReferralCode,
    /// A tombstone changed since it was read (an erasure of the same contact committed):
    /// read again and decide the gifts anew.
    TombstoneChanged,
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

    /// The member that holds a verified contact (its uniqueness item, `EMAIL#`/`PHONE#<hmac>`).
    /// Unverified contacts reserve nothing, so they find nobody here.
    pub async fn member_by_contact(
        &self,
        contact: &ContactDigest,
        kind: crate::contact::ContactKind,
    ) -> Result<Option<String>, StoreError> {
        let pk = match kind {
            crate::contact::ContactKind::Email => keys::email_pk(contact),
            crate::contact::ContactKind::Phone => keys::phone_pk(contact),
        };
        Ok(self.get::<UniqueItem>(&pk, UNIQUE_SK).await?.map(|u| u.member_id))
    }

    /// The member a referral code belongs to.
    pub async fn referrer(&self, code: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get::<UniqueItem>(&keys::refcode_pk(code), UNIQUE_SK).await?.map(|u| u.member_id))
    }

    pub async fn receipt(
        &self,
        member_id: &str,
        scope: &str,
        key: &str,
    ) -> Result<Option<Receipt>, StoreError> {
        self.get(&member_pk(member_id), &keys::receipt_sk(scope, key)).await
    }

    /// Signup's one read: the tombstones of `contacts` (every contact the signup names,
    /// verified or not) and the referral code's owner, in one strongly consistent BatchGetItem.
    pub async fn signup_lookup(
        &self,
        contacts: &[ContactDigest],
        referral_code: Option<&str>,
    ) -> Result<SignupLookup, StoreError> {
        let mut wanted: Vec<Item> =
            contacts.iter().map(|c| key(&keys::gifted_pk(c), keys::GIFTED_SK)).collect();
        if let Some(code) = referral_code {
            wanted.push(key(&keys::refcode_pk(code), UNIQUE_SK));
        }
        let mut found: HashMap<String, Item> = HashMap::new();
        for item in self.batch_get(wanted).await? {
            if let Some(pk) = item.get("PK").and_then(|v| v.as_s().ok()) {
                found.insert(pk.clone(), item);
            }
        }
        let mut tombstones = Vec::with_capacity(contacts.len());
        for c in contacts {
            let t =
                found.remove(&keys::gifted_pk(c)).map(from_item::<TombstoneItem>).transpose()?;
            tombstones.push((c.clone(), t));
        }
        let referrer = match referral_code {
            Some(code) => found
                .remove(&keys::refcode_pk(code))
                .map(from_item::<UniqueItem>)
                .transpose()?
                .map(|u| u.member_id),
            None => None,
        };
        Ok(SignupLookup { tombstones, referrer })
    }

    /// Creates the member with its uniqueness items, welcome points, welcome coupon and
    /// receipt in one transaction. Each uniqueness item's condition makes a taken email,
    /// phone or code fail the whole write, and each tombstone read is checked unchanged: no
    /// read-then-write race.
    pub async fn create_member(
        &self,
        w: NewMemberWrite<'_>,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Result<(), SignupConflict>, StoreError> {
        let m = w.member;
        let id = m.member_id.as_str();
        let unique = |pk: String| UniqueItem {
            key: ItemKey::new(pk, UNIQUE_SK, "unique"),
            member_id: id.into(),
        };
        let mut items: Vec<(TransactWriteItem, SignupConflict)> = vec![
            (
                self.put(&MemberItem::new(m, rules, now), Some(Cond::absent()))?,
                SignupConflict::AlreadyMember,
            ),
            (
                self.put(&unique(keys::refcode_pk(&m.referral_code)), Some(Cond::absent()))?,
                SignupConflict::ReferralCodeTaken,
            ),
            (self.put(&w.receipt, None)?, SignupConflict::AlreadyMember),
        ];
        if let Some((welcome, coupon)) = w.welcome {
            items.push((
                self.put(&LedgerItem::new(id, welcome), Some(Cond::absent()))?,
                SignupConflict::AlreadyMember,
            ));
            // The welcome coupon's grant slot, as every coupon has (store::issue).
            items.push((
                self.put(&super::coupon::GrantItem::of(&coupon, None), Some(Cond::absent()))?,
                SignupConflict::AlreadyMember,
            ));
            items.push((
                self.put(&CouponItem::new(coupon), Some(Cond::absent()))?,
                SignupConflict::AlreadyMember,
            ));
        }
        if let Some(e) = &w.reserve_email {
            items.push((
                self.put(&unique(keys::email_pk(e)), Some(Cond::absent()))?,
                SignupConflict::EmailTaken,
            ));
        }
        if let Some(p) = &w.reserve_phone {
            items.push((
                self.put(&unique(keys::phone_pk(p)), Some(Cond::absent()))?,
                SignupConflict::PhoneTaken,
            ));
        }
        if let Some(code) = w.referral_code_used {
            items.push((
                self.check(&keys::refcode_pk(code), UNIQUE_SK, Cond::present())?,
                SignupConflict::UnknownReferralCode,
            ));
        }
        for (contact, read) in w.tombstones_read {
            // Absent stays absent; present stays the erasure that was read.
            let unchanged = match read {
                None => Cond::absent(),
                Some(t) => Cond::new("#at = :at")
                    .name("#at", "erasedAt")
                    .value(":at", to_attribute(&t.erased_at)?),
            };
            items.push((
                self.check(&keys::gifted_pk(contact), keys::GIFTED_SK, unchanged)?,
                SignupConflict::TombstoneChanged,
            ));
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
    /// signup receipt is deleted, ledger, coupons and points (a debt included) stay. Each
    /// verified contact's uniqueness item goes and a tombstone takes its place, recording what
    /// memberships of that contact received (`Member::gifts_received`), so that a new account
    /// with the same contact gets no second welcome gift, referral link or birthday coupon of
    /// the year. `birthday_coupon_code` is the code this member's coupon of this year's
    /// birthday grant would have: read with the member (one BatchGetItem), it says whether the
    /// gift of this year was given.
    pub async fn erase_member(
        &self,
        id: &str,
        contacts: &ContactKey,
        birthday_coupon_code: &str,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let year = calendar::program_date(rules.time_zone, now).year();
        self.change_member(async || {
            let mut m = None;
            let mut birthday_coupon = false;
            for item in self
                .batch_get(vec![
                    key(&member_pk(id), PROFILE_SK),
                    key(&member_pk(id), &keys::coupon_sk(birthday_coupon_code)),
                ])
                .await?
            {
                match item.get("entity").and_then(|e| e.as_s().ok()).map(String::as_str) {
                    Some("member") => m = Some(from_item::<MemberItem>(item)?.member),
                    Some("coupon") => {
                        birthday_coupon = from_item::<CouponItem>(item)?.coupon.grant
                            == crate::birthday::grant(year)
                    }
                    _ => {}
                }
            }
            let Some(mut m) = m else { return Ok(Attempt::Answer(false)) };
            if m.is_erased() {
                return Ok(Attempt::Answer(true));
            }
            let gifts = m.gifts_received(birthday_coupon.then_some(year));
            let verified_email =
                m.email.as_deref().filter(|_| m.email_verified).map(|e| contacts.email(e));
            let verified_phone =
                m.phone.as_deref().filter(|_| m.phone_verified).map(|p| contacts.phone(p));
            let version = m.version;
            m.erase(now);
            m.version += 1;
            let mine = || {
                Cond::new("attribute_not_exists(PK) OR memberId = :m")
                    .value(":m", AttributeValue::S(id.into()))
            };
            let mut writes = vec![
                self.put(&MemberItem::new(&m, rules, now), Some(Cond::version(version)))?,
                self.delete(&member_pk(id), &keys::receipt_sk("signup", "-"), None)?,
            ];
            if let Some(e) = &verified_email {
                writes.push(self.delete(&keys::email_pk(e), UNIQUE_SK, Some(mine()))?);
                writes.push(self.put(&TombstoneItem::new(e, gifts, now), None)?);
            }
            if let Some(p) = &verified_phone {
                writes.push(self.delete(&keys::phone_pk(p), UNIQUE_SK, Some(mine()))?);
                writes.push(self.put(&TombstoneItem::new(p, gifts, now), None)?);
            }
            Ok(Attempt::Commit(writes, true))
        })
        .await
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
