//! A purchase the order system reports without a checkout: points pending through the
//! return window, the tier decided on what was paid, the first purchase's referral reward.

use crate::{attribution, live_member, points_refusal, replay, Answer, App};
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, NaiveDate, Utc};
use loyalty::calendar::program_date;
use loyalty::http;
use loyalty::ledger::LedgerEntry;
use loyalty::member::{Member, MemberId};
use loyalty::points::{self, OrderRecord, PurchaseRequest};
use loyalty::store::change::Attempt;
use loyalty::store::checkout::{CheckoutItem, CheckoutState};
use loyalty::store::keys;
use loyalty::store::member::TierChangeItem;
use loyalty::store::points::OrderItem;
use loyalty::store::Cond;
use loyalty::ApiError;
use serde::Serialize;

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
    /// What the order's tracking code earned its partner.
    #[serde(skip_serializing_if = "Option::is_none")]
    affiliate: Option<loyalty::affiliate::AffiliateView>,
}

pub async fn purchase(app: &App, id: &MemberId, req: PurchaseRequest) -> Result<Answer, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    http::id_param(&req.order_id, "orderId", "invalid_order_id")?;
    points::validate_purchase(&req, rules, app.deps.clock.now()).map_err(points_refusal)?;
    let fingerprint = http::fingerprint(&req);
    let (order_sk, checkout_sk) = (keys::order_sk(&req.order_id), keys::checkout_sk(&req.order_id));
    let code_keys = attribution::code_keys(&req.tracking_code)?;
    let (answer, points) = store
        .change_member(async || {
        let now = app.deps.clock.now();
        let today = program_date(rules.time_zone, now);
        let mut read = store.points_read_with(id.as_str(), &[order_sk.clone(), checkout_sk.clone()], &code_keys).await?;
        if let Some(o) = read.take::<OrderItem>(&order_sk)? {
            return replay(&o.order.fingerprint, &fingerprint, Answer { status: 201, body: o.order.answer }, "order_conflict", "this orderId").map(|a| Attempt::Answer((a, None)));
        }
        if read.take::<CheckoutItem>(&checkout_sk)?.is_some_and(|c| c.state == CheckoutState::Held) {
            return Err(ApiError::conflict("checkout_open", "this order has an open checkout: confirm or cancel it instead of reporting a plain purchase"));
        }
        let mut member = live_member(read.member.take())?;
        let read_version = member.version;
        member.version += 1;
        let mut entries: Vec<LedgerEntry> = points::settle(&mut member, rules, today, now);
        let p = points::apply_purchase(&mut member, rules, &req, &read.windows, now);
        entries.push(p.entry.clone());
        let referral = attribution::referral(&mut read, &req.tracking_code)?;
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
        order.affiliate = credit.attribution;
        writes.push(store.put(&order, Some(Cond::absent()))?);
        writes.extend(side);
        writes.extend(credit.write);
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
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
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
