//! Signup: the transaction that reserves a member's contacts and referral code (uniqueness
//! items), and the tombstones erasure leaves (`erasure.rs`) that signup reads.

use super::coupon::CouponItem;
use super::keys::ItemKey;
use super::keys::{self, UNIQUE_SK};
use super::ledger::LedgerItem;
use super::member::MemberItem;
use super::receipt::Receipt;
use super::{from_item, key, to_attribute, Cond, Item, Store, StoreError, TxFailure};
use crate::contact::{ContactDigest, PriorGifts};
use crate::coupon::Coupon;
use crate::ledger::LedgerEntry;
use crate::member::Member;
use crate::rules::Rules;
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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
}
