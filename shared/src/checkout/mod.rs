//! Checkout: the order system asks what an order costs this member with some coupons and
//! points, the engine answers a binding quote and holds the coupons and points for that
//! order; at payment the order system confirms (the holds become a redemption and the
//! purchase is recorded), or cancels. Pure rules over the member, the coupons as read and
//! the clock; `purchase-points` persists what they decide.
//!
//! Holds live on the member record, so every check ("is this coupon or are these points held
//! by another order?") is a pure function of one read, and every change is guarded by the
//! member's version. A hold past its `until` holds nothing: it needs no call to expire.

use crate::member::{Hold, Member};
use crate::money::Fen;
use crate::rules::Rules;
use chrono::{DateTime, Duration, Utc};

mod confirm;
mod quote;
mod request;
pub use confirm::{confirm, Confirmed, Quoted};
pub use quote::{quote, Asked};
pub use request::*;

impl Member {
    /// The holds that still hold something at `now`.
    pub fn live_holds(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Hold> {
        self.holds.iter().filter(move |h| h.is_live(now))
    }

    /// What open checkouts hold (`amount` of each hold), except order `except`'s own hold.
    fn held(&self, now: DateTime<Utc>, except: Option<&str>, amount: fn(&Hold) -> i64) -> i64 {
        self.live_holds(now).filter(|h| Some(h.order_id.as_str()) != except).map(amount).sum()
    }

    /// Points held by open checkouts, except order `except`'s own hold.
    pub fn points_on_hold(&self, now: DateTime<Utc>, except: Option<&str>) -> i64 {
        self.held(now, except, |h| h.points)
    }

    /// Points the member may spend now: the balance less what open checkouts hold.
    pub fn available_points(&self, now: DateTime<Utc>, except: Option<&str>) -> i64 {
        (self.wallet.balance.0 - self.points_on_hold(now, except)).max(0)
    }

    /// Rebate balance the member may spend now: the balance less what open checkouts hold.
    pub fn available_rebate(&self, now: DateTime<Utc>, except: Option<&str>) -> Fen {
        Fen((self.wallet.rebate.0 - self.held(now, except, |h| h.rebate)).max(0))
    }
}

/// Holds the quote's coupons and points for `order_id` until the rules' hold time has passed,
/// replacing the order's earlier hold; dead holds are dropped. Answers the hold's end.
pub fn hold(
    member: &mut Member,
    rules: &Rules,
    order_id: &str,
    q: &Quote,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, CheckoutError> {
    member.holds.retain(|h| h.is_live(now) && h.order_id != order_id);
    let max = rules.checkout.max_open_checkouts;
    if member.holds.len() >= max as usize {
        return Err(CheckoutError::TooManyOpenCheckouts(max));
    }
    let until = now + Duration::minutes(rules.checkout.hold_minutes as i64);
    member.holds.push(Hold {
        order_id: order_id.to_string(),
        points: q.points_used,
        rebate: q.rebate_used.0,
        coupons: q.coupons.iter().map(|c| c.code.clone()).collect(),
        until,
    });
    Ok(until)
}

/// Releases order `order_id`'s hold (and drops dead ones).
pub fn release(member: &mut Member, order_id: &str, now: DateTime<Utc>) {
    member.holds.retain(|h| h.is_live(now) && h.order_id != order_id);
}

#[cfg(test)]
mod tests;
