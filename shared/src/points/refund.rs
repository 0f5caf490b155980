//! Giving back: the proportional clawback of a refund and redemptions at checkout.

use crate::calendar::program_date;
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::Member;
use crate::money::{Fen, Points};
use crate::rules::Rules;
use crate::tier::{self, TierChange};
use chrono::{DateTime, Utc};

use super::earn::*;
use super::request::*;

/// The points a refund takes back. Cumulative: after all refunds so far the order has lost
/// floor(earned × refunded / paid), so partial refunds add up exactly and the total never
/// exceeds what the order earned. Answers (clawback, refunded total after).
pub fn clawback(
    earned: i64,
    paid: Fen,
    refunded_before: Fen,
    amount: Fen,
) -> Result<(i64, Fen), PointsError> {
    if amount.0 <= 0 {
        return Err(PointsError::InvalidAmount);
    }
    let after = refunded_before.0.checked_add(amount.0).filter(|a| *a <= paid.0).ok_or(
        PointsError::RefundExceedsPaid {
            paid,
            asked: Fen(refunded_before.0.saturating_add(amount.0)),
        },
    )?;
    if paid.0 <= 0 {
        return Ok((0, Fen(after)));
    }
    let clawed = |r: i64| (earned.max(0) as i128 * r as i128 / paid.0 as i128) as i64;
    Ok((clawed(after) - clawed(refunded_before.0), Fen(after)))
}

/// What a refund did: points taken back, spent points given back, coupons given back, and
/// the ledger entries (none for a part that moves no points, e.g. a few fen of a large order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Refunded {
    /// Points the refund took back: cancelled while pending, clawed back once available.
    pub clawed_back: i64,
    /// Of those, how many were still pending (cancelled, never a debt).
    pub pending_cancelled: i64,
    pub points_returned: i64,
    /// The order's rebate taken back (fen): cancelled while pending, else from the balance.
    pub rebate_reversed: Fen,
    /// Rebate balance the order spent, given back (fen).
    pub rebate_returned: Fen,
    pub coupons_returned: Vec<String>,
    pub entries: Vec<LedgerEntry>,
    /// The tier the refund re-decided (spend that reached it was refunded).
    pub tier_change: Option<TierChange>,
    /// The order is now refunded in full.
    pub full: bool,
}

/// Takes back a refund's points and spend, and gives back the points the order spent in
/// proportion to the refunded share (cumulative, like the clawback). A full refund gives the
/// order's coupons back while they are still valid; a partial one keeps them used.
pub fn apply_refund(
    member: &mut Member,
    rules: &Rules,
    order: &mut OrderRecord,
    req: &RefundRequest,
    now: DateTime<Utc>,
) -> Result<Refunded, PointsError> {
    if order.refunds.len() >= MAX_REFUNDS_PER_ORDER {
        return Err(PointsError::TooManyRefunds);
    }
    let before = order.refunded;
    let (claw, refunded) = clawback(order.earned, order.paid, before, req.amount)?;
    order.refunded = refunded;
    order.clawed_back += claw;
    // Inside the return window the points are still pending: cancel them (no debt possible);
    // after it, take them back from the balance as before.
    let cancelled = member.wallet.cancel_pending(&order.order_id, claw);
    member.wallet.claw_back(claw - cancelled);
    let today = program_date(rules.time_zone, now);
    record_spend(member, order.day, -req.amount, today, rules.tier_window_days);
    member.lifetime_spend = Fen((member.lifetime_spend.0 - req.amount.0).max(0));
    let recorded_at = order.recorded_at.unwrap_or(order.occurred_at);
    let tier_change =
        tier::redecide_after_refund(member, rules, order.day, recorded_at, req.amount, now);
    // The rebate goes back by the same cumulative share (pending first, then a debt).
    let (rebate_back, _) = clawback(order.rebate.0, order.paid, before, req.amount)?;
    order.rebate_reversed += Fen(rebate_back);
    let (rebate_cancelled, rebate_taken) =
        member.wallet.reverse_rebate(&order.order_id, Fen(rebate_back));
    let mut out = Refunded {
        clawed_back: claw,
        pending_cancelled: cancelled,
        rebate_reversed: Fen(rebate_back),
        tier_change,
        full: order.refunded == order.paid,
        ..Default::default()
    };
    if claw > 0 || rebate_back > 0 {
        out.entries.push(LedgerEntry {
            kind: EntryKind::Refund,
            points: Points(-(claw - cancelled)),
            balance_after: member.wallet.balance,
            pending: Points(-cancelled),
            rebate: -rebate_taken,
            rebate_pending: -rebate_cancelled,
            reason: format!("refund {} of order {}", req.amount, req.order_id),
            reference: Some(req.refund_id.clone()),
            at: now,
        });
    }
    // The same cumulative share as the clawback: parts add up to exactly what was spent.
    let (returned, _) = clawback(order.points_spent, order.paid, before, req.amount)?;
    let (rebate_returned, _) = clawback(order.rebate_spent.0, order.paid, before, req.amount)?;
    if returned > 0 || rebate_returned > 0 {
        order.points_returned += returned;
        order.rebate_returned += Fen(rebate_returned);
        member.wallet.earn(returned, order.spent_from.unwrap_or(order.day));
        member.wallet.rebate += Fen(rebate_returned);
        out.points_returned = returned;
        out.rebate_returned = Fen(rebate_returned);
        out.entries.push(LedgerEntry {
            kind: EntryKind::Returned,
            points: Points(returned),
            balance_after: member.wallet.balance,
            pending: Points::ZERO,
            rebate: Fen(rebate_returned),
            rebate_pending: Fen::ZERO,
            reason: format!(
                "points and rebate spent on order {} given back by refund {}",
                req.order_id, req.amount
            ),
            reference: Some(req.refund_id.clone()),
            at: now,
        });
    }
    if order.refunded == order.paid && !order.coupons_returned {
        order.coupons_returned = true;
        out.coupons_returned =
            order.coupons.iter().filter(|c| now < c.valid_until).map(|c| c.code.clone()).collect();
    }
    Ok(out)
}

/// The amount off a redemption gives, in fen.
pub fn redemption_value(rules: &Rules, points: i64) -> Fen {
    Fen((points as i128 * 100 / rules.points.redemption_points_per_cny.max(1) as i128) as i64)
}

/// Spends `points` from the oldest lots (after expiry has been applied by the caller).
pub fn apply_redemption(
    member: &mut Member,
    rules: &Rules,
    points: i64,
    reference: &str,
    now: DateTime<Utc>,
) -> Result<LedgerEntry, PointsError> {
    let step = rules.points.redemption_step.max(1);
    if points <= 0 || points % step != 0 {
        return Err(PointsError::InvalidRedemptionPoints(step));
    }
    member.wallet.spend(points).map_err(|_| PointsError::InsufficientPoints {
        balance: member.wallet.balance.0,
        asked: points,
    })?;
    Ok(LedgerEntry {
        kind: EntryKind::Redemption,
        points: Points(-points),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        rebate: Fen::ZERO,
        rebate_pending: Fen::ZERO,
        reason: format!("redeemed for {} off", redemption_value(rules, points)),
        reference: Some(reference.to_string()),
        at: now,
    })
}
