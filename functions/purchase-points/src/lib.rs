//! purchase-points: the points ledger and checkout.
//!
//! HTTP, order system (IAM): `POST /internal/members/{id}/purchases|refunds|checkouts`,
//! `POST /internal/members/{id}/checkouts/{orderId}/confirm|cancel`.
//! HTTP, the member (JWT): `POST /members/{id}/activities|checkout-preview`,
//! `GET /members/{id}/ledger`. No member route creates a money fact.
//! HTTP, the rewards catalog (`rewards.rs`): operators define it (`/rewards`), members claim
//! with their available points (`/members/{id}/rewards`, `/members/{id}/reward-claims`), the
//! order system or an operator fulfils gifts (`/internal/members/{id}/reward-claims/…`).
//! SQS: order events (`purchase`, `refund`, `confirm`, `cancel`) from the order system, with
//! partial batch failures; an event that names an order not recorded yet waits (back-off).
//! Schedule: the daily expiry sweep (`{"job": "expiry-sweep"}`): releases and expires what
//! is due, and tells each lot's expiry `expiryNoticeDays` ahead, once (a notice item whose
//! stream record the `events-out` function publishes as `PointsExpiringSoon`).
//!
//! Every points change is: ONE BatchGetItem (member + the order or receipt item that makes
//! the request idempotent + the campaign multipliers), the pure rules of `loyalty::points`,
//! then ONE TransactWriteItems (the member, version-checked; its ledger entries; the order or
//! receipt item, which must not exist yet). A lost race re-reads and redoes; a retry of the
//! same request finds its order/receipt item and gets the first answer again.
//!
//! The one exception to "one read": a referred member's first purchase also reads the
//! referrer's record (a second GetItem), to credit the referral reward in the same
//! transaction. It happens at most once per member lifetime.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::app::Env;
use loyalty::calendar::program_date;
use loyalty::http::{self, json_body};
use loyalty::ledger::LedgerEntry;
use loyalty::member::{Member, MemberId};
use loyalty::points::{
    self, ActivityKind, ActivityRequest, OrderRecord, PointsError, PurchaseRequest, RefundRecord,
    RefundRequest,
};
use loyalty::store::checkout::{CheckoutItem, CheckoutState};
use loyalty::store::keys;
use loyalty::store::member::{Receipt, TierChangeItem};
use loyalty::store::points::{Attempt, ExpiryNoticeItem, OrderItem};
use loyalty::store::{Cond, StoreError};
use loyalty::ApiError;
use serde::Serialize;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

pub mod checkout;
mod order_events;
pub mod rewards;
pub use order_events::{handle_sqs, order_event, retry_delay};

pub struct App {
    pub env: Env,
    /// For the order-events queue's back-off (ChangeMessageVisibility).
    pub sqs: aws_sdk_sqs::Client,
    /// Coupon codes of the coupons that coupon rewards issue (`COUPON_CODE_SECRET`).
    pub codes: loyalty::coupon::CodeKey,
}

impl App {
    pub async fn from_env() -> Result<App, String> {
        let env = Env::from_env().await?;
        let sqs = aws_sdk_sqs::Client::new(&loyalty::app::sdk_config().await);
        let codes = loyalty::coupon::CodeKey::from_env().await?;
        Ok(App { env, sqs, codes })
    }
}

/// An answer to a points command: the status and the JSON body (kept for replays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub(crate) fn created<T: Serialize>(body: &T) -> Result<Answer, ApiError> {
        Answer::with(201, body)
    }
    fn with<T: Serialize>(status: u16, body: &T) -> Result<Answer, ApiError> {
        Ok(Answer {
            status,
            body: serde_json::to_string(body).map_err(|e| ApiError::Internal(e.to_string()))?,
        })
    }
    fn into_response(self) -> Response<Body> {
        http::raw_json(self.status, self.body.into_bytes())
    }
}

/// Every trigger of the function.
pub async fn dispatch(
    app: &App,
    trigger: loyalty::runtime::Trigger,
    deadline: SystemTime,
) -> Result<loyalty::runtime::Outcome, lambda_runtime::Error> {
    use loyalty::runtime::{Outcome, Trigger};
    Ok(match trigger {
        Trigger::Http(req) => Outcome::Http(handle(app, req).await),
        Trigger::Sqs(event) => Outcome::Sqs(handle_sqs(app, event).await),
        Trigger::Schedule(event) => Outcome::Done(handle_schedule(app, event, deadline).await?),
        Trigger::Stream(_) => return Err("purchase-points reads no stream".into()),
    })
}

// ---------------------------------------------------------------------------------------
// HTTP

/// The member's routes (JWT) under `/members/{id}/…` and the order system's (IAM) under
/// `/internal/members/{id}/…`: which family a path belongs to decides who may call it.
const MEMBER_ROUTES: [&str; 3] = ["activities", "checkout-preview", "ledger"];
const ORDER_SYSTEM_ROUTES: [&str; 3] = ["purchases", "refunds", "checkouts"];

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let result = match http::route(&req) {
        (method, p) if rewards::owns(&p) => rewards::handle(app, &req, method, &p).await,
        (method, p)
            if p.len() >= 4
                && p[0] == "internal"
                && p[1] == "members"
                && ORDER_SYSTEM_ROUTES.contains(&p[3]) =>
        {
            order_system(app, &req, method, &p[2..]).await
        }
        (Method::POST, p) if p.len() == 3 && p[0] == "members" && p[2] == "activities" => {
            member_post(app, &req, p[1], true).await
        }
        (Method::POST, p) if p.len() == 3 && p[0] == "members" && p[2] == "checkout-preview" => {
            member_post(app, &req, p[1], false).await
        }
        (Method::GET, p) if p.len() == 3 && p[0] == "members" && p[2] == "ledger" => {
            ledger(app, &req, p[1]).await.map(|v| http::json(200, &v))
        }
        (m, p) if p.len() == 3 && p[0] == "members" && MEMBER_ROUTES.contains(&p[2]) => {
            Err(ApiError::MethodNotAllowed(m.to_string()))
        }
        _ => Err(http::not_found(&req)),
    };
    http::respond(&req, result)
}

/// `p` is the path after `/internal/members`: `{id}/purchases`, `{id}/checkouts/{orderId}/confirm`...
async fn order_system(
    app: &App,
    req: &Request,
    method: Method,
    p: &[&str],
) -> Result<Response<Body>, ApiError> {
    let known = matches!(
        p,
        [_, "purchases" | "refunds" | "checkouts"] | [_, "checkouts", _, "confirm" | "cancel"]
    );
    if !known {
        return Err(http::not_found(req));
    }
    if method != Method::POST {
        return Err(ApiError::MethodNotAllowed(method.to_string()));
    }
    app.env.caller(req).require_order_system()?;
    let id = member_param(p[0])?;
    let answer = match p {
        [_, "purchases"] => purchase(app, &id, json_body(req)?).await?,
        [_, "refunds"] => refund(app, &id, json_body(req)?).await?,
        [_, "checkouts"] => checkout::quote(app, &id, json_body(req)?).await?,
        [_, "checkouts", order, "confirm"] => {
            checkout::confirm(app, &id, order, optional_body(req)?).await?
        }
        [_, "checkouts", order, _] => checkout::cancel(app, &id, order).await?,
        _ => return Err(http::not_found(req)),
    };
    Ok(answer.into_response())
}

async fn member_post(
    app: &App,
    req: &Request,
    id: &str,
    activities: bool,
) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    app.env.caller(req).require_member(&id)?;
    let answer = if activities {
        let key = http::idempotency_key(req)?;
        activity(app, &id, json_body(req)?, key).await?
    } else {
        checkout::preview(app, &id, json_body(req)?).await?
    };
    Ok(answer.into_response())
}

/// A JSON body that may be left out (`{}` is assumed).
fn optional_body<T: serde::de::DeserializeOwned + Default>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_body(req)
}

pub(crate) fn member_param(id: &str) -> Result<MemberId, ApiError> {
    MemberId::parse(id).ok_or_else(|| {
        ApiError::bad_request("invalid_member_id", "the member id in the path is not valid")
    })
}

fn refused(e: PointsError) -> ApiError {
    ApiError::unprocessable(e.code(), e.to_string())
}

fn no_member() -> ApiError {
    ApiError::not_found("member_not_found", "no such member")
}

/// The member as read, unless missing or erased.
pub(crate) fn live(member: Option<Member>) -> Result<Member, ApiError> {
    member.filter(|m| !m.is_erased()).ok_or_else(no_member)
}

/// The same request again gets the first answer; another request under the same key is a 409.
pub(crate) fn replay(
    stored_fingerprint: &str,
    fingerprint: &str,
    answer: Answer,
    code: &'static str,
    what: &str,
) -> Result<Answer, ApiError> {
    if stored_fingerprint == fingerprint {
        Ok(answer)
    } else {
        Err(ApiError::conflict(code, format!("{what} was already recorded with a different body")))
    }
}

pub(crate) fn contended() -> ApiError {
    StoreError::Contended.into()
}

// ---------------------------------------------------------------------------------------
// Purchases

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Purchased<'a> {
    order_id: &'a str,
    points_earned: i64,
    /// The day the earned points leave the return window and can be spent.
    available_on: NaiveDate,
    points: i64,
    tier: loyalty::TierCode,
    tier_changed: bool,
}

pub async fn purchase(app: &App, id: &MemberId, req: PurchaseRequest) -> Result<Answer, ApiError> {
    let (store, rules) = (&app.env.store, &*app.env.rules);
    http::id_param(&req.order_id, "orderId", "invalid_order_id")?;
    points::validate_purchase(&req, rules, app.env.clock.now()).map_err(refused)?;
    let fingerprint = http::fingerprint(&req);
    let (order_sk, checkout_sk) = (keys::order_sk(&req.order_id), keys::checkout_sk(&req.order_id));
    let (answer, points) = store
        .change_member(async || {
        let now = app.env.clock.now();
        let today = program_date(rules.time_zone, now);
        let mut read = store.points_read(id.as_str(), &[order_sk.clone(), checkout_sk.clone()]).await?;
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
        let answer = Answer::created(&Purchased { order_id: &req.order_id, points_earned: p.points, available_on: p.release_on, points: member.wallet.balance.0, tier: member.tier, tier_changed: p.tier_change.is_some() })?;
        let day = program_date(rules.time_zone, req.occurred_at).min(today);
        let mut order = OrderRecord::purchase(&req, p.points, day, fingerprint.clone(), answer.body.clone());
        order.recorded_at = Some(now);
        let (side, rewarded) = purchase_side_writes(app, id, &member, &p, today, now).await?;
        order.referral_to = rewarded;
        let mut writes = store.member_change(&member, read_version, entries, rules, now)?;
        writes.push(store.put(&OrderItem::new(id.as_str(), order), Some(Cond::absent()))?);
        writes.extend(side);
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
    /// Coupons given back (a full refund, while they are still valid).
    coupons_returned: &'a [String],
    points: i64,
    /// The tier after the refund: spend it was reached with may be gone.
    tier: loyalty::TierCode,
    tier_changed: bool,
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
        let answer = Answer::created(&Refunded {
            order_id: &req.order_id,
            refund_id: &req.refund_id,
            amount: req.amount,
            refunded_total: order.order.refunded,
            points_clawed_back: done.clawed_back,
            pending_cancelled: done.pending_cancelled,
            points_returned: done.points_returned,
            coupons_returned: &done.coupons_returned,
            points: member.wallet.balance.0,
            tier: member.tier,
            tier_changed: done.tier_change.is_some(),
        })?;
        order.order.refunds.push(RefundRecord { refund_id: req.refund_id.clone(), amount: req.amount, clawed_back: done.clawed_back, fingerprint: fingerprint.clone(), answer: answer.body.clone() });
        let mut writes = store.member_change(&member, read_version, entries, rules, now)?;
        // The order only ever changes together with its member, whose version is checked.
        writes.push(store.put(&order, Some(Cond::present()))?);
        writes.push(store.put(&Receipt::new(id.as_str(), keys::REFUND_SCOPE, &req.refund_id, fingerprint.clone(), answer.status, answer.body.clone(), now), Some(Cond::absent()))?);
        for code in &done.coupons_returned {
            writes.push(store.return_coupon_write(id.as_str(), code, &req.order_id)?);
        }
        if let Some(change) = done.tier_change.clone() {
            tracing::info!(member_id = %id, from = %change.from, to = %change.to, "tier re-decided by a refund");
            writes.push(store.put(&TierChangeItem::new(id.as_str(), change), None)?);
        }
        if done.full {
            writes.extend(cancel_referral_writes(app, &order.order, id, today, now).await?);
        }
        Ok(Attempt::Commit(writes, (answer, Some((done.clawed_back, done.points_returned)))))
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
            loyalty::limits::count_member_write(&mut member, rules, now)?;
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

// ---------------------------------------------------------------------------------------
// Ledger

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerView {
    pub entries: Vec<LedgerEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

async fn ledger(app: &App, req: &Request, id: &str) -> Result<LedgerView, ApiError> {
    let id = member_param(id)?;
    app.env.caller(req).require_member(&id)?;
    let limit = match http::query_param(req, "limit") {
        None => DEFAULT_PAGE,
        Some(l) => {
            l.parse::<i32>().ok().filter(|l| (1..=MAX_PAGE).contains(l)).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                )
            })?
        }
    };
    let after = http::query_param(req, "cursor").map(|c| decode_cursor(&c)).transpose()?;
    let page = app.env.store.ledger_page(id.as_str(), after.as_deref(), limit).await?;
    // Every member's ledger starts with the welcome entry: an empty first page means no member,
    // and saying so costs no second read.
    if after.is_none() && page.entries.is_empty() {
        return Err(ApiError::not_found("member_not_found", "no such member"));
    }
    Ok(LedgerView { entries: page.entries, next_cursor: page.next.as_deref().map(encode_cursor) })
}

/// The cursor is the last sort key seen, hex-encoded: opaque to clients, checked on return.
pub fn encode_cursor(sk: &str) -> String {
    sk.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_cursor(c: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "cursor is not one this API handed out; start again without it",
        )
    };
    if c.is_empty() || c.len() > 1024 || !c.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..c.len())
        .step_by(2)
        .map(|i| c.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).ok().filter(|s| s.starts_with(keys::LEDGER_PREFIX)).ok_or_else(bad)
}

// ---------------------------------------------------------------------------------------
// Expiry sweep

/// The sweep stops when less than this is left of the invocation; the rest stays due.
pub const SWEEP_MARGIN: Duration = Duration::from_secs(10);
const SWEEP_PARALLEL: usize = 8;
/// The sweep's time when the invocation carries no usable deadline (local emulators).
const LOCAL_SWEEP_BUDGET: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub members: u64,
    pub points_expired: i64,
    /// Lots whose coming expiry was told (one notice item each).
    pub notices: u64,
    pub failed: u64,
    /// False when the sweep stopped for time; the next run continues.
    pub complete: bool,
}

pub async fn handle_schedule(
    app: &App,
    event: EventBridgeEvent<Value>,
    deadline: SystemTime,
) -> Result<Value, lambda_runtime::Error> {
    match event.detail.get("job").and_then(Value::as_str) {
        Some("expiry-sweep") => {
            let now = loyalty::runtime::job_time(&event, &app.env.clock);
            // Lambda always gives a deadline ahead of the start; local emulators may not, and
            // then the sweep gets a fixed budget rather than stopping before it starts.
            let started = SystemTime::now();
            let deadline = if deadline > started { deadline } else { started + LOCAL_SWEEP_BUDGET };
            let remaining_ms = deadline.duration_since(started).map(|d| d.as_millis()).unwrap_or(0);
            tracing::info!(%now, remaining_ms, "expiry sweep starting");
            let report = expiry_sweep(app, now, deadline).await?;
            tracing::info!(
                members = report.members,
                points = report.points_expired,
                notices = report.notices,
                failed = report.failed,
                complete = report.complete,
                "expiry sweep"
            );
            Ok(json!(report))
        }
        other => Err(format!("unknown job {other:?}: this function runs expiry-sweep").into()),
    }
}

pub async fn expiry_sweep(
    app: &App,
    now: DateTime<Utc>,
    deadline: SystemTime,
) -> Result<SweepReport, StoreError> {
    let today = program_date(app.env.rules.time_zone, now);
    // Members whose first expiry is within the notice horizon are read too (ByExpiry keys the
    // earlier of the first expiry and the first release), so a lot is told before it goes.
    let horizon = today + chrono::Duration::days(app.env.rules.points.expiry_notice_days as i64);
    let mut report = SweepReport::default();
    let time_left =
        || deadline.duration_since(SystemTime::now()).unwrap_or_default() > SWEEP_MARGIN;
    for shard in 0..keys::SHARDS {
        let mut start = None;
        loop {
            if !time_left() {
                return Ok(report);
            }
            let (ids, next) = app.env.store.expiry_due(shard, horizon, start).await?;
            let results: Vec<_> = futures::stream::iter(ids)
                .map(|id| async move { expire_member(app, &id, today, now).await })
                .buffer_unordered(SWEEP_PARALLEL)
                .collect()
                .await;
            for r in results {
                match r {
                    Ok(swept) => {
                        report.members += 1;
                        report.points_expired += swept.expired;
                        report.notices += swept.notices;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "expiring a member failed; it stays due");
                        report.failed += 1;
                    }
                }
            }
            start = next;
            if start.is_none() {
                break;
            }
        }
    }
    report.complete = true;
    Ok(report)
}

/// What the sweep did to one member.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub expired: i64,
    pub notices: u64,
}

/// Releases one member's pending points whose window ended, expires their due lots and tells
/// the lots expiring within the notice horizon (each once: a notice item that must not exist
/// yet), in one transaction: the member's write is versioned, and a notice another sweep
/// wrote first fails it too, so the retry reads both again.
pub async fn expire_member(
    app: &App,
    id: &str,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Swept, StoreError> {
    let (store, rules) = (&app.env.store, &*app.env.rules);
    store
        .change_member(async || {
            let Some((mut member, noticed)) = store.member_for_sweep(id).await? else {
                return Ok(Attempt::Answer(Swept::default()));
            };
            let read_version = member.version;
            member.version += 1;
            let entries = points::settle(&mut member, rules, today, now);
            let notices = points::expiry_notices(&member, rules, today, &noticed);
            if entries.is_empty() && notices.is_empty() {
                return Ok(Attempt::Answer(Swept::default()));
            }
            let expired = entries
                .iter()
                .filter(|e| e.kind == loyalty::ledger::EntryKind::Expiry)
                .map(|e| -e.points.0)
                .sum();
            let mut writes = if entries.is_empty() {
                Vec::new()
            } else {
                store.member_change(&member, read_version, entries, rules, now)?
            };
            for n in &notices {
                writes.push(store.put(&ExpiryNoticeItem::new(id, *n, now), Some(Cond::absent()))?);
            }
            Ok(Attempt::Commit(writes, Swept { expired, notices: notices.len() as u64 }))
        })
        .await
}
