//! KPIs end to end in process: the real handlers write to a table of the test's own with the
//! template's stream; the test reads the stream and hands its records to events-out's counter
//! (`events_out::count`) in batches as Lambda's mapping would; `GET /reports/kpis` (member-day)
//! reads the counters back. Every number of the report is checked against a history built by
//! hand; records delivered again change nothing; concurrent purchases counted by concurrent
//! batches match the ledger.

use chrono::{DateTime, Duration, Utc};
use loyalty::app::{Clock, Dependencies};
use loyalty::store::Store;
use loyalty::{Rules, TierCode};
use loyalty_tests::outbox::{self, StreamReader};
use loyalty_tests::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A Friday that is not a member day, noon in Shanghai: program day 2026-11-20.
const NOW: &str = "2026-11-20T04:00:00Z";
const DAY1: &str = "2026-11-20";
const DAY2: &str = "2026-11-21";

struct World {
    h: Harness,
    table: String,
    deps: Dependencies,
    stream: StreamReader,
    kpis: events_out::Kpis,
    clock: Arc<Mutex<DateTime<Utc>>>,
}

impl World {
    async fn new(prefix: &str) -> World {
        let clock = Arc::new(Mutex::new(at(NOW)));
        let h = harness_with(Rules::default(), Clock::Shared(clock.clone())).await;
        let table = outbox::stream_table(&h, prefix).await;
        let deps = Dependencies {
            store: Store::new(h.deps.store.client.clone(), table.clone()),
            ..h.deps.clone()
        };
        let stream = StreamReader::open(&h, &table).await;
        let kpis = events_out::Kpis {
            store: deps.store.clone(),
            time_zone: deps.rules.time_zone,
            conversion_days: deps.rules.reports.conversion_days,
        };
        World { h, table, deps, stream, kpis, clock }
    }

    fn signup(&self) -> signup::App {
        signup_on(&self.deps)
    }

    fn points(&self) -> purchase_points::App {
        purchase_points::App {
            deps: self.deps.clone(),
            sqs: aws_sdk_sqs::Client::new(&self.h.sdk_config),
            codes: code_key(),
        }
    }

    fn campaigns(&self) -> member_day::App {
        member_day::App {
            deps: self.deps.clone(),
            sqs: aws_sdk_sqs::Client::new(&self.h.sdk_config),
            campaign_queue: String::new(),
            dispatch_queue: String::new(),
            members_files: None,
            budget: std::time::Duration::from_secs(60),
        }
    }

    fn advance(&self, d: Duration) {
        *self.clock.lock().unwrap() += d;
    }

    /// Counts every record written since the last call, in batches of `batch` (the mapping's
    /// BatchSize is 100); answers the records.
    async fn count(&mut self, batch: usize) -> Vec<aws_lambda_events::dynamodb::EventRecord> {
        let records = self.stream.read().await;
        for chunk in records.chunks(batch) {
            assert_eq!(events_out::count(&self.kpis, chunk).await, None, "every record counted");
        }
        records
    }

    async fn report(&self, query: &str, who: As) -> (u16, Value) {
        let (s, b, _) = answer(
            member_day::handle(
                &self.campaigns(),
                request("GET", &format!("/reports/kpis{query}"), None, who),
            )
            .await,
        );
        (s, b)
    }

    async fn done(self) {
        outbox::drop_table(&self.h, &self.table).await;
    }
}

async fn join(w: &World, id: &str) -> Value {
    let email = format!("{}@example.com", id.to_lowercase());
    let body = json!({"name": "Kpi Member", "email": email, "marketingConsent": true}).to_string();
    let (s, b, _) = answer(
        signup::handle(
            &w.signup(),
            request("POST", "/members", Some(&body), As::Member(id.into())),
        )
        .await,
    );
    assert_eq!(s, 201, "{b}");
    b
}

async fn internal(w: &World, id: &str, route: &str, body: Value) -> (u16, Value) {
    let (s, b, _) = answer(
        purchase_points::handle(
            &w.points(),
            request(
                "POST",
                &format!("/internal/members/{id}/{route}"),
                Some(&body.to_string()),
                As::OrderSystem,
            ),
        )
        .await,
    );
    (s, b)
}

/// A one-off campaign for every tier, defined and run now, its queues driven by hand; answers
/// its grant.
async fn run_campaign(w: &World) -> String {
    run_campaign_with(w, json!({})).await.0
}

/// `run_campaign` with more of the definition (`extra`'s fields): its grant and its id.
async fn run_campaign_with(w: &World, extra: Value) -> (String, String) {
    let sqs = aws_sdk_sqs::Client::new(&w.h.sdk_config);
    let q = |name: String| {
        let sqs = sqs.clone();
        async move { sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap() }
    };
    let app = member_day::App {
        campaign_queue: q(unique("kcq")).await,
        dispatch_queue: q(unique("kdq")).await,
        ..w.campaigns()
    };
    let worker = worker_on(&w.deps);
    let now = w.deps.clock.now();
    let mut body = json!({"name": "KPI day", "segment": {"tiers": ["regular", "silver", "gold", "diamond"]},
        "coupon": {"title": "8 CNY off", "offer": {"kind": "amount_off", "value": 800, "minSpend": 0}, "validDays": 3},
        "schedule": {"kind": "once", "at": now + Duration::days(30)}});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let body = body.to_string();
    let (s, created, _) = answer(
        member_day::handle(&app, request("POST", "/campaigns", Some(&body), As::Operator)).await,
    );
    assert_eq!(s, 201, "{created}");
    let campaign = created["campaignId"].as_str().unwrap().to_string();
    let (s, b, _) = answer(
        member_day::handle(
            &app,
            request("POST", &format!("/campaigns/{campaign}/run"), None, As::Operator),
        )
        .await,
    );
    assert_eq!(s, 202, "{b}");
    loyalty_tests::drain_campaign_queues(&app, &worker, &sqs, async || {}).await;
    for u in [&app.campaign_queue, &app.dispatch_queue] {
        let _ = sqs.delete_queue().queue_url(u).send().await;
    }
    let (s, shown, _) = answer(
        member_day::handle(
            &app,
            request("GET", &format!("/campaigns/{campaign}"), None, As::Operator),
        )
        .await,
    );
    assert_eq!(s, 200, "{shown}");
    assert_eq!(shown["runs"][0]["state"], "drained", "{shown}");
    (shown["runs"][0]["grant"].as_str().unwrap().to_string(), campaign)
}

/// The campaign coupon a member holds.
async fn coupon_of(w: &World, id: &str, grant: &str) -> String {
    let coupons: Vec<loyalty::store::coupon::CouponItem> =
        w.deps.store.member_items(id, "COUPON#").await.unwrap();
    coupons
        .into_iter()
        .find(|c| c.coupon.grant == grant)
        .map(|c| c.coupon.code)
        .unwrap_or_else(|| panic!("{id} holds no coupon of {grant}"))
}

fn day<'a>(report: &'a Value, date: &str) -> &'a Value {
    report["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == date)
        .unwrap_or_else(|| panic!("no day {date} in {report}"))
}

#[tokio::test]
async fn a_known_history_gives_each_number_of_the_report_and_redelivery_changes_none() {
    let mut w = World::new("kpi-life").await;
    let (a, b) = (unique("ka"), unique("kb"));
    // Day 1. Two members join: 100 welcome points and a welcome coupon each.
    for id in [&a, &b] {
        let joined = join(&w, id).await;
        assert_eq!(joined["welcomeGift"], true, "{joined}");
    }
    // A campaign for every tier: one 8 CNY coupon each.
    let grant = run_campaign(&w).await;
    let a_coupon = coupon_of(&w, &a, &grant).await;
    let now = w.deps.clock.now();
    // A buys 250 CNY (250 points pending), returns 50 CNY of it (50 pending points cancelled).
    let (s, r) = internal(&w, &a, "purchases", json!({"orderId": "o-1", "amount": 25_000, "currency": "CNY", "channel": "online", "occurredAt": now - Duration::minutes(1)})).await;
    assert_eq!(s, 201, "{r}");
    let (s, r) =
        internal(&w, &a, "refunds", json!({"orderId": "o-1", "refundId": "r-1", "amount": 5_000}))
            .await;
    assert_eq!(s, 201, "{r}");
    // A checks out 128 CNY with the campaign coupon (8 CNY) and the 100 welcome points (1 CNY):
    // pays 119 CNY, 119 points pending.
    let (s, r) = internal(&w, &a, "checkouts", json!({"orderId": "o-2", "amount": 12_800, "currency": "CNY", "channel": "online", "couponCodes": [a_coupon], "points": 100})).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["payable"], 11_900, "{r}");
    let (s, r) = internal(&w, &a, "checkouts/o-2/confirm", json!({"paid": 11_900})).await;
    assert_eq!(s, 200, "{r}");
    // B checks in (5 points) and buys 2,000 CNY: 2,000 points pending, Regular → Silver.
    let (s, r, _) = answer(
        purchase_points::handle(
            &w.points(),
            request(
                "POST",
                &format!("/members/{b}/activities"),
                Some(&json!({"type": "checkin"}).to_string()),
                As::Member(b.clone()),
            ),
        )
        .await,
    );
    assert_eq!((s, r["pointsEarned"].as_i64()), (201, Some(5)), "{r}");
    let (s, r) = internal(&w, &b, "purchases", json!({"orderId": "o-3", "amount": 200_000, "currency": "CNY", "channel": "online", "occurredAt": now - Duration::minutes(1)})).await;
    assert_eq!(s, 201, "{r}");
    // B claims a gift for 50 of the 105 available points.
    let points = w.points();
    let gift = json!({"name": "Mug", "description": "A mug", "imageUrl": "https://cdn.example.com/mug.jpg", "price": 50, "kind": "gift"});
    let (s, r, _) = answer(
        purchase_points::handle(
            &points,
            request("POST", "/rewards", Some(&gift.to_string()), As::Operator),
        )
        .await,
    );
    assert_eq!(s, 201, "{r}");
    let reward = r["rewardId"].as_str().unwrap().to_string();
    let (s, r, _) = answer(
        purchase_points::handle(
            &points,
            request_with_headers(
                "POST",
                &format!("/members/{b}/reward-claims"),
                Some(&json!({"rewardId": reward, "price": 50}).to_string()),
                As::Member(b.clone()),
                &[("idempotency-key", "claim-1")],
            ),
        )
        .await,
    );
    assert_eq!(s, 201, "{r}");
    let day1 = w.count(100).await;

    // Day 2. A buys 10 CNY, and returns o-2 in full (its coupon and 100 points come back, its
    // 119 pending points are cancelled); B is erased.
    w.advance(Duration::days(1));
    let now = w.deps.clock.now();
    let (s, r) = internal(&w, &a, "purchases", json!({"orderId": "o-4", "amount": 1_000, "currency": "CNY", "channel": "online", "occurredAt": now - Duration::minutes(1)})).await;
    assert_eq!(s, 201, "{r}");
    let (s, r) =
        internal(&w, &a, "refunds", json!({"orderId": "o-2", "refundId": "r-2", "amount": 11_900}))
            .await;
    assert_eq!(s, 201, "{r}");
    let (s, _, _) = answer(
        signup::handle(
            &w.signup(),
            request("DELETE", &format!("/members/{b}"), None, As::Member(b.clone())),
        )
        .await,
    );
    assert_eq!(s, 204);
    let day2 = w.count(7).await;

    let query = format!("?from={DAY1}&to={DAY2}");
    w.h.counter.reset();
    let (s, report) = w.report(&query, As::Operator).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(w.h.counter.reads(), 2, "one Query of the days, one of the grants");
    assert_eq!(w.h.counter.writes(), 0);
    assert_eq!(
        (report["timeZone"].as_str(), report["conversionDays"].as_u64()),
        (Some("Asia/Shanghai"), Some(7))
    );
    assert_eq!(report["days"].as_array().unwrap().len(), 2);

    let d1 = day(&report, DAY1);
    assert_eq!((d1["joined"].as_i64(), d1["erased"].as_i64()), (Some(2), Some(0)));
    // o-1 250 + o-2 119 + o-3 2,000 CNY; the buyers are A and B.
    assert_eq!((d1["purchases"].as_i64(), d1["gmv"].as_i64()), (Some(3), Some(236_900)));
    assert_eq!(d1["buyers"], 2);
    assert_eq!(d1["averageOrderValue"], 236_900 / 3);
    assert_eq!((d1["refunds"].as_i64(), d1["refunded"].as_i64()), (Some(1), Some(5_000)));
    assert_eq!(d1["netGmv"], 231_900);
    assert_eq!(
        d1["points"],
        json!({"earned": 205, "pending": 250 + 119 + 2_000, "released": 0, "redeemed": 100 + 50, "expired": 0, "clawedBack": 50, "returned": 0})
    );
    // 2 welcome and 2 campaign coupons issued, the campaign's redeemed by o-2.
    let c1 = &d1["coupons"];
    assert_eq!(
        (c1["issued"].as_i64(), c1["redeemed"].as_i64(), c1["returned"].as_i64()),
        (Some(4), Some(1), Some(0))
    );
    assert_eq!(c1["redemptionRate"], 0.25);
    assert_eq!(
        c1["byGrant"],
        json!({"welcome": {"issued": 2, "redeemed": 0}, grant.clone(): {"issued": 2, "redeemed": 1}})
    );
    assert_eq!(
        d1["discounts"],
        json!({"checkouts": 1, "member": 0, "coupon": 800, "points": 100, "pointsUsed": 100, "rebate": 0})
    );
    assert_eq!(d1["rewardsClaimed"], 1);
    assert_eq!(d1["tierMoves"], json!([{"from": "regular", "to": "silver", "members": 1}]));
    // Welcome 200 + check-in 5 + pending 250 - 50 + 119 + 2,000 - 100 spent - 50 claimed.
    assert_eq!(d1["liability"], json!({"points": 2_374, "value": 2_374, "rebate": 0}));
    assert_eq!(d1["tiers"], json!({"regular": 1, "silver": 1, "gold": 0, "diamond": 0}));

    let d2 = day(&report, DAY2);
    assert_eq!((d2["joined"].as_i64(), d2["erased"].as_i64()), (Some(0), Some(1)));
    assert_eq!(
        (d2["purchases"].as_i64(), d2["gmv"].as_i64(), d2["buyers"].as_i64()),
        (Some(1), Some(1_000), Some(1))
    );
    assert_eq!((d2["refunds"].as_i64(), d2["refunded"].as_i64()), (Some(1), Some(11_900)));
    assert_eq!(
        d2["points"],
        json!({"earned": 0, "pending": 10, "released": 0, "redeemed": 0, "expired": 0, "clawedBack": 119, "returned": 100})
    );
    assert_eq!(
        (d2["coupons"]["issued"].as_i64(), d2["coupons"]["returned"].as_i64()),
        (Some(0), Some(1))
    );
    assert_eq!(d2["coupons"]["redemptionRate"], Value::Null, "no coupon issued that day");
    assert_eq!(d2["tierMoves"], json!([]));
    assert_eq!(
        d2["liability"],
        json!({"points": 2_374 + 10 - 119 + 100, "value": 2_365, "rebate": 0})
    );
    assert_eq!(
        d2["tiers"],
        json!({"regular": 1, "silver": 0, "gold": 0, "diamond": 0}),
        "the erased member left"
    );

    let t = &report["totals"];
    assert_eq!((t["purchases"].as_i64(), t["gmv"].as_i64()), (Some(4), Some(237_900)));
    assert_eq!(
        (t["refunds"].as_i64(), t["refunded"].as_i64(), t["netGmv"].as_i64()),
        (Some(2), Some(16_900), Some(221_000))
    );
    assert_eq!(t["averageOrderValue"], 237_900 / 4);
    assert_eq!(t["buyerDays"], 3);
    assert_eq!(
        (t["joined"].as_i64(), t["erased"].as_i64(), t["rewardsClaimed"].as_i64()),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(
        t["points"],
        json!({"earned": 205, "pending": 2_379, "released": 0, "redeemed": 150, "expired": 0, "clawedBack": 169, "returned": 100})
    );
    assert_eq!(
        (
            t["coupons"]["issued"].as_i64(),
            t["coupons"]["redeemed"].as_i64(),
            t["coupons"]["returned"].as_i64(),
            t["coupons"]["redemptionRate"].as_f64()
        ),
        (Some(4), Some(1), Some(1), Some(0.0))
    );
    assert_eq!(t["liabilityAtEnd"], json!({"points": 2_365, "value": 2_365, "rebate": 0}));
    assert_eq!(t["tiersAtEnd"], d2["tiers"]);
    assert_eq!(t["tierMoves"], d1["tierMoves"]);

    // November: A (3 orders) and B (1) bought; A more than once.
    assert_eq!(
        report["months"],
        json!([{"month": "2026-11", "activeMembers": 2, "repeatBuyers": 1, "repurchaseRate": 0.5, "whole": false}])
    );
    // Both joined in November and bought on their first day; spend net of refunds:
    // A 250 - 50 + 119 + 10 - 119, B 2,000 CNY.
    assert_eq!(
        report["cohorts"],
        json!([{"month": "2026-11", "joined": 2, "boughtWithin30": 2, "boughtWithin60": 2, "boughtWithin90": 2,
            "retention30": 1.0, "retention60": 1.0, "retention90": 1.0, "spend": 221_000, "averageSpend": 110_500}])
    );
    assert_eq!(
        report["campaigns"],
        json!([{"grant": grant, "firstDay": DAY1, "issued": 2, "redeemed": 1, "returned": 1, "redemptionRate": 0.0,
            "converted": 2, "conversionRate": 1.0, "orders": 1, "gmv": 11_900, "discount": 800}])
    );

    // A day alone: its own flows, the same end-of-day figures.
    let (s, only2) = w.report(&format!("?from={DAY2}&to={DAY2}"), As::Operator).await;
    assert_eq!(s, 200, "{only2}");
    assert_eq!(only2["days"][0], *d2);
    assert_eq!(only2["totals"]["purchases"], 1);
    assert_eq!(only2["campaigns"], json!([]), "the run's first day is not in the range");

    // Lambda delivers every record again, in other batches: nothing changes.
    let all: Vec<_> = day1.into_iter().chain(day2).collect();
    for chunk in all.chunks(13) {
        assert_eq!(events_out::count(&w.kpis, chunk).await, None);
    }
    for chunk in all.chunks(100) {
        assert_eq!(events_out::count(&w.kpis, chunk).await, None);
    }
    let (_, again) = w.report(&query, As::Operator).await;
    assert_eq!(again, report, "a redelivered record adds nothing");
    w.done().await;
}

#[tokio::test]
async fn concurrent_purchases_counted_by_concurrent_batches_match_the_ledger() {
    let mut w = World::new("kpi-race").await;
    let members: Vec<String> = (0..20).map(|_| unique("kr")).collect();
    for id in &members {
        join(&w, id).await;
    }
    let now = w.deps.clock.now();
    let orders: Vec<(String, String, i64)> = (0..100)
        .map(|i| (members[i % members.len()].clone(), format!("o-{i}"), 1_000 + 137 * i as i64))
        .collect();
    let points = w.points();
    // 32 in flight, as the order system's workers would send them (a member's orders race).
    use futures::StreamExt;
    let results: Vec<(u16, Value, String)> = futures::stream::iter(&orders)
        .map(|(id, order, amount)| {
            let points = &points;
            async move {
                answer(
                    purchase_points::handle(
                        points,
                        request(
                            "POST",
                            &format!("/internal/members/{id}/purchases"),
                            Some(&json!({"orderId": order, "amount": amount, "currency": "CNY", "channel": "online", "occurredAt": now - Duration::minutes(1)}).to_string()),
                            As::OrderSystem,
                        ),
                    )
                    .await,
                )
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let refused: Vec<_> = results.iter().filter(|r| r.0 != 201).collect();
    assert!(refused.is_empty(), "{refused:?}");
    // The stream's records counted by three batches at once (as from several shards), each
    // touching the same day item, and each holding orders of members the others hold too.
    let records = w.stream.read().await;
    let chunks: Vec<_> = records.chunks(50).collect();
    for wave in chunks.chunks(3) {
        let out =
            futures::future::join_all(wave.iter().map(|c| events_out::count(&w.kpis, c))).await;
        // A batch whose transactions stayed contended past their retries is delivered again
        // from its first unacknowledged record, as Lambda does; what was written adds nothing.
        for (chunk, mut from) in wave.iter().zip(out) {
            for _ in 0..5 {
                let Some(i) = from else { break };
                from = events_out::count(&w.kpis, &chunk[i..]).await.map(|j| i + j);
            }
            assert_eq!(from, None, "a batch still failing after five redeliveries");
        }
    }
    let (s, report) = w.report(&format!("?from={DAY1}&to={DAY1}"), As::Operator).await;
    assert_eq!(s, 200, "{report}");
    let t = &report["totals"];
    let gmv: i64 = orders.iter().map(|o| o.2).sum();
    assert_eq!((t["purchases"].as_i64(), t["gmv"].as_i64()), (Some(100), Some(gmv)));
    assert_eq!(t["buyerDays"], 20);
    // The ledger's sums: every member's entries.
    let (mut pending, mut available) = (0, 0);
    for id in &members {
        let entries = w.deps.store.ledger_all(id).await.unwrap();
        pending += entries.iter().map(|e| e.pending.0).sum::<i64>();
        available += entries.iter().map(|e| e.points.0).sum::<i64>();
    }
    assert_eq!(t["points"]["pending"], pending);
    assert_eq!(t["points"]["earned"], available, "the welcome points");
    assert_eq!(t["liabilityAtEnd"]["points"], pending + available);
    assert_eq!(report["months"][0]["activeMembers"], 20);
    assert_eq!(report["months"][0]["repeatBuyers"], 20);
    w.done().await;
}

#[tokio::test]
async fn the_report_is_for_operators_over_at_most_a_year_of_valid_days() {
    let w = World::new("kpi-auth").await;
    let good = format!("?from={DAY1}&to={DAY2}");
    w.h.counter.reset();
    let (s, b) = w.report(&good, As::Member("m-1".into())).await;
    assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")), "{b}");
    let (s, _) = w.report(&good, As::OrderSystem).await;
    assert_eq!(s, 403, "the order system is no operator");
    let (s, _) = w.report(&good, As::Nobody).await;
    assert_eq!(s, 401);
    for (query, code) in [
        ("?from=2026-11-31&to=2026-12-01", "invalid_date"),
        ("?from=2026-11-20&to=today", "invalid_date"),
        ("?from=20261120&to=2026-12-01", "invalid_date"),
        ("?from=2026-12-01&to=2026-11-20", "invalid_range"),
        ("?from=2025-11-19&to=2026-11-20", "range_too_long"),
    ] {
        let (s, b) = w.report(query, As::Operator).await;
        assert_eq!((s, b["code"].as_str()), (400, Some(code)), "{query}: {b}");
        assert_eq!(b["status"], 400);
    }
    assert_eq!(w.h.counter.reads(), 0, "a refused report reads nothing");
    let (s, b) = w.report("", As::Operator).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["from"].as_str(), b["to"].as_str()),
        (Some("2026-10-22"), Some(DAY1)),
        "the 30 days to today"
    );
    let (s, b) = w.report("?from=2025-11-20&to=2026-11-20", As::Operator).await;
    assert_eq!(s, 200, "366 days: {b}");
    assert_eq!(b["days"].as_array().unwrap().len(), 366);
    assert_eq!(b["totals"]["purchases"], 0, "an empty table: every figure zero");
    w.done().await;
}

#[tokio::test]
async fn a_year_of_full_days_is_read_in_at_most_four_requests() {
    let w = World::new("kpi-year").await;
    let first: chrono::NaiveDate = "2025-11-20".parse().unwrap();
    // Every counter a busy day has (flows, points, coupons of a few grant families, tier
    // moves and counts), on each of 366 days: items of about a kilobyte, as in production.
    let mut counters: Vec<String> = [
        loyalty::kpi::JOINED,
        loyalty::kpi::PURCHASES,
        loyalty::kpi::GMV,
        loyalty::kpi::BUYERS,
        loyalty::kpi::MONTH_BUYERS,
        loyalty::kpi::REFUNDS,
        loyalty::kpi::REFUNDED,
        loyalty::kpi::POINTS_EARNED,
        loyalty::kpi::POINTS_PENDING,
        loyalty::kpi::POINTS_RELEASED,
        loyalty::kpi::POINTS_REDEEMED,
        loyalty::kpi::POINTS_EXPIRED,
        loyalty::kpi::COUPONS_ISSUED,
        loyalty::kpi::COUPONS_REDEEMED,
        loyalty::kpi::CHECKOUTS,
        loyalty::kpi::COUPON_DISCOUNT,
        loyalty::kpi::POINTS_DISCOUNT,
        loyalty::kpi::COHORT_SPEND,
    ]
    .map(String::from)
    .to_vec();
    for f in ["welcome", "birthday", "reward", "campaign:c-0123456789abcdef:2026-11"] {
        counters.push(loyalty::kpi::issued_of(f));
        counters.push(loyalty::kpi::redeemed_of(f));
    }
    for (a, b) in [(TierCode::Regular, TierCode::Silver), (TierCode::Silver, TierCode::Gold)] {
        counters.push(loyalty::kpi::tier_move(a, b));
    }
    let bumps: Vec<loyalty::kpi::Bump> = (0..366)
        .map(|i| {
            let day = first + Duration::days(i);
            let mut b = loyalty::kpi::Bump::new(unique("year"), 1);
            for (k, c) in counters.iter().enumerate() {
                b = b.day(day, c, 1_000_000 + k as i64);
            }
            b.running(day, loyalty::kpi::LIABILITY, 12_345)
        })
        .collect();
    w.deps.store.add_counts(bumps, at(NOW), 7).await.expect("counted");
    w.h.counter.reset();
    let (s, report) = w.report("?from=2025-11-20&to=2026-11-20", As::Operator).await;
    assert_eq!(s, 200);
    assert_eq!(report["days"].as_array().unwrap().len(), 366);
    assert_eq!(report["totals"]["purchases"], 366 * 1_000_001);
    assert_eq!(report["days"][365]["liability"]["points"], 366 * 12_345);
    assert!(w.h.counter.reads() <= 4, "{:?}", w.h.counter.snapshot());
    w.done().await;
}

#[tokio::test]
async fn an_experiment_reports_each_arm_with_conversion_spend_and_uplift_over_the_holdout() {
    use loyalty::campaign::experiment::{Experiment, Share, HOLDOUT_ARM};
    let mut w = World::new("kpi-arms").await;
    let ids: Vec<String> = (0..30).map(|_| unique("kx")).collect();
    for id in &ids {
        join(&w, id).await;
    }
    let variants = json!([{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "coupon": {"title": "12 CNY off", "offer": {"kind": "amount_off", "value": 1200, "minSpend": 0}, "validDays": 3}}]);
    let (grant, campaign) =
        run_campaign_with(&w, json!({"variants": variants, "holdout": 0.3})).await;
    let e = Experiment::of(
        &campaign,
        &serde_json::from_value::<Vec<loyalty::campaign::Variant>>(variants).unwrap(),
        Share(3000),
    )
    .unwrap();
    let arm = |id: &str| e.assign(id).name().to_string();
    let mut arms: std::collections::BTreeMap<String, Vec<&String>> = Default::default();
    for id in &ids {
        arms.entry(arm(id)).or_default().push(id);
    }
    assert_eq!(arms.len(), 3, "30 members reach every arm: {arms:?}");
    let mut all = w.count(100).await;
    // The first two members of each arm buy today: 100 CNY, and the first of each again, 50 CNY
    // (converted once, both orders in the arm's spend).
    let now = w.deps.clock.now();
    let mut n = 0;
    for members in arms.values() {
        for (i, id) in members.iter().take(2).enumerate() {
            let amounts: &[i64] = if i == 0 { &[10_000, 5_000] } else { &[10_000] };
            for amount in amounts {
                n += 1;
                let (s, r) = internal(&w, id, "purchases", json!({"orderId": format!("ox-{n}"), "amount": amount, "currency": "CNY", "channel": "online", "occurredAt": now - Duration::minutes(1)})).await;
                assert_eq!(s, 201, "{r}");
            }
        }
    }
    // A third member of each arm buys 8 days later: outside the 7-day window.
    all.extend(w.count(100).await);
    w.advance(Duration::days(8));
    let later = w.deps.clock.now();
    for members in arms.values() {
        n += 1;
        let (s, r) = internal(&w, members[2], "purchases", json!({"orderId": format!("ox-{n}"), "amount": 30_000, "currency": "CNY", "channel": "online", "occurredAt": later - Duration::minutes(1)})).await;
        assert_eq!(s, 201, "{r}");
    }
    all.extend(w.count(7).await);
    let (s, report) = w.report(&format!("?from={DAY1}&to={DAY1}"), As::Operator).await;
    assert_eq!(s, 200, "{report}");
    let run = report["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["grant"] == grant.as_str())
        .unwrap_or_else(|| panic!("no {grant} in {report}"));
    let held = arms[HOLDOUT_ARM].len() as i64;
    assert_eq!(run["issued"], ids.len() as i64 - held, "{run}");
    assert_eq!(run["converted"], 4, "the variants' buyers, not the holdout's: {run}");
    let shown: Vec<&str> =
        run["arms"].as_array().unwrap().iter().map(|a| a["arm"].as_str().unwrap()).collect();
    assert_eq!(shown, ["a", "b", HOLDOUT_ARM], "{run}");
    for a in run["arms"].as_array().unwrap() {
        let name = a["arm"].as_str().unwrap();
        let members = arms[name].len() as i64;
        assert_eq!(a["members"], members, "{a}");
        assert_eq!(a["converted"], 2, "{a}");
        assert_eq!(a["gmv"], 25_000, "{a}");
        assert_eq!(a["gmvPerMember"], 25_000 / members, "{a}");
        assert_eq!(
            a["conversionRate"],
            ((2.0 / members as f64) * 10_000.0).round() / 10_000.0,
            "{a}"
        );
        assert_eq!(a["holdout"], name == HOLDOUT_ARM, "{a}");
        if name == HOLDOUT_ARM {
            assert!(a.get("uplift").is_none(), "{a}");
        } else {
            let u = &a["uplift"];
            let diff = 2.0 / members as f64 - 2.0 / held as f64;
            assert!((u["difference"].as_f64().unwrap() - diff).abs() < 1e-4, "{a}");
            assert!(u["ciLow"].as_f64().unwrap() < u["ciHigh"].as_f64().unwrap(), "{a}");
            assert_eq!(u["verdict"], "too few members", "two conversions an arm: {a}");
        }
    }
    // Members per churn band, scored at every write: 100 welcome points and no order is R5 F1
    // M1 = 7 (medium), one order of 100 CNY R5 F2 M2 = 9 (medium), two orders R5 F3 M2 = 10 (low).
    assert_eq!(
        report["churnRisk"],
        json!({"low": arms.len(), "medium": ids.len() - arms.len(), "high": 0}),
        "{report}"
    );
    // Redelivered, the records change nothing.
    for chunk in all.chunks(50) {
        assert_eq!(events_out::count(&w.kpis, chunk).await, None);
    }
    let (_, again) = w.report(&format!("?from={DAY1}&to={DAY1}"), As::Operator).await;
    assert_eq!(again["campaigns"], report["campaigns"]);
    w.done().await;
}
