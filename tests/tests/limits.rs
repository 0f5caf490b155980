//! The per-member write limit (`limits.memberWritesPerMinute`) through the real
//! purchase-points handler against DynamoDB Local: over the limit, a member's activities and
//! the order system's checkout quotes for that member are answered 429 `rate_limited` with
//! `Retry-After`, cost one read and write nothing; another member is unaffected; replays and
//! the read-only preview are not refused; the next minute the member writes again.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use loyalty::app::Clock;
use loyalty::store::{keys, Item};
use loyalty::{Rules, TierCode};
use loyalty_tests::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// 10:15:42 in Shanghai on a day that is not a member day: 18 s are left of the minute.
const NOW: &str = "2026-11-20T02:15:42Z";

struct T {
    app: purchase_points::App,
    clock: Arc<Mutex<DateTime<Utc>>>,
    h: Harness,
}

async fn setup(limit: u32) -> T {
    let clock = Arc::new(Mutex::new(at(NOW)));
    let rules =
        Rules::from_overrides(&json!({"limits": {"memberWritesPerMinute": limit}}).to_string())
            .unwrap();
    let h = harness_with(rules, Clock::Shared(clock.clone())).await;
    T { app: h.points_app(), clock, h }
}

impl T {
    async fn member(&self) -> String {
        let id = unique("lim");
        seed_members(
            &self.h,
            &[plain_member(&id, TierCode::Regular, at(NOW) - Duration::days(30))],
            at(NOW),
        )
        .await;
        id
    }

    async fn call(
        &self,
        path: &str,
        body: Value,
        who: As,
        headers: &[(&str, &str)],
    ) -> (u16, Value, Option<String>) {
        let text = body.to_string();
        let resp = purchase_points::handle(
            &self.app,
            request_with_headers("POST", path, Some(&text), who, headers),
        )
        .await;
        let retry_after =
            resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let (s, b, ct) = answer(resp);
        if s >= 400 {
            assert_eq!(ct, "application/problem+json", "{b}");
        }
        (s, b, retry_after)
    }

    async fn activity(
        &self,
        id: &str,
        body: Value,
        key: Option<&str>,
    ) -> (u16, Value, Option<String>) {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        self.call(&format!("/members/{id}/activities"), body, As::Member(id.into()), &headers).await
    }

    async fn quote(&self, id: &str, order: &str) -> (u16, Value, Option<String>) {
        let body =
            json!({"orderId": order, "amount": 12_000, "currency": "CNY", "channel": "online"});
        self.call(&format!("/internal/members/{id}/checkouts"), body, As::OrderSystem, &[]).await
    }

    /// Every item of the member's partition, in key order: "nothing written" is this unchanged.
    async fn partition(&self, id: &str) -> Vec<Item> {
        let store = &self.h.deps.store;
        let out = store
            .client
            .query()
            .table_name(&store.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::member_pk(id)))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.items.unwrap_or_default()
    }

    /// A refused attempt: 429 rate_limited with the wait, one read, no write, nothing changed.
    async fn assert_refused_writing_nothing(
        &self,
        id: &str,
        attempt: impl std::future::Future<Output = (u16, Value, Option<String>)>,
    ) {
        let before = self.partition(id).await;
        self.h.counter.reset();
        let (s, b, retry_after) = attempt.await;
        assert_problem(s, &b, "application/problem+json", 429, "rate_limited");
        assert_eq!(b["title"], "Too many requests");
        let secs: u64 = retry_after.expect("a 429 carries Retry-After").parse().unwrap();
        let left = 60 - self.clock.lock().unwrap().timestamp().rem_euclid(60) as u64;
        assert_eq!(secs, left, "the wait is what is left of the minute");
        assert_eq!(
            (self.h.counter.reads(), self.h.counter.writes()),
            (1, 0),
            "{:?}",
            self.h.counter.snapshot()
        );
        assert_eq!(self.partition(id).await, before, "a refused attempt writes nothing");
    }
}

#[tokio::test]
async fn activities_over_the_limit_are_429_with_retry_after_and_write_nothing() {
    let t = setup(3).await;
    let (a, b) = (t.member().await, t.member().await);
    assert_eq!(t.activity(&a, json!({"type": "checkin"}), None).await.0, 201);
    assert_eq!(t.activity(&a, json!({"type": "share", "refId": "p-1"}), Some("s-1")).await.0, 201);
    assert_eq!(t.activity(&a, json!({"type": "share", "refId": "p-2"}), Some("s-2")).await.0, 201);
    // The fourth write within the minute: refused before anything is decided (the share limit,
    // 3 a day, would have allowed it).
    t.assert_refused_writing_nothing(
        &a,
        t.activity(&a, json!({"type": "share", "refId": "p-3"}), Some("s-3")),
    )
    .await;
    t.assert_refused_writing_nothing(
        &a,
        t.activity(&a, json!({"type": "share", "refId": "p-3"}), Some("s-3")),
    )
    .await;
    // A retry of a share that was recorded gets its first answer: it writes nothing, so no limit applies.
    let (s, replay, _) =
        t.activity(&a, json!({"type": "share", "refId": "p-2"}), Some("s-2")).await;
    assert_eq!((s, &replay["type"]), (201, &json!("share")), "{replay}");
    // Another member is not affected.
    assert_eq!(t.activity(&b, json!({"type": "checkin"}), None).await.0, 201);

    // The next minute the member writes again, up to the limit.
    *t.clock.lock().unwrap() = at("2026-11-20T02:16:00Z");
    let (s, body, _) = t.activity(&a, json!({"type": "share", "refId": "p-3"}), Some("s-3")).await;
    assert_eq!(s, 201, "{body}");
    let m = t.h.deps.store.member(&a).await.unwrap().unwrap();
    assert_eq!(m.write_window.map(|w| w.count), Some(1), "the new minute counts from one");
    assert_eq!(m.wallet.balance.0, 5 + 2 * 3, "check-in and three shares");
}

#[tokio::test]
async fn checkout_quotes_share_the_member_s_limit_and_the_preview_stays_open() {
    let t = setup(2).await;
    let id = t.member().await;
    let (o1, o2) = (unique("o"), unique("o"));
    assert_eq!(t.quote(&id, &o1).await.0, 201);
    assert_eq!(t.activity(&id, json!({"type": "checkin"}), None).await.0, 201);
    // Two writes this minute: a third quote, or any activity, waits.
    t.assert_refused_writing_nothing(&id, t.quote(&id, &o2)).await;
    t.assert_refused_writing_nothing(
        &id,
        t.activity(&id, json!({"type": "share", "refId": "p"}), None),
    )
    .await;
    // The same quote again while its hold lives is its first answer (nothing written).
    let (s, b, _) = t.quote(&id, &o1).await;
    assert_eq!((s, &b["state"]), (201, &json!("held")), "{b}");
    // The member's preview reads only, so it is never counted nor refused.
    let (s, b, _) = t
        .call(
            &format!("/members/{id}/checkout-preview"),
            json!({"amount": 12_000}),
            As::Member(id.clone()),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    *t.clock.lock().unwrap() += Duration::seconds(60);
    let (s, b, _) = t.quote(&id, &o2).await;
    assert_eq!(s, 201, "{b}");
}

#[tokio::test]
async fn concurrent_attempts_never_get_past_the_limit() {
    let t = setup(5).await;
    let id = t.member().await;
    // 20 quotes of distinct orders at once: the counter is on the version-checked member
    // record, so exactly 5 land this minute whatever the interleaving; the rest are 429s.
    let attempts = (0..20).map(|_| {
        let (t, id) = (&t, id.clone());
        async move { t.quote(&id, &unique("o")).await.0 }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15, "{statuses:?}");
    let m = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!((m.write_window.unwrap().count, m.holds.len()), (5, 5));
}
