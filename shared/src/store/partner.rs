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

use super::keys::{self, ItemKey};
use super::{from_item, sdk, to_attribute, Cond, Store, StoreError};
use crate::affiliate::{Figures, OrderLine, Partner, Referral, Terms};
use crate::money::Fen;
use crate::points::Channel;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, NaiveDate, Utc};
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

/// An attributed order's commission, in its partner's partition under the month it was
/// recorded in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommissionItem {
    #[serde(flatten)]
    pub key: ItemKey,
    pub partner_id: String,
    pub member_id: String,
    pub order_id: String,
    pub month: String,
    pub tracking_code: String,
    pub channel: Channel,
    pub paid: Fen,
    #[serde(default)]
    pub refunded: Fen,
    pub rate_basis_points: u32,
    pub commission: Fen,
    #[serde(default)]
    pub reversed: Fen,
    /// The order's return-window end: the commission is pending until then.
    pub release_on: NaiveDate,
    pub at: DateTime<Utc>,
    /// The refund that last reversed some of it, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refund_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reversed_at: Option<DateTime<Utc>>,
}

/// What an order's commission is made of (the item's key follows from it).
pub struct NewCommission<'a> {
    pub partner_id: &'a str,
    pub member_id: &'a str,
    pub order_id: &'a str,
    pub month: &'a str,
    pub tracking_code: &'a str,
    pub channel: Channel,
    pub paid: Fen,
    pub rate_basis_points: u32,
    pub commission: Fen,
    pub release_on: NaiveDate,
    pub at: DateTime<Utc>,
}

impl CommissionItem {
    pub fn new(c: NewCommission<'_>) -> CommissionItem {
        CommissionItem {
            key: ItemKey::new(
                keys::partner_pk(c.partner_id),
                keys::commission_sk(c.month, c.member_id, c.order_id),
                "commission",
            ),
            partner_id: c.partner_id.into(),
            member_id: c.member_id.into(),
            order_id: c.order_id.into(),
            month: c.month.into(),
            tracking_code: c.tracking_code.into(),
            channel: c.channel,
            paid: c.paid,
            refunded: Fen::ZERO,
            rate_basis_points: c.rate_basis_points,
            commission: c.commission,
            reversed: Fen::ZERO,
            release_on: c.release_on,
            at: c.at,
            last_refund_id: None,
            last_reversed_at: None,
        }
    }

    pub fn line(&self) -> OrderLine {
        OrderLine {
            paid: self.paid,
            refunded: self.refunded,
            commission: self.commission,
            reversed: self.reversed,
            release_on: self.release_on,
        }
    }
}

/// A refund's reversal of an order whose month was already paid, charged to the month of
/// the refund (`amount` is what is taken back, positive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentItem {
    #[serde(flatten)]
    pub key: ItemKey,
    pub partner_id: String,
    pub member_id: String,
    pub order_id: String,
    pub order_month: String,
    pub month: String,
    pub refund_id: String,
    pub amount: Fen,
    pub at: DateTime<Utc>,
}

/// The month's statement item: the reversal counter, and the statement once paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementItem {
    #[serde(flatten)]
    pub key: ItemKey,
    pub partner_id: String,
    pub month: String,
    #[serde(default)]
    pub reversals: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<Figures>,
}

impl StatementItem {
    pub fn paid(
        partner_id: &str,
        month: &str,
        reversals: u64,
        figures: Figures,
        at: DateTime<Utc>,
    ) -> StatementItem {
        StatementItem {
            key: ItemKey::new(
                keys::partner_pk(partner_id),
                keys::statement_sk(month),
                "partner_statement",
            ),
            partner_id: partner_id.into(),
            month: month.into(),
            reversals,
            paid_at: Some(at),
            statement: Some(figures),
        }
    }
}

/// A commission's totals after a refund, and which refund made them when.
pub struct ReversalTotals<'a> {
    pub partner_id: &'a str,
    pub commission_sk: &'a str,
    pub month: &'a str,
    pub refunded: Fen,
    pub reversed: Fen,
    pub refund_id: &'a str,
    pub at: DateTime<Utc>,
}

/// Everything booked in one month of a partner.
#[derive(Debug, Default)]
pub struct Month {
    pub orders: Vec<CommissionItem>,
    pub adjustments: Vec<AdjustmentItem>,
    pub statement: Option<StatementItem>,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
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

    /// An order's commission, new (a retried purchase finds its order and writes nothing).
    pub fn commission_write(&self, item: &CommissionItem) -> Result<TransactWriteItem, StoreError> {
        self.put(item, Some(Cond::absent()))
    }

    /// A refund's reversal of a commission in a month not paid yet: the commission's new
    /// cumulative totals, and the month's reversal counter (on condition it is not paid).
    pub fn reversal_writes(
        &self,
        r: &ReversalTotals<'_>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let set = Cond::new(
            "SET refunded = :rf, reversed = :rv, lastRefundId = :rid, lastReversedAt = :at",
        )
        .value(":rf", to_attribute(&r.refunded)?)
        .value(":rv", to_attribute(&r.reversed)?)
        .value(":rid", s(r.refund_id))
        .value(":at", to_attribute(&r.at)?);
        Ok(vec![
            self.update(&keys::partner_pk(r.partner_id), r.commission_sk, set, Cond::present())?,
            self.statement_counter_write(r.partner_id, r.month)?,
        ])
    }

    /// One more reversal booked in `month`, on condition that the month is not paid.
    pub fn statement_counter_write(
        &self,
        partner_id: &str,
        month: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let bump = Cond::new("SET entity = :e, partnerId = :p, #month = :m ADD reversals :one")
            .name("#month", "month")
            .value(":e", s("partner_statement"))
            .value(":p", s(partner_id))
            .value(":m", s(month))
            .value(":one", n(1));
        self.update(
            &keys::partner_pk(partner_id),
            &keys::statement_sk(month),
            bump,
            Cond::new("attribute_not_exists(paidAt)"),
        )
    }

    /// A reversal charged to `item.month` (the month of the refund), with its counter.
    pub fn adjustment_writes(
        &self,
        item: &AdjustmentItem,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        Ok(vec![
            self.put(item, Some(Cond::absent()))?,
            self.statement_counter_write(&item.partner_id, &item.month)?,
        ])
    }

    /// Marks a month paid: only if it is not paid yet and no reversal was booked in it since
    /// the statement was computed (`item.reversals` is the count it was computed with).
    pub fn statement_paid_write(
        &self,
        item: &StatementItem,
    ) -> Result<TransactWriteItem, StoreError> {
        let cond = Cond::new(
            "attribute_not_exists(paidAt) AND (attribute_not_exists(reversals) OR reversals = :n)",
        )
        .value(":n", n(item.reversals));
        self.put(item, Some(cond))
    }

    /// What is booked in a partner's month: one strongly consistent Query of its prefix
    /// (every page).
    pub async fn partner_month(&self, partner_id: &str, month: &str) -> Result<Month, StoreError> {
        let mut out = Month::default();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
                .expression_attribute_values(":pk", s(&keys::partner_pk(partner_id)))
                .expression_attribute_values(":p", s(&keys::partner_month_prefix(month)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk)?;
            for item in page.items.unwrap_or_default() {
                match item.get("entity").and_then(|e| e.as_s().ok()).map(String::as_str) {
                    Some("commission") => out.orders.push(from_item(item)?),
                    Some("commission_adjustment") => out.adjustments.push(from_item(item)?),
                    Some("partner_statement") => out.statement = Some(from_item(item)?),
                    _ => {}
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
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
