//! Confirm at payment: the held points are spent (a ledger entry naming the order), the
//! coupons redeemed, and the purchase recorded on what was paid, in one transaction.

use super::{checkout_not_found, refused};
use crate::{attribution, live_member, purchase_side_writes, replay, Answer, App};
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use loyalty::calendar::program_date;
use loyalty::checkout::{self, CheckoutError, ConfirmRequest};
use loyalty::coupon::{RedeemError, Redemption};
use loyalty::http;
use loyalty::ledger::LedgerEntry;
use loyalty::member::MemberId;
use loyalty::points;
use loyalty::store::change::{Attempt, Failed, Judge};
use loyalty::store::checkout::{CheckoutItem, CheckoutState, Outcome};
use loyalty::store::keys;
use loyalty::store::points::{OrderItem, PointsRead};
use loyalty::store::Cond;
use loyalty::{ApiError, Fen, TierCode};
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfirmedView<'a> {
    order_id: &'a str,
    state: &'static str,
    paid: Fen,
    points_used: i64,
    rebate_used: Fen,
    coupons_redeemed: Vec<&'a str>,
    points_earned: i64,
    /// The order's rebate on what was paid, pending like the points.
    rebate_earned: Fen,
    /// The day the earned points leave the return window and can be spent.
    available_on: chrono::NaiveDate,
    points: i64,
    tier: TierCode,
    tier_changed: bool,
    /// What the quote's tracking code earned its partner.
    #[serde(skip_serializing_if = "Option::is_none")]
    affiliate: Option<loyalty::affiliate::AffiliateView>,
}

/// What one attempt answers: the answer, and the points spent when this attempt confirmed.
type Confirmed = (Answer, Option<i64>);

pub async fn confirm(
    app: &App,
    id: &MemberId,
    order_id: &str,
    req: ConfirmRequest,
) -> Result<Answer, ApiError> {
    let store = &app.deps.store;
    http::id_param(order_id, "orderId", "invalid_order_id")?;
    let fingerprint = http::fingerprint(&req);
    let (answer, points_used) = store
        .change_member(async || {
            let now = app.deps.clock.now();
            let (mut read, item) = read_checkout(app, id, order_id, now).await?;
            if let Some(answer) = already_settled(&read, &item, order_id, &fingerprint)? {
                return Ok(Attempt::Answer((answer, None)));
            }
            if let Some(paid) = req.paid.filter(|p| *p != item.quoted.quote.payable) {
                return Err(ApiError::conflict(
                    "amount_mismatch",
                    format!(
                        "paid {paid} differs from the quote's payable {}",
                        item.quoted.quote.payable
                    ),
                ));
            }
            let occurred_at = req.occurred_at.unwrap_or(now);
            points::validate_occurred_at(&app.deps.rules, occurred_at, now)
                .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
            commit(app, id, order_id, &fingerprint, &mut read, item, occurred_at, now).await
        })
        .await?;
    if let Some(points_used) = points_used {
        tracing::info!(member_id = %id, points_used, "checkout confirmed");
    }
    Ok(answer)
}

/// The member, the checkout and the order, read together. A BatchGetItem reads its items one
/// by one: a racing confirm (or cancel) of this order can commit between the checkout and the
/// member or the order, which then show the hold gone or the order recorded while the checkout
/// still says held. Read again (only then: a second read) rather than refuse or price an order
/// that is in fact already confirmed.
async fn read_checkout(
    app: &App,
    id: &MemberId,
    order_id: &str,
    now: DateTime<Utc>,
) -> Result<(PointsRead, CheckoutItem), ApiError> {
    let (checkout_sk, order_sk) = (keys::checkout_sk(order_id), keys::order_sk(order_id));
    let sks = [checkout_sk.clone(), order_sk.clone()];
    let store = &app.deps.store;
    let mut read = store.points_read(id.as_str(), &sks).await?;
    let mut item = read.take::<CheckoutItem>(&checkout_sk)?.ok_or_else(checkout_not_found)?;
    for _ in 0..3 {
        let hold_gone = now < item.hold_until
            && read
                .member
                .as_ref()
                .is_some_and(|m| !m.live_holds(now).any(|h| h.order_id == order_id));
        let torn =
            item.state == CheckoutState::Held && (hold_gone || read.items.contains_key(&order_sk));
        if !torn {
            break;
        }
        read = store.points_read(id.as_str(), &sks).await?;
        item = read.take::<CheckoutItem>(&checkout_sk)?.ok_or_else(checkout_not_found)?;
    }
    Ok((read, item))
}

/// The answer when the checkout is past confirming: a confirm's replay, or why not.
fn already_settled(
    read: &PointsRead,
    item: &CheckoutItem,
    order_id: &str,
    fingerprint: &str,
) -> Result<Option<Answer>, ApiError> {
    match (&item.state, &item.outcome) {
        (CheckoutState::Confirmed, Some(o)) => {
            let first = Answer { status: o.status, body: o.body.clone() };
            return replay(
                &o.fingerprint,
                fingerprint,
                first,
                "confirm_conflict",
                "this checkout's confirm",
            )
            .map(Some);
        }
        (CheckoutState::Cancelled, _) => {
            return Err(ApiError::conflict(
                "checkout_cancelled",
                "this checkout was cancelled; quote the order again",
            ))
        }
        _ => {}
    }
    if read.items.contains_key(&keys::order_sk(order_id)) {
        return Err(ApiError::conflict(
            "order_already_recorded",
            "a purchase with this orderId is already recorded",
        ));
    }
    Ok(None)
}

/// Applies the confirm to the member and builds the one transaction: the member and its ledger
/// entries, the order, the partner's commission, each coupon's redemption, the finished
/// checkout and the purchase's side writes (referral, first-purchase gifts).
#[allow(clippy::too_many_arguments)]
async fn commit(
    app: &App,
    id: &MemberId,
    order_id: &str,
    fingerprint: &str,
    read: &mut PointsRead,
    item: CheckoutItem,
    occurred_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Attempt<Confirmed, ApiError>, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    let today = program_date(rules.time_zone, now);
    let mut member = live_member(read.member.take())?;
    let read_version = member.version;
    member.version += 1;
    let mut entries: Vec<LedgerEntry> = points::settle(&mut member, rules, today, now);
    let done = checkout::confirm(&mut member, rules, &item.quoted, &read.windows, occurred_at, now)
        .map_err(refused)?;
    entries.extend(done.entries);
    let order_ref = attribution::Order {
        member_id: id.as_str(),
        order_id,
        channel: item.quoted.channel,
        paid: done.order.paid,
        release_on: done.purchased.release_on,
    };
    let credit = attribution::credit(app, item.affiliate.as_ref(), order_ref, now)?;
    let view = ConfirmedView {
        order_id,
        state: "confirmed",
        paid: done.order.paid,
        points_used: done.order.points_spent,
        rebate_used: done.order.rebate_spent,
        coupons_redeemed: item.quoted.coupons.iter().map(|c| c.code.as_str()).collect(),
        points_earned: done.purchased.points,
        rebate_earned: done.purchased.rebate,
        available_on: done.purchased.release_on,
        points: member.wallet.balance.0,
        tier: member.tier,
        tier_changed: done.purchased.tier_change.is_some(),
        affiliate: credit.view,
    };
    let answer = Answer::with(200, &view)?;
    let (side, rewarded) =
        purchase_side_writes(app, id, &member, &done.purchased, today, now).await?;
    let mut order = done.order;
    order.fingerprint = format!("checkout:{fingerprint}");
    order.answer = answer.body.clone();
    order.referral_to = rewarded;
    let mut order = OrderItem::new(id.as_str(), order);
    order.affiliate = credit.attribution;

    let mut writes = store.member_change(&member, read_version, entries, rules, now)?;
    writes.push(store.put(&order, Some(Cond::absent()))?);
    writes.extend(credit.write);
    let coupon_taken = redemptions(app, id, order_id, &item, now, &mut writes)?;
    let outcome = Outcome {
        fingerprint: fingerprint.to_string(),
        status: answer.status,
        body: answer.body.clone(),
    };
    let points = item.quoted.points;
    writes.push(store.put_finished_checkout(&item.finish(
        CheckoutState::Confirmed,
        outcome,
        now,
    ))?);
    writes.extend(side);
    Ok(Attempt::CommitOr(writes, (answer, Some(points)), coupon_taken))
}

/// Appends one conditional redemption per coupon of the quote, and judges a failed commit:
/// only a confirm of another order after this hold expired can have used the coupon, so a
/// failed redemption is that refusal; any other failed condition is contention.
fn redemptions(
    app: &App,
    id: &MemberId,
    order_id: &str,
    item: &CheckoutItem,
    now: DateTime<Utc>,
    writes: &mut Vec<TransactWriteItem>,
) -> Result<Judge<ApiError>, ApiError> {
    let first = writes.len();
    for (c, applied) in item.quoted.coupons.iter().zip(&item.quoted.quote.coupons) {
        let r = Redemption {
            order_id: order_id.to_string(),
            order_amount: item.quoted.amount,
            discount: applied.discount,
            at: now,
        };
        writes.push(app.deps.store.redeem_coupon_write(id.as_str(), &c.code, &r)?);
    }
    let range = first..writes.len();
    let codes: Vec<String> = item.quoted.coupons.iter().map(|c| c.code.clone()).collect();
    Ok(Box::new(move |failed: &[usize]| match failed.iter().find(|i| range.contains(i)) {
        Some(i) => Failed::Refused(refused(CheckoutError::Coupon {
            code: codes[i - first].clone(),
            why: RedeemError::AlreadyUsed,
        })),
        None => Failed::Contended,
    }))
}
