//! The points commands: purchases, refunds and activities (each one `Store::change_member`).

use crate::{attribution, live, refused, replay, Answer, App};
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, NaiveDate, Utc};
use loyalty::calendar::program_date;
use loyalty::http;
use loyalty::ledger::LedgerEntry;
use loyalty::member::{Member, MemberId};
use loyalty::points::{
    self, ActivityKind, ActivityRequest, OrderRecord, PointsError, PurchaseRequest, RefundRecord,
    RefundRequest,
};
use loyalty::store::change::{Attempt, Failed, Judge};
use loyalty::store::checkout::{CheckoutItem, CheckoutState};
use loyalty::store::keys;
use loyalty::store::member::TierChangeItem;
use loyalty::store::points::OrderItem;
use loyalty::store::receipt::Receipt;
use loyalty::store::Cond;
use loyalty::ApiError;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------
// Purchases

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Purchased<'a> {
    order_id: &'a str,
    points_earned: i64,
    /// The order's rebate (fen) at the member's tier rate, pending like the points.
    rebate_earned: loyalty::Fen,
    /// The day the earned points leave the return window and can be spent.
    available_on: NaiveDate,
    points: i64,
    tier: loyalty::TierCode,
    tier_changed: bool,
    /// affiliates (issue #19): what the order's tracking code earned its partner.
    #[serde(skip_serializing_if = "Option::is_none")]
    affiliate: Option<loyalty::affiliate::AffiliateView>,
}

pub async fn purchase(app: &App, id: &MemberId, req: PurchaseRequest) -> Result<Answer, ApiError> {
    let (store, rules) = (&app.env.store, &*app.env.rules);
    http::id_param(&req.order_id, "orderId", "invalid_order_id")?;
    points::validate_purchase(&req, rules, app.env.clock.now()).map_err(refused)?;
    let fingerprint = http::fingerprint(&req);
    let (order_sk, checkout_sk) = (keys::order_sk(&req.order_id), keys::checkout_sk(&req.order_id));
    let code_keys = attribution::code_keys(&req.tracking_code)?; // affiliates
    let (answer, points) = store
        .change_member(async || {
        let now = app.env.clock.now();
        let today = program_date(rules.time_zone, now);
        let mut read = store.points_read_with(id.as_str(), &[order_sk.clone(), checkout_sk.clone()], &code_keys).await?;
        if let Some(o) = read.take::<OrderItem>(&order_sk)? {
            return replay(&o.order.fingerprint, &fingerprint, Answer { status: 201, body: o.order.answer }, "order_conflict", "this orderId").map(|a| Attempt::Answer((a, None)));
        }
        if read.take::<CheckoutItem>(&checkout_sk)?.is_some_and(|c| c.state == CheckoutState::Held) {
            return Err(ApiError::conflict("checkout_open", "this order has an open checkout: confirm or cancel it instead of reporting a plain purchase"));
        }
        let mut member = live(read.member.take())?;
        let read_version = member.version;
        member.version += 1;
        let mut entries: Vec<LedgerEntry> = points::settle(&mut member, rules, today, now);
        let p = points::apply_purchase(&mut member, rules, &req, &read.windows, now);
        entries.push(p.entry.clone());
        let referral = attribution::referral(&mut read, &req.tracking_code)?; // affiliates
        let credit = attribution::credit(app, referral.as_ref(), attribution::Order { member_id: id.as_str(), order_id: &req.order_id, channel: req.channel, paid: req.amount, release_on: p.release_on }, now)?;
        let answer = Answer::created(&Purchased { order_id: &req.order_id, points_earned: p.points, rebate_earned: p.rebate, available_on: p.release_on, points: member.wallet.balance.0, tier: member.tier, tier_changed: p.tier_change.is_some(), affiliate: credit.view })?;
        let day = program_date(rules.time_zone, req.occurred_at).min(today);
        let mut order = OrderRecord::purchase(&req, p.points, day, fingerprint.clone(), answer.body.clone());
        order.recorded_at = Some(now);
        order.rebate = p.rebate;
        let (side, rewarded) = purchase_side_writes(app, id, &member, &p, today, now).await?;
        order.referral_to = rewarded;
        let mut writes = store.member_change(&member, read_version, entries, rules, now)?;
        let mut order = OrderItem::new(id.as_str(), order);
        order.affiliate = credit.attribution; // affiliates
        writes.push(store.put(&order, Some(Cond::absent()))?);
        writes.extend(side);
        writes.extend(credit.write); // affiliates
        Ok(Attempt::Commit(writes, (answer, Some(p.points))))
        })
        .await?;
    if let Some(points) = points {
        tracing::info!(member_id = %id, points, "purchase recorded");
    }
    Ok(answer)
}

/// What a recorded purchase adds to its transaction besides the member and the order: the
/// tier change, and on the member's first purchase the referrer's reward (pending through
/// this purchase's return window); answers the writes and whom the reward went to, which the
/// order records so that a full refund can cancel it.
pub(crate) async fn purchase_side_writes(
    app: &App,
    id: &MemberId,
    member: &Member,
    p: &points::Purchased,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(Vec<TransactWriteItem>, Option<String>), ApiError> {
    let (store, rules) = (&app.env.store, &*app.env.rules);
    let mut writes = Vec::new();
    let mut rewarded = None;
    if let Some(change) = p.tier_change.clone() {
        tracing::info!(member_id = %id, from = %change.from, to = %change.to, "tier upgraded");
        writes.push(store.put(&TierChangeItem::new(id.as_str(), change), None)?);
    }
    if p.first_purchase {
        if let Some(referrer_id) = member.referred_by.clone().filter(|r| r != id) {
            // The documented exception to one read per call: once per member lifetime,
            // the referrer's record is read to credit the reward in this same transaction.
            // Its version condition makes the reward land exactly once with the order.
            if let Some(mut referrer) =
                store.member(referrer_id.as_str()).await?.filter(|r| !r.is_erased())
            {
                let referrer_version = referrer.version;
                referrer.version += 1;
                let mut rentries: Vec<LedgerEntry> =
                    points::settle(&mut referrer, rules, today, now);
                rentries.push(points::apply_referral(
                    &mut referrer,
                    rules,
                    id.as_str(),
                    p.release_on,
                    now,
                ));
                writes.extend(store.member_change(
                    &referrer,
                    referrer_version,
                    rentries,
                    rules,
                    now,
                )?);
                rewarded = Some(referrer_id.as_str().to_string());
            }
        }
    }
    Ok((writes, rewarded))
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
    let (store, rules) = (&app.env.store, &*app.env.rules);
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

// ---------------------------------------------------------------------------------------
// Refunds

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
    /// affiliates (issue #19): the commission the refund took back from the order's partner.
    #[serde(skip_serializing_if = "Option::is_none")]
    affiliate: Option<&'a attribution::ReversedView>,
}

pub async fn refund(app: &App, id: &MemberId, req: RefundRequest) -> Result<Answer, ApiError> {
    let (store, rules) = (&app.env.store, &*app.env.rules);
    http::id_param(&req.order_id, "orderId", "invalid_order_id")?;
    http::id_param(&req.refund_id, "refundId", "invalid_refund_id")?;
    if req.amount.0 <= 0 {
        return Err(refused(PointsError::InvalidAmount));
    }
    let fingerprint = http::fingerprint(&req);
    // The refund's receipt makes the refundId unique across the member's orders.
    let (order_sk, receipt_sk) =
        (keys::order_sk(&req.order_id), keys::receipt_sk(keys::REFUND_SCOPE, &req.refund_id));
    // affiliates: set when a reversal's condition told that the order's month is paid.
    let month_paid = Arc::new(AtomicBool::new(false));
    let (answer, recorded) = store
        .change_member(async || {
        let now = app.env.clock.now();
        let today = program_date(rules.time_zone, now);
        let mut read = store.points_read(id.as_str(), &[order_sk.clone(), receipt_sk.clone()]).await?;
        if let Some(r) = read.take::<Receipt>(&receipt_sk)? {
            return replay(&r.fingerprint, &fingerprint, Answer { status: r.status, body: r.body }, "refund_conflict", "this refundId").map(|a| Attempt::Answer((a, None)));
        }
        let mut member = live(read.member.take())?;
        let mut order = read.take::<OrderItem>(&order_sk)?.ok_or_else(|| ApiError::not_found("order_not_found", "no purchase with this orderId is recorded for the member"))?;
        let read_version = member.version;
        member.version += 1;
        let mut entries: Vec<LedgerEntry> = points::settle(&mut member, rules, today, now);
        let done = points::apply_refund(&mut member, rules, &mut order.order, &req, now).map_err(refused)?;
        entries.extend(done.entries.iter().cloned());
        // Given-back points keep their first earning day: any whose life has ended go at once.
        entries.extend(points::expire(&mut member, rules, today, now));
        let reversal = attribution::reverse(app, &mut order, &req.refund_id, month_paid.load(Ordering::SeqCst), now)?; // affiliates
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
        // affiliates: the month counter's failed condition means the order's month is paid.
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

// ---------------------------------------------------------------------------------------
// Activities

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Earned {
    #[serde(rename = "type")]
    kind: ActivityKind,
    points_earned: i64,
    points: i64,
    activity_points_today: i64,
}

pub async fn activity(
    app: &App,
    id: &MemberId,
    req: ActivityRequest,
    idempotency_key: Option<String>,
) -> Result<Answer, ApiError> {
    let (store, rules) = (&app.env.store, &*app.env.rules);
    if let Some(r) = &req.ref_id {
        http::id_param(r, "refId", "invalid_ref_id")?;
    }
    let fingerprint = http::fingerprint(&req);
    store
        .change_member(async || {
            let now = app.env.clock.now();
            let today = program_date(rules.time_zone, now);
            // The receipt that makes the activity once-only (check-in per day, review per order,
            // share per Idempotency-Key when one is sent), and for a review the order it reviews.
            let (receipt_key, order_sk) = match (req.kind, &req.ref_id) {
                (ActivityKind::Checkin, _) => (Some(format!("checkin#{today}")), None),
                (ActivityKind::Review, Some(r)) => {
                    (Some(format!("review#{r}")), Some(keys::order_sk(r)))
                }
                (ActivityKind::Review, None) => {
                    return Err(ApiError::bad_request(
                        "ref_id_required",
                        "a review names the order it reviews in refId",
                    ))
                }
                (ActivityKind::Share, _) => {
                    (idempotency_key.as_ref().map(|k| format!("share#{k}")), None)
                }
            };
            let receipt_sk =
                receipt_key.as_ref().map(|k| keys::receipt_sk(keys::ACTIVITY_SCOPE, k));
            let sks: Vec<String> = receipt_sk.iter().chain(order_sk.iter()).cloned().collect();
            let mut read = store.points_read(id.as_str(), &sks).await?;
            if let Some(sk) = &receipt_sk {
                if let Some(r) = read.take::<Receipt>(sk)? {
                    return match req.kind {
                        ActivityKind::Checkin => Err(refused(PointsError::AlreadyCheckedIn)),
                        ActivityKind::Review => Err(refused(PointsError::AlreadyReviewed)),
                        ActivityKind::Share => replay(
                            &r.fingerprint,
                            &fingerprint,
                            Answer { status: r.status, body: r.body },
                            "idempotency_key_reused",
                            "this Idempotency-Key",
                        )
                        .map(Attempt::Answer),
                    };
                }
            }
            let mut member = live(read.member.take())?;
            loyalty::limits::count_member_write(&mut member.write_window, rules, now)?;
            if let Some(sk) = &order_sk {
                if !read.items.contains_key(sk) {
                    return Err(ApiError::unprocessable(
                        "unknown_order",
                        "reviews earn points only for the member's own recorded orders",
                    ));
                }
            }
            let read_version = member.version;
            member.version += 1;
            let mut entries: Vec<LedgerEntry> = points::settle(&mut member, rules, today, now);
            let shares = points::activity_today(&member, today).shares;
            let reference = match req.kind {
                ActivityKind::Checkin => format!("checkin-{today}"),
                ActivityKind::Review => format!("review-{}", req.ref_id.as_deref().unwrap_or("-")),
                ActivityKind::Share => format!("share-{today}-{}", shares + 1),
            };
            let entry = points::apply_activity(&mut member, rules, req.kind, &reference, now)
                .map_err(refused)?;
            let counters = points::activity_today(&member, today);
            let answer = Answer::created(&Earned {
                kind: req.kind,
                points_earned: entry.points.0,
                points: member.wallet.balance.0,
                activity_points_today: counters.points,
            })?;
            entries.push(entry);
            let mut writes = store.member_change(&member, read_version, entries, rules, now)?;
            if let Some(k) = &receipt_key {
                writes.push(store.put(
                    &Receipt::new(
                        id.as_str(),
                        keys::ACTIVITY_SCOPE,
                        k,
                        fingerprint.clone(),
                        answer.status,
                        answer.body.clone(),
                        now,
                    ),
                    Some(Cond::absent()),
                )?);
            }
            Ok(Attempt::Commit(writes, answer))
        })
        .await
}
