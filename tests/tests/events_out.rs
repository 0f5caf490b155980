//! Events out, end to end in process: the real handlers write to a table of the test's own
//! that has the template's stream; the test reads the stream and hands the records to the
//! real events-out handler in batches as Lambda's mapping would; the handler publishes on a
//! bus of the local EventBridge (moto), whose rule sends every event to a sink queue; the
//! test reads the sink and checks what arrived: exactly the documented events, each valid
//! against its schema (events/schemas), none with personal data, the same `eventId`s when a
//! record is delivered again.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::StreamExt;
use loyalty::app::{Clock, Dependencies};
use loyalty::events::DetailType;
use loyalty::runtime::{Outcome, Trigger};
use loyalty::store::Store;
use loyalty::{Rules, TierCode};
use loyalty_tests::outbox::{self, Sink, StreamReader};
use loyalty_tests::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// The mapping's batch size (template: BatchSize 100).
const BATCH: usize = 100;

/// The functions on a stream table of their own, the stream's reader and a bus with its sink.
struct World {
    h: Harness,
    table: String,
    deps: Dependencies,
    stream: StreamReader,
    sink: Sink,
    publisher: events_out::App,
}

impl World {
    async fn new(prefix: &str, clock: Clock) -> World {
        let h = harness_with(Rules::default(), clock).await;
        let table = outbox::stream_table(&h, prefix).await;
        let deps = Dependencies {
            store: Store::new(h.deps.store.client.clone(), table.clone()),
            ..h.deps.clone()
        };
        let stream = StreamReader::open(&h, &table).await;
        let sink = Sink::new(&h).await;
        let publisher = sink.app();
        World { h, table, deps, stream, sink, publisher }
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

    /// A harness whose store is this world's table (for the seeding helpers).
    fn harness(&self) -> Harness {
        Harness {
            deps: self.deps.clone(),
            counter: self.h.counter.clone(),
            capacity: self.h.capacity.clone(),
            sdk_config: self.h.sdk_config.clone(),
        }
    }

    /// What the writes since the last call published: every new stream record through the
    /// publisher, every event off the sink, each checked against its schema.
    async fn published(&mut self) -> (Vec<Value>, Vec<aws_lambda_events::dynamodb::EventRecord>) {
        let ((), events, records) = self.published_while(async {}).await;
        (events, records)
    }

    /// `published`, while `work` writes: the stream is read and published as the writes go
    /// (as the mapping does), the sink read at the same time, until the work is done and the
    /// stream has nothing more.
    async fn published_while<T>(
        &mut self,
        work: impl std::future::Future<Output = T>,
    ) -> (T, Vec<Value>, Vec<aws_lambda_events::dynamodb::EventRecord>) {
        use std::sync::atomic::{AtomicBool, Ordering};
        let World { stream, sink, publisher, .. } = self;
        let done = AtomicBool::new(false);
        let expected: Mutex<Option<usize>> = Mutex::new(None);
        let work = async {
            let out = work.await;
            done.store(true, Ordering::SeqCst);
            out
        };
        let pump = async {
            let (mut records, mut count, mut idle_after_done) = (Vec::new(), 0, 0);
            loop {
                let finished = done.load(Ordering::SeqCst);
                let new = stream.read().await;
                count += new
                    .iter()
                    .map(|r| {
                        loyalty::store::stream::events_of(&loyalty::runtime::stream_change(r))
                            .expect("every record maps")
                            .len()
                    })
                    .sum::<usize>();
                for response in outbox::publish(publisher, &new, BATCH).await {
                    assert!(
                        response.batch_item_failures.is_empty(),
                        "nothing fails against the local bus: {response:?}"
                    );
                }
                if new.is_empty() {
                    idle_after_done += usize::from(finished);
                    if idle_after_done >= 2 {
                        *expected.lock().unwrap() = Some(count);
                        return records;
                    }
                }
                records.extend(new);
                // While the writes go on, gather a second of records a batch (the mapping's window).
                tokio::time::sleep(std::time::Duration::from_millis(if finished {
                    100
                } else {
                    1000
                }))
                .await;
            }
        };
        let (out, records, events) =
            tokio::join!(work, pump, sink.take_until(|| *expected.lock().unwrap()));
        let count = expected.lock().unwrap().unwrap_or_default();
        assert_eq!(events.len(), count, "every event the records mean reached the bus, once");
        events.iter().for_each(outbox::check);
        (out, events, records)
    }

    async fn done(self) {
        outbox::drop_table(&self.h, &self.table).await;
        self.sink.remove().await;
    }
}

fn types(events: &[Value]) -> Vec<String> {
    outbox::types(events)
}

fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort();
    v.into_iter().map(String::from).collect()
}

fn one<'a>(events: &'a [Value], detail_type: &str) -> &'a Value {
    let found: Vec<&Value> = events.iter().filter(|e| e["detail-type"] == detail_type).collect();
    assert_eq!(found.len(), 1, "one {detail_type} in {events:?}");
    &found[0]["detail"]
}

fn ids(events: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .map(|e| e["detail"]["eventId"].as_str().expect("an eventId").to_string())
        .collect();
    ids.sort();
    ids
}

/// No event carries any of these strings (a member's contact data, name, birthday).
fn assert_no_personal_data(events: &[Value], secrets: &[String]) {
    for e in events {
        let text = e.to_string();
        for s in secrets {
            assert!(!text.contains(s.as_str()), "an event carries personal data ({s}): {text}");
        }
    }
}

/// A Friday that is not a member day, noon in Shanghai.
const NOW: &str = "2026-11-20T04:00:00Z";

#[tokio::test]
async fn a_members_life_publishes_exactly_its_events_once_each_and_again_with_the_same_ids() {
    let clock = Arc::new(Mutex::new(at(NOW)));
    let mut w = World::new("ev-life", Clock::Shared(clock.clone())).await;
    let (signup, points) = (w.signup(), w.points());
    let id = unique("life");
    let email = format!("{}@example.com", id.to_lowercase());
    let phone = "+8613912345678".to_string();
    let name = "Zhang Xiaoming".to_string();
    let body = json!({"email": email, "phone": phone, "name": name, "birthday": "1990-05-18", "marketingConsent": true}).to_string();
    let (s, joined, _) = answer(
        signup::handle(&signup, request("POST", "/members", Some(&body), As::Member(id.clone())))
            .await,
    );
    assert_eq!(s, 201, "{joined}");
    let code = joined["welcomeCoupon"]["code"].as_str().unwrap().to_string();
    let mut all = Vec::new();
    let mut records = Vec::new();
    let mut step = |(events, recs): (Vec<Value>, Vec<_>), want: Vec<&str>, what: &str| {
        assert_eq!(types(&events), sorted(want), "{what}");
        for e in &events {
            assert_eq!(e["detail"]["memberId"], json!(id), "{what}: {e}");
        }
        all.extend(events.clone());
        records.extend(recs);
        events
    };

    let e =
        step(w.published().await, vec!["MemberJoined", "PointsEarned", "CouponIssued"], "signup");
    assert_eq!(
        (
            one(&e, "MemberJoined")["tier"].as_str(),
            one(&e, "MemberJoined")["marketingConsent"].as_bool()
        ),
        (Some("regular"), Some(true))
    );
    assert_eq!(
        (one(&e, "PointsEarned")["kind"].as_str(), one(&e, "PointsEarned")["points"].as_i64()),
        (Some("welcome"), Some(100))
    );
    assert_eq!(
        (one(&e, "CouponIssued")["code"].as_str(), one(&e, "CouponIssued")["grant"].as_str()),
        (Some(code.as_str()), Some("welcome"))
    );

    let os = || As::OrderSystem;
    let post = |path: String, body: Value| {
        let points = &points;
        async move {
            answer(
                purchase_points::handle(
                    points,
                    request("POST", &path, Some(&body.to_string()), os()),
                )
                .await,
            )
        }
    };
    let internal = |route: &str| format!("/internal/members/{id}/{route}");
    let (s, b, _) = post(internal("purchases"), json!({"orderId": "o-1", "amount": 25_000, "currency": "CNY", "channel": "online", "occurredAt": at(NOW) - Duration::minutes(1)})).await;
    assert_eq!(s, 201, "{b}");
    let e = step(w.published().await, vec!["PointsPending"], "a purchase inside the return window");
    let d = one(&e, "PointsPending");
    assert_eq!(
        (d["kind"].as_str(), d["points"].as_i64(), d["pending"].as_i64(), d["reference"].as_str()),
        (Some("purchase"), Some(0), Some(250), Some("o-1"))
    );

    let (s, b, _) =
        post(internal("refunds"), json!({"orderId": "o-1", "refundId": "r-1", "amount": 5_000}))
            .await;
    assert_eq!(s, 201, "{b}");
    let e =
        step(w.published().await, vec!["PointsClawedBack"], "a partial refund inside the window");
    assert_eq!(
        (
            one(&e, "PointsClawedBack")["pending"].as_i64(),
            one(&e, "PointsClawedBack")["reference"].as_str()
        ),
        (Some(-50), Some("r-1"))
    );

    let (s, b, _) = post(internal("checkouts"), json!({"orderId": "o-2", "amount": 12_800, "currency": "CNY", "channel": "online", "couponCodes": [code], "points": 100})).await;
    assert_eq!(s, 201, "{b}");
    step(w.published().await, vec![], "a quote holds, it is no fact yet");
    let (s, b, _) = post(internal("checkouts/o-2/confirm"), json!({"paid": 10_700})).await;
    assert_eq!(s, 200, "{b}");
    let e = step(
        w.published().await,
        vec!["CheckoutConfirmed", "CouponRedeemed", "PointsPending", "PointsRedeemed"],
        "a checkout confirmed",
    );
    let c = one(&e, "CheckoutConfirmed");
    assert_eq!(
        (
            c["orderId"].as_str(),
            c["payable"].as_i64(),
            c["pointsUsed"].as_i64(),
            c["couponDiscount"].as_i64()
        ),
        (Some("o-2"), Some(10_700), Some(100), Some(2_000))
    );
    assert_eq!(c["couponCodes"], json!([code]));
    assert_eq!(
        (
            one(&e, "CouponRedeemed")["orderId"].as_str(),
            one(&e, "CouponRedeemed")["discount"].as_i64()
        ),
        (Some("o-2"), Some(2_000))
    );
    assert_eq!(one(&e, "PointsRedeemed")["points"].as_i64(), Some(-100));
    assert_eq!(one(&e, "PointsPending")["pending"].as_i64(), Some(107));

    let (s, b, _) =
        post(internal("refunds"), json!({"orderId": "o-2", "refundId": "r-2", "amount": 10_700}))
            .await;
    assert_eq!(s, 201, "{b}");
    let e = step(
        w.published().await,
        vec!["CouponReturned", "PointsClawedBack", "PointsReturned"],
        "a full refund of the checkout",
    );
    assert_eq!(one(&e, "PointsReturned")["points"].as_i64(), Some(100));
    assert_eq!(one(&e, "PointsClawedBack")["pending"].as_i64(), Some(-107));
    assert_eq!(
        (one(&e, "CouponReturned")["code"].as_str(), one(&e, "CouponReturned")["orderId"].as_str()),
        (Some(code.as_str()), Some("o-2"))
    );

    let (s, _, _) = answer(
        signup::handle(
            &signup,
            request("DELETE", &format!("/members/{id}"), None, As::Member(id.clone())),
        )
        .await,
    );
    assert_eq!(s, 204);
    step(w.published().await, vec!["MemberErased"], "an erasure");
    let (s, _, _) = answer(
        signup::handle(
            &signup,
            request("DELETE", &format!("/members/{id}"), None, As::Member(id.clone())),
        )
        .await,
    );
    assert_eq!(s, 204);
    step(w.published().await, vec![], "a second erase changes nothing");

    assert_no_personal_data(&all, &[email, phone, name, "1990-05-18".into(), "Xiaoming".into()]);
    let mut unique_ids = ids(&all);
    unique_ids.dedup();
    assert_eq!(unique_ids.len(), all.len(), "every fact has its own id");

    // Lambda delivers a record again (a retried batch): the same events, with the same ids.
    let (responses, again) =
        tokio::join!(outbox::publish(&w.publisher, &records, 7), w.sink.take(all.len()));
    assert!(responses.iter().all(|r| r.batch_item_failures.is_empty()));
    assert_eq!(ids(&again), ids(&all), "a redelivered record publishes the same eventIds");
    let by_id = |v: &[Value]| {
        v.iter()
            .map(|e| (e["detail"]["eventId"].as_str().unwrap().to_string(), e["detail"].clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(by_id(&again), by_id(&all), "and the same details");
    w.done().await;
}

#[tokio::test]
async fn the_nightly_tier_evaluation_publishes_the_step_down() {
    let night = loyalty::calendar::start_of_day(
        Rules::default().time_zone,
        NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
    ) + Duration::minutes(30);
    let mut w = World::new("ev-tier", Clock::Fixed(night)).await;
    let id = unique("tier");
    let mut m = plain_member(&id, TierCode::Gold, night - Duration::days(800));
    m.tier_since = night - Duration::days(400);
    seed_members(&w.harness(), &[m], night - Duration::days(1)).await;
    let (seeded, _) = w.published().await;
    assert_eq!(types(&seeded), ["MemberJoined"], "the seeded member");

    let sqs = aws_sdk_sqs::Client::new(&w.h.sdk_config);
    let queue_url =
        sqs.create_queue().queue_name(unique("tq")).send().await.unwrap().queue_url.unwrap();
    let app = tier_recompute::App {
        deps: w.deps.clone(),
        sqs: sqs.clone(),
        queue_url: queue_url.clone(),
        budget: std::time::Duration::from_secs(60),
        page_size: 100,
        concurrency: 16,
    };
    let schedule = serde_json::from_value(json!({"detail-type": "Scheduled Event", "source": "loyalty.schedule", "detail": {"job": "tier-evaluation", "now": night}})).unwrap();
    assert!(matches!(
        tier_recompute::handle_trigger(&app, Trigger::Schedule(schedule)).await,
        Ok(Outcome::Done(_))
    ));
    loop {
        let got = receive_batch(&sqs, &queue_url).await;
        if got.is_empty() {
            break;
        }
        let records: Vec<Value> = got
            .iter()
            .map(|m| json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(), "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs"}))
            .collect();
        let batch = serde_json::from_value(json!({"Records": records})).unwrap();
        assert!(tier_recompute::work(&app, batch).await.batch_item_failures.is_empty());
        for m in got {
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    let (events, _) = w.published().await;
    assert_eq!(
        types(&events),
        ["TierChanged"],
        "the night's one fact: the member item's own change is no event"
    );
    let t = one(&events, "TierChanged");
    assert_eq!(
        (t["memberId"].as_str(), t["from"].as_str(), t["to"].as_str(), t["reason"].as_str()),
        (Some(id.as_str()), Some("gold"), Some("silver"), Some("step_down"))
    );
    let _ = sqs.delete_queue().queue_url(&queue_url).send().await;
    w.done().await;
}

#[tokio::test]
async fn a_campaign_run_publishes_its_coupons_and_once_drained_its_counts() {
    let mut w = World::new("ev-campaign", Clock::System).await;
    let now = Utc::now();
    let seeded: Vec<_> = (0..40)
        .map(|i| plain_member(&unique("cm"), TierCode::ALL[i % 4], now - Duration::days(30)))
        .collect();
    seed_members(&w.harness(), &seeded, now).await;
    let (joined, _) = w.published().await;
    assert_eq!(joined.len(), 40);

    let sqs = aws_sdk_sqs::Client::new(&w.h.sdk_config);
    let q = |name: String| {
        let sqs = sqs.clone();
        async move { sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap() }
    };
    let app = member_day::App {
        deps: w.deps.clone(),
        sqs: sqs.clone(),
        campaign_queue: q(unique("cq")).await,
        dispatch_queue: q(unique("dq")).await,
        budget: std::time::Duration::from_secs(60),
        members_files: None,
    };
    let worker = worker_on(&w.deps);
    let body = json!({"name": "Events day", "segment": {"tiers": ["regular", "silver", "gold", "diamond"]},
        "coupon": {"title": "8 CNY off", "offer": {"kind": "amount_off", "value": 800, "minSpend": 0}, "validDays": 3},
        "schedule": {"kind": "once", "at": now + Duration::days(30)}})
    .to_string();
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
    let mut during = Vec::new();
    loyalty_tests::drain_campaign_queues(&app, &worker, &sqs, async || {
        // Publish as the run goes: a drained run is told once, not at every count.
        during.extend(w.published().await.0);
    })
    .await;
    let mut want = vec!["CouponIssued"; 40];
    want.push("CampaignRunDrained");
    assert_eq!(types(&during), sorted(want));
    let d = one(&during, "CampaignRunDrained");
    assert!(d.get("memberId").is_none(), "a run is no member's");
    assert_eq!(
        (
            d["campaignId"].as_str(),
            d["targeted"].as_u64(),
            d["issued"].as_u64(),
            d["skipped"].as_u64(),
            d["failed"].as_u64()
        ),
        (Some(campaign.as_str()), Some(40), Some(40), Some(0), Some(0))
    );
    let grant = d["grant"].as_str().unwrap();
    assert!(during
        .iter()
        .filter(|e| e["detail-type"] == "CouponIssued")
        .all(|e| e["detail"]["grant"] == grant));
    let issued_to: std::collections::BTreeSet<&str> = during
        .iter()
        .filter(|e| e["detail-type"] == "CouponIssued")
        .map(|e| e["detail"]["memberId"].as_str().unwrap())
        .collect();
    assert_eq!(issued_to.len(), 40, "one coupon per member");
    for u in [app.campaign_queue, app.dispatch_queue] {
        let _ = sqs.delete_queue().queue_url(u).send().await;
    }
    w.done().await;
}

#[tokio::test]
async fn the_daily_sweep_tells_each_lot_once_before_it_expires() {
    let tz = Rules::default().time_zone;
    let sweep_at =
        |d: &str| loyalty::calendar::start_of_day(tz, d.parse().unwrap()) + Duration::minutes(10);
    let mut w = World::new("ev-expiry", Clock::Fixed(sweep_at("2026-11-07"))).await;
    let id = unique("exp");
    let mut m = plain_member(&id, TierCode::Regular, at("2025-10-01T00:00:00Z"));
    for (d, p) in [("2025-11-07", 30), ("2025-11-10", 40), ("2025-11-20", 50)] {
        m.wallet.earn(p, d.parse().unwrap());
    }
    seed_members(&w.harness(), &[m], at("2026-11-01T00:00:00Z")).await;
    w.published().await;
    let points = w.points();
    let deadline = || std::time::SystemTime::now() + std::time::Duration::from_secs(60);

    let report =
        purchase_points::expiry_sweep(&points, sweep_at("2026-11-07"), deadline()).await.unwrap();
    assert_eq!((report.points_expired, report.notices), (30, 1), "{report:?}");
    let (events, _) = w.published().await;
    assert_eq!(types(&events), ["PointsExpired", "PointsExpiringSoon"]);
    assert_eq!(one(&events, "PointsExpired")["points"].as_i64(), Some(-30));
    let soon = one(&events, "PointsExpiringSoon");
    assert_eq!(
        (soon["points"].as_i64(), soon["earnedOn"].as_str(), soon["expiresOn"].as_str()),
        (Some(40), Some("2025-11-10"), Some("2026-11-10"))
    );

    purchase_points::expiry_sweep(&points, sweep_at("2026-11-07"), deadline()).await.unwrap();
    purchase_points::expiry_sweep(&points, sweep_at("2026-11-08"), deadline()).await.unwrap();
    assert_eq!(
        w.published().await.0,
        Vec::<Value>::new(),
        "a lot is told once, however often the sweep meets it"
    );

    purchase_points::expiry_sweep(&points, sweep_at("2026-11-13"), deadline()).await.unwrap();
    let (events, _) = w.published().await;
    assert_eq!(types(&events), ["PointsExpired", "PointsExpiringSoon"]);
    assert_eq!(one(&events, "PointsExpired")["points"].as_i64(), Some(-40));
    assert_eq!(one(&events, "PointsExpiringSoon")["expiresOn"].as_str(), Some("2026-11-20"));
    w.done().await;
}

#[tokio::test]
async fn a_thousand_concurrent_purchases_publish_a_thousand_events_without_personal_data() {
    let mut w = World::new("ev-load", Clock::System).await;
    let (signup, points) = (w.signup(), w.points());
    let started = std::time::Instant::now();
    let members: Vec<(String, String, String, String)> = (0..100)
        .map(|i| {
            let id = unique("load");
            (
                id.clone(),
                format!("{}@example.com", id.to_lowercase()),
                format!("+86137{:08}", 10_000_000 + i),
                format!("Li Na {i}"),
            )
        })
        .collect();
    let occurred: DateTime<Utc> = Utc::now() - Duration::minutes(1);
    let orders: Vec<(String, String)> = (0..10)
        .flat_map(|j| members.iter().map(move |(id, ..)| (id.clone(), format!("o-{j}"))))
        .collect();
    let writes = async {
        futures::stream::iter(&members)
            .for_each_concurrent(16, |(id, email, phone, name)| {
                let signup = &signup;
                async move {
                    let body = json!({"email": email, "phone": phone, "name": name, "birthday": "1988-08-08"}).to_string();
                    let (s, b, _) = answer(signup::handle(signup, request("POST", "/members", Some(&body), As::Member(id.clone()))).await);
                    assert_eq!(s, 201, "{b}");
                }
            })
            .await;
        futures::stream::iter(&orders)
            .for_each_concurrent(32, |(id, order)| {
                let points = &points;
                async move {
                    let body = json!({"orderId": order, "amount": 15_000, "currency": "CNY", "channel": "online", "occurredAt": occurred}).to_string();
                    let (s, b, _) = answer(purchase_points::handle(points, request("POST", &format!("/internal/members/{id}/purchases"), Some(&body), As::OrderSystem)).await);
                    assert_eq!(s, 201, "{b}");
                }
            })
            .await;
        started.elapsed()
    };
    // The publisher runs while the purchases are written, as it does deployed.
    let (written, events, records) = w.published_while(writes).await;
    let published = started.elapsed() - written;
    let bought: Vec<&Value> = events.iter().filter(|e| e["detail"]["kind"] == "purchase").collect();
    assert_eq!(bought.len(), 1_000, "one event per purchase, none lost");
    assert!(bought
        .iter()
        .all(|e| matches!(e["detail-type"].as_str(), Some("PointsPending" | "PointsEarned"))));
    let mut keys: Vec<(String, String)> = bought
        .iter()
        .map(|e| {
            (
                e["detail"]["memberId"].as_str().unwrap().to_string(),
                e["detail"]["reference"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 1_000, "every (member, order) once");
    assert_eq!(events.len(), 1_000 + 3 * 100, "and the signups' joined, welcome points and coupon");
    let secrets: Vec<String> = members
        .iter()
        .flat_map(|(_, e, p, n)| [e.clone(), p.clone(), n.clone()])
        .chain(["1988-08-08".to_string()])
        .collect();
    assert_no_personal_data(&events, &secrets);
    println!(
        "{} records, {} events; writes done after {written:?}, the last event {published:?} later",
        records.len(),
        events.len()
    );
    w.done().await;
}

#[tokio::test]
async fn a_failing_put_events_acknowledges_nothing_half_published() {
    let mut w = World::new("ev-fail", Clock::System).await;
    let (signup, points) = (w.signup(), w.points());
    let id = unique("fail");
    let body =
        json!({"email": format!("{}@example.com", id.to_lowercase()), "name": "F"}).to_string();
    assert_eq!(
        answer(
            signup::handle(
                &signup,
                request("POST", "/members", Some(&body), As::Member(id.clone()))
            )
            .await
        )
        .0,
        201
    );
    w.published().await;
    let buy = json!({"orderId": "o-1", "amount": 30_000, "currency": "CNY", "channel": "online", "occurredAt": Utc::now() - Duration::minutes(1)}).to_string();
    assert_eq!(
        answer(
            purchase_points::handle(
                &points,
                request(
                    "POST",
                    &format!("/internal/members/{id}/purchases"),
                    Some(&buy),
                    As::OrderSystem
                )
            )
            .await
        )
        .0,
        201
    );
    let records = w.stream.read().await;
    let first_with_events = records
        .iter()
        .position(|r| {
            !loyalty::store::stream::events_of(&loyalty::runtime::stream_change(r))
                .unwrap()
                .is_empty()
        })
        .expect("the purchase's ledger entry");

    // EventBridge unreachable: a client on a port where nothing listens, no SDK retries.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let conf = aws_sdk_eventbridge::config::Builder::from(&w.h.sdk_config)
        .endpoint_url(format!("http://{closed}"))
        .retry_config(aws_sdk_eventbridge::config::retry::RetryConfig::disabled())
        .build();
    let down =
        events_out::App { events: aws_sdk_eventbridge::Client::from_conf(conf), ..w.sink.app() };
    let batch = outbox::batches(&records, BATCH).remove(0);
    let response = events_out::handle_stream(&down, batch.clone()).await;
    let failed: Vec<_> =
        response.batch_item_failures.iter().map(|f| f.item_identifier.clone().unwrap()).collect();
    assert_eq!(
        failed,
        [records[first_with_events].change.sequence_number.clone().unwrap()],
        "retried from the first record whose events were not accepted"
    );
    assert!(w.sink.take(0).await.is_empty(), "nothing reached the bus");

    // The mapping retries the batch from that record once the bus is back: all is published.
    let retry = outbox::batches(&records[first_with_events..], BATCH).remove(0);
    assert!(events_out::handle_stream(&w.publisher, retry).await.batch_item_failures.is_empty());
    let events = w.sink.take(1).await;
    assert_eq!(types(&events), ["PointsPending"]);
    w.done().await;
}

#[tokio::test]
async fn a_record_that_does_not_map_is_reported_and_the_records_before_it_are_published() {
    let mut w = World::new("ev-poison", Clock::System).await;
    let signup = w.signup();
    let id = unique("poison");
    let body =
        json!({"email": format!("{}@example.com", id.to_lowercase()), "name": "P"}).to_string();
    assert_eq!(
        answer(
            signup::handle(
                &signup,
                request("POST", "/members", Some(&body), As::Member(id.clone()))
            )
            .await
        )
        .0,
        201
    );
    // A member item no handler would write (a tier that does not exist).
    let bad = unique("bad");
    let item = std::collections::HashMap::from([
        ("PK".to_string(), aws_sdk_dynamodb::types::AttributeValue::S(format!("MEMBER#{bad}"))),
        ("SK".to_string(), aws_sdk_dynamodb::types::AttributeValue::S("#PROFILE".into())),
        ("entity".to_string(), aws_sdk_dynamodb::types::AttributeValue::S("member".into())),
        ("memberId".to_string(), aws_sdk_dynamodb::types::AttributeValue::S(bad.clone())),
        ("tier".to_string(), aws_sdk_dynamodb::types::AttributeValue::S("platinum".into())),
        (
            "joinedAt".to_string(),
            aws_sdk_dynamodb::types::AttributeValue::S("2026-01-01T00:00:00Z".into()),
        ),
    ]);
    w.deps.store.client.put_item().table_name(&w.table).set_item(Some(item)).send().await.unwrap();
    let records = w.stream.read().await;
    let poison = records
        .iter()
        .position(|r| {
            loyalty::store::stream::events_of(&loyalty::runtime::stream_change(r)).is_err()
        })
        .expect("the bad item's record");
    let response =
        events_out::handle_stream(&w.publisher, outbox::batches(&records, BATCH).remove(0)).await;
    let failed: Vec<_> =
        response.batch_item_failures.iter().map(|f| f.item_identifier.clone().unwrap()).collect();
    assert_eq!(failed, [records[poison].change.sequence_number.clone().unwrap()]);
    let events = w.sink.take(3).await;
    assert_eq!(
        types(&events),
        ["CouponIssued", "MemberJoined", "PointsEarned"],
        "what came before the bad record is published"
    );
    w.done().await;
}

/// As deployed: the publisher built from its environment alone (`LOYALTY_EVENT_BUS` and the
/// SDK's standard endpoint variable, which bootstrap writes locally) reaches the bus.
#[tokio::test]
async fn the_publisher_built_from_its_environment_reaches_the_bus() {
    let mut w = World::new("ev-env", Clock::System).await;
    let moto = std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL_SQS"))
        .unwrap();
    // nextest runs each test in a process of its own: the variables are this test's.
    std::env::set_var("AWS_ENDPOINT_URL_EVENTBRIDGE", moto);
    std::env::set_var("LOYALTY_EVENT_BUS", &w.sink.bus);
    let app = events_out::App::from_env().await.expect("the publisher's environment");
    let signup = w.signup();
    let id = unique("env");
    let body =
        json!({"email": format!("{}@example.com", id.to_lowercase()), "name": "E"}).to_string();
    assert_eq!(
        answer(
            signup::handle(
                &signup,
                request("POST", "/members", Some(&body), As::Member(id.clone()))
            )
            .await
        )
        .0,
        201
    );
    let records = w.stream.read().await;
    let Ok(Outcome::Stream(response)) = events_out::handle_trigger(
        &app,
        loyalty::runtime::classify(json!({"Records": records})).unwrap(),
    )
    .await
    else {
        panic!("a stream answer")
    };
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(types(&w.sink.take(3).await), ["CouponIssued", "MemberJoined", "PointsEarned"]);
    w.done().await;
}

#[test]
fn every_detail_type_has_a_schema_and_its_examples_pass_the_validator() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/schemas");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_string())
        .collect();
    files.sort();
    let mut all: Vec<String> = DetailType::ALL.iter().map(|d| d.to_string()).collect();
    all.sort();
    assert_eq!(files, all, "one schema per detail type, and no other");
    for d in DetailType::ALL {
        let s = outbox::schema(d.as_str());
        for ex in s["examples"].as_array().expect("examples") {
            conforms(&s, &s, ex, d.as_str()).unwrap_or_else(|e| panic!("{d}: {e}"));
        }
        let mut broken = s["examples"][0].clone();
        broken["email"] = json!("li.wei@example.com");
        assert!(conforms(&s, &s, &broken, d.as_str()).is_err(), "{d}: an undocumented field fails");
    }
}

/// An order with a partner's code publishes `CommissionAccrued`
/// besides its points, a refund `CommissionReversed`, marking the month paid
/// `StatementClosed` once (a second call and the statement's reversal counter tell nothing),
/// and a refund after that `CommissionReversed` charged to the next month.
#[tokio::test]
async fn an_affiliate_order_publishes_its_commission_its_reversals_and_the_closed_statement() {
    let clock = Arc::new(Mutex::new(at("2026-11-20T04:00:00Z")));
    let mut w = World::new("ev-aff", Clock::Shared(clock.clone())).await;
    let points = w.points();
    let call = |method: &'static str, path: String, body: Option<Value>, who: As| {
        let points = &points;
        async move {
            let text = body.map(|b| b.to_string());
            answer(
                purchase_points::handle(points, request(method, &path, text.as_deref(), who)).await,
            )
        }
    };
    let id = unique("aff");
    seed_members(
        &w.harness(),
        &[plain_member(&id, TierCode::Regular, at("2026-10-01T00:00:00Z"))],
        at("2026-10-01T00:00:00Z"),
    )
    .await;
    let (s, p, _) = call(
        "POST",
        "/partners".into(),
        Some(json!({"name": "Events", "rateBasisPoints": 1000})),
        As::Operator,
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let (partner, code) = (
        p["partnerId"].as_str().unwrap().to_string(),
        p["trackingCode"].as_str().unwrap().to_string(),
    );
    assert_eq!(types(&w.published().await.0), ["MemberJoined"], "partners and codes are no events");

    let buy = json!({"orderId": "o-1", "amount": 25_000, "currency": "CNY", "channel": "online", "occurredAt": at("2026-11-20T04:00:00Z"), "trackingCode": code});
    assert_eq!(
        call("POST", format!("/internal/members/{id}/purchases"), Some(buy), As::OrderSystem)
            .await
            .0,
        201
    );
    let (events, _) = w.published().await;
    assert_eq!(types(&events), sorted(vec!["CommissionAccrued", "PointsPending"]));
    let d = one(&events, "CommissionAccrued");
    assert_eq!(
        (
            d["memberId"].as_str(),
            d["partnerId"].as_str(),
            d["commission"].as_i64(),
            d["releaseOn"].as_str(),
            d["month"].as_str()
        ),
        (
            Some(id.as_str()),
            Some(partner.as_str()),
            Some(2_500),
            Some("2026-11-27"),
            Some("2026-11")
        )
    );

    let refund = json!({"orderId": "o-1", "refundId": "r-1", "amount": 10_000});
    assert_eq!(
        call("POST", format!("/internal/members/{id}/refunds"), Some(refund), As::OrderSystem)
            .await
            .0,
        201
    );
    let (events, _) = w.published().await;
    assert_eq!(types(&events), sorted(vec!["CommissionReversed", "PointsClawedBack"]));
    let d = one(&events, "CommissionReversed");
    assert_eq!(
        (d["amount"].as_i64(), d["refundId"].as_str(), d["adjustment"].as_bool()),
        (Some(1_000), Some("r-1"), Some(false))
    );

    *clock.lock().unwrap() = at("2026-12-02T04:00:00Z");
    let paid = format!("/partners/{partner}/statements/2026-11/paid");
    assert_eq!(call("POST", paid.clone(), None, As::Operator).await.0, 200);
    assert_eq!(call("POST", paid, None, As::Operator).await.0, 200);
    let (events, _) = w.published().await;
    assert_eq!(types(&events), ["StatementClosed"], "told once");
    let d = one(&events, "StatementClosed");
    assert_eq!(
        (d["paid"].as_i64(), d["orders"].as_i64(), d.get("memberId")),
        (Some(1_500), Some(1), None)
    );

    let refund = json!({"orderId": "o-1", "refundId": "r-2", "amount": 15_000});
    assert_eq!(
        call("POST", format!("/internal/members/{id}/refunds"), Some(refund), As::OrderSystem)
            .await
            .0,
        201
    );
    let (events, _) = w.published().await;
    assert_eq!(
        types(&events),
        sorted(vec!["CommissionReversed", "PointsAvailable", "PointsClawedBack"])
    );
    let d = one(&events, "CommissionReversed");
    assert_eq!(
        (
            d["amount"].as_i64(),
            d["month"].as_str(),
            d["orderMonth"].as_str(),
            d["adjustment"].as_bool()
        ),
        (Some(1_500), Some("2026-12"), Some("2026-11"), Some(true))
    );
    w.done().await;
}
