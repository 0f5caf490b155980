//! coupon-issue through the real handler (HTTP routes, SQS worker, birthday job) against
//! DynamoDB Local and the local SQS endpoint.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use coupon_issue::queue::CampaignQueue;
use coupon_issue::App;
use futures::StreamExt;
use loyalty::app::Clock;
use loyalty::campaign::{IssueBatch, RunRef};
use loyalty::coupon::{CouponTemplate, Offer};
use loyalty::member::{Member, MemberId, NewMember};
use loyalty::store::keys;
use loyalty::{Fen, Rules, TierCode};
use loyalty_tests::*;
use serde_json::{json, Value};

async fn app_at(clock: Clock) -> (App, Harness) {
    let h = harness_with(Rules::default(), clock).await;
    (App { deps: h.deps.clone(), codes: code_key(), queue: None }, h)
}

async fn app() -> (App, Harness) {
    app_at(Clock::System).await
}

/// A member as signup would store it (no contact data needed here), written directly.
fn member(id: &str, tier: TierCode, birthday: Option<NaiveDate>, now: DateTime<Utc>) -> Member {
    let new = NewMember {
        email: None,
        phone: None,
        name: "Test".into(),
        birthday,
        referral_code: None,
        marketing_consent: false,
    };
    let mut m = Member::join(MemberId::parse(id).unwrap(), &new, "TESTCODE".into(), None, now);
    m.tier = tier;
    m
}

async fn seed(h: &Harness, members: &[Member]) {
    seed_members(h, members, Utc::now()).await;
}

async fn seed_ids(h: &Harness, prefix: &str, n: usize, tier: TierCode) -> Vec<String> {
    let run = unique(prefix);
    let ids: Vec<String> = (0..n).map(|i| format!("{run}-{i}")).collect();
    let members: Vec<Member> = ids.iter().map(|id| member(id, tier, None, Utc::now())).collect();
    seed(h, &members).await;
    ids
}

fn template(offer: Offer) -> CouponTemplate {
    CouponTemplate {
        title: "Test coupon".into(),
        offer,
        valid_days: Some(7),
        valid_from: None,
        valid_until: None,
        tiers: vec![],
        per_member_limit: 1,
        stackable: false,
    }
}

fn amount_off() -> CouponTemplate {
    template(Offer::AmountOff { value: Fen(1_500), min_spend: Fen(9_900) })
}

/// An SQS event as Lambda delivers it: one record per (message id, body), delivered `receives` times so far.
fn sqs_event(messages: &[(String, String)], receives: u32) -> SqsEvent {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                "attributes": { "ApproximateReceiveCount": receives.to_string(), "SentTimestamp": "0", "SenderId": "x", "ApproximateFirstReceiveTimestamp": "0" },
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:ap-east-1:123456789012:CampaignQueue", "awsRegion": "ap-east-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn batch(
    batch_id: &str,
    grant: &str,
    template: CouponTemplate,
    budget: Option<u64>,
    run: Option<RunRef>,
    member_ids: Vec<String>,
) -> IssueBatch {
    IssueBatch {
        batch_id: batch_id.into(),
        grant: grant.into(),
        template: Some(template),
        points: None,
        budget,
        run,
        experiment: None,
        member_ids,
    }
}

fn message(b: &IssueBatch) -> (String, String) {
    (unique("msg"), serde_json::to_string(b).unwrap())
}

fn failed_ids(r: &SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

async fn coupons_of(h: &Harness, ids: &[String], grant: &str) -> usize {
    futures::stream::iter(ids.iter())
        .map(|id| async move {
            h.deps.store.coupons(id).await.unwrap().into_iter().filter(|c| c.grant == grant).count()
        })
        .buffer_unordered(32)
        .fold(0, |a, n| async move { a + n })
        .await
}

async fn run_counts(h: &Harness, run: &RunRef) -> Value {
    let item: Option<Value> = h
        .deps
        .store
        .get(&keys::campaign_pk(&run.campaign_id), &keys::run_sk(&run.run_id))
        .await
        .unwrap();
    item.unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_batch_delivered_three_times_issues_each_coupon_once_and_counts_once() {
    let (app, h) = app().await;
    let mut ids = seed_ids(&h, "redeliver", 40, TierCode::Regular).await;
    ids.push(unique("nobody")); // not a member: skipped, not eligible
    ids.push("x".repeat(2_000)); // not even a member id: skipped, not eligible
    let grant = unique("grant");
    let run = RunRef { campaign_id: unique("camp"), run_id: "r1".into() };
    let b = batch("b-0", &grant, amount_off(), None, Some(run.clone()), ids.clone());
    let msg = message(&b);
    for receives in 1..=3 {
        let resp =
            coupon_issue::worker::handle(&app, sqs_event(std::slice::from_ref(&msg), receives))
                .await;
        assert!(resp.batch_item_failures.is_empty(), "delivery {receives}: {resp:?}");
    }
    // Two deliveries at once, too.
    let (a, b2) = tokio::join!(
        coupon_issue::worker::handle(&app, sqs_event(std::slice::from_ref(&msg), 1)),
        coupon_issue::worker::handle(&app, sqs_event(std::slice::from_ref(&msg), 1))
    );
    assert!(a.batch_item_failures.is_empty() && b2.batch_item_failures.is_empty());
    for id in &ids[..40] {
        assert_eq!(h.deps.store.coupons(id).await.unwrap().len(), 1, "{id}");
    }
    let counts = run_counts(&h, &run).await;
    assert_eq!(counts["issued"], 40, "{counts}");
    assert_eq!(counts["skipped"], 2, "{counts}");
    assert_eq!(counts["skippedNotEligible"], 2, "{counts}");
    assert_eq!(counts["failed"], 0, "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_of_1000_across_concurrent_workers_issues_exactly_1000_and_skips_500() {
    let (app, h) = app().await;
    let ids = seed_ids(&h, "budget", 1_500, TierCode::Silver).await;
    let grant = unique("budget-grant");
    let run = RunRef { campaign_id: unique("camp"), run_id: "r1".into() };
    let messages: Vec<(String, String)> = ids
        .chunks(100)
        .enumerate()
        .map(|(n, c)| {
            message(&batch(
                &format!("b-{n}"),
                &grant,
                amount_off(),
                Some(1_000),
                Some(run.clone()),
                c.to_vec(),
            ))
        })
        .collect();
    // Three workers, five messages each, all at once.
    let results = futures::future::join_all(
        messages.chunks(5).map(|m| coupon_issue::worker::handle(&app, sqs_event(m, 1))),
    )
    .await;
    for r in &results {
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
    }
    assert_eq!(coupons_of(&h, &ids, &grant).await, 1_000);
    let counts = run_counts(&h, &run).await;
    assert_eq!(
        (
            counts["issued"].as_u64(),
            counts["skippedBudgetSpent"].as_u64(),
            counts["skipped"].as_u64()
        ),
        (Some(1_000), Some(500), Some(500)),
        "{counts}"
    );
    assert_eq!(counts["failed"], 0);
    let budget: Value =
        h.deps.store.get(&keys::budget_pk(&grant), keys::BUDGET_SK).await.unwrap().unwrap();
    assert_eq!(budget["issued"], 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_10000_member_ids_becomes_exactly_10000_coupons() {
    let (app, h) = app().await;
    let ids = seed_ids(&h, "tenk", 10_000, TierCode::Gold).await;
    let grant = unique("tenk-grant");
    let run = RunRef { campaign_id: unique("camp"), run_id: "r1".into() };
    let messages: Vec<(String, String)> = ids
        .chunks(500)
        .enumerate()
        .map(|(n, c)| {
            message(&batch(
                &format!("b-{n}"),
                &grant,
                amount_off(),
                None,
                Some(run.clone()),
                c.to_vec(),
            ))
        })
        .collect();
    let results = futures::future::join_all(
        messages.chunks(5).map(|m| coupon_issue::worker::handle(&app, sqs_event(m, 1))),
    )
    .await;
    for r in &results {
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
    }
    assert_eq!(coupons_of(&h, &ids, &grant).await, 10_000);
    let counts = run_counts(&h, &run).await;
    assert_eq!(
        (counts["issued"].as_u64(), counts["skipped"].as_u64(), counts["failed"].as_u64()),
        (Some(10_000), Some(0), Some(0)),
        "{counts}"
    );
}

#[tokio::test]
async fn poison_and_invalid_messages_are_reported_failed_and_good_ones_are_not() {
    let (app, h) = app().await;
    let ids = seed_ids(&h, "poison", 3, TierCode::Regular).await;
    let good = message(&batch("b-0", &unique("g"), amount_off(), None, None, ids.clone()));
    let garbage = (unique("msg"), "not json".to_string());
    let mut bad_template = amount_off();
    bad_template.valid_days = None;
    let invalid = message(&batch("b-1", &unique("g"), bad_template, None, None, ids.clone()));
    let unknown_field = (unique("msg"), json!({"batchId": "x", "grant": "g", "template": amount_off(), "memberIds": [], "extra": 1}).to_string());
    let resp = coupon_issue::worker::handle(
        &app,
        sqs_event(&[good.clone(), garbage.clone(), invalid.clone(), unknown_field.clone()], 1),
    )
    .await;
    let mut failed = failed_ids(&resp);
    failed.sort();
    let mut want = vec![garbage.0, invalid.0, unknown_field.0];
    want.sort();
    assert_eq!(failed, want);
    assert_eq!(h.deps.store.coupons(&ids[0]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn batch_eligibility_skips_erased_members_and_other_tiers() {
    let (app, h) = app().await;
    let run_tag = unique("elig");
    let now = Utc::now();
    let gold = member(&format!("{run_tag}-gold"), TierCode::Gold, None, now);
    let regular = member(&format!("{run_tag}-regular"), TierCode::Regular, None, now);
    let mut erased = member(&format!("{run_tag}-erased"), TierCode::Gold, None, now);
    erased.erase(now);
    seed(&h, &[gold.clone(), regular.clone(), erased.clone()]).await;
    let mut t = amount_off();
    t.tiers = vec![TierCode::Gold, TierCode::Diamond];
    let run = RunRef { campaign_id: unique("camp"), run_id: "r1".into() };
    let ids: Vec<String> =
        [&gold, &regular, &erased].iter().map(|m| m.member_id.as_str().to_string()).collect();
    let resp = coupon_issue::worker::handle(
        &app,
        sqs_event(&[message(&batch("b-0", &unique("g"), t, None, Some(run.clone()), ids))], 1),
    )
    .await;
    assert!(resp.batch_item_failures.is_empty());
    let counts = run_counts(&h, &run).await;
    assert_eq!(
        (counts["issued"].as_u64(), counts["skippedNotEligible"].as_u64()),
        (Some(1), Some(2)),
        "{counts}"
    );
    assert_eq!(h.deps.store.coupons(gold.member_id.as_str()).await.unwrap().len(), 1);
    assert!(h.deps.store.coupons(regular.member_id.as_str()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_redelivery_after_an_uncounted_delivery_counts_the_batch_s_own_coupons_as_issued() {
    let (app, h) = app().await;
    let ids = seed_ids(&h, "uncounted", 10, TierCode::Regular).await;
    let grant = unique("grant");
    let run = RunRef { campaign_id: unique("camp"), run_id: "r1".into() };
    let b = batch("b-0", &grant, amount_off(), None, Some(run.clone()), ids.clone());
    // The first delivery issued everything, then died before counting.
    let first = h.deps.store.issue_batch(&app.codes, &b, Utc::now(), 4).await.unwrap();
    assert_eq!(first.issued, 10);
    let resp = coupon_issue::worker::handle(&app, sqs_event(&[message(&b)], 2)).await;
    assert!(resp.batch_item_failures.is_empty());
    let counts = run_counts(&h, &run).await;
    assert_eq!(
        (counts["issued"].as_u64(), counts["skipped"].as_u64()),
        (Some(10), Some(0)),
        "{counts}"
    );
    // Another batch of the same grant finds them already there: skipped, not issued again.
    let other = RunRef { campaign_id: run.campaign_id.clone(), run_id: "r2".into() };
    let again = batch("b-1", &grant, amount_off(), None, Some(other.clone()), ids.clone());
    coupon_issue::worker::handle(&app, sqs_event(&[message(&again)], 1)).await;
    let counts = run_counts(&h, &other).await;
    assert_eq!(
        (counts["issued"].as_u64(), counts["skippedAlreadyHad"].as_u64()),
        (Some(0), Some(10)),
        "{counts}"
    );
}

// ---------------------------------------------------------------------------------------
// HTTP: issue one, list (redeeming is checkout's: tests/tests/checkout.rs)

async fn call(
    app: &App,
    method: &str,
    path: &str,
    body: Option<Value>,
    who: As,
) -> (u16, Value, String) {
    let body = body.map(|b| b.to_string());
    answer(coupon_issue::api::handle(app, request(method, path, body.as_deref(), who)).await)
}

async fn one_member(h: &Harness, tier: TierCode) -> String {
    seed_ids(h, "m", 1, tier).await.remove(0)
}

#[tokio::test]
async fn an_operator_issues_one_coupon_and_the_same_grant_again_answers_the_same_coupon() {
    let (app, h) = app().await;
    let id = one_member(&h, TierCode::Regular).await;
    let path = format!("/members/{id}/coupons");
    let grant = unique("apology");
    let (s, first, _) = call(
        &app,
        "POST",
        &path,
        Some(json!({"template": "percent-15", "grant": grant})),
        As::Operator,
    )
    .await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(
        first["offer"],
        json!({"kind": "percent_off", "percent": 15, "cap": 5000, "minSpend": 5000})
    );
    assert_eq!(first["status"], "active");
    let (s, again, _) = call(
        &app,
        "POST",
        &path,
        Some(json!({"template": "percent-15", "grant": grant})),
        As::Operator,
    )
    .await;
    assert_eq!((s, &again["code"], &again["issuedAt"]), (200, &first["code"], &first["issuedAt"]));
    // percent-15 allows one per grant; free-shipping three (slots 0..3).
    let (s, b, ct) = call(
        &app,
        "POST",
        &path,
        Some(json!({"template": "percent-15", "grant": grant, "slot": 1})),
        As::Operator,
    )
    .await;
    assert_problem(s, &b, &ct, 422, "slot_out_of_range");
    let (s, fs, _) = call(
        &app,
        "POST",
        &path,
        Some(json!({"template": "free-shipping", "grant": grant, "slot": 2})),
        As::Operator,
    )
    .await;
    assert_eq!(s, 201, "{fs}");
    assert_ne!(fs["code"], first["code"]);
    let inline = json!({"title": "Sorry: 5 CNY off", "offer": {"kind": "amount_off", "value": 500}, "validDays": 3});
    assert_eq!(
        call(
            &app,
            "POST",
            &path,
            Some(json!({"template": inline, "grant": unique("g")})),
            As::Operator
        )
        .await
        .0,
        201
    );
    assert_eq!(h.deps.store.coupons(&id).await.unwrap().len(), 3);

    let (s, b, ct) = call(
        &app,
        "POST",
        &path,
        Some(json!({"template": "percent-15", "grant": unique("g")})),
        As::Member(id.clone()),
    )
    .await;
    assert_problem(s, &b, &ct, 403, "forbidden");
    let (s, b, ct) =
        call(&app, "POST", &path, Some(json!({"template": "nope", "grant": "g"})), As::Operator)
            .await;
    assert_problem(s, &b, &ct, 422, "unknown_template");
    let (s, b, ct) = call(
        &app,
        "POST",
        &path,
        Some(json!({"template": {"title": "x", "offer": {"kind": "free_shipping"}}, "grant": "g"})),
        As::Operator,
    )
    .await;
    assert_problem(s, &b, &ct, 422, "invalid_template");
    let (s, b, ct) = call(
        &app,
        "POST",
        &path,
        Some(json!({"template": "percent-15", "grant": "bad grant"})),
        As::Operator,
    )
    .await;
    assert_problem(s, &b, &ct, 400, "invalid_grant");
    let (s, b, ct) = call(
        &app,
        "POST",
        &path,
        Some(json!({"template": "percent-15", "grant": "g", "extra": 1})),
        As::Operator,
    )
    .await;
    assert_problem(s, &b, &ct, 400, "unknown_field");
    let (s, b, ct) = call(
        &app,
        "POST",
        &format!("/members/{}/coupons", unique("ghost")),
        Some(json!({"template": "percent-15", "grant": "g"})),
        As::Operator,
    )
    .await;
    assert_problem(s, &b, &ct, 404, "member_not_found");
}

#[tokio::test]
async fn a_single_issue_within_a_budget_stops_at_the_budget() {
    let (app, h) = app().await;
    let ids = seed_ids(&h, "b", 3, TierCode::Regular).await;
    let grant = unique("limited");
    let mut statuses = Vec::new();
    for id in &ids {
        let (s, b, _) = call(
            &app,
            "POST",
            &format!("/members/{id}/coupons"),
            Some(json!({"template": "amount-20", "grant": grant, "budget": 2})),
            As::Operator,
        )
        .await;
        statuses.push((s, b["code"].clone()));
    }
    assert_eq!(statuses.iter().map(|s| s.0).collect::<Vec<_>>(), vec![201, 201, 409]);
    // The same member again is the same coupon, not a budget refusal.
    let (s, b, _) = call(
        &app,
        "POST",
        &format!("/members/{}/coupons", ids[0]),
        Some(json!({"template": "amount-20", "grant": grant, "budget": 2})),
        As::Operator,
    )
    .await;
    assert_eq!((s, &b["code"]), (200, &statuses[0].1));
}

/// Issues `template` to `member` as of `issued_at` straight through the store.
async fn give(
    h: &Harness,
    member: &str,
    template: &CouponTemplate,
    issued_at: DateTime<Utc>,
) -> String {
    let c = loyalty::coupon::issue(&code_key(), template, member, &unique("grant"), 0, issued_at);
    h.deps.store.issue_coupon(&c, None, None).await.unwrap();
    c.code
}

#[tokio::test]
async fn listing_filters_by_derived_status() {
    let now = at("2026-06-10T04:00:00Z");
    let (app, h) = app_at(Clock::Fixed(now)).await;
    let id = one_member(&h, TierCode::Regular).await;
    let active = give(&h, &id, &amount_off(), now - Duration::days(1)).await;
    let expired = give(&h, &id, &amount_off(), now - Duration::days(30)).await;
    let redeemed = give(&h, &id, &amount_off(), now - Duration::days(2)).await;
    // Coupons are redeemed at checkout (purchase-points); here the same conditional write.
    let r = loyalty::coupon::Redemption {
        order_id: "o1".into(),
        order_amount: loyalty::Fen(10_000),
        discount: loyalty::Fen(2_000),
        at: now,
    };
    h.deps
        .store
        .transact(vec![h.deps.store.redeem_coupon_write(&id, &redeemed, &r).unwrap()])
        .await
        .unwrap();
    let list = |q: &'static str| {
        let (app, id) = (&app, id.clone());
        async move {
            let (s, b, _) = call(
                app,
                "GET",
                &format!("/members/{id}/coupons{q}"),
                None,
                As::Member(id.clone()),
            )
            .await;
            assert_eq!(s, 200, "{b}");
            b["coupons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["code"].as_str().unwrap().to_string(),
                        c["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("?status=active").await, vec![(active.clone(), "active".into())]);
    assert_eq!(list("?status=expired").await, vec![(expired.clone(), "expired".into())]);
    assert_eq!(list("?status=redeemed").await, vec![(redeemed.clone(), "redeemed".into())]);
    let all: Vec<String> = list("").await.into_iter().map(|c| c.0).collect();
    assert_eq!(all, vec![active, redeemed, expired], "newest first");
    let (s, b, ct) = call(
        &app,
        "GET",
        &format!("/members/{id}/coupons?status=used"),
        None,
        As::Member(id.clone()),
    )
    .await;
    assert_problem(s, &b, &ct, 400, "invalid_status");
    let (s, b, ct) =
        call(&app, "GET", &format!("/members/{id}/coupons"), None, As::Member(unique("other")))
            .await;
    assert_problem(s, &b, &ct, 403, "forbidden");
}

// ---------------------------------------------------------------------------------------
// Birthdays

/// A queue of this test's own on the local SQS endpoint, so draining it steals nobody's messages.
async fn own_queue(h: &Harness) -> CampaignQueue {
    let client = aws_sdk_sqs::Client::new(&h.sdk_config);
    let url = client
        .create_queue()
        .queue_name(unique("birthday-test"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    CampaignQueue::new(client, url)
}

/// Receives everything on the queue and hands it to the worker as Lambda would.
async fn drain(app: &App) -> usize {
    let q = app.queue.as_ref().unwrap();
    let mut handled = 0;
    loop {
        let msgs = receive_batch(&q.client, &q.url).await;
        if msgs.is_empty() {
            return handled;
        }
        let records: Vec<(String, String)> =
            msgs.iter().map(|m| (m.message_id.clone().unwrap(), m.body.clone().unwrap())).collect();
        let resp = coupon_issue::worker::handle(app, sqs_event(&records, 1)).await;
        assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
        for m in &msgs {
            q.client
                .delete_message()
                .queue_url(&q.url)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
        handled += msgs.len();
    }
}

/// Fires the birthday schedule as EventBridge Scheduler would (template Input), at `now`.
async fn birthday_job(app: &App, now: &str) -> Value {
    let event = json!({"detail-type": "Scheduled Event", "source": "loyalty.schedule", "detail": {"job": "birthday-coupons", "now": now}});
    let trigger = loyalty::runtime::classify(event).unwrap();
    match coupon_issue::handle_trigger(app, trigger).await.unwrap() {
        loyalty::runtime::Outcome::Done(v) => v,
        _ => panic!("the birthday job answers Done"),
    }
}

async fn birthday_coupons(h: &Harness, id: &str) -> Vec<(String, Value)> {
    h.deps
        .store
        .coupons(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.grant.starts_with("birthday-"))
        .map(|c| (c.grant, serde_json::to_value(&c.offer).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn birthday_coupons_go_out_once_a_year_by_tier_with_leap_day_birthdays_on_feb_28() {
    let (mut app, h) = app().await;
    app.queue = Some(own_queue(&h).await);
    // Birthdays known well ahead of every birthday below (birthday.minDaysKnown is 30 days).
    let now = at("2026-01-01T00:00:00Z");
    let tag = unique("bday");
    let d = |s: &str| s.parse::<NaiveDate>().unwrap();
    let feb28 = member(&format!("{tag}-feb28"), TierCode::Regular, Some(d("1990-02-28")), now);
    let leap = member(&format!("{tag}-leap"), TierCode::Gold, Some(d("2000-02-29")), now);
    let march = member(&format!("{tag}-march"), TierCode::Silver, Some(d("1985-03-01")), now);
    seed(&h, &[feb28.clone(), leap.clone(), march.clone()]).await;
    let (feb28, leap, march) =
        (feb28.member_id.as_str(), leap.member_id.as_str(), march.member_id.as_str());
    let regular_gift = json!({"kind": "amount_off", "value": 1000, "minSpend": 5000});
    let gold_gift = json!({"kind": "amount_off", "value": 8000, "minSpend": 20000});

    // 2027-02-28 00:05 in Shanghai: a common year, so Feb 29 birthdays are celebrated today.
    let run = birthday_job(&app, "2027-02-27T16:05:00Z").await;
    assert_eq!(
        (&run["date"], &run["grant"]),
        (&json!("2027-02-28"), &json!("birthday-2027")),
        "{run}"
    );
    assert!(drain(&app).await >= 2);
    assert_eq!(
        birthday_coupons(&h, feb28).await,
        vec![("birthday-2027".to_string(), regular_gift.clone())]
    );
    assert_eq!(
        birthday_coupons(&h, leap).await,
        vec![("birthday-2027".to_string(), gold_gift.clone())]
    );
    assert!(birthday_coupons(&h, march).await.is_empty());

    // The job running again the same day (or a redelivery) gives nobody a second one.
    birthday_job(&app, "2027-02-27T16:30:00Z").await;
    drain(&app).await;
    assert_eq!(birthday_coupons(&h, feb28).await.len(), 1);
    assert_eq!(birthday_coupons(&h, leap).await.len(), 1);

    // 2028 is a leap year: Feb 28 is not the leap-day member's birthday, Feb 29 is.
    birthday_job(&app, "2028-02-27T16:05:00Z").await;
    drain(&app).await;
    assert_eq!(birthday_coupons(&h, feb28).await.len(), 2);
    assert_eq!(birthday_coupons(&h, leap).await.len(), 1);
    birthday_job(&app, "2028-02-28T16:05:00Z").await;
    drain(&app).await;
    let mut leap_grants: Vec<String> =
        birthday_coupons(&h, leap).await.into_iter().map(|c| c.0).collect();
    leap_grants.sort();
    assert_eq!(leap_grants, vec!["birthday-2027", "birthday-2028"]);

    // Mar 1 in Shanghai starts at 16:00 UTC the day before.
    birthday_job(&app, "2027-02-28T16:05:00Z").await;
    drain(&app).await;
    assert_eq!(birthday_coupons(&h, march).await.len(), 1);
}

#[tokio::test]
async fn an_unknown_scheduled_job_is_an_error() {
    let (app, _h) = app().await;
    let trigger = loyalty::runtime::classify(json!({"detail-type": "Scheduled Event", "source": "loyalty.schedule", "detail": {"job": "nope"}})).unwrap();
    assert!(coupon_issue::handle_trigger(&app, trigger).await.is_err());
}

#[tokio::test]
async fn every_sample_event_reaches_its_handler() {
    let (app, _h) = app().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("coupon-issue-") {
            continue;
        }
        seen += 1;
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        match loyalty::runtime::classify(event).unwrap() {
            loyalty::runtime::Trigger::Http(req) => {
                let (s, b, _) = answer(coupon_issue::api::handle(&app, req).await);
                assert!(
                    s < 500 && b["code"] != "route_not_found" && b["code"] != "unauthenticated",
                    "{name}: {s} {b}"
                );
            }
            loyalty::runtime::Trigger::Sqs(e) => {
                for r in &e.records {
                    coupon_issue::worker::parse(r.body.as_deref().unwrap())
                        .unwrap_or_else(|err| panic!("{name}: {err}"));
                }
            }
            loyalty::runtime::Trigger::Schedule(e) => {
                assert_eq!(e.detail["job"], coupon_issue::birthday::JOB, "{name}")
            }
            loyalty::runtime::Trigger::Stream(_) => panic!("{name}: coupon-issue reads no stream"),
        }
    }
    assert_eq!(seen, 6, "one sample per trigger and route");
}

// ---------------------------------------------------------------------------------------
// One coupon per member per grant slot, whatever key made the codes

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_code_secret_never_issues_a_grant_slot_twice() {
    let (old_key, h) = app().await;
    let new_key = App {
        deps: h.deps.clone(),
        codes: loyalty::coupon::CodeKey::new(b"the-rotated-coupon-code-secret-0123456789").unwrap(),
        queue: None,
    };
    let ids = seed_ids(&h, "rotate", 30, TierCode::Regular).await;
    let grant = unique("month");
    let campaign = unique("camp");
    let run1 = RunRef { campaign_id: campaign.clone(), run_id: "r1".into() };
    let first = batch("b-0", &grant, amount_off(), None, Some(run1.clone()), ids.clone());
    assert!(coupon_issue::worker::handle(&old_key, sqs_event(&[message(&first)], 1))
        .await
        .batch_item_failures
        .is_empty());
    let old_codes: Vec<String> =
        futures::future::join_all(ids.iter().map(|id| h.deps.store.coupons(id)))
            .await
            .into_iter()
            .map(|c| c.unwrap()[0].code.clone())
            .collect();

    // The secret rotates. A redelivery of the first batch issues nothing and still counts once;
    // the month re-run (a new attempt: other run and batch ids) finds every slot taken.
    assert!(coupon_issue::worker::handle(&new_key, sqs_event(&[message(&first)], 2))
        .await
        .batch_item_failures
        .is_empty());
    let run2 = RunRef { campaign_id: campaign.clone(), run_id: "r2".into() };
    let rerun = batch("b-1", &grant, amount_off(), Some(1_000), Some(run2.clone()), ids.clone());
    assert!(coupon_issue::worker::handle(&new_key, sqs_event(&[message(&rerun)], 1))
        .await
        .batch_item_failures
        .is_empty());
    let counts = run_counts(&h, &run1).await;
    assert_eq!(
        (counts["issued"].as_u64(), counts["skipped"].as_u64()),
        (Some(30), Some(0)),
        "{counts}"
    );
    let counts = run_counts(&h, &run2).await;
    assert_eq!(
        (
            counts["issued"].as_u64(),
            counts["skippedAlreadyHad"].as_u64(),
            counts["skippedBudgetSpent"].as_u64()
        ),
        (Some(0), Some(30), Some(0)),
        "{counts}"
    );
    for (id, code) in ids.iter().zip(&old_codes) {
        let held: Vec<String> =
            h.deps.store.coupons(id).await.unwrap().into_iter().map(|c| c.code).collect();
        assert_eq!(
            &held,
            std::slice::from_ref(code),
            "{id} holds one coupon, the one issued first"
        );
    }
    assert_ne!(
        new_key.codes.code(&ids[0], &grant, 0),
        old_codes[0],
        "the new secret makes other codes"
    );
    let budget: Option<Value> =
        h.deps.store.get(&keys::budget_pk(&grant), keys::BUDGET_SK).await.unwrap();
    assert!(budget.is_none(), "a refused issue takes nothing from the budget: {budget:?}");

    // The admin route under the new key answers the coupon the member holds (200, its old code).
    let path = format!("/members/{}/coupons", ids[0]);
    let template = json!({"title": "Test coupon", "offer": {"kind": "amount_off", "value": 1500, "minSpend": 9900}, "validDays": 7});
    let (s, b, _) = call(
        &new_key,
        "POST",
        &path,
        Some(json!({"template": template, "grant": grant})),
        As::Operator,
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (200, Some(old_codes[0].as_str())), "{b}");
    // Slot 1 of a grant is another slot: the new key issues it once.
    let fs = json!({"template": "free-shipping", "grant": grant, "slot": 1});
    assert_eq!(call(&new_key, "POST", &path, Some(fs.clone()), As::Operator).await.0, 201);
    assert_eq!(call(&old_key, "POST", &path, Some(fs), As::Operator).await.0, 200);
    assert_eq!(h.deps.store.coupons(&ids[0]).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_coupon_issued_before_grant_slot_items_still_counts_as_already_had() {
    let (app, h) = app().await;
    let id = one_member(&h, TierCode::Regular).await;
    let c =
        loyalty::coupon::issue(&app.codes, &amount_off(), &id, &unique("legacy"), 0, Utc::now());
    // Written as the store wrote coupons before slot items existed: the coupon alone.
    let legacy = loyalty::store::coupon::CouponItem {
        batch_id: Some("old-batch".into()),
        ..loyalty::store::coupon::CouponItem::new(c.clone())
    };
    h.deps.store.transact(vec![h.deps.store.put(&legacy, None).unwrap()]).await.unwrap();
    match h.deps.store.issue_coupon(&c, Some("new-batch"), None).await.unwrap() {
        loyalty::store::issue::IssueOutcome::AlreadyHad(Some(held)) => {
            assert_eq!((held.code, held.batch_id.as_deref()), (c.code.clone(), Some("old-batch")))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.deps.store.coupons(&id).await.unwrap().len(), 1);
}

/// A store on a table of its own, for jobs that read a whole index (birthdays).
async fn on_own_table(h: &Harness, app: &mut App) -> Harness {
    let table = clone_table(h, "bday").await;
    app.deps = loyalty::app::Dependencies {
        store: loyalty::store::Store::new(h.deps.store.client.clone(), table),
        ..h.deps.clone()
    };
    Harness {
        deps: app.deps.clone(),
        counter: h.counter.clone(),
        capacity: h.capacity.clone(),
        sdk_config: h.sdk_config.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_past_birthday_run_again_issues_only_what_is_missing() {
    let (mut app, h) = app().await;
    let own = on_own_table(&h, &mut app).await;
    app.queue = Some(own_queue(&h).await);
    // Members who joined (and gave their birthday) well before it: birthdays count only when
    // known 30 days ahead.
    let (tag, now) = (unique("rerun"), at("2026-01-05T00:00:00Z"));
    let d: NaiveDate = "1991-07-09".parse().unwrap();
    let (a, b) = (
        member(&format!("{tag}-a"), TierCode::Regular, Some(d), now),
        member(&format!("{tag}-b"), TierCode::Gold, Some(d), now),
    );
    seed(&own, &[a.clone(), b.clone()]).await;

    // 2026-07-09 00:05 in Shanghai, months ago: detail.now replays that day.
    let day = "2026-07-08T16:05:00Z";
    let first = birthday_job(&app, day).await;
    assert_eq!(
        (&first["date"], &first["grant"], &first["members"]),
        (&json!("2026-07-09"), &json!("birthday-2026"), &json!(2)),
        "{first}"
    );
    assert_eq!(drain(&app).await, 2, "one batch per tier");

    // A member the first run missed (here: joined since). The day run again sends everyone;
    // only the missing coupon is issued, the others count as already had.
    let c = member(&format!("{tag}-c"), TierCode::Regular, Some(d), now);
    seed(&own, std::slice::from_ref(&c)).await;
    assert_eq!(birthday_job(&app, day).await["members"], 3);
    let q = app.queue.as_ref().unwrap();
    let msgs = receive_batch(&q.client, &q.url).await;
    assert_eq!(msgs.len(), 2);
    let mut counts = loyalty::store::issue::BatchCounts::default();
    for m in &msgs {
        let batch = coupon_issue::worker::parse(m.body.as_deref().unwrap()).unwrap();
        let got = own.deps.store.issue_batch(&app.codes, &batch, Utc::now(), 4).await.unwrap();
        counts.issued += got.issued;
        counts.skipped_already_had += got.skipped_already_had;
        counts.failed += got.failed;
    }
    assert_eq!((counts.issued, counts.skipped_already_had, counts.failed), (1, 2, 0), "{counts:?}");
    // The same messages through the worker (a redelivery): nothing more.
    let records: Vec<(String, String)> =
        msgs.iter().map(|m| (m.message_id.clone().unwrap(), m.body.clone().unwrap())).collect();
    assert!(coupon_issue::worker::handle(&app, sqs_event(&records, 2))
        .await
        .batch_item_failures
        .is_empty());
    for m in [&a, &b, &c] {
        let got = birthday_coupons(&own, m.member_id.as_str()).await;
        assert_eq!(
            got.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            vec!["birthday-2026"],
            "{}",
            m.member_id
        );
    }
}
