//! The return window (七天无理由退货) through the real handlers against the local stack, with
//! the default rules (7 days): points and referral rewards are pending until the window ends
//! and become available with no job; refunds inside it cancel them; refunds re-decide tiers.

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use loyalty::app::Clock;
use loyalty::ledger::EntryKind;
use loyalty::{Rules, TierCode};
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
    assert_eq!(h.deps.rules.return_window_days, 7);
    T { points: h.points_app(), signup: signup_on(&h.deps), clock, h }
}

impl T {
    fn advance(&self, d: Duration) {
        *self.clock.lock().unwrap() += d;
    }

    fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    async fn join(&self, referral: Option<&str>) -> (String, Value) {
        let id = unique("rw");
        let mut body =
            json!({"email": format!("{}@example.com", id.to_lowercase()), "name": "Test"});
        if let Some(c) = referral {
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

    async fn call(&self, path: &str, body: Value) -> (u16, Value, String) {
        answer(
            purchase_points::handle(
                &self.points,
                request("POST", path, Some(&body.to_string()), As::OrderSystem),
            )
            .await,
        )
    }

    async fn buy(&self, id: &str, order: &str, fen: i64) -> Value {
        let (s, b, _) = self.call(&format!("/internal/members/{id}/purchases"), json!({"orderId": order, "amount": fen, "currency": "CNY", "channel": "online", "occurredAt": self.now() - Duration::minutes(1)})).await;
        assert_eq!(s, 201, "{b}");
        b
    }

    async fn refund(&self, id: &str, order: &str, refund: &str, fen: i64) -> Value {
        let (s, b, _) = self
            .call(
                &format!("/internal/members/{id}/refunds"),
                json!({"orderId": order, "refundId": refund, "amount": fen}),
            )
            .await;
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

    /// Available points == Σ ledger points, pending points == Σ ledger pending, as stored.
    async fn assert_balanced(&self, id: &str, available: i64, pending: i64) {
        let m = self.h.deps.store.member(id).await.unwrap().unwrap();
        assert!(m.wallet.is_consistent(), "{:?}", m.wallet);
        let ledger = self.h.deps.store.ledger_all(id).await.unwrap();
        assert_eq!(
            (m.wallet.balance.0, m.wallet.pending_total()),
            (available, pending),
            "stored balances"
        );
        assert_eq!(
            (
                ledger.iter().map(|e| e.points.0).sum::<i64>(),
                ledger.iter().map(|e| e.pending.0).sum::<i64>()
            ),
            (available, pending),
            "the ledger's sums"
        );
    }
}

#[tokio::test]
async fn a_full_refund_inside_the_window_takes_the_tier_and_the_pending_points_and_leaves_no_debt()
{
    let t = setup().await;
    let (id, _) = t.join(None).await;
    let b = t.buy(&id, "big-1", 50_000_00).await;
    assert_eq!(
        (
            b["tier"].as_str(),
            b["pointsEarned"].as_i64(),
            b["points"].as_i64(),
            b["availableOn"].as_str()
        ),
        (Some("diamond"), Some(50_000), Some(100), Some("2026-11-27")),
        "{b}"
    );
    let p = t.profile(&id).await;
    assert_eq!(
        (p["pointsPending"].as_i64(), &p["pending"]),
        (Some(50_000), &json!([{"points": 50_000, "rebate": 0, "availableOn": "2026-11-27"}]))
    );
    t.advance(Duration::days(1));
    let r = t.refund(&id, "big-1", "big-1-r", 50_000_00).await;
    assert_eq!(
        (
            r["pendingCancelled"].as_i64(),
            r["points"].as_i64(),
            r["tier"].as_str(),
            r["tierChanged"].as_bool()
        ),
        (Some(50_000), Some(100), Some("regular"), Some(true)),
        "{r}"
    );
    let p = t.profile(&id).await;
    assert_eq!(
        (
            p["tier"].as_str(),
            p["benefits"]["memberDiscountPercent"].as_i64(),
            p["tierProtectedUntil"].is_null()
        ),
        (Some("regular"), Some(0), true),
        "{p}"
    );
    let history = t.h.deps.store.tier_history(&id).await.unwrap();
    assert_eq!(
        history.iter().map(|c| (c.to, c.reason.as_str())).collect::<Vec<_>>(),
        vec![
            (TierCode::Diamond, "rolling spend 50000.00 CNY reached diamond"),
            (TierCode::Regular, "refund")
        ]
    );
    t.assert_balanced(&id, 100, 0).await;
}

#[tokio::test]
async fn a_full_refund_after_the_window_claws_back_and_re_decides_the_tier_the_same_way() {
    let t = setup().await;
    let (id, _) = t.join(None).await;
    t.buy(&id, "small", 2_500_00).await; // Silver, kept
    t.buy(&id, "big", 48_000_00).await; // Diamond, to be returned late
    t.advance(Duration::days(8));
    let p = t.profile(&id).await;
    assert_eq!(
        (p["points"].as_i64(), p["pointsPending"].as_i64()),
        (Some(100 + 2_500 + 57_600), Some(0)),
        "available on day 8 without any job: {p}"
    );
    let r = t.refund(&id, "big", "big-r", 48_000_00).await;
    assert_eq!(
        (r["pointsClawedBack"].as_i64(), r["pendingCancelled"].as_i64(), r["tier"].as_str()),
        (Some(57_600), Some(0), Some("silver")),
        "{r}"
    );
    // Silver was reached with spend that was kept, so it keeps Silver's protection.
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!((m.tier, m.stepped_down_at), (TierCode::Silver, None));
    assert_eq!(
        t.h.deps.store.tier_history(&id).await.unwrap().last().map(|c| c.reason.clone()),
        Some("refund".into())
    );
    t.assert_balanced(&id, 2_600, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_points_cannot_be_spent_and_a_refund_on_day_three_cancels_exactly_its_part() {
    let t = setup().await;
    let (id, _) = t.join(None).await;
    t.buy(&id, "p-1", 1_000_00).await;
    t.buy(&id, "p-2", 500_00).await;
    // 100 concurrent checkouts each wanting 100 points: only the welcome 100 are available.
    let results = join_all((0..100).map(|i| {
        let (t, id) = (&t, &id);
        async move { t.call(&format!("/internal/members/{id}/checkouts"), json!({"orderId": format!("c-{i}"), "amount": 10_000, "currency": "CNY", "channel": "online", "points": 100})).await }
    }))
    .await;
    assert_eq!(
        results.iter().filter(|r| r.0 == 201).count(),
        1,
        "exactly the 100 available points are held once"
    );
    for (s, b, ct) in results.iter().filter(|r| r.0 != 201) {
        assert_problem(*s, b, ct, 422, "insufficient_points");
    }
    t.advance(Duration::days(3));
    let r = t.refund(&id, "p-1", "p-1-r", 250_00).await;
    assert_eq!(
        (r["pendingCancelled"].as_i64(), r["pointsClawedBack"].as_i64()),
        (Some(250), Some(250))
    );
    t.assert_balanced(&id, 100, 750 + 500).await;
    // Day 8: everything left is available, with no job having run.
    t.advance(Duration::days(5));
    let p = t.profile(&id).await;
    assert_eq!((p["points"].as_i64(), p["pointsPending"].as_i64()), (Some(1_350), Some(0)), "{p}");
    // The next change writes the release into the ledger.
    let (s, b, _) = answer(
        purchase_points::handle(
            &t.points,
            request(
                "POST",
                &format!("/members/{id}/activities"),
                Some(&json!({"type": "checkin"}).to_string()),
                As::Member(id.clone()),
            ),
        )
        .await,
    );
    assert_eq!((s, b["points"].as_i64()), (201, Some(1_355)), "{b}");
    let ledger = t.h.deps.store.ledger_all(&id).await.unwrap();
    assert_eq!(
        ledger.iter().filter(|e| e.kind == EntryKind::Release).map(|e| e.points.0).sum::<i64>(),
        1_250
    );
    t.assert_balanced(&id, 1_355, 0).await;
}

#[tokio::test]
async fn the_daily_sweep_releases_pending_points() {
    let t = setup().await;
    let (id, _) = t.join(None).await;
    t.buy(&id, "s-1", 300_00).await;
    t.advance(Duration::days(7));
    purchase_points::expire_member(
        &t.points,
        &id,
        loyalty::calendar::program_date(t.h.deps.rules.time_zone, t.now()),
        t.now(),
    )
    .await
    .unwrap();
    t.assert_balanced(&id, 400, 0).await;
    let lots = t.h.deps.store.member(&id).await.unwrap().unwrap().wallet.lots;
    assert_eq!(
        lots.last().map(|l| (l.earned_on.to_string(), l.points)),
        Some(("2026-11-27".into(), 300)),
        "expiry counts from availability"
    );
}

#[tokio::test]
async fn the_referrer_is_rewarded_only_for_a_first_order_that_is_kept() {
    let t = setup().await;
    let (referrer, rb) = t.join(None).await;
    let code = rb["referralCode"].as_str().unwrap().to_string();
    // Bought and fully returned inside the window: nothing for the referrer.
    let (returned, _) = t.join(Some(&code)).await;
    t.buy(&returned, "r-1", 300_00).await;
    t.assert_balanced(&referrer, 100, 200).await;
    t.refund(&returned, "r-1", "r-1-r", 300_00).await;
    t.assert_balanced(&referrer, 100, 0).await;
    // Bought and kept: 200 pending, then available after the window.
    let (kept, _) = t.join(Some(&code)).await;
    t.buy(&kept, "k-1", 300_00).await;
    t.assert_balanced(&referrer, 100, 200).await;
    t.advance(Duration::days(7));
    let p = t.profile(&referrer).await;
    assert_eq!((p["points"].as_i64(), p["pointsPending"].as_i64()), (Some(300), Some(0)), "{p}");
    // A refund after the window takes nothing back from the referrer.
    t.refund(&kept, "k-1", "k-1-r", 300_00).await;
    let p = t.profile(&referrer).await;
    assert_eq!(p["points"].as_i64(), Some(300));
}

/// A change writes one ledger item, whatever its settling adds: a year on, a purchase that
/// also releases an old order's pending points and expires the year-old lots writes its three
/// entries as one item (the member, that item and the order: write units that do not grow
/// with the entries). Readers see each entry in its place, and a page of the API can end
/// inside the item and go on from there.
#[tokio::test]
async fn a_change_writes_its_entries_as_one_ledger_item() {
    let t = setup().await;
    let (id, _) = t.join(None).await;
    t.buy(&id, "early-1", 300_00).await;
    let items = || async {
        let all: Vec<loyalty::store::ledger::LedgerItem> =
            t.h.deps.store.member_items(&id, "LEDGER#").await.unwrap();
        all.len()
    };
    assert_eq!(items().await, 2, "the welcome entry and the purchase");
    t.advance(Duration::days(366));
    t.buy(&id, "late-1", 200_00).await;
    assert_eq!(items().await, 3, "one item more for the change");
    let ledger = t.h.deps.store.ledger_all(&id).await.unwrap();
    let kinds: Vec<_> = ledger.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    assert_eq!(kinds[..3], [EntryKind::Purchase, EntryKind::Expiry, EntryKind::Release]);
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    t.assert_balanced(&id, m.wallet.balance.0, m.wallet.pending_total()).await;
    // Pages of two through the API: the second page starts inside the change's item.
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    for _ in 0..5 {
        let q = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
        let path = format!("/members/{id}/ledger?limit=2{q}");
        let get = request("GET", &path, None, As::Member(id.clone()));
        let (s, page, _) = answer(purchase_points::handle(&t.points, get).await);
        assert_eq!(s, 200, "{page}");
        let entries = page["entries"].as_array().unwrap();
        assert!(!entries.is_empty() && entries.len() <= 2, "{page}");
        seen.extend(
            entries.iter().map(|e| serde_json::from_value::<EntryKind>(e["kind"].clone()).unwrap()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, kinds, "the pages hold the ledger, in order, each entry once");
}
