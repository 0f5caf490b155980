//! The binding quote: what an order costs this member with the coupons, points and rebate
//! asked, as the rules price them.

use super::{AppliedCoupon, CheckoutError, Quote};
use crate::coupon::{self, Coupon, Offer};
use crate::member::Member;
use crate::money::Fen;
use crate::points;
use crate::rules::{Rules, Step};
use chrono::{DateTime, Utc};

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
