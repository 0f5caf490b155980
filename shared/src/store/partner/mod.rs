//! Affiliate partners, their tracking codes, commissions and monthly statements.
//!
//! | PK | SK | item |
//! |---|---|---|
//! | `PARTNER#<id>` | `#PARTNER` | the partner: terms, status, its codes, `version` |
//! | `PCODE#<code>` | `#CODE` | a tracking code and a copy of its partner's terms |
//! | `PARTNER#<id>` | `M#<month>#O#<member>#<order>` | an attributed order's commission |
//! | `PARTNER#<id>` | `M#<month>#A#<member>#<refund>` | a refund's reversal of an order of a paid month |
//! | `PARTNER#<id>` | `M#<month>#STMT` | `reversals` (a counter) and, once paid, the statement |
//!
//! A code item copies its partner's terms (rate, channel rates, linked member, status): an
//! order reads its code in the one BatchGetItem it makes anyway, and knows what it earns
//! without a second read. Every change of the partner rewrites all its code items in the
//! same transaction (a partner has at most `affiliates.maxCodesPerPartner` codes).
//!
//! The month's statement item is what keeps a paid statement true: every reversal booked in
//! a month adds one to its `reversals` on condition that it is not paid, and marking it paid
//! is conditioned on the `reversals` the statement was computed with. A refund racing the
//! payment either lands before it (and the payment, computed without it, fails and is
//! computed again) or finds the month paid (and is charged to the current month instead).

mod month;

pub use month::{
    AdjustmentItem, CommissionItem, Month, NewCommission, ReversalTotals, StatementItem,
};

use super::keys::{self, ItemKey};
use super::{Cond, Store, StoreError};
use crate::affiliate::{Partner, Referral, Terms};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartnerItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(flatten)]
    pub partner: Partner,
    /// The request that defined it: a retry under the same Idempotency-Key is told from
    /// another definition under it.
    #[serde(rename = "requestFingerprint", default)]
    pub fingerprint: String,
}

impl PartnerItem {
    pub fn new(partner: Partner, fingerprint: String) -> PartnerItem {
        PartnerItem {
            key: ItemKey::new(keys::partner_pk(&partner.partner_id), keys::PARTNER_SK, "partner"),
            partner,
            fingerprint,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeItem {
    #[serde(flatten)]
    pub key: ItemKey,
    pub code: String,
    #[serde(flatten)]
    pub terms: Terms,
}

impl CodeItem {
    pub fn new(code: &str, terms: Terms) -> CodeItem {
        CodeItem {
            key: ItemKey::new(keys::tracking_code_pk(code), keys::TRACKING_CODE_SK, "partner_code"),
            code: code.into(),
            terms,
        }
    }
}

pub(super) fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl Store {
    pub async fn partner(&self, partner_id: &str) -> Result<Option<PartnerItem>, StoreError> {
        self.get(&keys::partner_pk(partner_id), keys::PARTNER_SK).await
    }

    /// A new partner with its first code, both new.
    pub fn new_partner_writes(
        &self,
        item: &PartnerItem,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut writes = vec![self.put(item, Some(Cond::absent()))?];
        for code in &item.partner.codes {
            writes
                .push(self.put(&CodeItem::new(code, item.partner.terms()), Some(Cond::absent()))?);
        }
        Ok(writes)
    }

    /// The partner's next version (under the version read) with every code item rewritten
    /// with its terms; `new_code` is the one code that must not exist yet.
    pub fn partner_change_writes(
        &self,
        next: &PartnerItem,
        read_version: u64,
        new_code: Option<&str>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut writes = vec![self.put(next, Some(Cond::version(read_version)))?];
        for code in &next.partner.codes {
            let cond =
                if Some(code.as_str()) == new_code { Cond::absent() } else { Cond::present() };
            writes.push(self.put(&CodeItem::new(code, next.partner.terms()), Some(cond))?);
        }
        Ok(writes)
    }
}

/// The tracking code's key, for the order's one BatchGetItem.
pub fn code_key(code: &str) -> (String, String) {
    (keys::tracking_code_pk(code), keys::TRACKING_CODE_SK.to_string())
}

/// What `code` resolved to in what the order read (its code item, or none).
pub fn referral(read: &mut super::points::PointsRead, code: &str) -> Result<Referral, StoreError> {
    let item: Option<CodeItem> = read.take_other(&code_key(code))?;
    Ok(Referral { code: code.into(), terms: item.map(|i| i.terms) })
}
