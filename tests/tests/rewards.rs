//! The rewards catalog (积分兑换) through the real handlers against the local stack, each test
//! on a table of its own (the catalog is one partition every member's catalog reads):
//! operators define, change and deactivate rewards; members claim with their available points
//! only (never pending ones, never ones an open checkout holds); the stock and the per-member
//! limit hold under concurrency; a gift's fulfilment moves once and a cancel gives the points
//! back once; every claim is one read and one write request; `points == Σ ledger` throughout.

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use futures::StreamExt;
use loyalty::app::{Clock, Dependencies};
use loyalty::ledger::EntryKind;
use loyalty::store::Store;
use loyalty::Rules;
use loyalty_tests::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A Friday that is not a member day, noon in Shanghai.
const NOW: &str = "2026-11-20T04:00:00Z";

struct T {
    points: purchase_points::App,
    signup: signup::App,
    store: Store,
    table: String,
    clock: Arc<Mutex<DateTime<Utc>>>,
    h: Harness,
}

/// No return window (earned points are available at once) unless `rules` says otherwise.
async fn setup_with(rules: &str) -> T {
    let clock = Arc::new(Mutex::new(at(NOW)));
    let h = harness_with(Rules::from_overrides(rules).unwrap(), Clock::Shared(clock.clone())).await;
    let table = clone_table(&h, "rewards").await;
    let store = Store::new(h.deps.store.client.clone(), table.clone());
    let deps = Dependencies { store: store.clone(), ..h.deps.clone() };
    T {
        points: purchase_points::App {
            deps: deps.clone(),
            sqs: aws_sdk_sqs::Client::new(&h.sdk_config),
            codes: code_key(),
        },
        signup: signup_on(&deps),
        store,
        table,
        clock,
        h,
    }
}

async fn setup() -> T {
    setup_with(r#"{"returnWindowDays":0}"#).await
}

fn gift(name: &str, price: i64) -> Value {
    json!({"name": name, "description": "A gift the shop ships", "imageUrl": "https://cdn.example.com/gift.jpg", "price": price, "kind": "gift"})
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    v[k] = x;
    v
}

impl T {
    fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    fn advance(&self, d: Duration) {
        *self.clock.lock().unwrap() += d;
    }

    async fn done(self) {
        self.h.deps.store.client.delete_table().table_name(&self.table).send().await.unwrap();
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        who: As,
        key: Option<&str>,
    ) -> (u16, Value, String) {
        let text = body.map(Value::to_string);
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        answer(
            purchase_points::handle(
                &self.points,
                request_with_headers(method, path, text.as_deref(), who, &headers),
            )
            .await,
        )
    }

    /// A new member with exactly `points` available points: the 100 welcome points plus a
    /// purchase (50,000 CNY or more of it makes the member Diamond).
    async fn member_with(&self, points: i64) -> String {
        let id = unique("rw");
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
        if points > 100 {
            self.buy(&id, (points - 100) * 100).await;
        }
        id
    }

    async fn buy(&self, id: &str, fen: i64) -> Value {
        let body = json!({"orderId": unique("o"), "amount": fen, "currency": "CNY", "channel": "store", "occurredAt": self.now() - Duration::minutes(1)});
        let (s, b, _) = self
            .call(
                "POST",
                &format!("/internal/members/{id}/purchases"),
                Some(&body),
                As::OrderSystem,
                None,
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b
    }

    /// An operator defines a reward; answers its id.
    async fn define(&self, body: Value) -> String {
        let (s, b, _) = self.call("POST", "/rewards", Some(&body), As::Operator, None).await;
        assert_eq!(s, 201, "{b}");
        b["rewardId"].as_str().unwrap().to_string()
    }

    async fn reward(&self, reward: &str) -> Value {
        let (s, b, _) = self.call("GET", "/rewards", None, As::Operator, None).await;
        assert_eq!(s, 200, "{b}");
        b["rewards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rewardId"] == reward)
            .cloned()
            .unwrap_or_else(|| panic!("{reward} not listed: {b}"))
    }

    async fn claim(&self, id: &str, reward: &str, price: i64, key: &str) -> (u16, Value, String) {
        self.call(
            "POST",
            &format!("/members/{id}/reward-claims"),
            Some(&json!({"rewardId": reward, "price": price})),
            As::Member(id.into()),
            Some(key),
        )
        .await
    }

    async fn fulfil(&self, id: &str, claim: &str, status: &str, who: As) -> (u16, Value, String) {
        self.call(
            "POST",
            &format!("/internal/members/{id}/reward-claims/{claim}/fulfilment"),
            Some(&json!({"status": status})),
            who,
            None,
        )
        .await
    }

    async fn claims(&self, id: &str) -> Vec<Value> {
        let (s, b, _) = self
            .call("GET", &format!("/members/{id}/reward-claims"), None, As::Member(id.into()), None)
            .await;
        assert_eq!(s, 200, "{b}");
        b["claims"].as_array().unwrap().clone()
    }

    async fn catalog(&self, id: &str) -> Value {
        let (s, b, _) = self
            .call("GET", &format!("/members/{id}/rewards"), None, As::Member(id.into()), None)
            .await;
        assert_eq!(s, 200, "{b}");
        b
    }

    /// Available points == Σ ledger points and pending points == Σ ledger pending, as stored,
    /// and the available balance expected.
    async fn assert_balanced(&self, id: &str, available: i64) {
        let m = self.store.member(id).await.unwrap().unwrap();
        assert!(m.wallet.is_consistent(), "{:?}", m.wallet);
        let ledger = self.store.ledger_all(id).await.unwrap();
        assert_eq!(m.wallet.balance.0, available, "balance of {id}");
        assert_eq!(
            ledger.iter().map(|e| e.points.0).sum::<i64>(),
            available,
            "Σ ledger points of {id}"
        );
        assert_eq!(
            ledger.iter().map(|e| e.pending.0).sum::<i64>(),
            m.wallet.pending_total(),
            "Σ ledger pending of {id}"
        );
    }

    async fn reward_entries(&self, id: &str) -> Vec<i64> {
        self.store
            .ledger_all(id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.kind == EntryKind::Reward)
            .map(|e| e.points.0)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_members_racing_for_a_stock_of_100_get_exactly_100_claims() {
    let t = setup().await;
    // A limited drop: 100 coupons of 20 CNY off for 100 points, which is exactly the welcome points.
    let reward = t.define(json!({"name": "Limited drop: 20 CNY off", "price": 100, "kind": "coupon", "coupon": "amount-20", "stock": 100, "perMemberLimit": 1})).await;
    let members: Vec<String> = futures::stream::iter(0..200)
        .map(|_| t.member_with(100))
        .buffer_unordered(16)
        .collect()
        .await;
    let results = join_all(members.iter().map(|id| {
        let (t, reward) = (&t, &reward);
        async move { (id, t.claim(id, reward, 100, "drop").await) }
    }))
    .await;
    let won: Vec<&String> = results.iter().filter(|(_, r)| r.0 == 201).map(|(id, _)| *id).collect();
    assert_eq!(won.len(), 100, "exactly the stock is claimed");
    for (_, (s, b, ct)) in results.iter().filter(|(_, r)| r.0 != 201) {
        assert_problem(*s, b, ct, 409, "out_of_stock");
    }
    let r = t.reward(&reward).await;
    assert_eq!(
        (r["claimed"].as_u64(), r["stockLeft"].as_u64(), r["version"].as_u64()),
        (Some(100), Some(0), Some(1)),
        "{r}"
    );
    let mut coupons = 0;
    for id in &members {
        let mine = t
            .store
            .coupons(id)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.grant.starts_with("reward:"))
            .count();
        let claimed = won.contains(&id);
        assert_eq!(mine, claimed as usize, "{id}: one coupon per claim, none without");
        coupons += mine;
        // Winners spent their 100 points, the others none.
        t.assert_balanced(id, if claimed { 0 } else { 100 }).await;
        assert_eq!(t.reward_entries(id).await, if claimed { vec![-100] } else { vec![] });
    }
    assert_eq!(coupons, 100);
    t.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_member_racing_twenty_claims_of_a_limit_of_one_gets_one() {
    let t = setup().await;
    let reward = t.define(with(gift("One per member", 100), "perMemberLimit", json!(1))).await;
    let id = t.member_with(5_000).await;
    let results = join_all((0..20).map(|i| {
        let (t, id, reward) = (&t, &id, &reward);
        async move { t.claim(id, reward, 100, &format!("race-{i}")).await }
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.0 == 201).count(), 1, "the limit of one holds");
    for (s, b, ct) in results.iter().filter(|r| r.0 != 201) {
        assert_problem(*s, b, ct, 409, "claim_limit_reached");
    }
    assert_eq!(t.claims(&id).await.len(), 1);
    assert_eq!(t.reward(&reward).await["claimed"].as_u64(), Some(1));
    t.assert_balanced(&id, 4_900).await;
    t.done().await;
}

#[tokio::test]
async fn the_same_idempotency_key_is_one_claim_with_the_same_answer_and_another_body_is_a_409() {
    let t = setup().await;
    let reward = t
        .define(json!({"name": "15% off", "price": 300, "kind": "coupon", "coupon": "percent-15"}))
        .await;
    let other = t.define(gift("Tote bag", 300)).await;
    let id = t.member_with(1_000).await;
    let (s, first, _) = t.claim(&id, &reward, 300, "k-1").await;
    assert_eq!(
        (s, first["status"].as_str(), first["points"].as_i64(), first["pointsAvailable"].as_i64()),
        (201, Some("issued"), Some(700), Some(700)),
        "{first}"
    );
    assert_eq!(first["coupon"]["code"], first["couponCode"], "{first}");
    let (s, again, _) = t.claim(&id, &reward, 300, "k-1").await;
    assert_eq!((s, &again), (201, &first), "a retry answers the first claim");
    for (rid, price) in [(&other, 300), (&reward, 400)] {
        let (s, b, ct) = t.claim(&id, rid, price, "k-1").await;
        assert_problem(s, &b, &ct, 409, "idempotency_key_reused");
    }
    let (s, b, ct) = t
        .call(
            "POST",
            &format!("/members/{id}/reward-claims"),
            Some(&json!({"rewardId": reward, "price": 300})),
            As::Member(id.clone()),
            None,
        )
        .await;
    assert_problem(s, &b, &ct, 400, "idempotency_key_required");
    assert_eq!(t.claims(&id).await.len(), 1);
    assert_eq!(
        t.store
            .coupons(&id)
            .await
            .unwrap()
            .iter()
            .filter(|c| c.grant.starts_with("reward:"))
            .count(),
        1
    );
    t.assert_balanced(&id, 700).await;
    t.done().await;
}

#[tokio::test]
async fn each_refusal_has_its_own_code_and_writes_nothing() {
    let t = setup().await;
    let cheap = t.define(gift("Key ring", 200)).await;
    let dear = t.define(gift("Bicycle", 50_000)).await;
    let diamond = t.define(with(gift("Diamond tea set", 200), "tiers", json!(["diamond"]))).await;
    let later = t
        .define(with(
            gift("Spring festival box", 200),
            "availableFrom",
            json!("2027-01-20T00:00:00Z"),
        ))
        .await;
    let ending = t
        .define(with(gift("Autumn box", 200), "availableUntil", json!("2026-11-21T00:00:00Z")))
        .await;
    let inactive = t.define(gift("Retired mug", 200)).await;
    let sold_out = t.define(with(gift("Sold out", 200), "stock", json!(0))).await;
    let (s, b, _) =
        t.call("POST", &format!("/rewards/{inactive}/deactivate"), None, As::Operator, None).await;
    assert_eq!((s, b["active"].as_bool()), (200, Some(false)), "{b}");
    let (s, b, _) = t
        .call(
            "PATCH",
            &format!("/rewards/{cheap}"),
            Some(&json!({"price": 250})),
            As::Operator,
            None,
        )
        .await;
    assert_eq!((s, b["price"].as_i64(), b["version"].as_u64()), (200, Some(250), Some(2)), "{b}");
    let id = t.member_with(1_000).await;
    let before = t.store.member(&id).await.unwrap().unwrap();
    let cases = [
        (dear.as_str(), 50_000, 422, "insufficient_points"),
        (&diamond, 200, 422, "tier_not_eligible"),
        (&later, 200, 409, "reward_not_available"),
        (&inactive, 200, 409, "reward_inactive"),
        (&cheap, 200, 409, "price_changed"),
        (&sold_out, 200, 409, "out_of_stock"),
        ("r-0000000000000000", 200, 404, "reward_not_found"),
        ("not a reward", 200, 400, "invalid_reward_id"),
    ];
    for (i, (reward, price, status, code)) in cases.into_iter().enumerate() {
        let (s, b, ct) = t.claim(&id, reward, price, &format!("refused-{i}")).await;
        assert_problem(s, &b, &ct, status, code);
    }
    t.advance(Duration::days(1));
    let (s, b, ct) = t.claim(&id, &ending, 200, "refused-ended").await;
    assert_problem(s, &b, &ct, 409, "reward_not_available");
    let (s, b, ct) = t
        .call(
            "POST",
            &format!("/members/{id}/reward-claims"),
            Some(&json!({"rewardId": cheap, "price": 250, "extra": 1})),
            As::Member(id.clone()),
            Some("refused-x"),
        )
        .await;
    assert_problem(s, &b, &ct, 400, "unknown_field");
    let after = t.store.member(&id).await.unwrap().unwrap();
    assert_eq!((after.wallet, after.version), (before.wallet, before.version), "nothing written");
    assert!(t.claims(&id).await.is_empty());
    // At the price shown now, the claim goes through.
    assert_eq!(t.claim(&id, &cheap, 250, "ok").await.0, 201);
    t.assert_balanced(&id, 750).await;
    t.done().await;
}

#[tokio::test]
async fn pending_points_and_points_held_by_a_checkout_cannot_pay_for_a_reward() {
    let t = setup_with("{}").await;
    assert_eq!(t.h.deps.rules.return_window_days, 7);
    let reward = t.define(gift("Umbrella", 500)).await;
    let id = t.member_with(100).await;
    // 1,000 points earned today, pending for the 7-day return window.
    assert_eq!(t.buy(&id, 100_000).await["pointsEarned"].as_i64(), Some(1_000));
    let (s, b, ct) = t.claim(&id, &reward, 500, "pending").await;
    assert_problem(s, &b, &ct, 422, "insufficient_points");
    assert_eq!(b["detail"], "100 points are available (pending points and points held by open checkouts do not count), 500 needed");
    let offered = t.catalog(&id).await;
    let r = &offered["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rewardId"] == reward)
        .unwrap()
        .clone();
    assert_eq!(
        (
            offered["pointsAvailable"].as_i64(),
            r["enoughPoints"].as_bool(),
            r["claimable"].as_bool(),
            r["reason"].as_str()
        ),
        (Some(100), Some(false), Some(false), Some("insufficient_points")),
        "{offered}"
    );
    // The window ends: the 1,000 points are released by the claim's own settle and pay for it.
    t.advance(Duration::days(8));
    // But an open checkout holding 700 of the 1,100 leaves 400: not enough.
    let quote = json!({"orderId": "hold-1", "amount": 200_000, "currency": "CNY", "channel": "online", "points": 700});
    assert_eq!(
        t.call(
            "POST",
            &format!("/internal/members/{id}/checkouts"),
            Some(&quote),
            As::OrderSystem,
            None
        )
        .await
        .0,
        201
    );
    let (s, b, ct) = t.claim(&id, &reward, 500, "held").await;
    assert_problem(s, &b, &ct, 422, "insufficient_points");
    assert_eq!(b["detail"], "400 points are available (pending points and points held by open checkouts do not count), 500 needed");
    assert_eq!(
        t.call(
            "POST",
            &format!("/internal/members/{id}/checkouts/hold-1/cancel"),
            None,
            As::OrderSystem,
            None
        )
        .await
        .0,
        200
    );
    let (s, b, _) = t.claim(&id, &reward, 500, "released").await;
    assert_eq!((s, b["points"].as_i64()), (201, Some(600)), "{b}");
    let ledger = t.store.ledger_all(&id).await.unwrap();
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e.kind == EntryKind::Release)
            .map(|e| (e.points.0, e.pending.0))
            .collect::<Vec<_>>(),
        vec![(1_000, -1_000)]
    );
    t.assert_balanced(&id, 600).await;
    t.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_gift_gives_exactly_its_points_back_once_and_shipped_is_final() {
    let t = setup().await;
    let reward = t.define(json!({"name": "Thermos", "price": 300, "kind": "gift", "stock": 5, "perMemberLimit": 1, "limitPeriod": "month"})).await;
    let coupon = t.define(json!({"name": "Free shipping", "price": 100, "kind": "coupon", "coupon": "free-shipping"})).await;
    let id = t.member_with(1_000).await;
    let (s, c, _) = t.claim(&id, &reward, 300, "g-1").await;
    assert_eq!(
        (s, c["status"].as_str(), c["points"].as_i64()),
        (201, Some("pending"), Some(700)),
        "{c}"
    );
    let claim = c["claimId"].as_str().unwrap().to_string();
    assert_eq!(t.reward(&reward).await["stockLeft"].as_u64(), Some(4));
    // Ten cancels at once (the operator's support desk and the order system): one gives back.
    let results = join_all((0..10).map(|i| {
        let (t, id, claim) = (&t, &id, &claim);
        async move {
            t.fulfil(
                id,
                claim,
                "cancelled",
                if i % 2 == 0 { As::Operator } else { As::OrderSystem },
            )
            .await
        }
    }))
    .await;
    for (s, b, _) in &results {
        assert_eq!(
            (*s, b["status"].as_str(), b["pointsReturned"].as_i64()),
            (200, Some("cancelled"), Some(300)),
            "{b}"
        );
    }
    assert_eq!(
        t.reward_entries(&id).await,
        vec![300, -300],
        "one return (newest first), of exactly the price"
    );
    t.assert_balanced(&id, 1_000).await;
    // The unit is back in stock and the claim no longer counts against the monthly limit.
    assert_eq!(t.reward(&reward).await["stockLeft"].as_u64(), Some(5));
    let (s, b, ct) = t.fulfil(&id, &claim, "shipped", As::OrderSystem).await;
    assert_problem(s, &b, &ct, 409, "claim_cancelled");
    let (s, c, _) = t.claim(&id, &reward, 300, "g-2").await;
    assert_eq!(s, 201, "{c}");
    let second = c["claimId"].as_str().unwrap().to_string();
    let (s, b, _) = t.fulfil(&id, &second, "shipped", As::OrderSystem).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("shipped")), "{b}");
    assert_eq!(
        t.fulfil(&id, &second, "shipped", As::Operator).await.1,
        b,
        "shipping twice answers the same"
    );
    let (s, b, ct) = t.fulfil(&id, &second, "cancelled", As::Operator).await;
    assert_problem(s, &b, &ct, 409, "claim_shipped");
    let (s, c, _) = t.claim(&id, &coupon, 100, "c-1").await;
    assert_eq!(s, 201, "{c}");
    let (s, b, ct) =
        t.fulfil(&id, c["claimId"].as_str().unwrap(), "shipped", As::OrderSystem).await;
    assert_problem(s, &b, &ct, 409, "not_a_gift");
    let (s, b, ct) = t.fulfil(&id, "rc-0000000000000000", "shipped", As::OrderSystem).await;
    assert_problem(s, &b, &ct, 404, "claim_not_found");
    for (who, status, code) in [
        (As::Member(id.clone()), 403, "forbidden"),
        (As::OtherIam, 403, "forbidden"),
        (As::Nobody, 401, "unauthenticated"),
    ] {
        let (s, b, ct) = t.fulfil(&id, &second, "cancelled", who).await;
        assert_problem(s, &b, &ct, status, code);
    }
    let listed: Vec<(String, String)> = t
        .claims(&id)
        .await
        .iter()
        .map(|c| (c["claimId"].as_str().unwrap().into(), c["status"].as_str().unwrap().into()))
        .collect();
    assert_eq!(listed.len(), 3);
    assert!(
        listed.contains(&(claim, "cancelled".into()))
            && listed.contains(&(second, "shipped".into()))
    );
    t.assert_balanced(&id, 1_000 - 300 - 100).await;
    t.done().await;
}

#[tokio::test]
async fn each_claim_is_one_read_and_one_write_request() {
    let t = setup().await;
    let coupon = t.define(json!({"name": "20 CNY off", "price": 200, "kind": "coupon", "coupon": "amount-20", "stock": 10, "perMemberLimit": 3, "limitPeriod": "month"})).await;
    let gift = t.define(with(gift("Mug", 200), "stock", json!(10))).await;
    let id = t.member_with(2_000).await;
    let mut counts = Vec::new();
    let mut claim_ids = Vec::new();
    for (what, reward) in
        [("claim a coupon", &coupon), ("claim a gift", &gift), ("claim a gift again", &gift)]
    {
        t.h.counter.reset();
        let (s, b, _) = t.claim(&id, reward, 200, &what.replace(' ', "-")).await;
        assert_eq!(s, 201, "{what}: {b}");
        claim_ids.push(b["claimId"].as_str().unwrap().to_string());
        counts.push((what, t.h.counter.reads(), t.h.counter.writes()));
    }
    for (what, claim, status) in
        [("ship", &claim_ids[1], "shipped"), ("cancel", &claim_ids[2], "cancelled")]
    {
        t.h.counter.reset();
        assert_eq!(t.fulfil(&id, claim, status, As::OrderSystem).await.0, 200);
        counts.push((what, t.h.counter.reads(), t.h.counter.writes()));
    }
    t.h.counter.reset();
    assert_eq!(
        t.call(
            "PATCH",
            &format!("/rewards/{gift}"),
            Some(&json!({"stock": 20})),
            As::Operator,
            None
        )
        .await
        .0,
        200
    );
    counts.push(("change a reward", t.h.counter.reads(), t.h.counter.writes()));
    t.h.counter.reset();
    t.claims(&id).await;
    counts.push(("list claims", t.h.counter.reads(), t.h.counter.writes()));
    t.h.counter.reset();
    t.catalog(&id).await;
    counts.push(("the member's catalog", t.h.counter.reads(), t.h.counter.writes()));
    assert_eq!(
        counts,
        vec![
            ("claim a coupon", 1, 1),
            ("claim a gift", 1, 1),
            ("claim a gift again", 1, 1),
            ("ship", 1, 1),
            ("cancel", 1, 1),
            ("change a reward", 1, 1),
            ("list claims", 1, 0),
            // The catalog, then the member with their limit counters: the second read needs the first.
            ("the member's catalog", 2, 0),
        ]
    );
    t.assert_balanced(&id, 2_000 - 200 - 200).await;
    t.done().await;
}

#[tokio::test]
async fn operators_define_change_and_deactivate_rewards_and_bad_input_writes_nothing() {
    let t = setup().await;
    let base = gift("Tea set", 800);
    let cases = [
        (with(base.clone(), "name", json!(" ")), 422, "invalid_name"),
        (with(base.clone(), "price", json!(0)), 422, "invalid_price"),
        (with(base.clone(), "imageUrl", json!("ftp://x")), 422, "invalid_image_url"),
        (with(base.clone(), "kind", json!("coupon")), 422, "coupon_required"),
        (with(base.clone(), "coupon", json!("amount-20")), 422, "invalid_coupon"),
        (
            json!({"name": "X", "price": 1, "kind": "coupon", "coupon": "amount-99"}),
            422,
            "unknown_template",
        ),
        (
            json!({"name": "X", "price": 1, "kind": "coupon", "coupon": {"title": "", "offer": {"kind": "free_shipping"}, "validDays": 1}}),
            422,
            "invalid_coupon",
        ),
        (with(base.clone(), "perMemberLimit", json!(0)), 422, "invalid_limit"),
        (with(base.clone(), "stock", json!(10_000_001)), 422, "invalid_stock"),
        (
            with(base.clone(), "availableUntil", json!("2026-01-01T00:00:00Z")),
            422,
            "invalid_window",
        ),
        (with(base.clone(), "kind", json!("voucher")), 400, "invalid_field"),
        (with(base.clone(), "extra", json!(1)), 400, "unknown_field"),
    ];
    for (body, status, code) in cases {
        let (s, b, ct) = t.call("POST", "/rewards", Some(&body), As::Operator, None).await;
        assert_eq!(s, status, "{body}: {b}");
        assert_problem(s, &b, &ct, status, code);
    }
    for (who, status) in [
        (As::OrderSystem, 403),
        (As::Member("m-1".into()), 403),
        (As::OtherIam, 403),
        (As::Nobody, 401),
    ] {
        assert_eq!(
            t.call("POST", "/rewards", Some(&base), who.clone(), None).await.0,
            status,
            "{who:?}"
        );
        assert_eq!(t.call("GET", "/rewards", None, who, None).await.0, status);
    }
    let (s, b, _) = t.call("GET", "/rewards", None, As::Operator, None).await;
    assert_eq!(
        (s, b["rewards"].as_array().map(Vec::len)),
        (200, Some(0)),
        "nothing was written: {b}"
    );

    // An Idempotency-Key names the reward: a retry is the same reward, another body a 409.
    let (s, created, _) = t
        .call(
            "POST",
            "/rewards",
            Some(&with(base.clone(), "stock", json!(3))),
            As::Operator,
            Some("tea-set"),
        )
        .await;
    assert_eq!(
        (s, created["reward"]["version"].as_u64(), created["reward"]["stockLeft"].as_u64()),
        (201, Some(1), Some(3)),
        "{created}"
    );
    assert_eq!(
        t.call(
            "POST",
            "/rewards",
            Some(&with(base.clone(), "stock", json!(3))),
            As::Operator,
            Some("tea-set")
        )
        .await
        .1,
        created
    );
    let (s, b, ct) = t.call("POST", "/rewards", Some(&base), As::Operator, Some("tea-set")).await;
    assert_problem(s, &b, &ct, 409, "idempotency_key_reused");
    let reward = created["rewardId"].as_str().unwrap().to_string();

    let buyer = t.member_with(2_000).await;
    assert_eq!(t.claim(&buyer, &reward, 800, "one").await.0, 201);
    assert_eq!(t.claim(&buyer, &reward, 800, "two").await.0, 201);
    let path = format!("/rewards/{reward}");
    let (s, b, ct) = t.call("PATCH", &path, Some(&json!({"stock": 1})), As::Operator, None).await;
    assert_problem(s, &b, &ct, 409, "stock_below_claimed");
    let (s, b, ct) = t
        .call("PATCH", &path, Some(&json!({"price": 900, "version": 7})), As::Operator, None)
        .await;
    assert_problem(s, &b, &ct, 409, "version_conflict");
    let (s, b, ct) =
        t.call("PATCH", &path, Some(&json!({"kind": "coupon"})), As::Operator, None).await;
    assert_problem(s, &b, &ct, 400, "unknown_field");
    let (s, b, ct) = t
        .call(
            "PATCH",
            "/rewards/r-0000000000000000",
            Some(&json!({"price": 1})),
            As::Operator,
            None,
        )
        .await;
    assert_problem(s, &b, &ct, 404, "reward_not_found");
    let (s, b, _) = t
        .call(
            "PATCH",
            &path,
            Some(&json!({"price": 900, "stock": null, "imageUrl": null, "version": 1})),
            As::Operator,
            None,
        )
        .await;
    assert_eq!(
        (
            s,
            b["price"].as_i64(),
            b["version"].as_u64(),
            b.get("stock"),
            b.get("imageUrl"),
            b["claimed"].as_u64()
        ),
        (200, Some(900), Some(2), None, None, Some(2)),
        "{b}"
    );
    let (s, b, _) = t.call("POST", &format!("{path}/deactivate"), None, As::Operator, None).await;
    assert_eq!(
        (s, b["active"].as_bool(), b["version"].as_u64()),
        (200, Some(false), Some(3)),
        "{b}"
    );
    let (s, again, _) =
        t.call("POST", &format!("{path}/deactivate"), None, As::Operator, None).await;
    assert_eq!((s, &again), (200, &b), "deactivating twice changes nothing");
    let (s, b, ct) = t.call("DELETE", &path, None, As::Operator, None).await;
    assert_problem(s, &b, &ct, 405, "method_not_allowed");
    t.assert_balanced(&buyer, 2_000 - 1_600).await;
    t.done().await;
}

#[tokio::test]
async fn the_member_s_catalog_shows_what_they_can_claim_now() {
    let t = setup().await;
    let mug = t.define(json!({"name": "Mug", "price": 300, "kind": "gift", "stock": 2, "perMemberLimit": 2, "limitPeriod": "month"})).await;
    let diamond = t.define(json!({"name": "Diamond tea set", "price": 5_000, "kind": "gift", "tiers": ["diamond"], "stock": 10})).await;
    let coupon = t
        .define(
            json!({"name": "20 CNY off", "price": 1_000, "kind": "coupon", "coupon": "amount-20"}),
        )
        .await;
    t.define(with(gift("Not yet", 10), "availableFrom", json!("2027-01-01T00:00:00Z"))).await;
    let retired = t.define(gift("Retired", 10)).await;
    assert_eq!(
        t.call("POST", &format!("/rewards/{retired}/deactivate"), None, As::Operator, None).await.0,
        200
    );
    let regular = t.member_with(700).await;
    let rich = t.member_with(60_000).await;
    assert_eq!(t.store.member(&rich).await.unwrap().unwrap().tier, loyalty::TierCode::Diamond);
    assert_eq!(t.claim(&regular, &mug, 300, "mug").await.0, 201);
    let seen = |c: &Value| {
        c["rewards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["stockLeft"].as_u64(),
                    r["remaining"].as_u64(),
                    r["enoughPoints"].as_bool().unwrap(),
                    r["claimable"].as_bool().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let c = t.catalog(&regular).await;
    assert_eq!(c["pointsAvailable"].as_i64(), Some(400));
    assert_eq!(
        seen(&c),
        vec![
            ("Mug".into(), Some(1), Some(1), true, true),
            ("20 CNY off".into(), None, None, false, false)
        ],
        "{c}"
    );
    let c = t.catalog(&rich).await;
    assert_eq!(
        seen(&c),
        vec![
            ("Mug".into(), Some(1), Some(2), true, true),
            ("20 CNY off".into(), None, None, true, true),
            ("Diamond tea set".into(), Some(10), None, true, true)
        ],
        "{c}"
    );
    // A Diamond-only gift is claimed like any other; the last mug goes, and then it shows as gone.
    assert_eq!(t.claim(&rich, &diamond, 5_000, "tea").await.0, 201);
    assert_eq!(t.claim(&rich, &mug, 300, "mug").await.0, 201);
    assert_eq!(t.claim(&rich, &coupon, 1_000, "coupon").await.0, 201);
    let c = t.catalog(&regular).await;
    assert_eq!(c["rewards"][0]["reason"], "out_of_stock", "{c}");
    t.assert_balanced(&regular, 400).await;
    t.assert_balanced(&rich, 60_000 - 5_000 - 300 - 1_000).await;
    t.done().await;
}

#[tokio::test]
async fn the_sample_events_run_in_order_through_the_handler() {
    use loyalty::runtime::{classify, Trigger};
    let t = setup().await;
    // Locally both principal lists are empty: any IAM caller passes, as with scripts/dev.
    let deps = Dependencies { principals: Arc::new(Default::default()), ..t.points.deps.clone() };
    let points =
        purchase_points::App { deps: deps.clone(), sqs: t.points.sqs.clone(), codes: code_key() };
    let signup = signup_on(&deps);
    let sample = |name: &str| {
        let text =
            std::fs::read_to_string(format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        match classify(serde_json::from_str(&text).unwrap()) {
            Ok(Trigger::Http(req)) => req,
            _ => panic!("{name} is not an HTTP request"),
        }
    };
    assert_eq!(answer(signup::handle(&signup, sample("signup-join.json")).await).0, 201);
    let mut answers = Vec::new();
    for name in ["create", "list", "update", "claim", "claims", "fulfilment", "deactivate"] {
        let (s, b, _) = answer(
            purchase_points::handle(
                &points,
                sample(&format!("purchase-points-reward-{name}.json")),
            )
            .await,
        );
        answers.push((name, s));
        assert!(s < 300, "{name}: {b}");
    }
    let (s, b, _) = answer(
        purchase_points::handle(&points, sample("purchase-points-rewards-member.json")).await,
    );
    assert_eq!(
        (s, b["rewards"].as_array().map(Vec::len)),
        (200, Some(0)),
        "the deactivated tea set is no longer offered: {b}"
    );
    assert_eq!(
        answers,
        vec![
            ("create", 201),
            ("list", 200),
            ("update", 200),
            ("claim", 201),
            ("claims", 200),
            ("fulfilment", 200),
            ("deactivate", 200)
        ]
    );
    t.assert_balanced("member-demo-1", 0).await;
    t.done().await;
}

#[tokio::test]
async fn a_member_s_claims_count_against_their_write_limit() {
    let t = setup_with(r#"{"returnWindowDays":0,"limits":{"memberWritesPerMinute":2}}"#).await;
    let reward = t.define(gift("Sticker", 100)).await;
    let id = t.member_with(1_000).await;
    assert_eq!(t.claim(&id, &reward, 100, "l-1").await.0, 201);
    assert_eq!(t.claim(&id, &reward, 100, "l-2").await.0, 201);
    let before = t.store.member(&id).await.unwrap().unwrap();
    let (s, b, ct) = t.claim(&id, &reward, 100, "l-3").await;
    assert_problem(s, &b, &ct, 429, "rate_limited");
    assert_eq!(t.store.member(&id).await.unwrap().unwrap(), before, "nothing written");
    // A retry of a recorded claim is answered, not counted; the next minute admits claims again.
    assert_eq!(t.claim(&id, &reward, 100, "l-1").await.0, 201);
    t.advance(Duration::minutes(1));
    assert_eq!(t.claim(&id, &reward, 100, "l-3").await.0, 201);
    t.assert_balanced(&id, 700).await;
    t.done().await;
}
