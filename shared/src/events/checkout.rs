//! Checkout events.

use super::*;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Confirmed<'a> {
    order_id: &'a str,
    amount: Fen,
    member_discount: Fen,
    coupon_discount: Fen,
    coupon_codes: Vec<&'a str>,
    points_used: i64,
    points_discount: Fen,
    payable: Fen,
    free_shipping: bool,
}

/// A checkout confirmed by this write (a confirmed checkout is never written again).
pub fn checkout_events(
    origin: Origin<'_>,
    member_id: &str,
    quoted: &crate::checkout::Quoted,
    confirmed_now: bool,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, serde_json::Error> {
    if !confirmed_now {
        return Ok(Vec::new());
    }
    let q = &quoted.quote;
    let body = Confirmed {
        order_id: &quoted.order_id,
        amount: q.amount,
        member_discount: q.member_discount,
        coupon_discount: q.coupon_discount,
        coupon_codes: q.coupons.iter().map(|c| c.code.as_str()).collect(),
        points_used: q.points_used,
        points_discount: q.points_discount,
        payable: q.payable,
        free_shipping: q.free_shipping,
    };
    Ok(vec![event(DetailType::CheckoutConfirmed, origin, "", Some(member_id), at, &body)?])
}
