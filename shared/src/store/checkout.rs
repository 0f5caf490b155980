//! Checkouts in the member's partition (`CHECKOUT#<orderId>`), and the coupon writes a
//! confirm and a full refund add to the member's transaction.

use super::keys::ItemKey;
use super::keys::{self, member_pk};
use super::{to_attribute, to_item, Cond, Store, StoreError};
use crate::checkout::Quoted;
use crate::coupon::Redemption;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckoutState {
    Held,
    Confirmed,
    Cancelled,
}

impl CheckoutState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutState::Held => "held",
            CheckoutState::Confirmed => "confirmed",
            CheckoutState::Cancelled => "cancelled",
        }
    }
}

/// The first answer to a confirm or cancel, replayed to a retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckoutItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(rename = "memberId")]
    pub member_id: String,
    pub state: CheckoutState,
    #[serde(flatten)]
    pub quoted: Quoted,
    #[serde(rename = "holdUntil")]
    pub hold_until: DateTime<Utc>,
    /// The quote request's fingerprint and its answer.
    pub fingerprint: String,
    pub answer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// When it was confirmed or cancelled (the KPIs count a confirm on that day).
    #[serde(rename = "finishedAt", default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Unconfirmed checkouts vanish a while after their hold (TTL); confirmed ones stay.
    #[serde(rename = "expiresAt", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The quote's tracking code as resolved then (the confirm reads
    /// the checkout, not the code, so the partner's terms at the quote apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affiliate: Option<crate::affiliate::Referral>,
}

/// How long an unconfirmed checkout is kept after its hold ended.
const KEEP_UNCONFIRMED_DAYS: i64 = 30;

impl CheckoutItem {
    pub fn new(
        member_id: &str,
        quoted: Quoted,
        hold_until: DateTime<Utc>,
        fingerprint: String,
        answer: String,
    ) -> CheckoutItem {
        CheckoutItem {
            key: ItemKey::new(
                member_pk(member_id),
                keys::checkout_sk(&quoted.order_id),
                "checkout",
            ),
            member_id: member_id.into(),
            state: CheckoutState::Held,
            quoted,
            hold_until,
            fingerprint,
            answer,
            outcome: None,
            finished_at: None,
            expires_at: Some(
                (hold_until + chrono::Duration::days(KEEP_UNCONFIRMED_DAYS)).timestamp(),
            ),
            affiliate: None,
        }
    }

    /// The checkout moved to `state` with its answer.
    pub fn finish(
        mut self,
        state: CheckoutState,
        outcome: Outcome,
        at: DateTime<Utc>,
    ) -> CheckoutItem {
        self.state = state;
        self.outcome = Some(outcome);
        self.finished_at = Some(at);
        if state == CheckoutState::Confirmed {
            self.expires_at = None;
        }
        self
    }
}

fn state_is(state: CheckoutState) -> Cond {
    Cond::new("#state = :state")
        .name("#state", "state")
        .value(":state", AttributeValue::S(state.as_str().into()))
}

impl Store {
    /// A new quote: it may replace a held or cancelled checkout of the order, never a confirmed one.
    pub fn put_quote(&self, item: &CheckoutItem) -> Result<TransactWriteItem, StoreError> {
        let cond = Cond::new("attribute_not_exists(PK) OR #state <> :confirmed")
            .name("#state", "state")
            .value(":confirmed", AttributeValue::S("confirmed".into()));
        self.put(item, Some(cond))
    }

    /// A held checkout confirmed or cancelled: only from `held`.
    pub fn put_finished_checkout(
        &self,
        item: &CheckoutItem,
    ) -> Result<TransactWriteItem, StoreError> {
        self.put(item, Some(state_is(CheckoutState::Held)))
    }

    /// Marks a coupon redeemed by an order, only if it is still active and unused.
    pub fn redeem_coupon_write(
        &self,
        member_id: &str,
        code: &str,
        redemption: &Redemption,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Cond::new("SET #status = :redeemed, #redemption = :r")
            .name("#status", "status")
            .name("#redemption", "redemption")
            .value(":redeemed", AttributeValue::S("redeemed".into()))
            .value(":r", AttributeValue::M(to_item(redemption)?));
        let cond = Cond::new(
            "attribute_exists(PK) AND #status = :active AND attribute_not_exists(#redemption)",
        )
        .value(":active", AttributeValue::S("active".into()));
        self.update(&member_pk(member_id), &keys::coupon_sk(code), update, cond)
    }

    /// Gives a coupon back to the member (a full refund), only if `order_id` redeemed it.
    pub fn return_coupon_write(
        &self,
        member_id: &str,
        code: &str,
        order_id: &str,
        at: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Cond::new("SET #status = :active, #returned = :at REMOVE #redemption")
            .name("#status", "status")
            .name("#redemption", "redemption")
            .name("#returned", "returnedAt")
            .value(":active", AttributeValue::S("active".into()))
            .value(":at", to_attribute(&at)?);
        let cond = Cond::new("#redemption.#order = :o")
            .name("#order", "orderId")
            .value(":o", AttributeValue::S(order_id.into()));
        self.update(&member_pk(member_id), &keys::coupon_sk(code), update, cond)
    }
}
