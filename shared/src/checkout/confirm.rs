//! The confirm at payment: the holds become a redemption and the purchase is recorded.

use super::{quote, release, Asked, CheckoutError, Quote};
use crate::campaign::MultiplierWindow;
use crate::coupon::Coupon;
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::Member;
use crate::money::{Fen, Points};
use crate::points::{self, Channel, OrderRecord, PurchaseRequest, Purchased};
use crate::rules::Rules;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A checkout as quoted: what the confirm needs to finish the order without reading the
/// coupons again (their terms do not change once issued; whether one is still unused is
/// the confirm's write condition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quoted {
    pub order_id: String,
    pub amount: Fen,
    pub currency: String,
    pub channel: Channel,
    pub coupons: Vec<Coupon>,
    pub points: i64,
    /// The rebate balance asked (fen); absent in checkouts quoted before rebates existed.
    #[serde(default, skip_serializing_if = "Fen::is_zero")]
    pub rebate: Fen,
    pub quote: Quote,
}

impl Quoted {
    pub fn asked(&self) -> Asked<'_> {
        Asked { coupons: &self.coupons, points: self.points, rebate: self.rebate }
    }
}

/// What a confirm did: the ledger entries (points spent, points earned) and the purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub entries: Vec<LedgerEntry>,
    pub purchased: Purchased,
    /// The order as recorded (its fingerprint and answer are the caller's to fill).
    pub order: OrderRecord,
}

/// Makes the holds final and records the purchase on what is paid. A live hold keeps its
/// quote; an expired one is priced again and must come out the same (else `QuoteChanged`,
/// or the reason a coupon or the points can no longer be used).
pub fn confirm(
    member: &mut Member,
    rules: &Rules,
    quoted: &Quoted,
    windows: &[MultiplierWindow],
    occurred_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Confirmed, CheckoutError> {
    let order_id = quoted.order_id.as_str();
    let live = member.live_holds(now).any(|h| h.order_id == order_id);
    if !live {
        let again = quote(rules, member, Some(order_id), quoted.amount, quoted.asked(), now)?;
        if !again.same_terms(&quoted.quote) {
            return Err(CheckoutError::QuoteChanged);
        }
    }
    release(member, order_id, now);
    let q = &quoted.quote;
    let mut entries = Vec::new();
    let spent_from: Option<NaiveDate> = member.wallet.lots.first().map(|l| l.earned_on);
    if q.points_used > 0 {
        // Held points can be gone by now (expired lots, a refund's clawback): say so.
        member.wallet.spend(q.points_used).map_err(|_| CheckoutError::InsufficientPoints {
            available: member.wallet.balance.0.max(0),
            asked: q.points_used,
        })?;
        entries.push(LedgerEntry {
            kind: EntryKind::Redemption,
            points: Points(-q.points_used),
            balance_after: member.wallet.balance,
            pending: Points::ZERO,
            rebate: Fen::ZERO,
            rebate_pending: Fen::ZERO,
            reason: format!("{} off order {order_id}", q.points_discount),
            reference: Some(order_id.to_string()),
            at: now,
        });
    }
    if q.rebate_used.0 > 0 {
        // Like held points, a held rebate can be gone by now (a refund's reversal).
        if member.wallet.rebate < q.rebate_used {
            return Err(CheckoutError::InsufficientRebate {
                available: Fen(member.wallet.rebate.0.max(0)),
                asked: q.rebate_used,
            });
        }
        member.wallet.rebate -= q.rebate_used;
        entries.push(LedgerEntry {
            kind: EntryKind::Rebate,
            points: Points::ZERO,
            balance_after: member.wallet.balance,
            pending: Points::ZERO,
            rebate: -q.rebate_used,
            rebate_pending: Fen::ZERO,
            reason: format!("rebate balance paid {} of order {order_id}", q.rebate_used),
            reference: Some(order_id.to_string()),
            at: now,
        });
    }
    let purchase = PurchaseRequest {
        order_id: order_id.to_string(),
        amount: q.payable,
        currency: quoted.currency.clone(),
        channel: quoted.channel,
        occurred_at,
        tracking_code: None,
    };
    let purchased = points::apply_purchase(member, rules, &purchase, windows, now);
    entries.push(purchased.entry.clone());
    let order = OrderRecord {
        order_id: order_id.to_string(),
        paid: q.payable,
        earned: purchased.points,
        day: crate::calendar::program_date(rules.time_zone, occurred_at)
            .min(crate::calendar::program_date(rules.time_zone, now)),
        occurred_at,
        refunded: Fen::ZERO,
        clawed_back: 0,
        refunds: Vec::new(),
        fingerprint: String::new(),
        answer: String::new(),
        points_spent: q.points_used,
        points_returned: 0,
        spent_from: spent_from.filter(|_| q.points_used > 0),
        rebate: purchased.rebate,
        rebate_reversed: Fen::ZERO,
        rebate_spent: q.rebate_used,
        rebate_returned: Fen::ZERO,
        coupons: quoted
            .coupons
            .iter()
            .map(|c| points::UsedCoupon { code: c.code.clone(), valid_until: c.valid_until })
            .collect(),
        coupons_returned: false,
        recorded_at: Some(now),
        referral_to: None,
    };
    Ok(Confirmed { entries, purchased, order })
}
