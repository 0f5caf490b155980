//! Refunds: the order's points (and rebate, commission, referral reward) taken back in
//! proportion, once per refund id.

use crate::{attribution, live_member, points_refusal, replay, Answer, App};
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, NaiveDate, Utc};
use loyalty::calendar::program_date;
use loyalty::http;
use loyalty::ledger::LedgerEntry;
use loyalty::member::MemberId;
use loyalty::points::{self, OrderRecord, PointsError, RefundRecord, RefundRequest};
use loyalty::store::change::{Attempt, Failed, Judge};
use loyalty::store::keys;
use loyalty::store::member::TierChangeItem;
use loyalty::store::points::OrderItem;
use loyalty::store::receipt::Receipt;
use loyalty::store::Cond;
use loyalty::ApiError;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Refunded<'a> {
    order_id: &'a str,
    refund_id: &'a str,
    amount: loyalty::Fen,
    refunded_total: loyalty::Fen,
    points_clawed_back: i64,
    /// Of those, how many were still pending in the return window (cancelled, never a debt).
    pending_cancelled: i64,
    /// Points the order spent at checkout, given back in proportion to the refund.
    points_returned: i64,
    /// The order's rebate taken back (fen): pending first, then from the balance.
    rebate_reversed: loyalty::Fen,
    /// Rebate balance the order spent, given back in proportion to the refund (fen).
    rebate_returned: loyalty::Fen,
    /// Coupons given back (a full refund, while they are still valid).
    coupons_returned: &'a [String],
    points: i64,
    /// The available rebate balance after the refund (fen; negative: a debt).
    rebate: loyalty::Fen,
    /// The tier after the refund: spend it was reached with may be gone.
    tier: loyalty::TierCode,
    tier_changed: bool,
    /// The commission the refund took back from the order's partner.
    #[serde(skip_serializing_if = "Option::is_none")]
    affiliate: Option<&'a attribution::ReversedView>,
}

pub async fn refund(app: &App, id: &MemberId, req: RefundRequest) -> Result<Answer, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    http::id_param(&req.order_id, "orderId", "invalid_order_id")?;
    http::id_param(&req.refund_id, "refundId", "invalid_refund_id")?;
    if req.amount.0 <= 0 {
        return Err(points_refusal(PointsError::InvalidAmount));
    }
    let fingerprint = http::fingerprint(&req);
    // The refund's receipt makes the refundId unique across the member's orders.
    let (order_sk, receipt_sk) =
        (keys::order_sk(&req.order_id), keys::receipt_sk(keys::REFUND_SCOPE, &req.refund_id));
    // Set when a commission reversal's condition told that the order's month is paid.
    let month_paid = Arc::new(AtomicBool::new(false));
    let (answer, recorded) = store
        .change_member(async || {
        let now = app.deps.clock.now();
        let today = program_date(rules.time_zone, now);
        let mut read = store.points_read(id.as_str(), &[order_sk.clone(), receipt_sk.clone()]).await?;
        if let Some(r) = read.take::<Receipt>(&receipt_sk)? {
            return replay(&r.fingerprint, &fingerprint, Answer { status: r.status, body: r.body }, "refund_conflict", "this refundId").map(|a| Attempt::Answer((a, None)));
        }
        let mut member = live_member(read.member.take())?;
        let mut order = read.take::<OrderItem>(&order_sk)?.ok_or_else(|| ApiError::not_found("order_not_found", "no purchase with this orderId is recorded for the member"))?;
        let read_version = member.version;
        member.version += 1;
        let mut entries: Vec<LedgerEntry> = points::settle(&mut member, rules, today, now);
        let done = points::apply_refund(&mut member, rules, &mut order.order, &req, now).map_err(points_refusal)?;
        entries.extend(done.entries.iter().cloned());
        // Given-back points keep their first earning day: any whose life has ended go at once.
        entries.extend(points::expire(&mut member, rules, today, now));
        let reversal = attribution::reverse(app, &mut order, &req.refund_id, month_paid.load(Ordering::SeqCst), now)?;
        let answer = Answer::created(&Refunded {
            order_id: &req.order_id,
            refund_id: &req.refund_id,
            amount: req.amount,
            refunded_total: order.order.refunded,
            points_clawed_back: done.clawed_back,
            pending_cancelled: done.pending_cancelled,
            points_returned: done.points_returned,
            rebate_reversed: done.rebate_reversed,
            rebate_returned: done.rebate_returned,
            coupons_returned: &done.coupons_returned,
            points: member.wallet.balance.0,
            rebate: member.wallet.rebate,
            tier: member.tier,
            tier_changed: done.tier_change.is_some(),
            affiliate: reversal.as_ref().map(|r| &r.view),
        })?;
        order.order.refunds.push(RefundRecord { refund_id: req.refund_id.clone(), amount: req.amount, clawed_back: done.clawed_back, rebate_reversed: done.rebate_reversed, fingerprint: fingerprint.clone(), answer: answer.body.clone(), at: Some(now) });
        let mut writes = store.member_change(&member, read_version, entries, rules, now)?;
        // The order only ever changes together with its member, whose version is checked.
        writes.push(store.put(&order, Some(Cond::present()))?);
        writes.push(store.put(&Receipt::new(id.as_str(), keys::REFUND_SCOPE, &req.refund_id, fingerprint.clone(), answer.status, answer.body.clone(), now), Some(Cond::absent()))?);
        for code in &done.coupons_returned {
            writes.push(store.return_coupon_write(id.as_str(), code, &req.order_id, now)?);
        }
        if let Some(change) = done.tier_change.clone() {
            tracing::info!(member_id = %id, from = %change.from, to = %change.to, "tier re-decided by a refund");
            writes.push(store.put(&TierChangeItem::new(id.as_str(), change), None)?);
        }
        if done.full {
            writes.extend(cancel_referral_writes(app, &order.order, id, today, now).await?);
        }
        let recorded = (answer, Some((done.clawed_back, done.points_returned)));
        let Some(reversal) = reversal else { return Ok(Attempt::Commit(writes, recorded)) };
        // The month counter's failed condition means the order's month is paid.
        let counter = writes.len() + reversal.counter;
        writes.extend(reversal.writes);
        let paid = month_paid.clone();
        let judge: Judge<ApiError> = Box::new(move |failed: &[usize]| match failed.contains(&counter) {
            true => { paid.store(true, Ordering::SeqCst); Failed::ReadAgainNow }
            false => Failed::Contended,
        });
        Ok(Attempt::CommitOr(writes, recorded, judge))
        })
        .await?;
    if let Some((clawed, returned)) = recorded {
        tracing::info!(member_id = %id, clawed, returned, "refund recorded");
    }
    Ok(answer)
}

/// A referred member's first order refunded in full: the referrer's reward, still pending,
/// is cancelled in the same transaction (the referrer is read: a second read, at most once
/// per member lifetime, like the reward itself).
async fn cancel_referral_writes(
    app: &App,
    order: &OrderRecord,
    id: &MemberId,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Vec<TransactWriteItem>, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    let Some(referrer_id) = &order.referral_to else { return Ok(Vec::new()) };
    let Some(mut referrer) = store.member(referrer_id).await?.filter(|r| !r.is_erased()) else {
        return Ok(Vec::new());
    };
    let referrer_version = referrer.version;
    referrer.version += 1;
    let mut entries = points::settle(&mut referrer, rules, today, now);
    let Some(cancel) = points::cancel_referral(&mut referrer, id.as_str(), now) else {
        return Ok(Vec::new());
    };
    entries.push(cancel);
    Ok(store.member_change(&referrer, referrer_version, entries, rules, now)?)
}
