//! Order rebates (返利) through the real handlers against the local stack, with the default
//! rules (gold 2%, a 7-day return window): credited pending by each order, available after
//! the window with no job, reversed exactly by refunds, spent at checkout exactly once under
//! racing calls; `rebate == Σ ledger` throughout. A member's token can move none of it.

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use loyalty::app::Clock;
use loyalty::ledger::EntryKind;
use loyalty::{Fen, Rules, TierCode};
use loyalty_tests::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A Friday that is not a member day, noon in Shanghai.
const NOW: &str = "2026-11-20T04:00:00Z";

struct T {
    points: purchase_points::App,
    signup: signup::App,
    clock: Arc<Mutex<DateTime<Utc>>>,
    h: Harness,
}

async fn setup() -> T {
    let clock = Arc::new(Mutex::new(at(NOW)));
    let h = harness_with(Rules::default(), Clock::Shared(clock.clone())).await;
    assert_eq!(h.deps.rules.tier(TierCode::Gold).rebate_basis_points, 200);
    T { points: h.points_app(), signup: signup_on(&h.deps), clock, h }
}

impl T {
    fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    fn advance(&self, d: Duration) {
        *self.clock.lock().unwrap() += d;
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>, who: As) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let (s, b, _) = answer(
            purchase_points::handle(&self.points, request(method, path, text.as_deref(), who))
                .await,
        );
        (s, b)
    }

    async fn order_system(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body), As::OrderSystem).await
    }

    /// A Gold member: one 10,000 CNY order (earning the regular tier's 0% rebate) upgrades at
    /// once. The order is refunded in the tests that need its points gone; here it stays.
    async fn gold_member(&self) -> String {
        let id = unique("rb");
        let body = json!({"email": format!("{}@example.com", id.to_lowercase()), "name": "Test"});
        let (s, b, _) = answer(
            signup::handle(
                &self.signup,
                request("POST", "/members", Some(&body.to_string()), As::Member(id.clone())),
            )
            .await,
        );
        assert_eq!(s, 201, "{b}");
        let b = self.buy(&id, &unique("seed"), 1_000_000).await;
        assert_eq!((b["tier"].as_str(), b["rebateEarned"].as_i64()), (Some("gold"), Some(0)));
        id
    }

    async fn buy(&self, id: &str, order: &str, fen: i64) -> Value {
        let body = json!({"orderId": order, "amount": fen, "currency": "CNY", "channel": "online", "occurredAt": self.now() - Duration::minutes(1)});
        let (s, b) = self.order_system(&format!("/internal/members/{id}/purchases"), body).await;
        assert_eq!(s, 201, "{b}");
        b
    }

    async fn profile(&self, id: &str) -> Value {
        let (s, b, _) = answer(
            signup::handle(
                &self.signup,
                request("GET", &format!("/members/{id}"), None, As::Member(id.into())),
            )
            .await,
        );
        assert_eq!(s, 200, "{b}");
        b
    }

    /// The stored wallet's rebate (available, pending) equals the ledger's sums.
    async fn assert_rebate_balanced(&self, id: &str, available: i64, pending: i64) {
        let m = self.h.deps.store.member(id).await.unwrap().unwrap();
        assert!(m.wallet.is_consistent(), "{:?}", m.wallet);
        let ledger = self.h.deps.store.ledger_all(id).await.unwrap();
        let sum = |f: fn(&loyalty::ledger::LedgerEntry) -> Fen| ledger.iter().map(f).sum::<Fen>();
        assert_eq!(
            (m.wallet.rebate.0, m.wallet.pending_rebate().0),
            (available, pending),
            "wallet"
        );
        assert_eq!(
            (sum(|e| e.rebate).0, sum(|e| e.rebate_pending).0),
            (available, pending),
            "Σ ledger"
        );
    }
}

#[tokio::test]
async fn a_hundred_concurrent_orders_of_a_gold_member_earn_exactly_two_percent_pending_then_available(
) {
    let t = setup().await;
    let id = t.gold_member().await;
    // About 17,700 CNY in all: the member stays Gold (Diamond starts at 50,000).
    let amounts: Vec<i64> = (0..100).map(|n| 999 + n * 337).collect();
    let orders: Vec<String> = (0..amounts.len()).map(|n| format!("o-{n}")).collect();
    let answers =
        join_all(orders.iter().zip(&amounts).map(|(order, fen)| t.buy(&id, order, *fen))).await;
    // Each order's own rebate, floor(2% of what was paid), and their sum to the fen.
    let want: i64 = amounts.iter().map(|f| f * 200 / 10_000).sum();
    let got: i64 = answers.iter().map(|b| b["rebateEarned"].as_i64().unwrap()).sum();
    assert_eq!(got, want);
    t.assert_rebate_balanced(&id, 0, want).await;
    let p = t.profile(&id).await;
    assert_eq!((p["rebate"].as_i64(), p["rebatePending"].as_i64()), (Some(0), Some(want)));
    assert_eq!(p["benefits"]["rebateBasisPoints"], 200);

    // A refund inside the window cancels exactly its share of the pending rebate.
    let (s, b) = t
        .order_system(
            &format!("/internal/members/{id}/refunds"),
            json!({"orderId": "o-7", "refundId": "r-7", "amount": amounts[7] / 3}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let reversed = (amounts[7] * 200 / 10_000) * (amounts[7] / 3) / amounts[7];
    assert_eq!(b["rebateReversed"].as_i64(), Some(reversed));
    t.assert_rebate_balanced(&id, 0, want - reversed).await;

    // The window ends: the next read shows it all available, with no job having run.
    t.advance(Duration::days(8));
    let p = t.profile(&id).await;
    assert_eq!(
        (p["rebate"].as_i64(), p["rebatePending"].as_i64(), p["rebateAvailable"].as_i64()),
        (Some(want - reversed), Some(0), Some(want - reversed))
    );
    // The next write stores the release, as one ledger entry, and the sums still hold.
    t.buy(&id, "o-after", 100).await;
    t.assert_rebate_balanced(&id, want - reversed, 2).await;
    let ledger = t.h.deps.store.ledger_all(&id).await.unwrap();
    let release = ledger.iter().filter(|e| e.kind == EntryKind::Release).collect::<Vec<_>>();
    assert_eq!(release.len(), 1);
    assert_eq!(release[0].rebate.0, want - reversed);
}

#[tokio::test]
async fn a_refund_after_the_window_takes_the_rebate_back_as_a_debt_the_next_rebate_pays() {
    let t = setup().await;
    let id = t.gold_member().await;
    t.buy(&id, "big", 500_000).await; // 100 CNY rebate
    t.advance(Duration::days(8));
    // Spend most of it on an order, then refund the rebated order in full.
    let quote = json!({"orderId": "spend", "amount": 100_000, "currency": "CNY", "channel": "online", "rebate": 9_000});
    let (s, b) = t.order_system(&format!("/internal/members/{id}/checkouts"), quote).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = t
        .call(
            "POST",
            &format!("/internal/members/{id}/checkouts/spend/confirm"),
            None,
            As::OrderSystem,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // Paid 800 − 90 = 710 CNY: 14.20 CNY rebate, pending.
    t.assert_rebate_balanced(&id, 1_000, 1_420).await;
    let (s, b) = t
        .order_system(
            &format!("/internal/members/{id}/refunds"),
            json!({"orderId": "big", "refundId": "r-big", "amount": 500_000}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!((b["rebateReversed"].as_i64(), b["rebate"].as_i64()), (Some(10_000), Some(-9_000)));
    t.assert_rebate_balanced(&id, -9_000, 1_420).await;
    // A debt is never spendable.
    let p = t.profile(&id).await;
    assert_eq!(p["rebateAvailable"].as_i64(), Some(0));
    // The next release pays the debt first.
    t.advance(Duration::days(8));
    t.buy(&id, "later", 100).await;
    t.assert_rebate_balanced(&id, -9_000 + 1_420, 2).await;
}

#[tokio::test]
async fn racing_checkouts_spend_the_rebate_balance_exactly_once() {
    let t = setup().await;
    let id = t.gold_member().await;
    t.buy(&id, "earn", 250_000).await; // 50 CNY rebate
    t.advance(Duration::days(8));
    let path = format!("/internal/members/{id}/checkouts");
    // 50 racing quotes of one order (the order system retrying): one hold.
    let body = json!({"orderId": "one", "amount": 20_000, "currency": "CNY", "channel": "online", "rebate": 3_000});
    let answers = join_all((0..50).map(|_| t.order_system(&path, body.clone()))).await;
    assert!(answers.iter().all(|(s, b)| *s == 201 && b["rebateUsed"] == 3_000), "{answers:?}");
    // 20 racing orders over the 20 CNY left: each asks 5 CNY, so four hold and the rest are
    // told the balance is held (or the open-checkout cap is reached).
    let others = join_all((0..20).map(|n| {
        let body = json!({"orderId": format!("other-{n}"), "amount": 20_000, "currency": "CNY", "channel": "online", "rebate": 500});
        t.order_system(&path, body)
    }))
    .await;
    let held = others.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(held, 4, "{others:?}");
    for (s, b) in others.iter().filter(|(s, _)| *s != 201) {
        assert!(
            *s == 422 && b["code"] == "insufficient_rebate"
                || *s == 409 && b["code"] == "too_many_open_checkouts",
            "{s} {b}"
        );
    }
    // 50 racing confirms of the first order: one purchase, the rebate spent once.
    let confirm = format!("/internal/members/{id}/checkouts/one/confirm");
    let confirms = join_all((0..50).map(|_| t.call("POST", &confirm, None, As::OrderSystem))).await;
    assert!(confirms.iter().all(|(s, _)| *s == 200), "{confirms:?}");
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    // 200 CNY → gold 20% off → 160, less 30 CNY of rebate → 130 paid: 2.60 CNY pending.
    t.assert_rebate_balanced(&id, 5_000 - 3_000, 260).await;
    assert_eq!(m.holds.iter().map(|h| h.rebate).sum::<i64>(), 4 * 500);
    let spent = t.h.deps.store.ledger_all(&id).await.unwrap();
    assert_eq!(spent.iter().filter(|e| e.kind == EntryKind::Rebate).count(), 1);
}

#[tokio::test]
async fn a_member_who_lies_gains_no_rebate() {
    let t = setup().await;
    let id = t.gold_member().await;
    let me = As::Member(id.clone());
    // A member cannot report an order, a refund or a checkout for themself.
    let buy = json!({"orderId": "fake", "amount": 1_000_000, "currency": "CNY", "channel": "online", "occurredAt": t.now()});
    for path in [
        format!("/internal/members/{id}/purchases"),
        format!("/members/{id}/purchases"),
        format!("/internal/members/{id}/checkouts"),
    ] {
        let (s, _) = t.call("POST", &path, Some(buy.clone()), me.clone()).await;
        assert!((400..500).contains(&s), "{path}: {s}");
    }
    // The preview prices a rebate the member has not got as refused, and holds nothing.
    let (s, b) = t
        .call(
            "POST",
            &format!("/members/{id}/checkout-preview"),
            Some(json!({"amount": 20_000, "rebate": 1_000})),
            me.clone(),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (422, Some("insufficient_rebate")), "{b}");
    let (s, b) = t
        .call(
            "POST",
            &format!("/members/{id}/checkout-preview"),
            Some(json!({"amount": 20_000, "rebate": -5})),
            me,
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (422, Some("invalid_rebate")), "{b}");
    t.assert_rebate_balanced(&id, 0, 0).await;
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert!(m.holds.is_empty());
}

#[tokio::test]
async fn paying_with_the_rebate_is_still_one_read_and_one_write_request_per_call() {
    let t = setup().await;
    let id = t.gold_member().await;
    t.buy(&id, "earn", 100_000).await;
    t.advance(Duration::days(8));
    let quote = json!({"orderId": "pay", "amount": 20_000, "currency": "CNY", "channel": "online", "rebate": 1_000});
    let mut counts = Vec::new();
    for call in ["quote", "confirm", "refund"] {
        t.h.counter.reset();
        let (s, b) = match call {
            "quote" => {
                t.order_system(&format!("/internal/members/{id}/checkouts"), quote.clone()).await
            }
            "confirm" => {
                let path = format!("/internal/members/{id}/checkouts/pay/confirm");
                t.call("POST", &path, None, As::OrderSystem).await
            }
            _ => {
                let body = json!({"orderId": "pay", "refundId": "r-pay", "amount": 5_000});
                t.order_system(&format!("/internal/members/{id}/refunds"), body).await
            }
        };
        assert!(s < 300, "{call}: {b}");
        counts.push((call, t.h.counter.reads(), t.h.counter.writes()));
    }
    assert_eq!(counts, vec![("quote", 1, 1), ("confirm", 1, 1), ("refund", 1, 1)]);
}
