//! Coupons events.

use super::*;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Issued<'a> {
    code: &'a str,
    grant: &'a str,
    title: &'a str,
    offer: &'a crate::coupon::Offer,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
    #[serde(skip_serializing_if = "<[TierCode]>::is_empty")]
    tiers: &'a [TierCode],
    stackable: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Redeemed<'a> {
    code: &'a str,
    grant: &'a str,
    order_id: &'a str,
    order_amount: Fen,
    discount: Fen,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Returned<'a> {
    code: &'a str,
    grant: &'a str,
    order_id: &'a str,
}

/// A coupon item was written: issued when new; redeemed when an order took it; returned when
/// a full refund of that order gave it back. Without an old image a return cannot be told
/// (the new image no longer names the order), a redemption still can.
pub fn coupon_events(
    origin: Origin<'_>,
    old: Option<&Coupon>,
    new: &Coupon,
    inserted: bool,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, serde_json::Error> {
    let member = Some(new.member_id.as_str());
    if inserted {
        let body = Issued {
            code: &new.code,
            grant: &new.grant,
            title: &new.title,
            offer: &new.offer,
            valid_from: new.valid_from,
            valid_until: new.valid_until,
            tiers: &new.tiers,
            stackable: new.stackable,
        };
        return Ok(vec![event(
            DetailType::CouponIssued,
            origin,
            "",
            member,
            new.issued_at,
            &body,
        )?]);
    }
    let was = old.and_then(|o| o.redemption.as_ref());
    match (&new.redemption, was) {
        (Some(r), prev) if prev.is_none_or(|p| p.order_id != r.order_id) => {
            let body = Redeemed {
                code: &new.code,
                grant: &new.grant,
                order_id: &r.order_id,
                order_amount: r.order_amount,
                discount: r.discount,
            };
            Ok(vec![event(DetailType::CouponRedeemed, origin, &r.order_id, member, r.at, &body)?])
        }
        (None, Some(prev)) => {
            let body = Returned { code: &new.code, grant: &new.grant, order_id: &prev.order_id };
            Ok(vec![event(DetailType::CouponReturned, origin, &prev.order_id, member, at, &body)?])
        }
        _ => Ok(Vec::new()),
    }
}
