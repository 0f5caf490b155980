//! Affiliate attribution of orders: what the order routes add to their one read
//! and their one transaction when an order comes with a partner's tracking code.
//!
//! - A purchase (or a checkout's quote) reads the code's item in its BatchGetItem; the code
//!   item carries the partner's terms, so no second read is needed.
//! - A purchase (or a confirm) that earns a commission writes the commission item in the
//!   partner's partition, new, in its own transaction, and keeps the attribution on the
//!   order item; an unknown code, an inactive partner or the partner's own member earns
//!   nothing, and the order is recorded all the same (the answer says why).
//! - A refund of such an order reverses the cumulative share of the commission: on the
//!   commission item while its month is not paid, else as an adjustment of the current month.
//!   It cannot read the month's statement item in its one read (it learns the partner and
//!   month only from the order it reads), so it writes as if the month were open, on
//!   condition that it is not paid; when that condition fails it knows the month is paid and
//!   books the reversal as an adjustment in its next attempt.

use crate::App;
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, NaiveDate, Utc};
use loyalty::affiliate::{self, AffiliateView, Attribution, Referral};
use loyalty::calendar::program_date;
use loyalty::points::Channel;
use loyalty::store::keys::{self, ItemKey};
use loyalty::store::partner::{
    self, AdjustmentItem, CommissionItem, NewCommission, ReversalTotals,
};
use loyalty::store::points::{OrderItem, PointsRead};
use loyalty::{ApiError, Fen};
use serde::Serialize;

/// The key of the request's tracking code for the order's one read, after checking its form
/// (422 `invalid_tracking_code` before anything is read).
pub(crate) fn code_keys(code: &Option<String>) -> Result<Vec<(String, String)>, ApiError> {
    match code {
        None => Ok(Vec::new()),
        Some(c) if affiliate::looks_like_code(c) => Ok(vec![partner::code_key(c)]),
        Some(_) => Err(ApiError::unprocessable(
            "invalid_tracking_code",
            "trackingCode must be 6 to 16 characters of Crockford base32 (0-9, A-Z without I, L, O, U)",
        )),
    }
}

/// What the request's code resolved to in what was read.
pub(crate) fn referral(
    read: &mut PointsRead,
    code: &Option<String>,
) -> Result<Option<Referral>, ApiError> {
    Ok(code.as_deref().map(|c| partner::referral(read, c)).transpose()?)
}

/// What an order with a code adds: the answer's `affiliate`, the commission item to write and
/// the attribution the order item keeps.
#[derive(Default)]
pub(crate) struct Credit {
    pub view: Option<AffiliateView>,
    pub write: Option<TransactWriteItem>,
    pub attribution: Option<Attribution>,
}

/// The order and what it paid, as the purchase or the confirm recorded it.
pub(crate) struct Order<'a> {
    pub member_id: &'a str,
    pub order_id: &'a str,
    pub channel: Channel,
    pub paid: Fen,
    pub release_on: NaiveDate,
}

/// The commission an order earns through `referral`, booked in the month it is recorded in
/// (so a paid month never gains an order).
pub(crate) fn credit(
    app: &App,
    referral: Option<&Referral>,
    order: Order<'_>,
    now: DateTime<Utc>,
) -> Result<Credit, ApiError> {
    let Some(referral) = referral else { return Ok(Credit::default()) };
    let decided = affiliate::decide(referral, order.member_id, order.channel, order.paid);
    let view = Some(AffiliateView::of(referral, &decided, order.release_on));
    let Ok(accrual) = decided else {
        return Ok(Credit { view, ..Credit::default() });
    };
    let month = affiliate::month_of(program_date(app.deps.rules.time_zone, now));
    let item = CommissionItem::new(NewCommission {
        partner_id: &accrual.partner_id,
        member_id: order.member_id,
        order_id: order.order_id,
        month: &month,
        tracking_code: &referral.code,
        channel: order.channel,
        paid: order.paid,
        rate_basis_points: accrual.rate_basis_points,
        commission: accrual.commission,
        release_on: order.release_on,
        at: now,
    });
    Ok(Credit {
        view,
        write: Some(app.deps.store.commission_write(&item)?),
        attribution: Some(Attribution {
            partner_id: accrual.partner_id,
            month,
            commission: accrual.commission,
            reversed: Fen::ZERO,
        }),
    })
}

/// The refund answer's `affiliate`: what it took back and which month bears it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReversedView {
    partner_id: String,
    commission_reversed: Fen,
    /// The month the reversal is booked in: the order's, or the refund's own when the
    /// order's month was already paid.
    month: String,
    adjustment: bool,
}

/// A refund's reversal: its writes, which of them is the month's counter (whose failed
/// condition means the month is paid), and the answer's part.
pub(crate) struct Reversal {
    pub writes: Vec<TransactWriteItem>,
    pub counter: usize,
    pub view: ReversedView,
}

/// Reverses the refunded share of the order's commission (after the refund was applied to
/// `order`): on its month while that is not known to be paid, else as an adjustment now.
pub(crate) fn reverse(
    app: &App,
    order: &mut OrderItem,
    refund_id: &str,
    month_paid: bool,
    now: DateTime<Utc>,
) -> Result<Option<Reversal>, ApiError> {
    let (paid, refunded) = (order.order.paid, order.order.refunded);
    let Some(attr) = order.affiliate.as_mut() else { return Ok(None) };
    let total = affiliate::reversed_total(attr.commission, paid, refunded);
    let delta = total - attr.reversed;
    attr.reversed = total;
    let store = &app.deps.store;
    let (member_id, order_id) = (order.member_id.as_str(), order.order.order_id.as_str());
    if !month_paid {
        let sk = keys::commission_sk(&attr.month, member_id, order_id);
        let writes = store.reversal_writes(&ReversalTotals {
            partner_id: &attr.partner_id,
            commission_sk: &sk,
            month: &attr.month,
            refunded,
            reversed: total,
            refund_id,
            at: now,
        })?;
        let view = ReversedView {
            partner_id: attr.partner_id.clone(),
            commission_reversed: delta,
            month: attr.month.clone(),
            adjustment: false,
        };
        return Ok(Some(Reversal { counter: writes.len() - 1, writes, view }));
    }
    if delta == Fen::ZERO {
        return Ok(None);
    }
    let month = affiliate::month_of(program_date(app.deps.rules.time_zone, now));
    let item = AdjustmentItem {
        key: ItemKey::new(
            keys::partner_pk(&attr.partner_id),
            keys::commission_adjustment_sk(&month, member_id, refund_id),
            "commission_adjustment",
        ),
        partner_id: attr.partner_id.clone(),
        member_id: member_id.into(),
        order_id: order_id.into(),
        order_month: attr.month.clone(),
        month: month.clone(),
        refund_id: refund_id.into(),
        amount: delta,
        at: now,
    };
    let writes = store.adjustment_writes(&item)?;
    let view = ReversedView {
        partner_id: attr.partner_id.clone(),
        commission_reversed: delta,
        month,
        adjustment: true,
    };
    Ok(Some(Reversal { counter: writes.len() - 1, writes, view }))
}
