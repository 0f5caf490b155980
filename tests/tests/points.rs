//! purchase-points through the real handlers against DynamoDB Local: purchases, refunds,
//! redemptions, activities, the ledger, order events and the expiry sweep.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use loyalty::app::Clock;
use loyalty::ledger::EntryKind;
use loyalty::store::keys;
use loyalty::store::points::OrderItem;
use loyalty::Rules;
use loyalty_tests::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// A Thursday that is not a member day, noon in Shanghai.
const NOW: &str = "2026-11-20T04:00:00Z";

struct T {
    points: purchase_points::App,
    signup: signup::App,
    h: Harness,
}

async fn setup(clock: Clock) -> T {
    // Points may pay a whole order here, so that spending (`T::redeem`) earns nothing back;
    // and no return window, so earned points are available at once (the window has its own
    // tests in return_window.rs).
    let rules =
        Rules::from_overrides(r#"{"returnWindowDays":0,"checkout":{"maxPointsPercent":100}}"#)
            .unwrap();
    let h = harness_with(rules, clock).await;
    T { points: h.points_app(), signup: signup_on(&h.deps), h }
}

async fn fixed() -> T {
    setup(Clock::Fixed(at(NOW))).await
}

fn shared(start: &str) -> (Arc<Mutex<DateTime<Utc>>>, Clock) {
    let c = Arc::new(Mutex::new(at(start)));
    (c.clone(), Clock::Shared(c))
}

impl T {
    /// A new member (via the signup handler): 100 welcome points.
    async fn member(&self) -> String {
        self.member_referred(None).await.0
    }

    async fn member_referred(&self, code: Option<&str>) -> (String, Value) {
        let id = unique("pm");
        let mut body =
            json!({"email": format!("{}@example.com", unique("e").to_lowercase()), "name": "Test"});
        if let Some(c) = code {
            body["referralCode"] = json!(c);
        }
        let (s, b, _) = answer(
            signup::handle(
                &self.signup,
                request("POST", "/members", Some(&body.to_string()), As::Member(id.clone())),
            )
            .await,
        );
        assert_eq!(s, 201, "{b}");
        (id, b)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        who: As,
        headers: &[(&str, &str)],
    ) -> (u16, Value, String) {
        let text = body.map(|b| b.to_string());
        self.call_raw(method, path, text.as_deref(), who, headers).await
    }

    async fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        who: As,
        headers: &[(&str, &str)],
    ) -> (u16, Value, String) {
        answer(
            purchase_points::handle(
                &self.points,
                request_with_headers(method, path, body, who, headers),
            )
            .await,
        )
    }

    /// Purchases and refunds come from the order system; activities from the member.
    async fn post(&self, id: &str, route: &str, body: Value) -> (u16, Value, String) {
        match route {
            "purchases" | "refunds" => {
                self.call(
                    "POST",
                    &format!("/internal/members/{id}/{route}"),
                    Some(body),
                    As::OrderSystem,
                    &[],
                )
                .await
            }
            _ => {
                self.call(
                    "POST",
                    &format!("/members/{id}/{route}"),
                    Some(body),
                    As::Member(id.into()),
                    &[],
                )
                .await
            }
        }
    }

    async fn buy_at(
        &self,
        id: &str,
        order: &str,
        fen: i64,
        occurred: &str,
    ) -> (u16, Value, String) {
        self.post(id, "purchases", json!({"orderId": order, "amount": fen, "currency": "CNY", "channel": "online", "occurredAt": occurred})).await
    }

    async fn buy(&self, id: &str, order: &str, fen: i64) -> (u16, Value, String) {
        let occurred = (self.h.deps.clock.now() - Duration::minutes(5)).to_rfc3339();
        self.buy_at(id, order, fen, &occurred).await
    }

    /// Spends `points` through checkout: an order of `points` fen wholly paid by points (so it
    /// earns nothing), quoted and confirmed. Answers the refusal, or the confirm.
    async fn redeem(&self, id: &str, points: i64, order: &str) -> (u16, Value, String) {
        let quote = json!({"orderId": order, "amount": points, "currency": "CNY", "channel": "online", "points": points});
        let (s, b, ct) = self
            .call(
                "POST",
                &format!("/internal/members/{id}/checkouts"),
                Some(quote),
                As::OrderSystem,
                &[],
            )
            .await;
        if s != 201 {
            return (s, b, ct);
        }
        self.call(
            "POST",
            &format!("/internal/members/{id}/checkouts/{order}/confirm"),
            None,
            As::OrderSystem,
            &[],
        )
        .await
    }

    async fn balance(&self, id: &str) -> i64 {
        self.h.deps.store.member(id).await.unwrap().unwrap().wallet.balance.0
    }

    async fn ledger_sum(&self, id: &str) -> i64 {
        self.h.deps.store.ledger_all(id).await.unwrap().iter().map(|e| e.points.0).sum()
    }

    /// The invariant every test ends on.
    async fn assert_balanced(&self, id: &str, want: i64) {
        let m = self.h.deps.store.member(id).await.unwrap().unwrap();
        assert!(m.wallet.is_consistent(), "{:?}", m.wallet);
        assert_eq!(m.wallet.balance.0, want, "balance");
        assert_eq!(self.ledger_sum(id).await, want, "sum of the ledger");
    }
}

#[tokio::test]
async fn a_purchase_earns_whole_cny_points_and_a_repeat_replays_the_first_answer() {
    let t = fixed().await;
    let id = t.member().await;
    let (s, b, ct) = t.buy(&id, "o-1", 12_399).await;
    assert_eq!((s, ct.as_str()), (201, "application/json"), "{b}");
    assert_eq!(
        b,
        json!({"orderId": "o-1", "pointsEarned": 123, "rebateEarned": 0, "availableOn": "2026-11-20", "points": 223, "tier": "regular", "tierChanged": false})
    );
    let again = t.buy(&id, "o-1", 12_399).await;
    assert_eq!((again.0, &again.1), (201, &b), "the same order again gets the first answer");
    let (s, b2, ct) = t.buy(&id, "o-1", 12_400).await;
    assert_problem(s, &b2, &ct, 409, "order_conflict");
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!(
        (m.order_count, m.lifetime_spend.0, m.rolling_spend(m.joined_at.date_naive(), 365).0),
        (1, 12_399, 12_399)
    );
    assert_eq!(m.last_purchase_at, Some(at(NOW) - Duration::minutes(5)));
    t.assert_balanced(&id, 223).await;
}

#[tokio::test]
async fn a_purchase_on_member_day_earns_double_in_the_program_time_zone() {
    // 2026-11-17T16:30Z is 00:30 on the 18th in Shanghai.
    let t = setup(Clock::Fixed(at("2026-11-17T17:00:00Z"))).await;
    let id = t.member().await;
    let (s, b, _) = t.buy_at(&id, "md-1", 100_50, "2026-11-17T16:30:00Z").await;
    assert_eq!((s, b["pointsEarned"].as_i64()), (201, Some(200)), "{b}");
    let (_, b, _) = t.buy_at(&id, "md-2", 100_00, "2026-11-17T15:59:00Z").await;
    assert_eq!(b["pointsEarned"], 100, "23:59 on the 17th in Shanghai is not member day");
    t.assert_balanced(&id, 400).await;
}

#[tokio::test]
async fn a_warm_purchase_makes_one_read_and_one_write_request() {
    let t = fixed().await;
    let id = t.member().await;
    assert_eq!(t.buy(&id, "warm-0", 1_000).await.0, 201);
    t.h.counter.reset();
    assert_eq!(t.buy(&id, "warm-1", 1_000).await.0, 201);
    let ops = t.h.counter.snapshot();
    assert_eq!((t.h.counter.reads(), t.h.counter.writes()), (1, 1), "{ops:?}");
    assert_eq!(
        (ops.get("BatchGetItem"), ops.get("TransactWriteItems")),
        (Some(&1), Some(&1)),
        "{ops:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_concurrent_purchases_all_count_and_the_ledger_adds_up() {
    let t = fixed().await;
    let id = t.member().await;
    let results = join_all((0..100).map(|i| {
        let (t, id) = (&t, &id);
        // 1..10 CNY and some fen: 600 CNY in all, below silver, so every purchase earns 1×.
        async move { t.buy(id, &format!("c-{i}"), (i % 10 + 1) * 100 + 50).await }
    }))
    .await;
    for (s, b, _) in &results {
        assert_eq!(*s, 201, "{b}");
    }
    let expected: i64 = (0..100).map(|i| i % 10 + 1).sum();
    t.assert_balanced(&id, 100 + expected).await;
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!(m.order_count, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_order_posted_twenty_times_concurrently_earns_once() {
    let t = fixed().await;
    let id = t.member().await;
    let results = join_all((0..20).map(|_| t.buy(&id, "same-order", 50_000))).await;
    for (s, b, _) in &results {
        assert_eq!((*s, b), (201, &results[0].1));
    }
    let purchases =
        t.h.deps
            .store
            .ledger_all(&id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EntryKind::Purchase)
            .count();
    assert_eq!(purchases, 1);
    t.assert_balanced(&id, 600).await;
}

#[tokio::test]
async fn redemptions_spend_the_oldest_lots_first() {
    let (clock, c) = shared("2026-10-01T04:00:00Z");
    let t = setup(c).await;
    let id = t.member().await;
    *clock.lock().unwrap() = at("2026-10-11T04:00:00Z");
    t.buy(&id, "fifo-1", 400_00).await;
    assert_eq!(t.redeem(&id, 300, "fifo").await.0, 200);
    let lots = t.h.deps.store.member(&id).await.unwrap().unwrap().wallet.lots;
    let lots: Vec<_> = lots.iter().map(|l| (l.earned_on.to_string(), l.points)).collect();
    assert_eq!(lots, vec![("2026-10-11".to_string(), 200)], "the welcome lot of 10-01 went first");
    t.assert_balanced(&id, 200).await;
}

#[tokio::test]
async fn partial_refunds_add_up_and_never_claw_back_more_than_earned() {
    let t = fixed().await;
    let id = t.member().await;
    assert_eq!(t.buy(&id, "rf-1", 10_00).await.1["pointsEarned"], 10);
    let refund =
        |rid: &str, amount: i64| json!({"orderId": "rf-1", "refundId": rid, "amount": amount});
    let mut clawed = Vec::new();
    for (rid, amount) in [("a", 333), ("b", 333), ("c", 334)] {
        let (s, b, _) = t.post(&id, "refunds", refund(rid, amount)).await;
        assert_eq!(s, 201, "{b}");
        clawed.push(b["pointsClawedBack"].as_i64().unwrap());
    }
    assert_eq!(clawed, vec![3, 3, 4]);
    let (s, b, ct) = t.post(&id, "refunds", refund("d", 1)).await;
    assert_problem(s, &b, &ct, 422, "refund_exceeds_paid");
    let first = t.post(&id, "refunds", refund("a", 333)).await;
    assert_eq!(
        (first.0, first.1["pointsClawedBack"].as_i64()),
        (201, Some(3)),
        "the same refundId replays"
    );
    let (s, b, ct) = t.post(&id, "refunds", refund("a", 300)).await;
    assert_problem(s, &b, &ct, 409, "refund_conflict");
    let (s, b, ct) =
        t.post(&id, "refunds", json!({"orderId": "nope", "refundId": "z", "amount": 1})).await;
    assert_problem(s, &b, &ct, 404, "order_not_found");
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!(
        (m.lifetime_spend.0, m.spend_days.len()),
        (0, 0),
        "the refunded spend is gone from the rolling window"
    );
    let order: OrderItem =
        t.h.deps.store.get(&keys::member_pk(&id), &keys::order_sk("rf-1")).await.unwrap().unwrap();
    assert_eq!(
        (order.order.refunded.0, order.order.clawed_back, order.order.refunds.len()),
        (1000, 10, 3)
    );
    t.assert_balanced(&id, 100).await;
}

#[tokio::test]
async fn a_refund_after_spending_leaves_a_points_debt() {
    let t = fixed().await;
    let id = t.member().await;
    t.buy(&id, "debt-1", 500_00).await;
    assert_eq!(t.redeem(&id, 600, "spend-all").await.0, 200);
    let (s, b, _) = t
        .post(&id, "refunds", json!({"orderId": "debt-1", "refundId": "x", "amount": 500_00}))
        .await;
    assert_eq!((s, b["points"].as_i64()), (201, Some(-500)), "{b}");
    let (s, b, ct) = t.redeem(&id, 100, "in-debt").await;
    assert_problem(s, &b, &ct, 422, "insufficient_points");
    t.assert_balanced(&id, -500).await;
}

#[tokio::test]
async fn crossing_a_threshold_upgrades_at_once_and_records_why() {
    let t = fixed().await;
    let id = t.member().await;
    let (s, b, _) = t.call("POST", &format!("/internal/members/{id}/purchases"), Some(json!({"orderId": "up-1", "amount": 2_000_00, "currency": "CNY", "channel": "store", "occurredAt": "2026-11-20T03:00:00Z"})), As::OrderSystem, &[]).await;
    assert_eq!(
        (s, &b),
        (
            201,
            &json!({"orderId": "up-1", "pointsEarned": 2000, "rebateEarned": 0, "availableOn": "2026-11-20", "points": 2100, "tier": "silver", "tierChanged": true})
        )
    );
    let history = t.h.deps.store.tier_history(&id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].from, history[0].to),
        (loyalty::TierCode::Regular, loyalty::TierCode::Silver)
    );
    assert_eq!(history[0].reason, "rolling spend 2000.00 CNY reached silver");
    let (_, b, _) = t.buy(&id, "up-2", 100_00).await;
    assert_eq!(
        (b["pointsEarned"].as_i64(), b["tierChanged"].as_bool()),
        (Some(120), Some(false)),
        "silver earns 1.2×"
    );
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!((m.tier, m.tier_since), (loyalty::TierCode::Silver, at(NOW)));
}

#[tokio::test]
async fn the_referrer_earns_200_once_on_the_first_purchase() {
    let t = fixed().await;
    let (referrer, rb) = t.member_referred(None).await;
    let (newbie, _) = t.member_referred(rb["referralCode"].as_str()).await;
    assert_eq!(t.balance(&referrer).await, 100, "nothing at signup");
    assert_eq!(t.buy(&newbie, "ref-1", 10_00).await.0, 201);
    t.assert_balanced(&referrer, 300).await;
    assert_eq!(t.buy(&newbie, "ref-2", 10_00).await.0, 201);
    assert_eq!(t.buy(&newbie, "ref-1", 10_00).await.0, 201, "a replay");
    t.assert_balanced(&referrer, 300).await;
    let ledger = t.h.deps.store.ledger_all(&referrer).await.unwrap();
    let referral: Vec<_> = ledger.iter().filter(|e| e.kind == EntryKind::Referral).collect();
    assert_eq!(referral.len(), 1);
    assert_eq!(
        (referral[0].points.0, referral[0].reference.as_deref()),
        (200, Some(newbie.as_str()))
    );
    t.assert_balanced(&newbie, 120).await;
}

#[tokio::test]
async fn activities_keep_their_daily_limits_and_say_why_they_refuse() {
    let (clock, c) = shared(NOW);
    let t = setup(c).await;
    let id = t.member().await;
    let act = |kind: &str, r: Option<&str>| {
        let mut b = json!({"type": kind});
        if let Some(r) = r {
            b["refId"] = json!(r);
        }
        b
    };
    let (s, b, _) = t.post(&id, "activities", act("checkin", None)).await;
    assert_eq!(
        (s, &b),
        (
            201,
            &json!({"type": "checkin", "pointsEarned": 5, "points": 105, "activityPointsToday": 5})
        )
    );
    let (s, b, ct) = t.post(&id, "activities", act("checkin", None)).await;
    assert_problem(s, &b, &ct, 422, "already_checked_in");
    let path = format!("/members/{id}/activities");
    let keyed = || {
        t.call(
            "POST",
            &path,
            Some(act("share", None)),
            As::Member(id.clone()),
            &[("idempotency-key", "sh-0")],
        )
    };
    let first = keyed().await;
    assert_eq!((first.0, first.1["pointsEarned"].as_i64()), (201, Some(2)));
    assert_eq!(keyed().await.1, first.1, "a share retried under its Idempotency-Key replays");
    for _ in 0..2 {
        assert_eq!(t.post(&id, "activities", act("share", None)).await.0, 201);
    }
    let (s, b, ct) = t.post(&id, "activities", act("share", None)).await;
    assert_problem(s, &b, &ct, 422, "share_limit_reached");
    let (s, b, ct) = t
        .call(
            "POST",
            &format!("/members/{id}/activities"),
            Some(act("share", None)),
            As::Member(id.clone()),
            &[("idempotency-key", "sh-1")],
        )
        .await;
    assert_problem(s, &b, &ct, 422, "share_limit_reached");
    let (s, b, ct) = t.post(&id, "activities", act("review", Some("not-mine"))).await;
    assert_problem(s, &b, &ct, 422, "unknown_order");
    for o in ["rv-1", "rv-2", "rv-3", "rv-4"] {
        t.buy(&id, o, 1_00).await;
    }
    assert_eq!(
        t.post(&id, "activities", act("review", Some("rv-1"))).await.1["activityPointsToday"],
        21
    );
    let (s, b, ct) = t.post(&id, "activities", act("review", Some("rv-1"))).await;
    assert_problem(s, &b, &ct, 422, "already_reviewed");
    assert_eq!(t.post(&id, "activities", act("review", Some("rv-2"))).await.0, 201);
    assert_eq!(
        t.post(&id, "activities", act("review", Some("rv-3"))).await.1["activityPointsToday"],
        41
    );
    let (s, b, ct) = t.post(&id, "activities", act("review", Some("rv-4"))).await;
    assert_problem(s, &b, &ct, 422, "daily_activity_cap_reached");
    // The next program day starts afresh.
    *clock.lock().unwrap() = at(NOW) + Duration::days(1);
    assert_eq!(t.post(&id, "activities", act("checkin", None)).await.0, 201);
    assert_eq!(
        t.post(&id, "activities", act("review", Some("rv-4"))).await.1["activityPointsToday"],
        15
    );
    t.assert_balanced(&id, 100 + 4 + 5 + 6 + 30 + 5 + 10).await;
}

#[tokio::test]
async fn the_ledger_pages_newest_first_with_an_opaque_cursor() {
    let (clock, c) = shared(NOW);
    let t = setup(c).await;
    let id = t.member().await;
    for i in 1..=5 {
        *clock.lock().unwrap() = at(NOW) + Duration::seconds(i);
        t.buy(&id, &format!("lg-{i}"), i * 100).await;
    }
    let get = |q: String| {
        let (path, who) = (format!("/members/{id}/ledger{q}"), As::Member(id.clone()));
        let t = &t;
        async move { t.call("GET", &path, None, who, &[]).await }
    };
    let (s, p1, _) = get("?limit=4".into()).await;
    assert_eq!(s, 200, "{p1}");
    let refs: Vec<_> =
        p1["entries"].as_array().unwrap().iter().map(|e| e["reference"].clone()).collect();
    assert_eq!(refs, vec![json!("lg-5"), json!("lg-4"), json!("lg-3"), json!("lg-2")]);
    let e = &p1["entries"][0];
    assert_eq!(
        (e["kind"].as_str(), e["points"].as_i64(), e["balanceAfter"].as_i64()),
        (Some("purchase"), Some(5), Some(115))
    );
    assert!(e["reason"].is_string() && e["at"].is_string());
    let cursor = p1["nextCursor"].as_str().unwrap().to_string();
    let (s, p2, _) = get(format!("?limit=4&cursor={cursor}")).await;
    assert_eq!(s, 200);
    let kinds: Vec<_> =
        p2["entries"].as_array().unwrap().iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(kinds, vec![json!("purchase"), json!("welcome")]);
    assert!(p2.get("nextCursor").is_none(), "{p2}");
    assert_eq!(
        get(String::new()).await.1["entries"].as_array().unwrap().len(),
        6,
        "default page of 20"
    );
}

#[tokio::test]
async fn the_expiry_sweep_records_expiries_and_spending_never_uses_expired_points() {
    let (clock, c) = shared("2025-11-01T04:00:00Z");
    let t = setup(c).await;
    let id = t.member().await;
    t.buy(&id, "ex-1", 50_00).await;
    *clock.lock().unwrap() = at("2025-12-01T04:00:00Z");
    t.buy(&id, "ex-2", 30_00).await;
    // The profile warns of them in the last 30 days.
    *clock.lock().unwrap() = at("2026-10-15T04:00:00Z");
    let (s, p, _) = answer(
        signup::handle(
            &t.signup,
            request("GET", &format!("/members/{id}"), None, As::Member(id.clone())),
        )
        .await,
    );
    assert_eq!(
        (s, &p["expiringSoon"]),
        (200, &json!([{"points": 150, "expiresOn": "2026-11-01"}])),
        "{p}"
    );
    // 2025-11-01 lots expire on 2026-11-01; run the sweep on 2026-11-05 (fixed by detail.now).
    let sweep_now = "2026-11-05T00:00:00Z";
    *clock.lock().unwrap() = at(sweep_now);
    let event = serde_json::from_value(json!({"detail-type": "Scheduled Event", "source": "loyalty.schedule", "detail": {"job": "expiry-sweep", "now": sweep_now}})).unwrap();
    let deadline = SystemTime::now() + std::time::Duration::from_secs(120);
    let report = purchase_points::handle_schedule(&t.points, event, deadline).await.unwrap();
    assert_eq!(report["complete"], true, "{report}");
    assert!(report["members"].as_u64().unwrap() >= 1);
    t.assert_balanced(&id, 30).await;
    let ledger = t.h.deps.store.ledger_all(&id).await.unwrap();
    assert_eq!(ledger[0].kind, EntryKind::Expiry, "newest first");
    assert_eq!(ledger[0].points.0, -150);
    // Again the same day: nothing more is due for this member.
    purchase_points::expiry_sweep(&t.points, at(sweep_now), deadline).await.unwrap();
    assert_eq!(t.h.deps.store.ledger_all(&id).await.unwrap().len(), ledger.len());
    let (s, b, ct) = t.redeem(&id, 100, "after-expiry").await;
    assert_problem(s, &b, &ct, 422, "insufficient_points");
    // A sweep that is out of time does nothing and says so.
    let late =
        purchase_points::expiry_sweep(&t.points, at(sweep_now), SystemTime::now()).await.unwrap();
    assert!(!late.complete);
}

#[tokio::test]
async fn operations_expire_due_points_first_in_the_same_transaction() {
    let (clock, c) = shared("2025-10-01T04:00:00Z");
    let t = setup(c).await;
    let id = t.member().await;
    *clock.lock().unwrap() = at("2026-10-02T04:00:00Z");
    let (s, b, _) = t.buy(&id, "late-1", 20_00).await;
    assert_eq!(
        (s, b["points"].as_i64()),
        (201, Some(20)),
        "the welcome lot expired before the purchase: {b}"
    );
    let kinds: Vec<_> =
        t.h.deps.store.ledger_all(&id).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EntryKind::Purchase, EntryKind::Expiry, EntryKind::Welcome]);
    t.assert_balanced(&id, 20).await;
}

fn sqs(records: &[(&str, String)]) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records
        .iter()
        .map(|(id, body)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(id.to_string());
            m.body = Some(body.clone());
            m.event_source = Some("aws:sqs".into());
            m
        })
        .collect();
    e
}

#[tokio::test]
async fn an_order_event_batch_reports_only_the_bad_message() {
    let t = fixed().await;
    let id = t.member().await;
    let purchase = json!({"type": "purchase", "memberId": id, "orderId": "sq-1", "amount": 300_00, "currency": "CNY", "channel": "online", "occurredAt": "2026-11-20T03:00:00Z"}).to_string();
    let refund = json!({"type": "refund", "memberId": id, "orderId": "sq-1", "refundId": "sq-r1", "amount": 100_00}).to_string();
    let batch = sqs(&[("m1", purchase.clone()), ("m2", "{not json".into()), ("m3", refund), ("m4", purchase), ("m5", json!({"type": "purchase", "memberId": id, "orderId": "sq-2", "amount": -1, "currency": "CNY", "channel": "online", "occurredAt": "2026-11-20T03:00:00Z"}).to_string())]);
    let out = purchase_points::handle_sqs(&t.points, batch).await;
    let failed: Vec<_> =
        out.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(
        failed,
        vec!["m2", "m5"],
        "bad JSON and a refused order fail; the replayed duplicate (m4) succeeds"
    );
    t.assert_balanced(&id, 100 + 300 - 100).await;
}

/// method, path, body, caller, headers, expected status and code.
type Case<'a> = (&'a str, String, Option<String>, As, Vec<(&'a str, &'a str)>, u16, &'a str);

#[tokio::test]
async fn bad_inputs_are_4xx_problems_and_write_nothing() {
    let t = fixed().await;
    let id = t.member().await;
    t.buy(&id, "bad-setup", 10_00).await;
    let before = t.h.deps.store.member(&id).await.unwrap().unwrap();
    let entries = t.h.deps.store.ledger_all(&id).await.unwrap().len();
    let p = |o: Value| {
        let mut b = json!({"orderId": "bad-1", "amount": 1000, "currency": "CNY", "channel": "online", "occurredAt": "2026-11-20T03:00:00Z"});
        for (k, v) in o.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b.to_string()
    };
    let me = || As::Member(id.clone());
    let os = || As::OrderSystem;
    let purchases = format!("/internal/members/{id}/purchases");
    let refunds = format!("/internal/members/{id}/refunds");
    let activities = format!("/members/{id}/activities");
    let ledger = format!("/members/{id}/ledger");
    let big = "x".repeat(20_000);
    let cases: Vec<Case> = vec![
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"amount": 0}))),
            os(),
            vec![],
            422,
            "invalid_amount",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"amount": -100}))),
            os(),
            vec![],
            422,
            "invalid_amount",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"amount": 100_000_001}))),
            os(),
            vec![],
            422,
            "amount_too_large",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"amount": 1e30}))),
            os(),
            vec![],
            400,
            "invalid_field",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"amount": "99999999999999999999999"}))),
            os(),
            vec![],
            400,
            "invalid_field",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"amount": 12.5}))),
            os(),
            vec![],
            400,
            "invalid_field",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"currency": "USD"}))),
            os(),
            vec![],
            422,
            "unsupported_currency",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"occurredAt": "2026-11-20T05:00:00Z"}))),
            os(),
            vec![],
            422,
            "occurred_at_in_future",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"occurredAt": "2024-11-20T05:00:00Z"}))),
            os(),
            vec![],
            422,
            "occurred_at_too_old",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"occurredAt": "yesterday"}))),
            os(),
            vec![],
            400,
            "invalid_field",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"channel": "phone"}))),
            os(),
            vec![],
            400,
            "invalid_field",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"points": 5}))),
            os(),
            vec![],
            400,
            "unknown_field",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"orderId": null}))),
            os(),
            vec![],
            400,
            "missing_field",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"orderId": "a b#c"}))),
            os(),
            vec![],
            400,
            "invalid_order_id",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"orderId": "x".repeat(129)}))),
            os(),
            vec![],
            400,
            "invalid_order_id",
        ),
        (
            "POST",
            purchases.clone(),
            Some("{\"orderId\":".into()),
            os(),
            vec![],
            400,
            "malformed_json",
        ),
        ("POST", purchases.clone(), Some("  ".into()), os(), vec![], 400, "body_required"),
        (
            "POST",
            purchases.clone(),
            Some(format!("{{\"orderId\":\"{big}\"}}")),
            os(),
            vec![],
            413,
            "body_too_large",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({}))),
            os(),
            vec![("content-type", "text/plain")],
            415,
            "unsupported_media_type",
        ),
        ("POST", purchases.clone(), Some(p(json!({}))), me(), vec![], 403, "forbidden"),
        ("POST", purchases.clone(), Some(p(json!({}))), As::Operator, vec![], 403, "forbidden"),
        ("POST", purchases.clone(), Some(p(json!({}))), As::OtherIam, vec![], 403, "forbidden"),
        ("POST", purchases.clone(), Some(p(json!({}))), As::Nobody, vec![], 401, "unauthenticated"),
        (
            "POST",
            "/internal/members/bad%20id/purchases".to_string(),
            Some(p(json!({}))),
            os(),
            vec![],
            400,
            "invalid_member_id",
        ),
        (
            "POST",
            purchases.clone(),
            Some(p(json!({"orderId": "bad-setup", "amount": 999}))),
            os(),
            vec![],
            409,
            "order_conflict",
        ),
        (
            "POST",
            refunds.clone(),
            Some(json!({"orderId": "bad-setup", "refundId": "r", "amount": 0}).to_string()),
            os(),
            vec![],
            422,
            "invalid_amount",
        ),
        (
            "POST",
            refunds.clone(),
            Some(json!({"orderId": "bad-setup", "refundId": "r", "amount": 1001}).to_string()),
            os(),
            vec![],
            422,
            "refund_exceeds_paid",
        ),
        (
            "POST",
            refunds.clone(),
            Some(json!({"orderId": "missing", "refundId": "r", "amount": 1}).to_string()),
            os(),
            vec![],
            404,
            "order_not_found",
        ),
        (
            "POST",
            refunds.clone(),
            Some(json!({"orderId": "bad-setup", "refundId": "r/1", "amount": 1}).to_string()),
            os(),
            vec![],
            400,
            "invalid_refund_id",
        ),
        (
            "POST",
            activities.clone(),
            Some(json!({"type": "like"}).to_string()),
            me(),
            vec![],
            400,
            "invalid_field",
        ),
        (
            "POST",
            activities.clone(),
            Some(json!({"type": "review"}).to_string()),
            me(),
            vec![],
            400,
            "ref_id_required",
        ),
        (
            "POST",
            activities.clone(),
            Some(json!({"type": "review", "refId": "nobody's"}).to_string()),
            me(),
            vec![],
            400,
            "invalid_ref_id",
        ),
        ("GET", format!("{ledger}?limit=0"), None, me(), vec![], 400, "invalid_limit"),
        ("GET", format!("{ledger}?limit=101"), None, me(), vec![], 400, "invalid_limit"),
        ("GET", format!("{ledger}?cursor=zz"), None, me(), vec![], 400, "invalid_cursor"),
        (
            "GET",
            format!(
                "{ledger}?cursor={}",
                purchase_points::encode_cursor(&loyalty::store::ledger::LedgerCursor {
                    sk: "#PROFILE".into(),
                    skip: 0
                })
            ),
            None,
            me(),
            vec![],
            400,
            "invalid_cursor",
        ),
        ("GET", purchases.clone(), None, os(), vec![], 405, "method_not_allowed"),
    ];
    assert!(cases.len() >= 20);
    for (method, path, body, who, headers, status, code) in cases {
        let (s, b, ct) = t.call_raw(method, &path, body.as_deref(), who, &headers).await;
        assert_problem(s, &b, &ct, status, code);
    }
    let after = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!(after, before, "nothing written");
    assert_eq!(t.h.deps.store.ledger_all(&id).await.unwrap().len(), entries);
    let none: Option<OrderItem> =
        t.h.deps.store.get(&keys::member_pk(&id), &keys::order_sk("bad-1")).await.unwrap();
    assert!(none.is_none());
}

#[test]
fn every_sample_event_is_recognised_as_its_trigger() {
    use loyalty::runtime::{classify, Trigger};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("purchase-points-") {
            continue;
        }
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let t = classify(v).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ok = match &t {
            Trigger::Sqs(e) => {
                name.contains("order-events")
                    && e.records
                        .iter()
                        .all(|r| serde_json::from_str::<Value>(r.body.as_deref().unwrap()).is_ok())
            }
            Trigger::Schedule(e) => {
                name.contains("expiry-sweep") && e.detail["job"] == "expiry-sweep"
            }
            Trigger::Http(_) => !name.contains("order-events") && !name.contains("expiry-sweep"),
            Trigger::Stream(_) => false,
        };
        assert!(ok, "{name}");
        seen += 1;
    }
    assert!(seen >= 11);
}
