//! Checkout: the order system asks what an order costs this member with some coupons and
//! points, the engine answers a binding quote and holds the coupons and points for that
//! order; at payment the order system confirms (the holds become a redemption and the
//! purchase is recorded), or cancels. Pure rules over the member, the coupons as read and
//! the clock; `purchase-points` persists what they decide.
//!
//! Holds live on the member record, so every check ("is this coupon or are these points held
//! by another order?") is a pure function of one read, and every change is guarded by the
//! member's version. A hold past its `until` holds nothing: it needs no call to expire.

use crate::campaign::MultiplierWindow;
use crate::coupon::{self, Coupon, Offer};
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::{Hold, Member};
use crate::money::{Fen, Points};
use crate::points::{self, Channel, OrderRecord, PurchaseRequest, Purchased};
use crate::rules::{Rules, Step};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

mod request;
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

fn step_down(points: i64, step: i64) -> i64 {
    points.max(0) / step * step
}

/// What a checkout asks to pay with besides money: coupons (the member's, as read, in the
/// order asked), points and rebate balance (fen).
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub coupons: &'a [Coupon],
    pub points: i64,
    pub rebate: Fen,
}

/// The quote for an order of `amount` paid partly with what is `asked`, for order `order_id`
/// (whose own hold, if any, is being replaced).
pub fn quote(
    rules: &Rules,
    member: &Member,
    order_id: Option<&str>,
    amount: Fen,
    asked: Asked,
    now: DateTime<Utc>,
) -> Result<Quote, CheckoutError> {
    let (coupons, points_asked) = (asked.coupons, asked.points);
    let c = &rules.checkout;
    let step = rules.points.redemption_step.max(1);
    if points_asked < 0 || points_asked % step != 0 {
        return Err(CheckoutError::InvalidPoints(step));
    }
    if asked.rebate.0 < 0 {
        return Err(CheckoutError::InvalidRebate);
    }
    if coupons.len() > c.max_coupons_per_order as usize {
        return Err(CheckoutError::TooManyCoupons(c.max_coupons_per_order));
    }
    if coupons.len() > 1 && !coupons.iter().all(|c| c.stackable) {
        return Err(CheckoutError::NotStackable);
    }
    for coupon in coupons {
        if member
            .live_holds(now)
            .any(|h| Some(h.order_id.as_str()) != order_id && h.coupons.contains(&coupon.code))
        {
            return Err(CheckoutError::CouponOnHold(coupon.code.clone()));
        }
    }
    let available = member.available_points(now, order_id);
    let mut q = Quote {
        amount,
        member_discount: Fen::ZERO,
        coupons: Vec::new(),
        coupon_discount: Fen::ZERO,
        points_used: 0,
        points_discount: Fen::ZERO,
        rebate_used: Fen::ZERO,
        payable: amount,
        free_shipping: false,
        max_points: 0,
        max_rebate: Fen::ZERO,
    };
    let mut left = amount;
    for s in &c.steps() {
        match s {
            Step::MemberDiscount => {
                let pct = rules.tier(member.tier).discount_percent as i128;
                q.member_discount = Fen((left.0 as i128 * pct / 100) as i64);
                left -= q.member_discount;
            }
            Step::Coupons => {
                // Minimum spend is checked against what enters this step; each coupon then
                // takes its discount off what the coupons before it left.
                let base = left;
                for coupon in coupons {
                    coupon::check_usable(coupon, member.tier, base, now)
                        .map_err(|why| CheckoutError::Coupon { code: coupon.code.clone(), why })?;
                    let discount = coupon.offer.discount(left);
                    left -= discount;
                    q.coupon_discount += discount;
                    let free_shipping = matches!(coupon.offer, Offer::FreeShipping { .. });
                    q.free_shipping |= free_shipping;
                    q.coupons.push(AppliedCoupon {
                        code: coupon.code.clone(),
                        title: coupon.title.clone(),
                        discount,
                        free_shipping,
                    });
                }
            }
            Step::Points => {
                let cap_fen = left.0 as i128 * c.max_points_percent as i128 / 100;
                let cap = step_down(
                    (cap_fen * rules.points.redemption_points_per_cny as i128 / 100) as i64,
                    step,
                );
                q.max_points = cap.min(step_down(available, step));
                if points_asked > cap {
                    return Err(CheckoutError::PointsOverCap { max: cap, asked: points_asked });
                }
                if points_asked > available {
                    return Err(CheckoutError::InsufficientPoints {
                        available,
                        asked: points_asked,
                    });
                }
                q.points_used = points_asked;
                q.points_discount = points::redemption_value(rules, points_asked);
                left -= q.points_discount;
            }
            Step::Rebate => {
                let pct = rules.rebates.max_checkout_percent as i128;
                let cap = Fen((left.0.max(0) as i128 * pct / 100) as i64);
                let available = member.available_rebate(now, order_id);
                q.max_rebate = cap.min(available);
                if asked.rebate > cap {
                    return Err(CheckoutError::RebateOverCap { max: cap, asked: asked.rebate });
                }
                if asked.rebate > available {
                    return Err(CheckoutError::InsufficientRebate {
                        available,
                        asked: asked.rebate,
                    });
                }
                q.rebate_used = asked.rebate;
                left -= asked.rebate;
            }
        }
    }
    q.payable = left;
    Ok(q)
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

#[cfg(test)]
mod tests;
