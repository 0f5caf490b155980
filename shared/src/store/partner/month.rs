//! A partner's months: attributed orders' commissions, refunds' reversals and adjustments,
//! and the statement whose `reversals` counter keeps a paid month true.

use super::{n, s};
use crate::affiliate::{Figures, OrderLine};
use crate::money::Fen;
use crate::points::Channel;
use crate::store::keys::{self, ItemKey};
use crate::store::{entity, from_item, to_attribute, Cond, Store, StoreError};
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

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

impl Store {
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
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
            .expression_attribute_values(":pk", s(&keys::partner_pk(partner_id)))
            .expression_attribute_values(":p", s(&keys::partner_month_prefix(month)))
            .consistent_read(true);
        let mut out = Month::default();
        for item in self.query_items(query).await? {
            match entity(&item) {
                Some("commission") => out.orders.push(from_item(item)?),
                Some("commission_adjustment") => out.adjustments.push(from_item(item)?),
                Some("partner_statement") => out.statement = Some(from_item(item)?),
                _ => {}
            }
        }
        Ok(out)
    }
}
