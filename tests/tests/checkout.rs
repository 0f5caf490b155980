//! Checkout and the trust boundary, through the real handlers against the local stack:
//! members cannot create money facts by any route; the order system quotes and holds,
//! confirms, cancels and refunds; holds are exclusive under concurrency and expire by
//! themselves; order events that arrive before their order wait and are applied.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use loyalty::app::Clock;
use loyalty::coupon::{CouponTemplate, Offer};
use loyalty::ledger::EntryKind;
use loyalty::{Fen, Rules};
use loyalty_tests::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A Friday that is not a member day, noon in Shanghai.
const NOW: &str = "2026-11-20T04:00:00Z";

struct T {
    points: purchase_points::App,
    signup: signup::App,
    coupons: coupon_issue::App,
    clock: Arc<Mutex<DateTime<Utc>>>,
    h: Harness,
}

async fn setup() -> T {
    let clock = Arc::new(Mutex::new(at(NOW)));
    // No return window here: earned points are available at once (return_window.rs has the window).
    let h = harness_with(
        Rules::from_overrides(r#"{"returnWindowDays":0}"#).unwrap(),
        Clock::Shared(clock.clone()),
    )
    .await;
    T { points: h.points_app(), signup: signup_on(&h.deps), coupons: worker_on(&h.deps), clock, h }
}

fn template(offer: Offer, stackable: bool) -> CouponTemplate {
    CouponTemplate {
        title: "Test".into(),
        offer,
        valid_days: Some(7),
        valid_from: None,
        valid_until: None,
        tiers: vec![],
        per_member_limit: 1,
        stackable,
    }
}

fn amount_off(value: i64, min: i64) -> Offer {
    Offer::AmountOff { value: Fen(value), min_spend: Fen(min) }
}

impl T {
    fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    fn advance(&self, d: Duration) {
        *self.clock.lock().unwrap() += d;
    }

    /// A new member (100 welcome points, the welcome coupon); answers the id and the coupon code.
    async fn member(&self) -> (String, String) {
        let id = unique("co");
        let body = json!({"email": format!("{}@example.com", id.to_lowercase()), "name": "Test"})
            .to_string();
        let (s, b, _) = answer(
            signup::handle(
                &self.signup,
                request("POST", "/members", Some(&body), As::Member(id.clone())),
            )
            .await,
        );
        assert_eq!(s, 201, "{b}");
        (id, b["welcomeCoupon"]["code"].as_str().unwrap().to_string())
    }

    /// A member with exactly `points` points: the welcome points plus bought ones (2,000 CNY or
    /// more of purchases makes the member Silver).
    async fn member_with(&self, points: i64) -> (String, String) {
        let (id, code) = self.member().await;
        if points > 100 {
            let (s, b, _) = self.order_system("POST", &format!("/internal/members/{id}/purchases"), Some(json!({"orderId": unique("seed"), "amount": (points - 100) * 100, "currency": "CNY", "channel": "store", "occurredAt": self.now() - Duration::minutes(1)}))).await;
            assert_eq!(s, 201, "{b}");
        }
        (id, code)
    }

    async fn give(&self, member: &str, t: &CouponTemplate) -> String {
        let c = loyalty::coupon::issue(
            &code_key(),
            t,
            member,
            &unique("grant"),
            0,
            self.now() - Duration::hours(1),
        );
        self.h.deps.store.issue_coupon(&c, None, None).await.unwrap();
        c.code
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        who: As,
    ) -> (u16, Value, String) {
        let text = body.map(|b| b.to_string());
        answer(
            purchase_points::handle(&self.points, request(method, path, text.as_deref(), who))
                .await,
        )
    }

    async fn order_system(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, String) {
        self.call(method, path, body, As::OrderSystem).await
    }

    async fn quote(
        &self,
        id: &str,
        order: &str,
        amount: i64,
        codes: &[&str],
        points: i64,
    ) -> (u16, Value, String) {
        let body = json!({"orderId": order, "amount": amount, "currency": "CNY", "channel": "online", "couponCodes": codes, "points": points});
        self.order_system("POST", &format!("/internal/members/{id}/checkouts"), Some(body)).await
    }

    async fn confirm(&self, id: &str, order: &str) -> (u16, Value, String) {
        self.order_system(
            "POST",
            &format!("/internal/members/{id}/checkouts/{order}/confirm"),
            None,
        )
        .await
    }

    async fn cancel(&self, id: &str, order: &str) -> (u16, Value, String) {
        self.order_system("POST", &format!("/internal/members/{id}/checkouts/{order}/cancel"), None)
            .await
    }

    async fn refund(
        &self,
        id: &str,
        order: &str,
        refund: &str,
        amount: i64,
    ) -> (u16, Value, String) {
        self.order_system(
            "POST",
            &format!("/internal/members/{id}/refunds"),
            Some(json!({"orderId": order, "refundId": refund, "amount": amount})),
        )
        .await
    }

    async fn coupon_status(&self, id: &str, code: &str) -> String {
        let c = self.h.deps.store.coupon(id, code).await.unwrap().unwrap().coupon;
        format!("{:?}", c.status).to_lowercase()
    }

    /// `points == Σ ledger`, the wallet's own consistency, and the balance expected.
    async fn assert_balanced(&self, id: &str, want: i64) {
        let m = self.h.deps.store.member(id).await.unwrap().unwrap();
        assert!(m.wallet.is_consistent(), "{:?}", m.wallet);
        assert_eq!(m.wallet.balance.0, want, "balance");
        let sum: i64 =
            self.h.deps.store.ledger_all(id).await.unwrap().iter().map(|e| e.points.0).sum();
        assert_eq!(sum, want, "sum of the ledger");
    }
}

#[tokio::test]
async fn a_member_token_cannot_create_a_money_fact_by_any_route() {
    let t = setup().await;
    let (id, code) = t.member().await;
    let me = || As::Member(id.clone());
    let before = t.h.deps.store.member(&id).await.unwrap().unwrap();
    let purchase = json!({"orderId": "lie-1", "amount": 100_000_000, "currency": "CNY", "channel": "online", "occurredAt": "2026-11-18T03:00:00Z"});
    let refund = json!({"orderId": "lie-1", "refundId": "r", "amount": 1});
    let quote = json!({"orderId": "lie-2", "amount": 10_000, "currency": "CNY", "channel": "online", "couponCodes": [code], "points": 100});
    // The retired member routes are gone (404), the order system's refuse a member (403).
    let cases = [
        (
            "POST",
            format!("/members/{id}/purchases"),
            Some(purchase.clone()),
            404,
            "route_not_found",
        ),
        ("POST", format!("/members/{id}/refunds"), Some(refund.clone()), 404, "route_not_found"),
        (
            "POST",
            format!("/members/{id}/redemptions"),
            Some(json!({"points": 100})),
            404,
            "route_not_found",
        ),
        ("POST", format!("/internal/members/{id}/purchases"), Some(purchase), 403, "forbidden"),
        ("POST", format!("/internal/members/{id}/refunds"), Some(refund), 403, "forbidden"),
        ("POST", format!("/internal/members/{id}/checkouts"), Some(quote), 403, "forbidden"),
        ("POST", format!("/internal/members/{id}/checkouts/lie-2/confirm"), None, 403, "forbidden"),
        ("POST", format!("/internal/members/{id}/checkouts/lie-2/cancel"), None, 403, "forbidden"),
    ];
    for (method, path, body, status, code) in cases {
        let (s, b, ct) = t.call(method, &path, body, me()).await;
        assert_problem(s, &b, &ct, status, code);
    }
    let redeem = json!({"memberId": id, "orderId": "lie-3", "orderAmount": 10_000}).to_string();
    let (s, b, ct) = answer(
        coupon_issue::api::handle(
            &t.coupons,
            request("POST", &format!("/coupons/{code}/redeem"), Some(&redeem), me()),
        )
        .await,
    );
    assert_problem(s, &b, &ct, 404, "route_not_found");
    // A preview binds nothing and writes nothing.
    let (s, b, _) = t
        .call(
            "POST",
            &format!("/members/{id}/checkout-preview"),
            Some(json!({"amount": 10_000, "couponCodes": [code], "points": 100})),
            me(),
        )
        .await;
    assert_eq!((s, b["payable"].as_i64()), (200, Some(10_000 - 2_000 - 100)), "{b}");
    assert_eq!(t.h.deps.store.member(&id).await.unwrap().unwrap(), before, "nothing written");
    assert_eq!(t.coupon_status(&id, &code).await, "active");
    t.assert_balanced(&id, 100).await;
}

#[tokio::test]
async fn each_iam_caller_kind_is_refused_the_other_s_routes() {
    let t = setup().await;
    let (id, _) = t.member().await;
    let purchase = json!({"orderId": "op-1", "amount": 10_000, "currency": "CNY", "channel": "online", "occurredAt": t.now()});
    for who in [As::Operator, As::OtherIam] {
        let (s, b, ct) = t
            .call("POST", &format!("/internal/members/{id}/purchases"), Some(purchase.clone()), who)
            .await;
        assert_problem(s, &b, &ct, 403, "forbidden");
    }
    let sqs = aws_sdk_sqs::Client::new(&t.h.sdk_config);
    let queue =
        sqs.create_queue().queue_name(unique("co")).send().await.unwrap().queue_url.unwrap();
    let campaigns = member_day::App {
        deps: t.h.deps.clone(),
        sqs,
        campaign_queue: queue.clone(),
        dispatch_queue: queue,
        budget: std::time::Duration::from_secs(30),
        members_files: None,
    };
    let campaign = json!({"name": "Not yours", "segment": {"tiers": ["gold"]}, "coupon": {"title": "5 off", "offer": {"kind": "amount_off", "value": 500, "minSpend": 0}, "validDays": 1}, "schedule": {"kind": "once", "at": "2030-01-01T00:00:00Z"}}).to_string();
    for who in [As::OrderSystem, As::OtherIam] {
        let (s, b, ct) = answer(
            member_day::handle(&campaigns, request("POST", "/campaigns", Some(&campaign), who))
                .await,
        );
        assert_problem(s, &b, &ct, 403, "forbidden");
    }
    let grant = json!({"template": "amount-20", "grant": "g"}).to_string();
    let (s, b, ct) = answer(
        coupon_issue::api::handle(
            &t.coupons,
            request("POST", &format!("/members/{id}/coupons"), Some(&grant), As::OrderSystem),
        )
        .await,
    );
    assert_problem(s, &b, &ct, 403, "forbidden");
    t.assert_balanced(&id, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_checkouts_hold_one_coupon_once_and_5000_points_five_times() {
    let t = setup().await;
    let (id, code) = t.member_with(5_000).await;
    let results = join_all((0..50).map(|i| {
        let (t, id, code) = (&t, &id, &code);
        async move { t.quote(id, &format!("cpn-{i}"), 20_000, &[code], 0).await }
    }))
    .await;
    let held = results.iter().filter(|r| r.0 == 201).count();
    assert_eq!(held, 1, "one order holds the coupon");
    for (s, b, ct) in results.iter().filter(|r| r.0 != 201) {
        assert_problem(*s, b, ct, 409, "coupon_on_hold");
    }
    let results = join_all((0..50).map(|i| {
        let (t, id) = (&t, &id);
        async move { t.quote(id, &format!("pts-{i}"), 300_000, &[], 1_000).await }
    }))
    .await;
    let held: Vec<&Value> = results.iter().filter(|r| r.0 == 201).map(|r| &r.1).collect();
    assert_eq!(held.len(), 5, "5,000 points hold five orders of 1,000");
    for (s, b, ct) in results.iter().filter(|r| r.0 != 201) {
        assert_problem(*s, b, ct, 422, "insufficient_points");
    }
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!((m.points_on_hold(t.now(), None), m.available_points(t.now(), None)), (5_000, 0));
    // The holds lapse by themselves: no call, and the coupon and the points are usable again.
    t.advance(Duration::minutes(16));
    assert_eq!(t.quote(&id, "after", 300_000, &[&code], 5_000).await.0, 201);
    t.assert_balanced(&id, 5_000).await;
}

#[tokio::test]
async fn coupon_refusals_each_have_their_own_code() {
    let t = setup().await;
    let (id, welcome) = t.member().await;
    let (other, others) = t.member().await;
    let stack_a = t.give(&id, &template(amount_off(500, 0), true)).await;
    let stack_b = t.give(&id, &template(amount_off(300, 0), true)).await;
    let gold = t
        .give(
            &id,
            &CouponTemplate {
                tiers: vec![loyalty::TierCode::Gold],
                ..template(amount_off(500, 0), false)
            },
        )
        .await;
    let expired = {
        let c = loyalty::coupon::issue(
            &code_key(),
            &template(amount_off(500, 0), false),
            &id,
            &unique("grant"),
            0,
            t.now() - Duration::days(8),
        );
        t.h.deps.store.issue_coupon(&c, None, None).await.unwrap();
        c.code
    };
    let cases: Vec<(&str, i64, Vec<&str>, u16, &str)> = vec![
        (
            "two coupons, one not stackable",
            20_000,
            vec![&welcome, &stack_a],
            422,
            "coupons_not_stackable",
        ),
        ("below the minimum spend (100 CNY)", 9_999, vec![&welcome], 422, "below_minimum_spend"),
        ("another tier's coupon", 20_000, vec![&gold], 422, "tier_not_eligible"),
        ("another member's coupon", 20_000, vec![&others], 422, "coupon_not_found"),
        ("expired", 20_000, vec![&expired], 422, "coupon_expired"),
        ("the same code twice", 20_000, vec![&stack_a, &stack_a], 422, "duplicate_coupon"),
        ("not a code", 20_000, vec!["nope"], 422, "coupon_not_found"),
    ];
    for (what, amount, codes, status, code) in cases {
        let (s, b, ct) = t.quote(&id, &unique("o"), amount, &codes, 0).await;
        assert_eq!(s, status, "{what}: {b}");
        assert_problem(s, &b, &ct, status, code);
    }
    let (s, b, _) = t.quote(&id, "stacked", 20_000, &[&stack_a, &stack_b], 0).await;
    assert_eq!(
        (s, b["couponDiscount"].as_i64(), b["payable"].as_i64()),
        (201, Some(800), Some(19_200)),
        "{b}"
    );
    assert_eq!(t.confirm(&id, "stacked").await.0, 200);
    let (s, b, ct) = t.quote(&id, &unique("o"), 20_000, &[&stack_a], 0).await;
    assert_problem(s, &b, &ct, 409, "coupon_already_used");
    assert_eq!(t.coupon_status(&other, &others).await, "active");
}

#[tokio::test]
async fn confirm_twice_is_one_order_and_cancel_after_confirm_is_refused() {
    let t = setup().await;
    let (id, code) = t.member_with(1_000).await;
    let (s, q, _) = t.quote(&id, "o-1", 20_000, &[&code], 500).await;
    assert_eq!(s, 201, "{q}");
    // 200 − 20 (coupon) − 5 (500 points) = 175 CNY to pay.
    assert_eq!(
        (
            q["memberDiscount"].as_i64(),
            q["couponDiscount"].as_i64(),
            q["pointsDiscount"].as_i64(),
            q["payable"].as_i64()
        ),
        (Some(0), Some(2_000), Some(500), Some(17_500))
    );
    assert_eq!(
        t.quote(&id, "o-1", 20_000, &[&code], 500).await.1,
        q,
        "the same quote again answers the same hold"
    );
    let (s, c1, _) = t.confirm(&id, "o-1").await;
    assert_eq!(
        (s, c1["pointsUsed"].as_i64(), c1["pointsEarned"].as_i64(), c1["points"].as_i64()),
        (200, Some(500), Some(175), Some(675)),
        "{c1}"
    );
    let (s, c2, _) = t.confirm(&id, "o-1").await;
    assert_eq!((s, &c2), (200, &c1), "a second confirm answers the first");
    let (s, b, ct) = t.cancel(&id, "o-1").await;
    assert_problem(s, &b, &ct, 409, "checkout_confirmed");
    let (s, b, ct) = t.quote(&id, "o-1", 20_000, &[], 0).await;
    assert_problem(s, &b, &ct, 409, "checkout_confirmed");
    let (s, b, ct) = t.order_system("POST", &format!("/internal/members/{id}/purchases"), Some(json!({"orderId": "o-1", "amount": 17_500, "currency": "CNY", "channel": "online", "occurredAt": t.now()}))).await;
    assert_problem(s, &b, &ct, 409, "order_conflict");
    let ledger = t.h.deps.store.ledger_all(&id).await.unwrap();
    let of_order = |k: EntryKind| {
        ledger.iter().filter(|e| e.kind == k && e.reference.as_deref() == Some("o-1")).count()
    };
    assert_eq!((of_order(EntryKind::Redemption), of_order(EntryKind::Purchase)), (1, 1));
    assert_eq!(t.coupon_status(&id, &code).await, "redeemed");
    t.assert_balanced(&id, 675).await;

    // A refund of 40% gives back 40% of the points spent and takes 40% of those earned.
    let (s, r, _) = t.refund(&id, "o-1", "r-1", 7_000).await;
    assert_eq!(
        (
            s,
            r["pointsReturned"].as_i64(),
            r["pointsClawedBack"].as_i64(),
            r["couponsReturned"].as_array().map(Vec::len)
        ),
        (201, Some(200), Some(70), Some(0)),
        "{r}"
    );
    // The rest: every spent point is back, and so is the coupon, still valid.
    let (s, r, _) = t.refund(&id, "o-1", "r-2", 10_500).await;
    assert_eq!(
        (s, r["pointsReturned"].as_i64(), r["couponsReturned"][0].as_str()),
        (201, Some(300), Some(code.as_str())),
        "{r}"
    );
    assert_eq!(t.refund(&id, "o-1", "r-2", 10_500).await.1, r, "the same refundId is one refund");
    assert_eq!(t.coupon_status(&id, &code).await, "active");
    t.assert_balanced(&id, 1_000).await;
}

#[tokio::test]
async fn cancel_releases_the_hold_and_an_expired_hold_is_re_priced_at_confirm() {
    let t = setup().await;
    let (id, code) = t.member_with(1_000).await;
    assert_eq!(t.quote(&id, "c-1", 20_000, &[&code], 1_000).await.0, 201);
    let (s, b, ct) = t.quote(&id, "c-2", 20_000, &[&code], 0).await;
    assert_problem(s, &b, &ct, 409, "coupon_on_hold");
    let (s, c, _) = t.cancel(&id, "c-1").await;
    assert_eq!((s, &c), (200, &json!({"orderId": "c-1", "state": "cancelled"})));
    assert_eq!(t.cancel(&id, "c-1").await.1, c, "cancel is idempotent");
    let (s, b, ct) = t.confirm(&id, "c-1").await;
    assert_problem(s, &b, &ct, 409, "checkout_cancelled");
    // Re-quoting replaces the order's hold: c-2 then c-2 again with other terms.
    assert_eq!(t.quote(&id, "c-2", 20_000, &[&code], 1_000).await.0, 201);
    assert_eq!(t.quote(&id, "c-2", 20_000, &[&code], 500).await.0, 201);
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!((m.holds.len(), m.points_on_hold(t.now(), None)), (1, 500));
    // Past its hold, c-2 still confirms: nothing changed, so the quote stands.
    t.advance(Duration::minutes(20));
    assert_eq!(t.confirm(&id, "c-2").await.0, 200);
    // c-3's hold expires and c-4 takes its points: c-3's confirm says why it cannot go through.
    assert_eq!(t.quote(&id, "c-3", 20_000, &[], 500).await.0, 201);
    t.advance(Duration::minutes(20));
    assert_eq!(t.quote(&id, "c-4", 20_000, &[], 500).await.0, 201);
    let (s, b, ct) = t.confirm(&id, "c-3").await;
    assert_problem(s, &b, &ct, 422, "insufficient_points");
    let (s, b, ct) = t.confirm(&id, "nope").await;
    assert_problem(s, &b, &ct, 404, "checkout_not_found");
    // 1,000 − 500 spent on c-2 + 175 earned on its 175 CNY (200 − 20 coupon − 5 points).
    t.assert_balanced(&id, 675).await;
}

#[tokio::test]
async fn each_checkout_call_is_one_read_and_one_write_request() {
    let t = setup().await;
    let (id, code) = t.member_with(1_000).await;
    let mut counts = Vec::new();
    for (what, call) in [("quote", 0), ("confirm", 1), ("cancel", 2)] {
        if call == 2 {
            assert_eq!(t.quote(&id, "w-2", 20_000, &[], 100).await.0, 201);
        }
        t.h.counter.reset();
        let (s, b, _) = match call {
            0 => t.quote(&id, "w-1", 20_000, &[&code], 100).await,
            1 => t.confirm(&id, "w-1").await,
            _ => t.cancel(&id, "w-2").await,
        };
        assert!(s < 300, "{what}: {b}");
        counts.push((what, t.h.counter.reads(), t.h.counter.writes()));
    }
    assert_eq!(counts, vec![("quote", 1, 1), ("confirm", 1, 1), ("cancel", 1, 1)]);
    t.h.counter.reset();
    assert_eq!(
        t.call(
            "POST",
            &format!("/members/{id}/checkout-preview"),
            Some(json!({"amount": 20_000})),
            As::Member(id.clone())
        )
        .await
        .0,
        200
    );
    assert_eq!(
        (t.h.counter.reads(), t.h.counter.writes()),
        (1, 0),
        "a preview reads once and writes nothing"
    );
}

#[tokio::test]
async fn bad_checkout_input_is_a_4xx_and_writes_nothing() {
    let t = setup().await;
    let (id, code) = t.member_with(1_000).await;
    let before = t.h.deps.store.member(&id).await.unwrap().unwrap();
    let path = format!("/internal/members/{id}/checkouts");
    let base = json!({"orderId": "b-1", "amount": 20_000, "currency": "CNY", "channel": "online"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("amount", json!(0)), 422, "invalid_amount"),
        (with("amount", json!(100_000_001)), 422, "amount_too_large"),
        (with("currency", json!("USD")), 422, "unsupported_currency"),
        (with("points", json!(150)), 422, "invalid_points"),
        (with("points", json!(-100)), 422, "invalid_points"),
        (with("points", json!(10_100)), 422, "points_over_cap"),
        (with("points", json!(2_000)), 422, "insufficient_points"),
        (with("couponCodes", json!([code, "A", "B", "C"])), 422, "too_many_coupons"),
        (with("orderId", json!("a b")), 400, "invalid_order_id"),
        (with("extra", json!(1)), 400, "unknown_field"),
    ];
    for (body, status, want) in cases {
        let (s, b, ct) = t.order_system("POST", &path, Some(body.clone())).await;
        assert_eq!(s, status, "{body}: {b}");
        assert_problem(s, &b, &ct, status, want);
    }
    let (s, b, ct) = t
        .order_system(
            "POST",
            &format!("/internal/members/{id}/checkouts/b-1/confirm"),
            Some(json!({"paid": 1})),
        )
        .await;
    assert_problem(s, &b, &ct, 404, "checkout_not_found");
    assert_eq!(t.quote(&id, "b-2", 20_000, &[], 100).await.0, 201);
    let (s, b, ct) = t
        .order_system(
            "POST",
            &format!("/internal/members/{id}/checkouts/b-2/confirm"),
            Some(json!({"paid": 1})),
        )
        .await;
    assert_problem(s, &b, &ct, 409, "amount_mismatch");
    let (s, b, ct) = t.call("GET", &path, None, As::OrderSystem).await;
    assert_problem(s, &b, &ct, 405, "method_not_allowed");
    let after = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!(
        (after.wallet, after.order_count),
        (before.wallet, before.order_count),
        "no money moved"
    );
}

fn record(queue_arn: &str, m: &aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut r = SqsMessage::default();
    r.message_id = m.message_id.clone();
    r.receipt_handle = m.receipt_handle.clone();
    r.body = m.body.clone();
    r.event_source = Some("aws:sqs".into());
    r.event_source_arn = Some(queue_arn.to_string());
    r.attributes = m
        .attributes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), v))
        .collect();
    r
}

#[tokio::test]
async fn a_refund_event_before_its_purchase_waits_and_is_applied_once_the_purchase_is_there() {
    use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
    let t = setup().await;
    let (id, _) = t.member().await;
    let sqs = aws_sdk_sqs::Client::new(&t.h.sdk_config);
    let dlq = sqs
        .create_queue()
        .queue_name(unique("orders-dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn_of = |url: String| {
        let sqs = sqs.clone();
        async move {
            let a = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap();
            a.attributes.unwrap()[&QueueAttributeName::QueueArn].clone()
        }
    };
    let dlq_arn = arn_of(dlq.clone()).await;
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 14}).to_string();
    let queue = sqs
        .create_queue()
        .queue_name(unique("orders"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = arn_of(queue.clone()).await;
    let receive = || {
        let (sqs, queue) = (sqs.clone(), queue.clone());
        async move {
            sqs.receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default()
        }
    };
    let handle = |msgs: &[aws_sdk_sqs::types::Message]| {
        let mut e = SqsEvent::default();
        e.records = msgs.iter().map(|m| record(&arn, m)).collect();
        purchase_points::handle_sqs(&t.points, e)
    };

    let refund = json!({"type": "refund", "memberId": id, "orderId": "late-1", "refundId": "late-r1", "amount": 100_00}).to_string();
    sqs.send_message().queue_url(&queue).message_body(refund).send().await.unwrap();
    let first = receive().await;
    assert_eq!(first.len(), 1);
    assert_eq!(handle(&first).await.batch_item_failures.len(), 1, "the refund cannot apply yet");
    assert!(
        receive().await.is_empty(),
        "it waits out its back-off instead of coming straight back"
    );

    let purchase = json!({"type": "purchase", "memberId": id, "orderId": "late-1", "amount": 300_00, "currency": "CNY", "channel": "online", "occurredAt": t.now() - Duration::minutes(1)}).to_string();
    sqs.send_message().queue_url(&queue).message_body(purchase).send().await.unwrap();
    let second = receive().await;
    assert_eq!(second.len(), 1);
    assert!(handle(&second).await.batch_item_failures.is_empty());
    sqs.delete_message()
        .queue_url(&queue)
        .receipt_handle(second[0].receipt_handle.clone().unwrap())
        .send()
        .await
        .unwrap();

    // The back-off ends (moved forward here): the refund now applies.
    sqs.change_message_visibility()
        .queue_url(&queue)
        .receipt_handle(first[0].receipt_handle.clone().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let again = receive().await;
    assert_eq!(again.len(), 1);
    assert!(handle(&again).await.batch_item_failures.is_empty());
    sqs.delete_message()
        .queue_url(&queue)
        .receipt_handle(again[0].receipt_handle.clone().unwrap())
        .send()
        .await
        .unwrap();
    let dead = receive_batch(&sqs, &dlq).await;
    assert!(dead.is_empty(), "nothing reached the dead-letter queue");
    t.assert_balanced(&id, 100 + 300 - 100).await;
}

#[tokio::test]
async fn a_confirm_dated_by_the_order_system_earns_as_a_purchase_that_day() {
    let t = setup().await;
    let (id, _) = t.member().await;
    assert_eq!(t.quote(&id, "md-1", 10_000, &[], 0).await.0, 201);
    let confirm = |when: &str| json!({"occurredAt": when});
    let (s, b, ct) = t
        .order_system(
            "POST",
            &format!("/internal/members/{id}/checkouts/md-1/confirm"),
            Some(confirm("2026-11-21T04:00:00Z")),
        )
        .await;
    assert_problem(s, &b, &ct, 422, "occurred_at_in_future");
    // Paid on the 18th (the member day, 2×), reported two days later.
    let (s, b, _) = t
        .order_system(
            "POST",
            &format!("/internal/members/{id}/checkouts/md-1/confirm"),
            Some(confirm("2026-11-18T04:00:00Z")),
        )
        .await;
    assert_eq!((s, b["pointsEarned"].as_i64()), (200, Some(200)), "{b}");
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!(
        m.spend_days.iter().map(|d| d.day.to_string()).collect::<Vec<_>>(),
        vec!["2026-11-18"]
    );
    t.assert_balanced(&id, 300).await;
}
