//! member-day campaigns end to end: the real member-day handler (routes, schedules,
//! dispatcher) and the real coupon-issue worker, driven from the local SQS queues, against
//! DynamoDB Local.
//!
//! Segments cover the whole table, so each test works on its own table, cloned from the
//! bootstrapped one (same keys and indexes, read back with DescribeTable), and on its own
//! queues: counts are exact whatever other tests run at the same time.

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use loyalty::app::{Clock, Dependencies};
use loyalty::member::{Member, MemberId, NewMember};
use loyalty::runtime::{Outcome, Trigger};
use loyalty::store::member::MemberItem;
use loyalty::store::{to_item, Store};
use loyalty::{Rules, TierCode};
use loyalty_tests::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Members of the big test: 5,000 per tier.
const MEMBERS: usize = 20_000;

struct Stack {
    counter: Counter,
    store: Store,
    sqs: aws_sdk_sqs::Client,
    md: member_day::App,
    worker: coupon_issue::App,
}

async fn queue(sqs: &aws_sdk_sqs::Client, visibility_seconds: u32) -> String {
    sqs.create_queue()
        .queue_name(unique("q"))
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_seconds.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// The functions wired to `table` and fresh queues. `budget`: the dispatcher's time budget.
async fn stack(
    table: Option<String>,
    budget: std::time::Duration,
    visibility_seconds: u32,
    clock: Clock,
) -> Stack {
    if std::env::var("RUST_LOG").is_ok() {
        loyalty::app::init_tracing();
    }
    let h = harness_with(Rules::default(), clock).await;
    let table = match table {
        Some(t) => t,
        None => clone_table(&h, "campaigns").await,
    };
    let store = Store::new(h.deps.store.client.clone(), table);
    let deps = Dependencies { store: store.clone(), ..h.deps.clone() };
    let sqs = aws_sdk_sqs::Client::new(&h.sdk_config);
    let md = member_day::App {
        deps: deps.clone(),
        sqs: sqs.clone(),
        campaign_queue: queue(&sqs, visibility_seconds).await,
        dispatch_queue: queue(&sqs, visibility_seconds).await,
        budget,
        members_files: None,
    };
    let worker = worker_on(&deps);
    Stack { counter: h.counter.clone(), store, sqs, md, worker }
}

fn member(
    id: &str,
    tier: TierCode,
    last_purchase_at: Option<DateTime<Utc>>,
    joined: DateTime<Utc>,
) -> Member {
    let new = NewMember {
        email: None,
        phone: None,
        name: "Seed".into(),
        birthday: None,
        referral_code: None,
        marketing_consent: false,
    };
    let mut m = Member::join(MemberId::parse(id).unwrap(), &new, "SEEDCODE".into(), None, joined);
    m.tier = tier;
    m.last_purchase_at = last_purchase_at;
    m
}

/// Writes members straight through the store's item shape, 25 per BatchWriteItem.
async fn seed(store: &Store, members: &[Member], now: DateTime<Utc>) {
    let rules = Rules::default();
    let items: Vec<_> =
        members.iter().map(|m| to_item(&MemberItem::new(m, &rules, now)).unwrap()).collect();
    futures::stream::iter(items.chunks(25))
        .for_each_concurrent(16, |chunk| async {
            let mut writes: Vec<WriteRequest> = chunk
                .iter()
                .map(|i| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder().set_item(Some(i.clone())).build().unwrap(),
                        )
                        .build()
                })
                .collect();
            while !writes.is_empty() {
                let out = store
                    .client
                    .batch_write_item()
                    .request_items(&store.table, writes.clone())
                    .send()
                    .await
                    .unwrap();
                writes = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&store.table))
                    .unwrap_or_default();
            }
        })
        .await;
}

fn tier_of(i: usize) -> TierCode {
    TierCode::ALL[i % 4]
}

/// One table with 20,000 members across all tiers, seeded once for the tests that share it
/// (each uses its own campaigns, so grants and counts do not mix).
fn big_table() -> &'static (String, Vec<String>) {
    static TABLE: OnceLock<(String, Vec<String>)> = OnceLock::new();
    TABLE.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let h = harness().await;
                let table = clone_table(&h, "campaigns").await;
                let store = Store::new(h.deps.store.client.clone(), table.clone());
                let now = Utc::now();
                let tag = unique("m");
                let ids: Vec<String> = (0..MEMBERS).map(|i| format!("{tag}-{i:05}")).collect();
                let members: Vec<Member> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| member(id, tier_of(i), None, now - Duration::days(400)))
                    .collect();
                seed(&store, &members, now).await;
                (table, ids)
            })
        })
        .join()
        .unwrap()
    })
}

fn sqs_event(messages: &[aws_sdk_sqs::types::Message], arn: &str) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let receives = m.attributes().and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount)).cloned().unwrap_or_else(|| "1".into());
            json!({
                "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                "attributes": { "ApproximateReceiveCount": receives, "SentTimestamp": "0", "SenderId": "x", "ApproximateFirstReceiveTimestamp": "0" },
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

async fn receive(s: &Stack, url: &str, max: i32) -> Vec<aws_sdk_sqs::types::Message> {
    s.sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max)
        .wait_time_seconds(0)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

async fn delete(s: &Stack, url: &str, messages: &[aws_sdk_sqs::types::Message]) {
    for m in messages {
        s.sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
}

/// What the event source mapping does: hand the messages to the handler, delete the ones it
/// did not report as failed.
async fn deliver(
    s: &Stack,
    url: &str,
    messages: Vec<aws_sdk_sqs::types::Message>,
    dispatcher: bool,
) {
    if messages.is_empty() {
        return;
    }
    let event = sqs_event(&messages, "arn:aws:sqs:us-east-1:000000000000:q");
    let outcome = if dispatcher {
        member_day::handle_trigger(&s.md, Trigger::Sqs(event)).await.unwrap()
    } else {
        coupon_issue::handle_trigger(&s.worker, Trigger::Sqs(event)).await.unwrap()
    };
    let Outcome::Sqs(resp) = outcome else { panic!("an SQS trigger answers a batch response") };
    let failed: Vec<String> =
        resp.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert!(failed.is_empty() || !dispatcher, "dispatch failed: {failed:?}");
    let (retry, ok): (Vec<_>, Vec<_>) = messages
        .into_iter()
        .partition(|m| failed.iter().any(|f| Some(f.as_str()) == m.message_id()));
    delete(s, url, &ok).await;
    // A reported failure is redelivered at once (as with a short visibility timeout).
    for m in retry {
        s.sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(m.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
}

/// Messages waiting or in flight on a queue (moto answers exactly).
async fn pending(s: &Stack, url: &str) -> u64 {
    let out = s
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    out.attributes().map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum()).unwrap_or(0)
}

/// Runs the dispatcher (at most `max_dispatches` invocations) and four concurrent workers
/// until neither queue holds a message, visible or in flight.
async fn pump(s: &Stack, max_dispatches: Option<usize>) {
    let dispatching = AtomicBool::new(true);
    let dispatcher = async {
        let mut n = 0;
        while max_dispatches.is_none_or(|m| n < m) && pending(s, &s.md.dispatch_queue).await > 0 {
            let msgs = receive(s, &s.md.dispatch_queue, 1).await;
            if msgs.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            n += msgs.len();
            deliver(s, &s.md.dispatch_queue, msgs, true).await;
        }
        dispatching.store(false, Ordering::SeqCst);
    };
    let worker = || async {
        while dispatching.load(Ordering::SeqCst) || pending(s, &s.md.campaign_queue).await > 0 {
            let msgs = receive(s, &s.md.campaign_queue, 5).await;
            if msgs.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            deliver(s, &s.md.campaign_queue, msgs, false).await;
        }
    };
    futures::join!(dispatcher, worker(), worker(), worker(), worker());
}

async fn call(
    s: &Stack,
    method: &str,
    path: &str,
    body: Option<Value>,
    who: As,
) -> (u16, Value, String) {
    let body = body.map(|b| b.to_string());
    answer(member_day::handle(&s.md, request(method, path, body.as_deref(), who)).await)
}

fn definition(tiers: &[&str]) -> Value {
    json!({
        "name": "Member day for the upper tiers",
        "segment": { "tiers": tiers },
        "coupon": { "title": "Member day: 30 CNY off", "offer": { "kind": "amount_off", "value": 3000, "minSpend": 20000 }, "validDays": 2 },
        "multiplier": { "multiplier": 3.0, "window": { "kind": "run_day" } },
    })
}

/// Coupons of `grant` per member, read with one scan of the test's own table.
async fn coupons_by_member(store: &Store, grant: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    let mut start = None;
    loop {
        let page = store
            .client
            .scan()
            .table_name(&store.table)
            .filter_expression("entity = :c AND #g = :g")
            .expression_attribute_names("#g", "grant")
            .expression_attribute_values(":c", AttributeValue::S("coupon".into()))
            .expression_attribute_values(":g", AttributeValue::S(grant.into()))
            .projection_expression("memberId")
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            *out.entry(item["memberId"].as_s().unwrap().clone()).or_insert(0) += 1;
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return out;
        }
    }
}

fn assert_one_each(
    coupons: &HashMap<String, usize>,
    ids: &[String],
    targeted: impl Fn(usize) -> bool,
) {
    let mut want = 0;
    for (i, id) in ids.iter().enumerate() {
        let got = coupons.get(id).copied().unwrap_or(0);
        if targeted(i) {
            want += 1;
            assert_eq!(got, 1, "targeted member {id} ({}) has {got} coupons", tier_of(i));
        } else {
            assert_eq!(
                got,
                0,
                "member {id} ({}) is outside the segment but has {got} coupons",
                tier_of(i)
            );
        }
    }
    assert_eq!(
        coupons.values().sum::<usize>(),
        want,
        "no coupons for members outside the seeded set"
    );
}

fn run_counts(run: &Value) -> (u64, u64, u64, u64, u64) {
    let n = |k: &str| run[k].as_u64().unwrap_or_else(|| panic!("{k} in {run}"));
    (
        n("targeted"),
        n("issued"),
        n("skipped"),
        n("failed"),
        run["skippedReasons"]["alreadyHad"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_day_over_20000_members_issues_exactly_one_coupon_to_each_targeted_member() {
    let (table, ids) = big_table();
    let s = stack(Some(table.clone()), std::time::Duration::from_secs(60), 60, Clock::System).await;
    let started = std::time::Instant::now();
    let (status, created, _) = call(
        &s,
        "POST",
        "/campaigns",
        Some(definition(&["silver", "gold", "diamond"])),
        As::Operator,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["campaignId"].as_str().unwrap().to_string();

    let (status, run, _) =
        call(&s, "POST", &format!("/campaigns/{id}/run"), None, As::Operator).await;
    assert_eq!(status, 202, "{run}");
    let grant = run["grant"].as_str().unwrap().to_string();
    let month = loyalty::calendar::program_date(Rules::default().time_zone, Utc::now())
        .format("%Y-%m")
        .to_string();
    assert_eq!(grant, format!("campaign:{id}:{month}"));
    assert_eq!(run["runId"], format!("{month}.a001"));

    // While it runs, the view says so.
    let (_, view, _) = call(&s, "GET", &format!("/campaigns/{id}"), None, As::Operator).await;
    assert_eq!(view["runs"][0]["state"], "running", "{view}");

    pump(&s, None).await;
    let (status, view, _) = call(&s, "GET", &format!("/campaigns/{id}"), None, As::Operator).await;
    assert_eq!(status, 200);
    assert_eq!(view["campaign"]["segment"]["tiers"], json!(["silver", "gold", "diamond"]));
    let r = &view["runs"][0];
    assert_eq!(r["state"], "drained", "{view}");
    assert_eq!(run_counts(r), (15_000, 15_000, 0, 0, 0), "{r}");
    let coupons = coupons_by_member(&s.store, &grant).await;
    assert_one_each(&coupons, ids, |i| tier_of(i) != TierCode::Regular);
    eprintln!("first run of {MEMBERS} members drained in {:?}", started.elapsed());

    // The run installed its 3x window (for its tiers, all program day) for the purchase function.
    let windows = s.store.multiplier_windows().await.unwrap();
    let w = windows.iter().find(|w| w.campaign_id == id).expect("the campaign's window");
    assert_eq!(w.multiplier, loyalty::money::Multiplier(3000));
    assert_eq!(w.tiers, vec![TierCode::Silver, TierCode::Gold, TierCode::Diamond]);
    assert_eq!(w.until - w.from, Duration::days(1));

    // Running the same month again reuses the grant: nobody gets a second coupon.
    let (status, again, _) =
        call(&s, "POST", &format!("/campaigns/{id}/run"), None, As::Operator).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(
        (again["grant"].as_str(), again["attempt"].as_u64()),
        (Some(grant.as_str()), Some(2))
    );
    pump(&s, None).await;
    let (_, view, _) = call(&s, "GET", &format!("/campaigns/{id}"), None, As::Operator).await;
    assert_eq!(view["runs"][0]["state"], "drained", "{view}");
    assert_eq!(run_counts(&view["runs"][0]), (15_000, 0, 15_000, 0, 15_000));
    assert_eq!(view["runs"][1]["state"], "drained", "the first run stays drained");
    assert_one_each(&coupons_by_member(&s.store, &grant).await, ids, |i| {
        tier_of(i) != TierCode::Regular
    });
    let windows = s.store.multiplier_windows().await.unwrap();
    assert_eq!(
        windows.iter().filter(|w| w.campaign_id == id).count(),
        1,
        "a re-run does not duplicate the window"
    );
    eprintln!("both runs done in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_half_way_then_rerun_issues_exactly_one_coupon_each_and_counts_add_up() {
    let (table, ids) = big_table();
    // Diamond only (5,000 of the 20,000), to keep the suite near two minutes on two shared cores.
    // One page per dispatcher invocation.
    let s = stack(Some(table.clone()), std::time::Duration::ZERO, 60, Clock::System).await;
    let (_, created, _) =
        call(&s, "POST", "/campaigns", Some(definition(&["diamond"])), As::Operator).await;
    let id = created["campaignId"].as_str().unwrap().to_string();
    let (_, run, _) = call(&s, "POST", &format!("/campaigns/{id}/run"), None, As::Operator).await;
    let (grant, first) =
        (run["grant"].as_str().unwrap().to_string(), run["runId"].as_str().unwrap().to_string());

    // A duplicate dispatch message: two dispatchers race on the same run (as after a crash
    // between sending a page and recording it); pages are counted once.
    let dup = json!({"campaignId": id, "runId": first}).to_string();
    s.sqs.send_message().queue_url(&s.md.dispatch_queue).message_body(dup).send().await.unwrap();
    let dispatch_some = async {
        for _ in 0..7 {
            let msgs = receive(&s, &s.md.dispatch_queue, 2).await;
            futures::future::join_all(
                msgs.into_iter().map(|m| deliver(&s, &s.md.dispatch_queue, vec![m], true)),
            )
            .await;
        }
    };
    dispatch_some.await;
    // The dispatcher dies: its continuation is lost.
    s.sqs.purge_queue().queue_url(&s.md.dispatch_queue).send().await.unwrap();
    let (_, view, _) = call(&s, "GET", &format!("/campaigns/{id}"), None, As::Operator).await;
    let half = view["runs"][0]["targeted"].as_u64().unwrap();
    assert!(half > 0 && half < 5_000, "stopped half way: {view}");
    assert_eq!(view["runs"][0]["dispatchDone"], false);

    // Workers: some batches are processed, some processed but not acknowledged (redelivered
    // later), some received by a worker that crashed (redelivered), some lost for good.
    let msgs = receive(&s, &s.md.campaign_queue, 10).await;
    assert!(msgs.len() >= 4, "{}", msgs.len());
    let (ok, rest) = msgs.split_at(msgs.len() / 4);
    let (unacked, rest) = rest.split_at(rest.len() / 3);
    let (lost, crashed) = rest.split_at(rest.len() / 2);
    deliver(&s, &s.md.campaign_queue, ok.to_vec(), false).await;
    let event = sqs_event(unacked, "arn:aws:sqs:us-east-1:000000000000:q");
    coupon_issue::handle_trigger(&s.worker, Trigger::Sqs(event)).await.unwrap();
    delete(&s, &s.md.campaign_queue, lost).await;

    // The operator runs it again: a new attempt with the same grant replaces the dead one.
    let (status, again, _) =
        call(&s, "POST", &format!("/campaigns/{id}/run"), None, As::Operator).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["grant"], grant.as_str());
    assert_eq!(again["supersedes"], first.as_str());
    // Their visibility timeouts expire: SQS redelivers what was not acknowledged.
    for m in unacked.iter().chain(crashed) {
        s.sqs
            .change_message_visibility()
            .queue_url(&s.md.campaign_queue)
            .receipt_handle(m.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    pump(&s, None).await;

    let (_, view, _) = call(&s, "GET", &format!("/campaigns/{id}"), None, As::Operator).await;
    let (new, old) = (&view["runs"][0], &view["runs"][1]);
    assert_eq!(new["state"], "drained", "{view}");
    assert_eq!(old["state"], "failed", "the replaced run never finished: {view}");
    assert_eq!(old["supersededBy"], again["runId"]);
    let (t, i, sk, f, had) = run_counts(new);
    assert_eq!((t, f), (5_000, 0), "{new}");
    assert_eq!(i + sk, t);
    assert_eq!(had, sk);
    // Every coupon was issued once and counted once, by one run or the other (redelivered
    // batches of the old run included).
    let (_, old_issued, _, old_failed, _) = run_counts(old);
    assert_eq!(old_failed, 0);
    assert_eq!(old_issued + i, 5_000, "{view}");
    assert_eq!(
        old["targeted"].as_u64().unwrap(),
        half,
        "the old run's pages were counted once despite two dispatchers"
    );
    let coupons = coupons_by_member(&s.store, &grant).await;
    assert_one_each(&coupons, ids, |i| tier_of(i) == TierCode::Diamond);
}

#[tokio::test]
async fn campaign_definitions_are_validated_with_clear_errors_and_need_iam() {
    let s = stack(None, std::time::Duration::from_secs(5), 30, Clock::System).await;
    let good = definition(&["gold"]);
    let with = |path: &[&str], v: Value| {
        let mut d = good.clone();
        let mut cur = &mut d;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = v;
        d
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (with(&["segment", "tiers"], json!([])), 422, "empty_segment"),
        (with(&["segment", "tiers"], json!(["platinum"])), 400, "invalid_field"),
        (with(&["segment", "birthdayMonth"], json!(13)), 422, "invalid_segment"),
        (with(&["segment", "dormantDays"], json!(0)), 422, "invalid_segment"),
        (with(&["name"], json!("")), 422, "invalid_name"),
        (with(&["coupon", "offer", "value"], json!(0)), 422, "invalid_coupon"),
        (with(&["coupon", "validDays"], json!(null)), 422, "invalid_coupon"),
        (with(&["multiplier", "multiplier"], json!(0.5)), 422, "invalid_multiplier"),
        (
            with(
                &["multiplier", "window"],
                json!({"kind": "fixed", "from": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}),
            ),
            422,
            "invalid_window",
        ),
        (
            with(&["schedule"], json!({"kind": "once", "at": "2020-01-01T00:00:00Z"})),
            422,
            "schedule_in_past",
        ),
        (with(&["budget"], json!(0)), 422, "invalid_budget"),
        (with(&["colour"], json!("red")), 400, "unknown_field"),
    ];
    for (body, status, code) in cases {
        let (st, b, ct) = call(&s, "POST", "/campaigns", Some(body.clone()), As::Operator).await;
        assert_problem(st, &b, &ct, status, code);
    }
    let (st, b, ct) =
        call(&s, "POST", "/campaigns", Some(good.clone()), As::Member("m-1".into())).await;
    assert_problem(st, &b, &ct, 403, "forbidden");
    let (st, b, ct) = call(&s, "POST", "/campaigns", Some(good.clone()), As::Nobody).await;
    assert_problem(st, &b, &ct, 401, "unauthenticated");
    let (st, b, ct) = call(&s, "GET", "/campaigns/c-nope", None, As::Operator).await;
    assert_problem(st, &b, &ct, 404, "campaign_not_found");
    let (st, b, ct) = call(&s, "POST", "/campaigns/c-nope/run", None, As::Operator).await;
    assert_problem(st, &b, &ct, 404, "campaign_not_found");
    let (st, b, ct) =
        call(&s, "GET", "/campaigns/member-day", None, As::Member("m-1".into())).await;
    assert_problem(st, &b, &ct, 403, "forbidden");
    // Nothing was written by any refusal.
    assert!(s.store.scheduled_campaigns().await.unwrap().is_empty());

    // A fixed window is installed with the definition; the same Idempotency-Key answers the same campaign.
    let fixed = with(
        &["multiplier", "window"],
        json!({"kind": "fixed", "from": "2030-01-01T00:00:00Z", "until": "2030-01-02T00:00:00Z"}),
    );
    let post = |body: Value| {
        let r = request_with_headers(
            "POST",
            "/campaigns",
            Some(&body.to_string()),
            As::Operator,
            &[("idempotency-key", "k-1")],
        );
        async { answer(member_day::handle(&s.md, r).await) }
    };
    s.counter.reset();
    let (st, a, _) = post(fixed.clone()).await;
    assert_eq!(st, 201, "{a}");
    assert_eq!(
        (s.counter.reads(), s.counter.writes()),
        (1, 1),
        "define: one read, one write: {:?}",
        s.counter.snapshot()
    );
    let (st, b, _) = post(fixed.clone()).await;
    assert_eq!((st, &b["campaignId"]), (201, &a["campaignId"]));
    let (st, b, ct) = post(good.clone()).await;
    assert_problem(st, &b, &ct, 409, "idempotency_key_reused");
    let windows = s.store.multiplier_windows().await.unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].from, at("2030-01-01T00:00:00Z"));

    // Starting a run and reading progress: one read and at most one write each.
    let id = a["campaignId"].as_str().unwrap();
    s.counter.reset();
    let (st, run, _) = call(&s, "POST", &format!("/campaigns/{id}/run"), None, As::Operator).await;
    assert_eq!(st, 202, "{run}");
    assert_eq!((s.counter.reads(), s.counter.writes()), (1, 1), "run: {:?}", s.counter.snapshot());
    s.counter.reset();
    let (st, view, _) = call(&s, "GET", &format!("/campaigns/{id}"), None, As::Operator).await;
    assert_eq!(st, 200);
    assert_eq!((s.counter.reads(), s.counter.writes()), (1, 0));
    assert_eq!(view["runs"][0]["runId"], run["runId"]);
    assert_eq!(view["runs"][0]["targeted"], 0);
    assert_eq!(view["runs"][0]["state"], "running");
}

fn job(name: &str, now: &str) -> Trigger {
    let event = json!({"detail-type": "Scheduled Event", "source": "loyalty.schedule", "detail": {"job": name, "now": now}});
    loyalty::runtime::classify(event).unwrap()
}

async fn run_job(s: &Stack, name: &str, now: &str) -> Value {
    match member_day::handle_trigger(&s.md, job(name, now)).await.unwrap() {
        Outcome::Done(v) => v,
        _ => panic!("a job answers Done"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_day_schedule_runs_the_built_in_campaign_once_a_month_and_win_back_reaches_the_newly_dormant(
) {
    let now = at("2026-12-17T16:00:00Z"); // 00:00 on 18 December in Shanghai
    let s = stack(None, std::time::Duration::from_secs(30), 30, Clock::Fixed(now)).await;
    let tag = unique("s");
    let ids: Vec<String> = (0..200).map(|i| format!("{tag}-{i:03}")).collect();
    // Last purchases: 95 days ago (newly dormant), 30 days ago (active), 200 days ago (long gone).
    let ago = |i: usize| Duration::days([95, 30, 200, 95][i % 4]);
    let members: Vec<Member> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| member(id, tier_of(i), Some(now - ago(i)), now - Duration::days(400)))
        .collect();
    seed(&s.store, &members, now).await;

    // 23:59 on the 17th in Shanghai is not the member day: nothing starts.
    let out = run_job(&s, "member-day", "2026-12-17T15:59:00Z").await;
    assert_eq!(out["started"], json!([]), "{out}");
    let out = run_job(&s, "member-day", "2026-12-17T16:00:00Z").await;
    assert_eq!(out["started"][0]["runId"], "2026-12.a001", "{out}");
    assert_eq!(out["started"][0]["grant"], "campaign:member-day:2026-12");
    // EventBridge may fire twice: no second run.
    let again = run_job(&s, "member-day", "2026-12-17T16:00:30Z").await;
    assert!(again["started"].as_array().unwrap().iter().all(|r| r["created"] == false), "{again}");
    pump(&s, None).await;
    let (_, view, _) = call(&s, "GET", "/campaigns/member-day", None, As::Operator).await;
    assert_eq!(
        view["campaign"]["segment"]["tiers"],
        json!(["regular", "silver", "gold", "diamond"]),
        "{view}"
    );
    assert_eq!(view["runs"].as_array().unwrap().len(), 1);
    assert_eq!(view["runs"][0]["state"], "drained");
    assert_eq!(run_counts(&view["runs"][0]), (200, 200, 0, 0, 0));
    assert_one_each(
        &coupons_by_member(&s.store, "campaign:member-day:2026-12").await,
        &ids,
        |_| true,
    );
    // The rules' member-day 2x is applied by the purchase function: the built-in installs no window.
    assert!(s.store.multiplier_windows().await.unwrap().is_empty());

    // Win-back: only members who crossed 90 days without a purchase in the last week.
    let out = run_job(&s, "win-back", "2026-12-17T16:00:00Z").await;
    let grant = out["started"][0]["grant"].as_str().unwrap().to_string();
    assert!(grant.starts_with("winback:"), "{out}");
    pump(&s, None).await;
    let dormant = |i: usize| matches!(i % 4, 0 | 3);
    assert_one_each(&coupons_by_member(&s.store, &grant).await, &ids, dormant);
    // The next day's run is in the same cooldown period: nobody gets a second one.
    let out = run_job(&s, "win-back", "2026-12-18T16:00:00Z").await;
    assert_eq!(out["started"][0]["grant"], grant.as_str());
    pump(&s, None).await;
    assert_one_each(&coupons_by_member(&s.store, &grant).await, &ids, dormant);
    let (_, view, _) = call(&s, "GET", "/campaigns/win-back", None, As::Operator).await;
    assert_eq!(view["runs"][0]["state"], "drained", "{view}");
    let (t, i, sk, f, had) = run_counts(&view["runs"][0]);
    assert_eq!((t, f, i + sk), (t, 0, t));
    assert!(had >= 90, "members still inside the lookback are skipped as already had: {view}");
}

#[test]
fn sample_events_reach_the_right_trigger_with_iam_identity() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("member-day-") {
            continue;
        }
        seen += 1;
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        match loyalty::runtime::classify(event).unwrap() {
            Trigger::Http(req) => assert!(
                matches!(
                    loyalty::auth::caller(&req, &Default::default()),
                    loyalty::auth::Caller::Iam(_)
                ),
                "{name}"
            ),
            Trigger::Schedule(e) => assert!(
                ["member-day", "win-back", "campaigns-due"]
                    .contains(&e.detail["job"].as_str().unwrap()),
                "{name}"
            ),
            Trigger::Sqs(e) => {
                let m: member_day::dispatch::DispatchMessage =
                    serde_json::from_str(e.records[0].body.as_deref().unwrap()).unwrap();
                assert_eq!(m.campaign_id, "member-day", "{name}");
            }
            Trigger::Stream(_) => panic!("{name}: member-day reads no stream"),
        }
    }
    assert_eq!(seen, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_campaign_starts_when_due_and_only_once() {
    let now = at("2026-11-27T02:00:00Z");
    let s = stack(None, std::time::Duration::from_secs(30), 30, Clock::Fixed(now)).await;
    let tag = unique("o");
    let ids: Vec<String> = (0..40).map(|i| format!("{tag}-{i:02}")).collect();
    let members: Vec<Member> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| member(id, tier_of(i), None, now - Duration::days(10)))
        .collect();
    seed(&s.store, &members, now).await;
    let mut def = definition(&["silver"]);
    def["schedule"] = json!({"kind": "once", "at": "2026-11-27T03:00:00Z"});
    def["budget"] = json!(5);
    let (st, created, _) = call(&s, "POST", "/campaigns", Some(def), As::Operator).await;
    assert_eq!(st, 201, "{created}");
    let id = created["campaignId"].as_str().unwrap();

    assert_eq!(
        run_job(&s, "campaigns-due", "2026-11-27T02:45:00Z").await["started"],
        json!([]),
        "not due yet"
    );
    let out = run_job(&s, "campaigns-due", "2026-11-27T03:00:00Z").await;
    assert_eq!(out["started"][0]["runId"], "once.a001", "{out}");
    assert_eq!(out["started"][0]["grant"], format!("campaign:{id}:once"));
    assert_eq!(
        run_job(&s, "campaigns-due", "2026-11-27T03:15:00Z").await["started"],
        json!([]),
        "a one-off runs once"
    );
    pump(&s, None).await;
    let (_, view, _) = call(&s, "GET", &format!("/campaigns/{id}"), None, As::Operator).await;
    let r = &view["runs"][0];
    assert_eq!(r["state"], "drained", "{view}");
    // Ten silver members, a budget of five: five issued, five skipped for the budget.
    assert_eq!(run_counts(r), (10, 5, 5, 0, 0), "{r}");
    assert_eq!(r["skippedReasons"]["budgetSpent"], 5);
    assert_eq!(
        coupons_by_member(&s.store, &format!("campaign:{id}:once")).await.values().sum::<usize>(),
        5
    );
}

/// The console's list: every definition in the directory, newest first, a page at a time, with
/// one Query; nobody but an operator reads it; a refused definition is not listed.
#[tokio::test]
async fn the_campaign_list_shows_every_definition_newest_first_and_only_to_operators() {
    let s = stack(None, std::time::Duration::from_secs(5), 30, Clock::System).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut d = definition(&["gold"]);
        d["name"] = json!(format!("listed {i}"));
        let (st, b, _) = call(&s, "POST", "/campaigns", Some(d), As::Operator).await;
        assert_eq!(st, 201, "{b}");
        ids.push(b["campaignId"].as_str().unwrap().to_string());
    }
    let mut refused = definition(&["gold"]);
    refused["name"] = json!(" ");
    assert_eq!(call(&s, "POST", "/campaigns", Some(refused), As::Operator).await.0, 422);

    s.counter.reset();
    let (st, b, _) = call(&s, "GET", "/campaigns", None, As::Operator).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!((s.counter.reads(), s.counter.writes()), (1, 0), "one Query of the directory");
    let listed: Vec<&str> = b["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["campaignId"].as_str().unwrap())
        .collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    assert_eq!(b["campaigns"][0]["name"], "listed 2");
    assert!(b.get("nextCursor").is_none());

    for who in [As::Member("m-1".into()), As::OrderSystem, As::OtherIam] {
        let (st, b, ct) = call(&s, "GET", "/campaigns", None, who).await;
        assert_problem(st, &b, &ct, 403, "forbidden");
    }
    let (st, b, ct) = call(&s, "GET", "/campaigns?cursor=not-hex", None, As::Operator).await;
    assert_problem(st, &b, &ct, 400, "invalid_cursor");
}
