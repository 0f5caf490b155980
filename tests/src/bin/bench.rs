//! `scripts/bench` drives this: every API operation through its real handler against the
//! local stack, counting DynamoDB requests per call (SDK interceptor) and timing calls, a
//! campaign batch to price a coupon, and the events publisher (events per PutEvents request,
//! latency per stream batch). Prints a Markdown section on stdout. `BENCH_ONLY=events-out`
//! runs only the publisher's part (it writes nothing to the table); `BENCH_ONLY=experiment`
//! only the experiment run, over the silver members the table holds already.
//!
//! Latencies are in-process handler calls against DynamoDB Local on this machine: they show
//! the code's overhead and regressions, not what DynamoDB in a region answers.
//!
//! `BENCH_CALLS_ONLY=1` stops after the per-call table (no campaign batch, no 20,000 seeded
//! members, no whole-table campaign run): a quick check that every row still works.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use futures::StreamExt;
use loyalty::campaign::IssueBatch;
use loyalty_tests::*;
use serde_json::{json, Value};
use std::time::Instant;

/// The figures the cost model (scripts/bench.d/cost_model.py) prices, written as JSON to
/// `BENCH_MEASURES` when set.
static MEASURES: std::sync::LazyLock<std::sync::Mutex<serde_json::Map<String, Value>>> =
    std::sync::LazyLock::new(Default::default);

fn measure(key: &str, value: Value) {
    MEASURES.lock().unwrap().insert(key.to_string(), value);
}

fn write_measures() {
    if let Ok(path) = std::env::var("BENCH_MEASURES") {
        let all = Value::Object(MEASURES.lock().unwrap().clone());
        std::fs::write(&path, serde_json::to_string_pretty(&all).expect("measures as JSON"))
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
}

struct Op {
    name: &'static str,
    micros: Vec<u128>,
    max_reads: u64,
    max_writes: u64,
    max_read_units: f64,
    max_write_units: f64,
    /// Of the write units: the table's (items) and the indexes', each the max over the calls.
    max_table_write_units: f64,
    max_index_write_units: f64,
    /// Each call's table write units (for the median next to the max).
    table_write_units: Vec<f64>,
}

impl Op {
    fn new(name: &'static str) -> Op {
        Op {
            name,
            micros: Vec::new(),
            max_reads: 0,
            max_writes: 0,
            max_read_units: 0.0,
            max_write_units: 0.0,
            max_table_write_units: 0.0,
            max_index_write_units: 0.0,
            table_write_units: Vec::new(),
        }
    }
    fn figures(&self) -> Value {
        json!({"reads": self.max_reads, "writes": self.max_writes, "readUnits": self.max_read_units, "writeUnits": self.max_write_units, "tableWriteUnits": self.max_table_write_units, "indexWriteUnits": self.max_index_write_units, "p50Ms": self.pct(0.5)})
    }
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.micros.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[i] as f64 / 1000.0
    }
}

async fn timed(
    h: &Harness,
    op: &mut Op,
    want: u16,
    call: impl std::future::Future<Output = lambda_http::Response<lambda_http::Body>>,
) -> Value {
    h.counter.reset();
    h.capacity.reset();
    let t = Instant::now();
    let resp = call.await;
    op.micros.push(t.elapsed().as_micros());
    let (status, body, _) = answer(resp);
    assert_eq!(status, want, "{}: {body}", op.name);
    op.max_reads = op.max_reads.max(h.counter.reads());
    op.max_writes = op.max_writes.max(h.counter.writes());
    let units = h.capacity.units();
    op.max_read_units = op.max_read_units.max(units.read);
    op.max_write_units = op.max_write_units.max(units.write);
    op.max_table_write_units = op.max_table_write_units.max(units.write - units.index_write);
    op.max_index_write_units = op.max_index_write_units.max(units.index_write);
    op.table_write_units.push(units.write - units.index_write);
    body
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let h = harness().await;
    if std::env::var("BENCH_ONLY").as_deref() == Ok("events-out") {
        events_out_bench(&h, n).await;
        write_measures();
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("awards") {
        award_bench(&h).await;
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("kpis") {
        kpi_bench(&h, n).await;
        write_measures();
        return;
    }
    let coupons = coupon_issue::App { deps: h.deps.clone(), codes: code_key(), queue: None };
    if std::env::var("BENCH_ONLY").as_deref() == Ok("experiment") {
        experiment_run(&h, &coupons).await;
        write_measures();
        return;
    }
    let signup = signup::App { deps: h.deps.clone(), codes: code_key(), contacts: contact_key() };
    let points = h.points_app();
    let names = [
        "signup (POST /members)",
        "profile (GET /members/{id})",
        "purchase (order system)",
        "refund (order system)",
        "checkout quote + hold (coupon and points)",
        "checkout confirm",
        "check-in",
        "ledger page",
        "coupon list",
        "checkout preview (member)",
        "checkout cancel",
        "reward claim (coupon reward)",
        "reward claim (gift)",
        "gift fulfilment: cancel (points back)",
        "reward catalog (member)",
        "purchase with a partner's tracking code",
        "partner statement (a month of this run's orders)",
    ];
    let mut ops: Vec<Op> = names.iter().map(|n| Op::new(n)).collect();
    let now = chrono::Utc::now();
    // The catalog: a coupon reward and a gift, 100 points each, defined once by an operator.
    let mut rewards = Vec::new();
    for body in [
        json!({"name": "Bench 20 CNY off", "price": 100, "kind": "coupon", "coupon": "amount-20", "perMemberLimit": 1}),
        json!({"name": "Bench mug", "price": 100, "kind": "gift", "stock": 1_000_000, "perMemberLimit": 1, "limitPeriod": "month"}),
    ] {
        let (s, b, _) = answer(
            purchase_points::handle(
                &points,
                request("POST", "/rewards", Some(&body.to_string()), As::Operator),
            )
            .await,
        );
        assert_eq!(s, 201, "{b}");
        rewards.push(b["rewardId"].as_str().expect("reward id").to_string());
    }

    let (s, partner, _) = answer(
        purchase_points::handle(
            &points,
            request(
                "POST",
                "/partners",
                Some(r#"{"name":"Bench partner","rateBasisPoints":1000}"#),
                As::Operator,
            ),
        )
        .await,
    );
    assert_eq!(s, 201, "{partner}");
    let (partner_id, tracking) = (
        partner["partnerId"].as_str().expect("partner id"),
        partner["trackingCode"].as_str().expect("code"),
    );
    let month =
        loyalty::affiliate::month_of(loyalty::calendar::program_date(h.deps.rules.time_zone, now));
    for i in 0..n {
        let id = unique("bench");
        let me = || As::Member(id.clone());
        let body = json!({"email": format!("{}@example.com", id.to_lowercase()), "name": "Bench", "marketingConsent": true}).to_string();
        let joined = timed(
            &h,
            &mut ops[0],
            201,
            signup::handle(&signup, request("POST", "/members", Some(&body), me())),
        )
        .await;
        timed(
            &h,
            &mut ops[1],
            200,
            signup::handle(&signup, request("GET", &format!("/members/{id}"), None, me())),
        )
        .await;
        let order = format!("o-{i}");
        let internal = |route: &str| format!("/internal/members/{id}/{route}");
        let os = || As::OrderSystem;
        // Paid 8 days ago, past the 7-day return window: its points are available at once, for
        // the checkout and reward rows below to spend.
        let purchase = json!({"orderId": order, "amount": 25_000, "currency": "CNY", "channel": "online", "occurredAt": (now - chrono::Duration::days(8)).to_rfc3339()}).to_string();
        timed(
            &h,
            &mut ops[2],
            201,
            purchase_points::handle(
                &points,
                request("POST", &internal("purchases"), Some(&purchase), os()),
            ),
        )
        .await;
        let refund =
            json!({"orderId": order, "refundId": format!("r-{i}"), "amount": 5_000}).to_string();
        timed(
            &h,
            &mut ops[3],
            201,
            purchase_points::handle(
                &points,
                request("POST", &internal("refunds"), Some(&refund), os()),
            ),
        )
        .await;
        let code = joined["welcomeCoupon"]["code"].as_str().expect("welcome coupon").to_string();
        let preview = json!({"amount": 12_000, "couponCodes": [code], "points": 100}).to_string();
        timed(
            &h,
            &mut ops[9],
            200,
            purchase_points::handle(
                &points,
                request("POST", &format!("/members/{id}/checkout-preview"), Some(&preview), me()),
            ),
        )
        .await;
        let checkout = json!({"orderId": format!("o2-{i}"), "amount": 12_000, "currency": "CNY", "channel": "online", "couponCodes": [code], "points": 100}).to_string();
        timed(
            &h,
            &mut ops[4],
            201,
            purchase_points::handle(
                &points,
                request("POST", &internal("checkouts"), Some(&checkout), os()),
            ),
        )
        .await;
        timed(
            &h,
            &mut ops[5],
            200,
            purchase_points::handle(
                &points,
                request("POST", &internal(&format!("checkouts/o2-{i}/confirm")), None, os()),
            ),
        )
        .await;
        let abandoned = json!({"orderId": format!("o3-{i}"), "amount": 12_000, "currency": "CNY", "channel": "online", "points": 100}).to_string();
        assert_eq!(
            answer(
                purchase_points::handle(
                    &points,
                    request("POST", &internal("checkouts"), Some(&abandoned), os())
                )
                .await
            )
            .0,
            201
        );
        timed(
            &h,
            &mut ops[10],
            200,
            purchase_points::handle(
                &points,
                request("POST", &internal(&format!("checkouts/o3-{i}/cancel")), None, os()),
            ),
        )
        .await;
        let checkin = json!({"type": "checkin", "refId": format!("c-{i}")}).to_string();
        timed(
            &h,
            &mut ops[6],
            201,
            purchase_points::handle(
                &points,
                request("POST", &format!("/members/{id}/activities"), Some(&checkin), me()),
            ),
        )
        .await;
        timed(
            &h,
            &mut ops[7],
            200,
            purchase_points::handle(
                &points,
                request("GET", &format!("/members/{id}/ledger?limit=20"), None, me()),
            ),
        )
        .await;
        timed(
            &h,
            &mut ops[8],
            200,
            coupon_issue::api::handle(
                &coupons,
                request("GET", &format!("/members/{id}/coupons?status=active"), None, me()),
            ),
        )
        .await;
        let claims = format!("/members/{id}/reward-claims");
        let claim = |reward: &str, key: &str| {
            request_with_headers(
                "POST",
                &claims,
                Some(&json!({"rewardId": reward, "price": 100}).to_string()),
                me(),
                &[("idempotency-key", key)],
            )
        };
        timed(
            &h,
            &mut ops[11],
            201,
            purchase_points::handle(&points, claim(&rewards[0], "coupon")),
        )
        .await;
        let gift = timed(
            &h,
            &mut ops[12],
            201,
            purchase_points::handle(&points, claim(&rewards[1], "gift")),
        )
        .await;
        let fulfilment = format!(
            "/internal/members/{id}/reward-claims/{}/fulfilment",
            gift["claimId"].as_str().expect("claim id")
        );
        timed(
            &h,
            &mut ops[13],
            200,
            purchase_points::handle(
                &points,
                request("POST", &fulfilment, Some(r#"{"status":"cancelled"}"#), os()),
            ),
        )
        .await;
        timed(
            &h,
            &mut ops[14],
            200,
            purchase_points::handle(
                &points,
                request("GET", &format!("/members/{id}/rewards"), None, me()),
            ),
        )
        .await;
        let attributed = json!({"orderId": format!("o4-{i}"), "amount": 25_000, "currency": "CNY", "channel": "online", "occurredAt": now.to_rfc3339(), "trackingCode": tracking}).to_string();
        timed(
            &h,
            &mut ops[15],
            201,
            purchase_points::handle(
                &points,
                request("POST", &internal("purchases"), Some(&attributed), os()),
            ),
        )
        .await;
        let statement = format!("/partners/{partner_id}/statements/{month}");
        timed(
            &h,
            &mut ops[16],
            200,
            purchase_points::handle(&points, request("GET", &statement, None, As::Operator)),
        )
        .await;
    }

    println!("### Per API call ({n} calls each)\n");
    println!("| operation | DynamoDB reads / call (max) | DynamoDB writes / call (max) | read units / call (max) | write units / call (max) | p50 ms | p95 ms |");
    println!("|---|---|---|---|---|---|---|");
    for op in &ops {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.2} | {:.2} |",
            op.name,
            op.max_reads,
            op.max_writes,
            op.max_read_units,
            op.max_write_units,
            op.pct(0.5),
            op.pct(0.95)
        );
    }
    measure(
        "calls",
        ops.iter()
            .map(|op| (op.name.to_string(), op.figures()))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    year_long_member(&ops, n.min(20)).await;
    if std::env::var("BENCH_CALLS_ONLY").as_deref() == Ok("1") {
        write_measures();
        return;
    }

    // A campaign batch: members who exist, one message of 500 ids through the worker.
    let members: Vec<String> = (0..500).map(|_| unique("cmp")).collect();
    for chunk in members.chunks(25) {
        for id in chunk {
            let body = json!({"email": format!("{}@example.com", id.to_lowercase()), "name": "C"})
                .to_string();
            let (s, _, _) = answer(
                signup::handle(
                    &signup,
                    request("POST", "/members", Some(&body), As::Member(id.clone())),
                )
                .await,
            );
            assert_eq!(s, 201);
        }
    }
    let batch = IssueBatch {
        batch_id: unique("batch"),
        grant: unique("bench-grant"),
        template: Some(h.deps.rules.member_day.coupon.clone()),
        points: None,
        budget: None,
        run: None,
        experiment: None,
        member_ids: members.clone(),
    };
    let mut msg = SqsMessage::default();
    msg.message_id = Some("m1".into());
    msg.body = Some(serde_json::to_string(&batch).unwrap());
    msg.event_source = Some("aws:sqs".into());
    let mut event = SqsEvent::default();
    event.records = vec![msg];
    h.counter.reset();
    h.capacity.reset();
    let t = Instant::now();
    let out = coupon_issue::worker::handle(&coupons, event).await;
    let secs = t.elapsed().as_secs_f64();
    assert!(out.batch_item_failures.is_empty(), "the batch failed");
    let (reads, writes) = (h.counter.reads(), h.counter.writes());
    let units = h.capacity.units();
    measure(
        "couponBatch",
        json!({"coupons": members.len(), "writes": writes, "reads": reads, "writeUnits": units.write, "readUnits": units.read, "seconds": secs}),
    );
    println!(
        "\n### Campaign batch (one SQS message of {} member ids through the coupon worker)\n",
        members.len()
    );
    println!("| coupons issued | DynamoDB write requests | writes per coupon | write units per coupon | read requests (eligibility) | seconds | coupons/s (one worker) |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.3} | {:.2} | {} | {:.2} | {:.0} |",
        members.len(),
        writes,
        writes as f64 / members.len() as f64,
        units.write / members.len() as f64,
        reads,
        secs,
        members.len() as f64 / secs
    );

    // The campaign run prices a realistic segment: the table filled up to BENCH_CAMPAIGN_MEMBERS
    // (default 100,000) members across the tiers (n + 500 + 1 exist already).
    let target: usize = std::env::var("BENCH_CAMPAIGN_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seeded: Vec<_> = (0..target.saturating_sub(n + 501))
        .map(|i| plain_member(&unique("seg"), loyalty::TierCode::ALL[i % 4], chrono::Utc::now()))
        .collect();
    for chunk in seeded.chunks(10_000) {
        seed_members(&h, chunk, chrono::Utc::now()).await;
    }
    let engine = campaign_run(&h, &coupons).await;
    let naive = naive_run(&h, &coupons.codes).await;
    compare(&engine, &naive);
    experiment_run(&h, &coupons).await;
    events_out_bench(&h, n).await;
    kpi_bench(&h, n).await;
    write_measures();
}

/// The publisher: stream batches as a purchase leaves them in the stream (the member's
/// change, its ledger entry, the order: one event in three records), 100 records a batch as
/// the template's mapping sends them, through the real handler to a bus of the local
/// EventBridge. The bus has no rule, so the time is the publisher's and the endpoint's, not a
/// sink's. PutEvents requests are counted by an SDK interceptor.
async fn events_out_bench(h: &Harness, n: usize) {
    use loyalty::ledger::{EntryKind, LedgerEntry};
    use loyalty::store::ledger::LedgerItem;
    use loyalty::store::member::MemberItem;
    use loyalty::store::points::OrderItem;
    let purchases = (n * 10).max(100);
    let counter = Counter::default();
    let base = loyalty_tests::outbox::events_client(h);
    let events = aws_sdk_eventbridge::Client::from_conf(
        base.config().to_builder().interceptor(counter.clone()).build(),
    );
    let bus = unique("bench-bus");
    events.create_event_bus().name(&bus).send().await.expect("create the bench bus");
    let app = events_out::App {
        events: events.clone(),
        bus: bus.clone(),
        tries: 3,
        concurrency: 4,
        kpis: None,
    };
    let now = chrono::Utc::now();
    let rules = &h.deps.rules;
    let item = |x: serde_dynamo::Item| serde_json::to_value(x).expect("an item as DynamoDB JSON");
    let mut records = Vec::new();
    for i in 0..purchases {
        let id = format!("bench-ev-{}", i % 100);
        let m = plain_member(&id, loyalty::TierCode::Regular, now);
        let member =
            item(serde_dynamo::to_item(MemberItem::new(&m, rules, now)).expect("member item"));
        let entry = LedgerEntry {
            kind: EntryKind::Purchase,
            points: loyalty::Points(0),
            balance_after: loyalty::Points(0),
            pending: loyalty::Points(150),
            rebate: loyalty::Fen::ZERO,
            rebate_pending: loyalty::Fen::ZERO,
            reason: "purchase 150.00 CNY".into(),
            reference: Some(format!("o-{i}")),
            at: now,
        };
        let ledger = item(serde_dynamo::to_item(LedgerItem::new(&id, entry)).expect("ledger item"));
        let req = loyalty::points::PurchaseRequest {
            order_id: format!("o-{i}"),
            amount: loyalty::Fen(15_000),
            currency: "CNY".into(),
            channel: loyalty::points::Channel::Online,
            occurred_at: now,
            tracking_code: None,
        };
        let order = item(
            serde_dynamo::to_item(OrderItem::new(
                &id,
                loyalty::points::OrderRecord::purchase(
                    &req,
                    150,
                    now.date_naive(),
                    "f".into(),
                    "{}".into(),
                ),
            ))
            .expect("order item"),
        );
        for (j, (name, new, old)) in [
            ("MODIFY", member.clone(), Some(member)),
            ("INSERT", ledger, None),
            ("INSERT", order, None),
        ]
        .into_iter()
        .enumerate()
        {
            let seq = format!("{:021}", 3 * i + j + 1);
            let mut d = json!({"ApproximateCreationDateTime": now.timestamp() as f64, "Keys": {"PK": new["PK"], "SK": new["SK"]}, "NewImage": new, "SequenceNumber": seq, "SizeBytes": 500, "StreamViewType": "NEW_AND_OLD_IMAGES"});
            if let Some(o) = old {
                d["OldImage"] = o;
            }
            records.push(json!({"eventID": seq, "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": d}));
        }
    }
    let mut op = Op::new("stream batch of 100 records");
    let (mut published, mut failed) = (0usize, 0usize);
    for chunk in records.chunks(100) {
        let Ok(loyalty::runtime::Trigger::Stream(batch)) =
            loyalty::runtime::classify(json!({ "Records": chunk }))
        else {
            panic!("a stream batch")
        };
        published += batch
            .records
            .iter()
            .map(|r| {
                loyalty::store::stream::events_of(&loyalty::runtime::stream_change(r))
                    .expect("maps")
                    .len()
            })
            .sum::<usize>();
        let t = Instant::now();
        failed += events_out::handle_stream(&app, batch).await.batch_item_failures.len();
        op.micros.push(t.elapsed().as_micros());
    }
    let requests = counter.snapshot().get("PutEvents").copied().unwrap_or(0);
    let _ = events.delete_event_bus().name(&bus).send().await;
    measure(
        "eventsOut",
        json!({"purchases": purchases, "records": records.len(), "events": published, "putEventsRequests": requests, "p50MsPerBatch": op.pct(0.5), "recordsPerBatch": 100}),
    );
    println!("\n### Events out (the publisher: {purchases} purchases' stream records, 100 records a batch)\n");
    println!("| stream records | events | PutEvents requests | events per request | batches failed | p50 ms / batch | p95 ms / batch |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {published} | {requests} | {:.2} | {failed} | {:.2} | {:.2} |",
        records.len(),
        published as f64 / requests.max(1) as f64,
        op.pct(0.5),
        op.pct(0.95)
    );
}

/// The KPI counters: real purchases through the purchase handler on a table with
/// the template's stream; their stream records counted by events-out's counter in batches of
/// 100, as the mapping hands them over; DynamoDB requests and write units per purchase (the
/// counting's own, not the purchase's). Then the report over a year, read back through its
/// handler: requests, read units and latency.
async fn kpi_bench(h: &Harness, n: usize) {
    use loyalty::app::Dependencies;
    use loyalty::store::Store;
    use loyalty_tests::outbox::{self, StreamReader};
    let (members, purchases) = (50usize, (n * 5).max(100));
    let table = outbox::stream_table(h, "bench-kpi").await;
    let deps = Dependencies {
        store: Store::new(h.deps.store.client.clone(), table.clone()),
        ..h.deps.clone()
    };
    let mut stream = StreamReader::open(h, &table).await;
    let kpis = events_out::Kpis {
        store: deps.store.clone(),
        time_zone: deps.rules.time_zone,
        conversion_days: deps.rules.reports.conversion_days,
    };
    let signup = signup::App { deps: deps.clone(), codes: code_key(), contacts: contact_key() };
    let points = purchase_points::App {
        deps: deps.clone(),
        sqs: aws_sdk_sqs::Client::new(&h.sdk_config),
        codes: code_key(),
    };
    let ids: Vec<String> = (0..members).map(|i| unique(&format!("bench-kpi-{i}"))).collect();
    for id in &ids {
        let body = json!({"name": "K", "email": format!("{}@example.com", id.to_lowercase())});
        let (s, b, _) = answer(
            signup::handle(
                &signup,
                request("POST", "/members", Some(&body.to_string()), As::Member(id.clone())),
            )
            .await,
        );
        assert_eq!(s, 201, "{b}");
    }
    let joined = stream.read().await;
    for chunk in joined.chunks(100) {
        assert_eq!(events_out::count(&kpis, chunk).await, None, "every signup record counted");
    }
    let now = chrono::Utc::now();
    for i in 0..purchases {
        let id = &ids[i % members];
        let body = json!({"orderId": format!("k-{i}"), "amount": 10_000 + 137 * i as i64, "currency": "CNY", "channel": "online", "occurredAt": now});
        let (s, b, _) = answer(
            purchase_points::handle(
                &points,
                request(
                    "POST",
                    &format!("/internal/members/{id}/purchases"),
                    Some(&body.to_string()),
                    As::OrderSystem,
                ),
            )
            .await,
        );
        assert_eq!(s, 201, "{b}");
    }
    let records = stream.read().await;
    h.counter.reset();
    h.capacity.reset();
    let mut batch = Op::new("KPI count of 100 stream records");
    for chunk in records.chunks(100) {
        let t = Instant::now();
        assert_eq!(events_out::count(&kpis, chunk).await, None, "every purchase record counted");
        batch.micros.push(t.elapsed().as_micros());
    }
    let (writes, reads, units) = (h.counter.writes(), h.counter.reads(), h.capacity.units());
    let per = |x: f64| x / purchases as f64;
    let campaigns = member_day::App {
        deps: deps.clone(),
        sqs: aws_sdk_sqs::Client::new(&h.sdk_config),
        campaign_queue: String::new(),
        dispatch_queue: String::new(),
        budget: std::time::Duration::from_secs(60),
        members_files: None,
    };
    let today = loyalty::calendar::program_date(deps.rules.time_zone, now);
    let path = format!("/reports/kpis?from={}&to={today}", today - chrono::Duration::days(365));
    let mut report = Op::new("GET /reports/kpis (a year)");
    let mut first = Value::Null;
    for _ in 0..20 {
        first = timed(
            h,
            &mut report,
            200,
            member_day::handle(&campaigns, request("GET", &path, None, As::Operator)),
        )
        .await;
    }
    assert_eq!(first["totals"]["purchases"], purchases, "the report counts every purchase");
    outbox::drop_table(h, &table).await;
    measure(
        "kpis",
        json!({"purchases": purchases, "records": records.len(), "writeRequestsPerPurchase": per(writes as f64), "writeUnitsPerPurchase": per(units.write), "readRequestsPerPurchase": per(reads as f64), "report": report.figures()}),
    );
    println!("\n### KPI counters (events-out: {purchases} purchases by {members} members, their {} stream records in batches of 100)\n", records.len());
    println!("| per purchase: DynamoDB write requests | write units | read requests | p50 ms / batch | p95 ms / batch |");
    println!("|---|---|---|---|---|");
    println!(
        "| {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
        per(writes as f64),
        per(units.write),
        per(reads as f64),
        batch.pct(0.5),
        batch.pct(0.95)
    );
    println!("\nThe report over 366 days of this table (the run's counters fill one day; a year of full days stays\nat most 4 read requests, `tests/tests/kpis.rs`), through its handler, 20 calls:\n");
    println!("| read requests | read units | p50 ms | p95 ms |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {:.1} | {:.2} | {:.2} |",
        report.max_reads,
        report.max_read_units,
        report.pct(0.5),
        report.pct(0.95)
    );
}

/// A whole campaign run over every member in the table: the admin creates and runs it, the
/// dispatcher pages the segment and sends batches, the worker issues. SQS requests are the
/// function's own (sends); receiving and deleting is Lambda's event source mapping's.
async fn campaign_run(h: &Harness, worker: &coupon_issue::App) -> Run {
    let sqs_counter = Counter::default();
    let sqs_conf =
        aws_sdk_sqs::config::Builder::from(&h.sdk_config).interceptor(sqs_counter.clone()).build();
    let sqs = aws_sdk_sqs::Client::from_conf(sqs_conf);
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run through scripts/bench"))
    };
    let app = member_day::App {
        deps: h.deps.clone(),
        sqs: sqs.clone(),
        campaign_queue: var("CAMPAIGN_QUEUE_URL"),
        dispatch_queue: var("DISPATCH_QUEUE_URL"),
        budget: std::time::Duration::from_secs(60),
        members_files: None,
    };
    let body = json!({"name": "Bench day", "segment": {"tiers": ["regular", "silver", "gold", "diamond"]},
        "coupon": {"title": "Bench 5 off", "offer": {"kind": "amount_off", "value": 500, "minSpend": 0}, "validDays": 1},
        "schedule": {"kind": "once", "at": "2030-01-01T00:00:00Z"}}).to_string();
    let (s, created, _) = answer(
        member_day::handle(&app, request("POST", "/campaigns", Some(&body), As::Operator)).await,
    );
    assert_eq!(s, 201, "{created}");
    let id = created["campaignId"].as_str().expect("campaign id").to_string();
    h.counter.reset();
    h.capacity.reset();
    sqs_counter.reset();
    let t = Instant::now();
    let (s, b, _) = answer(
        member_day::handle(
            &app,
            request("POST", &format!("/campaigns/{id}/run"), None, As::Operator),
        )
        .await,
    );
    assert_eq!(s, 202, "{b}");
    let (dispatch_sends, worker_msgs) = drain(&app, &sqs, worker).await;
    let secs = t.elapsed().as_secs_f64();
    let (s, progress, _) = answer(
        member_day::handle(&app, request("GET", &format!("/campaigns/{id}"), None, As::Operator))
            .await,
    );
    assert_eq!(s, 200);
    let run = &progress["runs"][0];
    let targeted = run["targeted"].as_u64().unwrap_or(0);
    let issued = run["issued"].as_u64().unwrap_or(0);
    let sends = sqs_counter
        .snapshot()
        .iter()
        .filter(|(k, _)| k.starts_with("SendMessage"))
        .map(|(_, v)| *v)
        .sum::<u64>();
    let (reads, writes) = (h.counter.reads(), h.counter.writes());
    let units = h.capacity.units();
    measure(
        "campaignRun",
        json!({"targeted": targeted, "issued": issued, "sqsSends": sends, "batchMessages": worker_msgs, "dispatchMessages": dispatch_sends, "writes": writes, "reads": reads, "writeUnits": units.write, "readUnits": units.read, "seconds": secs}),
    );
    println!(
        "\n### A campaign run over the whole table (dispatcher + worker, state `{}`)\n",
        run["state"].as_str().unwrap_or("?")
    );
    println!("| targeted | issued | SQS send requests (function's own) | members per SQS request | batch messages | DynamoDB writes | writes per issued coupon | write units per issued coupon | DynamoDB reads | seconds |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {targeted} | {issued} | {sends} | {:.0} | {worker_msgs} | {writes} | {:.3} | {:.2} | {reads} | {secs:.2} |",
        targeted as f64 / sends.max(1) as f64,
        writes as f64 / issued.max(1) as f64,
        units.write / issued.max(1) as f64
    );
    let sqs_all = sqs_counter.snapshot().values().sum::<u64>();
    Run {
        members: targeted,
        coupons: issued,
        sqs: sqs_all,
        ddb: reads + writes,
        write_units: units.write,
        seconds: secs,
    }
}

/// An experiment over one tier of the table (a quarter: 25,000 of the default 100,000
/// members): two coupon variants and a 10% holdout. Asserts the holdout got no coupon and its
/// share is within 4 binomial standard deviations of 10%, and prices a member of each kind.
async fn experiment_run(h: &Harness, worker: &coupon_issue::App) {
    use aws_sdk_dynamodb::types::AttributeValue;
    use loyalty::campaign::experiment::{Experiment, Share, HOLDOUT_ARM};
    let sqs = aws_sdk_sqs::Client::new(&h.sdk_config);
    let app = member_day::App {
        deps: h.deps.clone(),
        sqs: sqs.clone(),
        campaign_queue: std::env::var("CAMPAIGN_QUEUE_URL").expect("CAMPAIGN_QUEUE_URL"),
        dispatch_queue: std::env::var("DISPATCH_QUEUE_URL").expect("DISPATCH_QUEUE_URL"),
        budget: std::time::Duration::from_secs(60),
        members_files: None,
    };
    let variants = json!([{"name": "five", "weight": 1}, {"name": "ship", "weight": 1, "coupon": {"title": "Free shipping", "offer": {"kind": "free_shipping", "minSpend": 0}, "validDays": 1}}]);
    let body = json!({"name": "Bench A/B", "segment": {"tiers": ["silver"]}, "variants": variants, "holdout": 0.1,
        "coupon": {"title": "Bench 5 off", "offer": {"kind": "amount_off", "value": 500, "minSpend": 0}, "validDays": 1},
        "schedule": {"kind": "once", "at": "2030-01-01T00:00:00Z"}}).to_string();
    let (s, created, _) = answer(
        member_day::handle(&app, request("POST", "/campaigns", Some(&body), As::Operator)).await,
    );
    assert_eq!(s, 201, "{created}");
    let id = created["campaignId"].as_str().expect("campaign id").to_string();
    h.counter.reset();
    h.capacity.reset();
    let t = Instant::now();
    let (s, started, _) = answer(
        member_day::handle(
            &app,
            request("POST", &format!("/campaigns/{id}/run"), None, As::Operator),
        )
        .await,
    );
    assert_eq!(s, 202, "{started}");
    drain(&app, &sqs, worker).await;
    let secs = t.elapsed().as_secs_f64();
    let (writes, units) = (h.counter.writes(), h.capacity.units());
    let grant = started["grant"].as_str().expect("grant");
    let experiment = Experiment::of(
        &id,
        &serde_json::from_value::<Vec<loyalty::campaign::Variant>>(variants).expect("variants"),
        Share(1000),
    )
    .expect("an experiment");
    let store = &h.deps.store;
    let (mut coupons, mut held, mut start) = (0u64, 0u64, None);
    loop {
        let page = store
            .client
            .scan()
            .table_name(&store.table)
            .filter_expression("#g = :g")
            .expression_attribute_names("#g", "grant")
            .expression_attribute_values(":g", AttributeValue::S(grant.into()))
            .projection_expression("memberId, entity")
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        // The coupons and the holdout records (the coupons' grant slots carry the grant too).
        for item in page.items.unwrap_or_default() {
            let entity = item["entity"].as_s().map(String::as_str);
            if !matches!(entity, Ok("coupon" | "holdout")) {
                continue;
            }
            let member = item["memberId"].as_s().expect("memberId");
            let holdout = experiment.assign(member).name() == HOLDOUT_ARM;
            match entity {
                Ok("coupon") => {
                    assert!(!holdout, "{member} is held out but holds a coupon");
                    coupons += 1
                }
                Ok("holdout") => {
                    assert!(holdout, "{member} recorded in the holdout but assigned a variant");
                    held += 1
                }
                _ => {}
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let members = coupons + held;
    let share = held as f64 / members.max(1) as f64;
    let sd = (0.1 * 0.9 / members.max(1) as f64).sqrt();
    assert!((share - 0.1).abs() <= 4.0 * sd, "holdout share {share} of {members}");
    measure(
        "experimentRun",
        json!({"members": members, "coupons": coupons, "heldOut": held, "holdoutShare": share, "writes": writes, "writeUnits": units.write, "seconds": secs}),
    );
    println!("\n### An experiment run: one tier, two coupon variants, 10% held out\n");
    println!("| members | coupons | held out (share) | coupons in the holdout | DynamoDB writes per member | write units per member | seconds |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {members} | {coupons} | {held} ({share:.4}, 10% ± {:.4} at 4 SD) | 0 | {:.3} | {:.2} | {secs:.2} |",
        4.0 * sd,
        writes as f64 / members.max(1) as f64,
        units.write / members.max(1) as f64
    );
}

/// Drives a run's queues to empty in process, as the event source mappings would: answers
/// the dispatch and batch messages handled.
async fn drain(
    app: &member_day::App,
    sqs: &aws_sdk_sqs::Client,
    worker: &coupon_issue::App,
) -> (u64, u64) {
    let (mut dispatch_sends, mut worker_msgs) = (0u64, 0u64);
    loop {
        let mut moved = false;
        for (queue, is_dispatch) in
            [(app.dispatch_queue.clone(), true), (app.campaign_queue.clone(), false)]
        {
            for m in receive_batch(sqs, &queue).await {
                moved = true;
                let body = m.body.clone().unwrap_or_default();
                if is_dispatch {
                    dispatch_sends += 1;
                    member_day::dispatch::on_message(
                        app,
                        &body,
                        Instant::now() + std::time::Duration::from_secs(60),
                    )
                    .await
                    .expect("dispatch");
                } else {
                    worker_msgs += 1;
                    let mut msg = SqsMessage::default();
                    msg.message_id = m.message_id.clone();
                    msg.body = Some(body);
                    msg.event_source = Some("aws:sqs".into());
                    let mut event = SqsEvent::default();
                    event.records = vec![msg];
                    assert!(coupon_issue::worker::handle(worker, event)
                        .await
                        .batch_item_failures
                        .is_empty());
                }
                sqs.delete_message()
                    .queue_url(&queue)
                    .receipt_handle(m.receipt_handle.unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        if !moved {
            break;
        }
    }
    (dispatch_sends, worker_msgs)
}

/// What one design spent on a member day, every request counted (the functions' own and
/// the event source's receives and deletes, made here by the harness).
struct Run {
    members: u64,
    coupons: u64,
    sqs: u64,
    ddb: u64,
    write_units: f64,
    seconds: f64,
}

/// The member day as the usual serverless sample builds it: a dispatcher scans the table and
/// sends one SQS message per member; one invocation per message reads the member (exists, not
/// erased) and issues the coupon (the same conditional transaction as the engine, so the
/// one-coupon rule holds in both). Sixteen invocations at a time, as the engine's worker runs
/// sixteen issues at a time; the harness receives ten messages per request, which favours the
/// naive design (Lambda's mapping with a batch size of one may receive fewer).
async fn naive_run(h: &Harness, key: &loyalty::coupon::CodeKey) -> Run {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    use futures::StreamExt;
    let sqs_counter = Counter::default();
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&h.sdk_config).interceptor(sqs_counter.clone()).build(),
    );
    let queue = sqs
        .create_queue()
        .queue_name(unique("naive"))
        .send()
        .await
        .expect("create the naive queue")
        .queue_url
        .expect("queue url");
    let (store, rules) = (&h.deps.store, &h.deps.rules);
    let grant = unique("naive-grant");
    h.counter.reset();
    h.capacity.reset();
    let t = Instant::now();
    let mut members = 0u64;
    let issued = std::sync::atomic::AtomicU64::new(0);
    // The invocations, one per message, until the queue is empty.
    let drain = || async {
        loop {
            let messages = receive_batch(&sqs, &queue).await;
            if messages.is_empty() {
                break;
            }
            futures::stream::iter(messages)
                .for_each_concurrent(16, |m| {
                    let (sqs, queue, grant, issued) = (&sqs, &queue, &grant, &issued);
                    async move {
                        let id = m.body.clone().unwrap_or_default();
                        let found = store
                            .client
                            .get_item()
                            .table_name(&store.table)
                            .key("PK", A::S(loyalty::store::keys::member_pk(&id)))
                            .key("SK", A::S(loyalty::store::keys::PROFILE_SK.into()))
                            .projection_expression("memberId, erasedAt")
                            .send()
                            .await
                            .expect("read the member");
                        if found.item.is_some_and(|i| !i.contains_key("erasedAt")) {
                            let c = loyalty::coupon::issue(
                                key,
                                &rules.member_day.coupon,
                                &id,
                                grant,
                                0,
                                chrono::Utc::now(),
                            );
                            if matches!(
                                store.issue_coupon(&c, None, None).await.expect("issue"),
                                loyalty::store::issue::IssueOutcome::Issued
                            ) {
                                issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        sqs.delete_message()
                            .queue_url(queue)
                            .receipt_handle(m.receipt_handle.unwrap_or_default())
                            .send()
                            .await
                            .expect("delete");
                    }
                })
                .await;
        }
    };
    let mut scan = store
        .client
        .scan()
        .table_name(&store.table)
        .filter_expression("entity = :m")
        .expression_attribute_values(":m", A::S("member".into()))
        .projection_expression("memberId");
    loop {
        let page = scan.clone().send().await.expect("scan the members");
        let ids: Vec<String> = page
            .items()
            .iter()
            .filter_map(|i| i.get("memberId").and_then(|v| v.as_s().ok()).cloned())
            .collect();
        members += ids.len() as u64;
        futures::stream::iter(ids)
            .for_each_concurrent(16, |id| {
                let (sqs, queue) = (&sqs, &queue);
                async move {
                    sqs.send_message()
                        .queue_url(queue)
                        .message_body(id)
                        .send()
                        .await
                        .expect("send one member");
                }
            })
            .await;
        // Lambda consumes while the dispatcher sends: each page's messages are drained before
        // the next page is scanned (which also keeps the local queue short).
        drain().await;
        match page.last_evaluated_key {
            Some(k) => scan = scan.set_exclusive_start_key(Some(k)),
            None => break,
        }
    }
    let seconds = t.elapsed().as_secs_f64();
    let units = h.capacity.units();
    let run = Run {
        members,
        coupons: issued.into_inner(),
        sqs: sqs_counter.snapshot().values().sum(),
        ddb: h.counter.reads() + h.counter.writes(),
        write_units: units.write,
        seconds,
    };
    let _ = sqs.delete_queue().queue_url(&queue).send().await;
    run
}

fn compare(engine: &Run, naive: &Run) {
    measure(
        "campaignComparison",
        json!({
        "engine": {"members": engine.members, "coupons": engine.coupons, "sqs": engine.sqs, "ddb": engine.ddb, "writeUnits": engine.write_units, "seconds": engine.seconds},
        "naive": {"members": naive.members, "coupons": naive.coupons, "sqs": naive.sqs, "ddb": naive.ddb, "writeUnits": naive.write_units, "seconds": naive.seconds}}),
    );
    println!("\n### The same member day against the naive design (one SQS message and one invocation per member)
");
    println!("Every request counted on both sides: the functions' own and the queue receives and deletes");
    println!(
        "(made by the harness for both). Same table, same segment, same coupon transaction.\n"
    );
    println!("| design | members | coupons issued | SQS requests | DynamoDB requests | DynamoDB write units | seconds |");
    println!("|---|---|---|---|---|---|---|");
    for (name, r) in [
        ("this engine (dispatcher, batches of members, worker)", engine),
        ("naive (a message per member)", naive),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {:.0} | {:.1} |",
            r.members, r.coupons, r.sqs, r.ddb, r.write_units, r.seconds
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    println!(
        "| naive / engine | | | {:.1}x | {:.2}x | {:.2}x | {:.2}x |",
        ratio(naive.sqs as f64, engine.sqs as f64),
        ratio(naive.ddb as f64, engine.ddb as f64),
        ratio(naive.write_units, engine.write_units),
        ratio(naive.seconds, engine.seconds)
    );
    let all = |r: &Run| (r.sqs + r.ddb) as f64;
    println!(
        "\nRequests of both services together: the naive design makes {:.1}x as many.",
        ratio(all(naive), all(engine))
    );
}

/// Days of the year-long member's history: longer than the points' life (365 days), so that, as
/// for a real daily buyer, a lot expires and an order's return window ends on every day.
const HISTORY_DAYS: i64 = 370;

/// The same calls for a member with a purchase and a check-in on each of `HISTORY_DAYS` days
/// (made through the real handlers, the clock moved a day at a time), against a new member's
/// figures from the table above: what a loyal customer costs per call. The measured calls go
/// on as the member would: one order a day (a purchase one day, a checkout the next), so the
/// item is a daily buyer's and each day's first write settles that day's release and expiry.
async fn year_long_member(new: &[Op], n: usize) {
    let start = chrono::Utc::now() - chrono::Duration::days(HISTORY_DAYS + 2 * n as i64);
    let clock = std::sync::Arc::new(std::sync::Mutex::new(start));
    let h =
        harness_with(loyalty::Rules::default(), loyalty::app::Clock::Shared(clock.clone())).await;
    let set = |t| *clock.lock().unwrap() = t;
    let signup = signup::App { deps: h.deps.clone(), codes: code_key(), contacts: contact_key() };
    let points = h.points_app();
    let coupons = coupon_issue::App { deps: h.deps.clone(), codes: code_key(), queue: None };
    let id = unique("year");
    let me = || As::Member(id.clone());
    let internal = |route: &str| format!("/internal/members/{id}/{route}");
    let body = json!({"email": format!("{}@example.com", id.to_lowercase()), "name": "Loyal", "marketingConsent": true}).to_string();
    assert_eq!(
        answer(signup::handle(&signup, request("POST", "/members", Some(&body), me())).await).0,
        201
    );
    for day in 0..HISTORY_DAYS {
        let t = start + chrono::Duration::days(day) + chrono::Duration::hours(1);
        set(t);
        let paid = 5_000 + (day * 7_919) % 30_000;
        let purchase = json!({"orderId": format!("y-{day}"), "amount": paid, "currency": "CNY", "channel": "online", "occurredAt": t.to_rfc3339()}).to_string();
        let (s, b, _) = answer(
            purchase_points::handle(
                &points,
                request("POST", &internal("purchases"), Some(&purchase), As::OrderSystem),
            )
            .await,
        );
        assert_eq!(s, 201, "day {day}: {b}");
        let checkin = json!({"type": "checkin", "refId": format!("yc-{day}")}).to_string();
        assert_eq!(
            answer(
                purchase_points::handle(
                    &points,
                    request("POST", &format!("/members/{id}/activities"), Some(&checkin), me())
                )
                .await
            )
            .0,
            201
        );
    }
    let now = start + chrono::Duration::days(HISTORY_DAYS);
    set(now);
    let reward =
        json!({"name": "Bench 20 CNY off", "price": 100, "kind": "coupon", "coupon": "amount-20"});
    let (s, b, _) = answer(
        purchase_points::handle(
            &points,
            request("POST", "/rewards", Some(&reward.to_string()), As::Operator),
        )
        .await,
    );
    assert_eq!(s, 201, "{b}");
    let reward = b["rewardId"].as_str().expect("reward id").to_string();

    let key = [
        ("PK", loyalty::store::keys::member_pk(&id)),
        ("SK", loyalty::store::keys::PROFILE_SK.to_string()),
    ];
    let mut get = h.deps.store.client.get_item().table_name(&h.deps.store.table);
    for (k, v) in key {
        get = get.key(k, aws_sdk_dynamodb::types::AttributeValue::S(v));
    }
    let profile_bytes = loyalty::store::item_size(
        &get.send().await.expect("read the profile item").item.expect("the profile item"),
    );

    let mut query = h
        .deps
        .store
        .client
        .query()
        .table_name(&h.deps.store.table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(loyalty::store::keys::member_pk(&id)),
        );
    let (mut partition_bytes, mut partition_items) = (0usize, 0usize);
    loop {
        let page = query.clone().send().await.expect("read the member's partition");
        for item in page.items() {
            partition_bytes += loyalty::store::item_size(item);
            partition_items += 1;
        }
        match page.last_evaluated_key {
            Some(k) => query = query.set_exclusive_start_key(Some(k)),
            None => break,
        }
    }
    measure(
        "yearMember",
        json!({"profileBytes": profile_bytes, "partitionBytes": partition_bytes, "partitionItems": partition_items, "days": HISTORY_DAYS}),
    );

    let names = [
        "profile (GET /members/{id})",
        "purchase (order system)",
        "refund (order system)",
        "checkout quote + hold (coupon and points)",
        "checkout confirm",
        "check-in",
        "ledger page",
        "coupon list",
        "reward claim (coupon reward)",
    ];
    let mut ops: Vec<Op> = names.iter().map(|n| Op::new(n)).collect();
    for i in 0..n {
        // A day's first write settles the release and expiry due that day.
        let day = now + chrono::Duration::days(2 * i as i64) + chrono::Duration::hours(1);
        set(day);
        let os = || As::OrderSystem;
        timed(
            &h,
            &mut ops[0],
            200,
            signup::handle(&signup, request("GET", &format!("/members/{id}"), None, me())),
        )
        .await;
        let purchase = json!({"orderId": format!("yn-{i}"), "amount": 25_000, "currency": "CNY", "channel": "online", "occurredAt": (day - chrono::Duration::minutes(1)).to_rfc3339()}).to_string();
        timed(
            &h,
            &mut ops[1],
            201,
            purchase_points::handle(
                &points,
                request("POST", &internal("purchases"), Some(&purchase), os()),
            ),
        )
        .await;
        let refund = json!({"orderId": format!("y-{}", 300 + i), "refundId": format!("yr-{i}"), "amount": 1_000}).to_string();
        timed(
            &h,
            &mut ops[2],
            201,
            purchase_points::handle(
                &points,
                request("POST", &internal("refunds"), Some(&refund), os()),
            ),
        )
        .await;
        // The next day's order is a checkout.
        set(day + chrono::Duration::days(1));
        let checkout = json!({"orderId": format!("yo-{i}"), "amount": 12_000, "currency": "CNY", "channel": "online", "points": 100}).to_string();
        timed(
            &h,
            &mut ops[3],
            201,
            purchase_points::handle(
                &points,
                request("POST", &internal("checkouts"), Some(&checkout), os()),
            ),
        )
        .await;
        timed(
            &h,
            &mut ops[4],
            200,
            purchase_points::handle(
                &points,
                request("POST", &internal(&format!("checkouts/yo-{i}/confirm")), None, os()),
            ),
        )
        .await;
        if i == 0 {
            let checkin = json!({"type": "checkin", "refId": "yc-today"}).to_string();
            timed(
                &h,
                &mut ops[5],
                201,
                purchase_points::handle(
                    &points,
                    request("POST", &format!("/members/{id}/activities"), Some(&checkin), me()),
                ),
            )
            .await;
        }
        timed(
            &h,
            &mut ops[6],
            200,
            purchase_points::handle(
                &points,
                request("GET", &format!("/members/{id}/ledger?limit=20"), None, me()),
            ),
        )
        .await;
        timed(
            &h,
            &mut ops[7],
            200,
            coupon_issue::api::handle(
                &coupons,
                request("GET", &format!("/members/{id}/coupons?status=active"), None, me()),
            ),
        )
        .await;
        let claim = request_with_headers(
            "POST",
            &format!("/members/{id}/reward-claims"),
            Some(&json!({"rewardId": reward, "price": 100}).to_string()),
            me(),
            &[("idempotency-key", &format!("y-{i}"))],
        );
        timed(&h, &mut ops[8], 201, purchase_points::handle(&points, claim)).await;
    }
    measure(
        "yearCalls",
        ops.iter()
            .filter(|op| !op.micros.is_empty())
            .map(|op| (op.name.to_string(), op.figures()))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    println!(
        "\n### Capacity units per call: a new member and a member with a year of daily purchases\n"
    );
    println!("The year-long member bought and checked in on each of {HISTORY_DAYS} days (through the real handlers),");
    println!("then went on ordering once a day through the measured calls ({n} purchases and {n} checkouts on");
    println!("alternate days): a daily buyer, so each day's first write also writes the release of the order whose");
    println!("return window ended and the expiry of the lot earned a year before (one ledger entry each). Its");
    println!("`#PROFILE` item weighs about {:.1} KB (DynamoDB's size rule). Units are as in the per-call table's", profile_bytes as f64 / 1024.0);
    println!("(max over the calls). Write units are split into the table's (the items written, by DynamoDB's");
    println!("rule: 2 per started KB of each item in a transaction) and the indexes' (as DynamoDB Local reports");
    println!("them: an index entry whose key changes is a delete and a put, one whose projected attributes change");
    println!("an update, doubled in a transaction), each the max over the calls; the last column is the median of");
    println!("the year-long member's table write units.\n");
    println!("| operation | new member: read units | new member: write units (table + indexes) | year-long member: read units | year-long member: write units (table + indexes) | year-long member: table write units, median |");
    println!("|---|---|---|---|---|---|");
    let split = |o: &Op| {
        format!(
            "{:.1} ({:.0} + {:.0})",
            o.max_write_units, o.max_table_write_units, o.max_index_write_units
        )
    };
    for op in ops.iter().filter(|op| !op.micros.is_empty()) {
        let (r, w) = new
            .iter()
            .find(|o| o.name == op.name)
            .map_or((f64::NAN, "-".to_string()), |o| (o.max_read_units, split(o)));
        let mut units = op.table_write_units.clone();
        units.sort_by(f64::total_cmp);
        println!(
            "| {} | {r:.1} | {w} | {:.1} | {} | {:.0} |",
            op.name,
            op.max_read_units,
            split(op),
            units[units.len() / 2]
        );
    }
}

/// `BENCH_ONLY=awards`: a bulk award of points to `BENCH_AWARD_MEMBERS` (default 20,000)
/// members of an uploaded list, through the real handler, dispatcher, queue and worker (four
/// workers at a time), then run again: every member credited once (checked), the requests
/// and write units per member, the time. Prints the "Bulk award" section.
async fn award_bench(h: &Harness) {
    let n: usize =
        std::env::var("BENCH_AWARD_MEMBERS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let table = clone_table(h, "bench-awards").await;
    let store = loyalty::store::Store::new(h.deps.store.client.clone(), table.clone());
    let deps = loyalty::app::Dependencies { store: store.clone(), ..h.deps.clone() };
    let on_table = Harness {
        deps: deps.clone(),
        counter: h.counter.clone(),
        capacity: h.capacity.clone(),
        sdk_config: h.sdk_config.clone(),
    };
    let now = chrono::Utc::now();
    let members: Vec<loyalty::member::Member> = (0..n)
        .map(|i| plain_member(&format!("bench-award-{i:06}"), loyalty::TierCode::ALL[i % 4], now))
        .collect();
    seed_members(&on_table, &members, now).await;
    let ids: Vec<String> = members.iter().map(|m| m.member_id.as_str().to_string()).collect();
    // SQS requests are counted like DynamoDB's (the SDK's target header names the operation).
    let sqs_counter = Counter::default();
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&h.sdk_config).interceptor(sqs_counter.clone()).build(),
    );
    let mut queues = Vec::new();
    for p in ["bench-award-cq", "bench-award-dq"] {
        queues.push(
            sqs.create_queue().queue_name(unique(p)).send().await.unwrap().queue_url.unwrap(),
        );
    }
    let bucket = std::env::var("MIGRATION_BUCKET").expect("MIGRATION_BUCKET (scripts/stack)");
    let files = member_day::MembersFiles::new(&h.sdk_config, bucket.clone());
    let key = format!("awards/{}.txt", unique("bench"));
    files
        .s3
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .body((ids.join("\n") + "\n").into_bytes().into())
        .send()
        .await
        .unwrap();
    let md = member_day::App {
        deps: deps.clone(),
        sqs: sqs.clone(),
        dispatch_queue: queues.pop().unwrap(),
        campaign_queue: queues.pop().unwrap(),
        budget: std::time::Duration::from_secs(60),
        members_files: Some(files),
    };
    let worker = coupon_issue::App { deps: deps.clone(), codes: code_key(), queue: None };
    let body = json!({"name": "Bench award", "reason": "Benchmark", "points": {"amount": 100}, "membersFile": key});
    let mut rows = Vec::new();
    let mut award_id = String::new();
    for run in 1..=2 {
        h.counter.reset();
        h.capacity.reset();
        sqs_counter.reset();
        let t = Instant::now();
        let req = if run == 1 {
            request("POST", "/awards", Some(&body.to_string()), As::Operator)
        } else {
            request("POST", &format!("/awards/{award_id}/run"), None, As::Operator)
        };
        let (s, v, _) = answer(member_day::handle(&md, req).await);
        assert_eq!(s, 202, "{v}");
        award_id = v["awardId"].as_str().unwrap().to_string();
        let sends = || {
            sqs_counter
                .snapshot()
                .iter()
                .filter(|(k, _)| k.starts_with("SendMessage"))
                .map(|(_, v)| v)
                .sum::<u64>()
        };
        // What the event source mappings do: the dispatcher, then four workers.
        loop {
            let got = receive_batch(&sqs, &md.dispatch_queue).await;
            if got.is_empty() {
                break;
            }
            for m in got {
                let deadline = Instant::now() + std::time::Duration::from_secs(60);
                member_day::dispatch::on_message(&md, m.body().unwrap(), deadline).await.unwrap();
                sqs.delete_message()
                    .queue_url(&md.dispatch_queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        let sent = sends();
        let mut batches = Vec::new();
        loop {
            let got = receive_batch(&sqs, &md.campaign_queue).await;
            if got.is_empty() {
                break;
            }
            batches.extend(got);
        }
        let messages = batches.len();
        futures::stream::iter(batches)
            .for_each_concurrent(4, |m| {
                let (worker, sqs, q) = (&worker, &sqs, &md.campaign_queue);
                async move {
                    let mut msg = SqsMessage::default();
                    msg.message_id = m.message_id.clone();
                    msg.body = m.body.clone();
                    msg.event_source = Some("aws:sqs".into());
                    let mut event = SqsEvent::default();
                    event.records = vec![msg];
                    assert!(coupon_issue::worker::handle(worker, event)
                        .await
                        .batch_item_failures
                        .is_empty());
                    sqs.delete_message()
                        .queue_url(q)
                        .receipt_handle(m.receipt_handle().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            })
            .await;
        let seconds = t.elapsed().as_secs_f64();
        let (writes, units) = (h.counter.writes(), h.capacity.units());
        let (s, v, _) = answer(
            member_day::handle(
                &md,
                request("GET", &format!("/awards/{award_id}"), None, As::Operator),
            )
            .await,
        );
        assert_eq!(s, 200);
        let r = &v["runs"][0];
        assert_eq!(r["state"], "drained", "{r}");
        assert_eq!(r["targeted"].as_u64(), Some(n as u64));
        let credited = r["credited"].as_u64().unwrap();
        assert_eq!(credited + r["alreadyCredited"].as_u64().unwrap(), n as u64);
        assert_eq!(credited, if run == 1 { n as u64 } else { 0 }, "run {run}: {r}");
        rows.push((
            run,
            credited,
            messages,
            sent,
            writes as f64 / n as f64,
            units.write / n as f64,
            seconds,
        ));
    }
    // Each member once: the balance and the ledger (a sample of 200, spread over the list).
    for id in ids.iter().step_by((n / 200).max(1)) {
        let m = store.member(id).await.unwrap().unwrap();
        let sum: i64 = store.ledger_all(id).await.unwrap().iter().map(|e| e.points.0).sum();
        assert_eq!((m.wallet.balance.0, sum), (100, 100), "{id}");
    }
    println!("## Bulk award\n");
    println!("{n} members of an uploaded list (`membersFile`) awarded 100 points each through `POST /awards`, the");
    println!("dispatcher, the campaign queue and the worker (four workers, 16 members in flight each), then run");
    println!("again (`POST /awards/{{id}}/run`): `scripts/bench` with `BENCH_ONLY=awards`. Every member is credited");
    println!("once (checked on the counts, and on the balance and Σ ledger of 200 members). Writes and write units");
    println!("per member count every DynamoDB write of the run (the members' transactions, the batch counters, the");
    println!("cursor); SQS requests are the dispatcher's sends (the test harness's receives and deletes are not).\n");
    println!("| run | members | credited | SQS messages | SQS send requests | DynamoDB writes / member | write units / member | seconds |");
    println!("|---|---|---|---|---|---|---|---|");
    for (run, credited, messages, sent, writes, units, seconds) in rows {
        println!("| {run} | {n} | {credited} | {messages} | {sent} | {writes:.2} | {units:.1} | {seconds:.1} |");
    }
    store.client.delete_table().table_name(&table).send().await.unwrap();
}
