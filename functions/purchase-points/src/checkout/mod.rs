//! Checkout routes. The order system (IAM) quotes and holds, confirms at payment, cancels;
//! the member (JWT) may only preview. Each call is ONE BatchGetItem (the member, the
//! checkout, the order and the named coupons) and ONE TransactWriteItems; a confirm that is
//! the member's first purchase also reads the referrer (see `purchase_side_writes`).

use crate::{attribution, live_member, Answer, App};
use chrono::{DateTime, Utc};
use loyalty::calendar::program_date;
use loyalty::checkout::{
    self, Asked, CheckoutError, CheckoutRequest, PreviewRequest, Quote, Quoted,
};
use loyalty::coupon::{self, Coupon};
use loyalty::http;
use loyalty::ledger::LedgerEntry;
use loyalty::member::MemberId;
use loyalty::points;
use loyalty::store::change::Attempt;
use loyalty::store::checkout::{CheckoutItem, CheckoutState, Outcome};
use loyalty::store::coupon::CouponItem;
use loyalty::store::keys;
use loyalty::store::points::PointsRead;
use loyalty::{ApiError, Fen};
use serde::Serialize;

mod confirm;
pub use confirm::confirm;

fn refused(e: CheckoutError) -> ApiError {
    match e.status() {
        409 => ApiError::conflict(e.code(), e.to_string()),
        _ => ApiError::unprocessable(e.code(), e.to_string()),
    }
}

fn checkout_not_found() -> ApiError {
    ApiError::not_found("checkout_not_found", "no checkout with this orderId for the member")
}

/// The coupons named by `codes`, in that order, from what was read.
fn coupons_read(read: &mut PointsRead, codes: &[String]) -> Result<Vec<Coupon>, ApiError> {
    codes
        .iter()
        .map(|code| match read.take::<CouponItem>(&keys::coupon_sk(code))? {
            Some(item) => Ok(item.coupon),
            None => Err(refused(CheckoutError::CouponNotFound(code.clone()))),
        })
        .collect()
}

/// Checks what can be checked before reading: amount, currency, the list of codes.
fn validate(app: &App, amount: Fen, currency: &str, codes: &[String]) -> Result<(), ApiError> {
    let rules = &*app.deps.rules;
    checkout::validate_order(rules, amount, currency).map_err(refused)?;
    checkout::validate_codes(rules, codes).map_err(refused)?;
    // A malformed code cannot be anyone's: refuse it like an unknown one, before any read.
    match codes.iter().find(|c| !coupon::looks_like_code(c)) {
        Some(bad) => Err(refused(CheckoutError::CouponNotFound(bad.chars().take(20).collect()))),
        None => Ok(()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Held<'a> {
    order_id: &'a str,
    state: &'static str,
    hold_until: DateTime<Utc>,
    #[serde(flatten)]
    quote: &'a Quote,
    points_available: i64,
    rebate_available: loyalty::Fen,
}

/// Quote and hold: the order's coupons and points are held for it until `holdUntil`. The same
/// request again while the hold lives answers the same quote; another request for the same
/// order replaces the hold (one hold per order, never two, never none).
pub async fn quote(app: &App, id: &MemberId, req: CheckoutRequest) -> Result<Answer, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    http::id_param(&req.order_id, "orderId", "invalid_order_id")?;
    validate(app, req.amount, &req.currency, &req.coupon_codes)?;
    let fingerprint = http::fingerprint(&req);
    let (checkout_sk, order_sk) = (keys::checkout_sk(&req.order_id), keys::order_sk(&req.order_id));
    let mut sks = vec![checkout_sk.clone(), order_sk.clone()];
    sks.extend(req.coupon_codes.iter().map(|c| keys::coupon_sk(c)));
    let code_keys = attribution::code_keys(&req.tracking_code)?;
    let (answer, held) = store
        .change_member(async || {
            let now = app.deps.clock.now();
            let today = program_date(rules.time_zone, now);
            let mut read = store.points_read_with(id.as_str(), &sks, &code_keys).await?;
            let existing = read.take::<CheckoutItem>(&checkout_sk)?;
            if existing.as_ref().is_some_and(|c| c.state == CheckoutState::Confirmed) {
                return Err(ApiError::conflict(
                    "checkout_confirmed",
                    "this order's checkout is already confirmed",
                ));
            }
            if read.items.contains_key(&order_sk) {
                return Err(ApiError::conflict(
                    "order_already_recorded",
                    "a purchase with this orderId is already recorded",
                ));
            }
            let mut member = live_member(read.member.take())?;
            if let Some(c) =
                existing.filter(|c| c.state == CheckoutState::Held && c.fingerprint == fingerprint)
            {
                if member.live_holds(now).any(|h| h.order_id == req.order_id) {
                    return Ok(Attempt::Answer((Answer { status: 201, body: c.answer }, false)));
                }
            }
            loyalty::limits::count_member_write(&mut member.write_window, rules, now)?;
            let coupons = coupons_read(&mut read, &req.coupon_codes)?;
            let read_version = member.version;
            member.version += 1;
            let entries: Vec<LedgerEntry> = points::settle(&mut member, rules, today, now);
            let asked = Asked { coupons: &coupons, points: req.points, rebate: req.rebate };
            let q = checkout::quote(rules, &member, Some(&req.order_id), req.amount, asked, now)
                .map_err(refused)?;
            let until =
                checkout::hold(&mut member, rules, &req.order_id, &q, now).map_err(refused)?;
            let answer = Answer::created(&Held {
                order_id: &req.order_id,
                state: "held",
                hold_until: until,
                quote: &q,
                points_available: member.available_points(now, None),
                rebate_available: member.available_rebate(now, None),
            })?;
            let quoted = Quoted {
                order_id: req.order_id.clone(),
                amount: req.amount,
                currency: req.currency.clone(),
                channel: req.channel,
                coupons,
                points: req.points,
                rebate: req.rebate,
                quote: q,
            };
            let mut writes = store.member_change(&member, read_version, entries, rules, now)?;
            let mut item = CheckoutItem::new(
                id.as_str(),
                quoted,
                until,
                fingerprint.clone(),
                answer.body.clone(),
            );
            item.affiliate = attribution::referral(&mut read, &req.tracking_code)?;
            writes.push(store.put_quote(&item)?);
            Ok(Attempt::Commit(writes, (answer, true)))
        })
        .await?;
    if held {
        tracing::info!(member_id = %id, "checkout held");
    }
    Ok(answer)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cancelled<'a> {
    order_id: &'a str,
    state: &'static str,
}

/// Cancel: releases the holds. Cancelling twice answers the same; after a confirm it is a 409.
pub async fn cancel(app: &App, id: &MemberId, order_id: &str) -> Result<Answer, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    http::id_param(order_id, "orderId", "invalid_order_id")?;
    let checkout_sk = keys::checkout_sk(order_id);
    let (answer, cancelled) = store
        .change_member(async || {
            let now = app.deps.clock.now();
            let today = program_date(rules.time_zone, now);
            let mut read =
                store.points_read(id.as_str(), std::slice::from_ref(&checkout_sk)).await?;
            let item = read.take::<CheckoutItem>(&checkout_sk)?.ok_or_else(checkout_not_found)?;
            match (&item.state, &item.outcome) {
                (CheckoutState::Confirmed, _) => {
                    return Err(ApiError::conflict(
                        "checkout_confirmed",
                        "this checkout is confirmed; refund the order instead",
                    ))
                }
                (CheckoutState::Cancelled, Some(o)) => {
                    return Ok(Attempt::Answer((
                        Answer { status: o.status, body: o.body.clone() },
                        false,
                    )))
                }
                _ => {}
            }
            let mut member = live_member(read.member.take())?;
            let read_version = member.version;
            member.version += 1;
            let entries: Vec<LedgerEntry> = points::settle(&mut member, rules, today, now);
            checkout::release(&mut member, order_id, now);
            let answer = Answer::with(200, &Cancelled { order_id, state: "cancelled" })?;
            let outcome = Outcome {
                fingerprint: String::new(),
                status: answer.status,
                body: answer.body.clone(),
            };
            let mut writes = store.member_change(&member, read_version, entries, rules, now)?;
            writes.push(store.put_finished_checkout(&item.finish(
                CheckoutState::Cancelled,
                outcome,
                now,
            ))?);
            Ok(Attempt::Commit(writes, (answer, true)))
        })
        .await?;
    if cancelled {
        tracing::info!(member_id = %id, "checkout cancelled");
    }
    Ok(answer)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Preview<'a> {
    #[serde(flatten)]
    quote: &'a Quote,
    points_available: i64,
    rebate_available: loyalty::Fen,
}

/// The member's read-only preview: the same pricing, nothing held or written. The amount is
/// the member's own claim, so the answer binds nothing; the order system's quote does.
pub async fn preview(app: &App, id: &MemberId, req: PreviewRequest) -> Result<Answer, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    validate(app, req.amount, &rules.currency, &req.coupon_codes)?;
    let sks: Vec<String> = req.coupon_codes.iter().map(|c| keys::coupon_sk(c)).collect();
    let now = app.deps.clock.now();
    let mut read = store.points_read(id.as_str(), &sks).await?;
    let mut member = live_member(read.member.take())?;
    let coupons = coupons_read(&mut read, &req.coupon_codes)?;
    // Lots due to expire today are not spendable, as the next write would expire them.
    points::settle(&mut member, rules, program_date(rules.time_zone, now), now);
    let asked = Asked { coupons: &coupons, points: req.points, rebate: req.rebate };
    let q = checkout::quote(rules, &member, None, req.amount, asked, now).map_err(refused)?;
    Answer::with(
        200,
        &Preview {
            quote: &q,
            points_available: member.available_points(now, None),
            rebate_available: member.available_rebate(now, None),
        },
    )
}
