//! What coupons, checkouts, holdouts and reward claims add to the counters.

use super::change::Change;
use crate::campaign::experiment;
use crate::kpi::{self, Bump, Target};
use crate::store::checkout::{CheckoutItem, CheckoutState};
use crate::store::coupon::CouponItem;
use crate::store::holdout::HoldoutItem;
use crate::store::reward::ClaimItem;
use crate::store::stream::{string, StreamError};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;

/// Issues, redemptions and returns, per family and per grant with results.
pub(super) fn coupon(c: &Change) -> Result<Vec<Bump>, StreamError> {
    let mut out = Vec::new();
    let item: CouponItem = c.decode_new()?;
    let coupon = &item.coupon;
    let family = kpi::grant_family(&coupon.grant);
    let results = kpi::has_results(&coupon.grant);
    let grant = |when: NaiveDate| Target::Grant(coupon.grant.clone(), when);
    if c.inserted {
        let when = c.day(coupon.issued_at);
        let mut b = c.once("issued").day(when, kpi::COUPONS_ISSUED, 1).day(
            when,
            &kpi::issued_of(family),
            1,
        );
        if results {
            let arm = item.arm.as_deref();
            b = b.add(grant(when), kpi::GRANT_ISSUED, 1).touch(
                &coupon.member_id,
                &coupon.grant,
                arm,
                when,
            );
            if let Some(arm) = arm {
                b = b.add(grant(when), &kpi::arm_members(arm), 1);
            }
        }
        out.push(b);
    } else {
        let before: Option<CouponItem> = c.before()?;
        let was = before.as_ref().and_then(|b| b.coupon.redemption.as_ref());
        let first = c.day(coupon.issued_at);
        match (&coupon.redemption, was) {
            (Some(r), prev) if prev.is_none_or(|p| p.order_id != r.order_id) => {
                let when = c.day(r.at);
                let mut b = c
                    .once(&format!("redeemed:{}", r.order_id))
                    .day(when, kpi::COUPONS_REDEEMED, 1)
                    .day(when, &kpi::redeemed_of(family), 1);
                if results {
                    b = b.add(grant(first), kpi::GRANT_REDEEMED, 1).add(
                        grant(first),
                        kpi::GRANT_DISCOUNT,
                        r.discount.0,
                    );
                }
                out.push(b);
            }
            (None, Some(prev)) => {
                let returned = string(c.new, "returnedAt")
                    .and_then(|s| s.parse::<DateTime<Utc>>().ok())
                    .unwrap_or(c.at);
                let mut b = c.once(&format!("returned:{}", prev.order_id)).day(
                    c.day(returned),
                    kpi::COUPONS_RETURNED,
                    1,
                );
                if results {
                    b = b.add(grant(first), kpi::GRANT_RETURNED, 1);
                }
                out.push(b);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A confirmed checkout: its discounts, and per grant the orders and GMV.
pub(super) fn checkout(c: &Change) -> Result<Vec<Bump>, StreamError> {
    let mut out = Vec::new();
    let item: CheckoutItem = c.decode_new()?;
    let was_confirmed =
        c.before::<CheckoutItem>()?.is_some_and(|o| o.state == CheckoutState::Confirmed);
    if item.state == CheckoutState::Confirmed && !was_confirmed {
        let (q, when) = (&item.quoted.quote, c.day(item.finished_at.unwrap_or(c.at)));
        let mut b = c
            .once("confirmed")
            .day(when, kpi::CHECKOUTS, 1)
            .day(when, kpi::MEMBER_DISCOUNT, q.member_discount.0)
            .day(when, kpi::COUPON_DISCOUNT, q.coupon_discount.0)
            .day(when, kpi::POINTS_DISCOUNT, q.points_discount.0)
            .day(when, kpi::POINTS_USED, q.points_used)
            .day(when, kpi::REBATE_DISCOUNT, q.rebate_used.0);
        let grants: BTreeMap<&str, NaiveDate> = item
            .quoted
            .coupons
            .iter()
            .filter(|held| kpi::has_results(&held.grant))
            .map(|held| (held.grant.as_str(), c.day(held.issued_at)))
            .collect();
        for (g, first) in grants {
            let target = Target::Grant(g.into(), first);
            b = b.add(target.clone(), kpi::GRANT_ORDERS, 1).add(
                target,
                kpi::GRANT_GMV,
                q.payable.0,
            );
        }
        out.push(b);
    }
    Ok(out)
}

/// A member held out of a grant: its holdout arm.
pub(super) fn holdout(c: &Change) -> Result<Vec<Bump>, StreamError> {
    let mut out = Vec::new();
    let item: HoldoutItem = c.decode_new()?;
    if kpi::has_results(&item.grant) {
        let (when, arm) = (c.day(item.held_at), experiment::HOLDOUT_ARM);
        out.push(
            c.once("held_out")
                .add(Target::Grant(item.grant.clone(), when), &kpi::arm_members(arm), 1)
                .touch(&item.member_id, &item.grant, Some(arm), when),
        );
    }
    Ok(out)
}

/// A reward claimed.
pub(super) fn reward_claim(c: &Change) -> Result<Vec<Bump>, StreamError> {
    let mut out = Vec::new();
    let item: ClaimItem = c.decode_new()?;
    out.push(c.once("claimed").day(c.day(item.claim.claimed_at), kpi::REWARDS_CLAIMED, 1));
    Ok(out)
}
