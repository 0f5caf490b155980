//! coupon-issue through the real handler (HTTP routes, SQS worker, birthday job) against
//! DynamoDB Local and the local SQS endpoint.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use coupon_issue::queue::CampaignQueue;
use coupon_issue::App;
use futures::StreamExt;
use loyalty::app::Clock;
use loyalty::campaign::{IssueBatch, RunRef};
use loyalty::coupon::{CouponTemplate, Offer};
use loyalty::member::{Member, MemberId, NewMember};
use loyalty::store::keys;
use loyalty::store::member::MemberItem;
use loyalty::{Fen, Rules, TierCode};
use loyalty_tests::*;
use serde_json::{json, Value};

async fn app_at(clock: Clock) -> (App, Harness) {
    let h = harness_with(Rules::default(), clock).await;
    (App { env: h.env.clone(), codes: code_key(), queue: None }, h)
}

async fn app() -> (App, Harness) {
    app_at(Clock::System).await
}

/// A member as signup would store it (no contact data needed here), written directly.
fn member(id: &str, tier: TierCode, birthday: Option<NaiveDate>, now: DateTime<Utc>) -> Member {
    let new = NewMember { email: None, phone: None, name: "Test".into(), birthday, referral_code: None, marketing_consent: false };
    let mut m = Member::join(MemberId::parse(id).unwrap(), &new, "TESTCODE".into(), None, now);
    m.tier = tier;
    m
}

/// Seeds members with BatchWriteItem (25 a request, several in flight).
async fn seed(h: &Harness, members: &[Member]) {
    let rules = Rules::default();
    let now = Utc::now();
    let store = &h.env.store;
    futures::stream::iter(members.chunks(25))
        .for_each_concurrent(8, |chunk| {
            let rules = &rules;
            async move {
                let writes: Vec<WriteRequest> = chunk
                    .iter()
                    .map(|m| {
                        let item = serde_dynamo::to_item(MemberItem::new(m, rules, now)).unwrap();
                        WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().unwrap()).build()
                    })
                    .collect();
                let mut pending = Some(writes);
                while let Some(w) = pending.take() {
                    let out = store.client.batch_write_item().request_items(&store.table, w).send().await.unwrap();
                    pending = out.unprocessed_items.and_then(|mut u| u.remove(&store.table)).filter(|v| !v.is_empty());
                }
            }
        })
        .await;
}

async fn seed_ids(h: &Harness, prefix: &str, n: usize, tier: TierCode) -> Vec<String> {
    let run = unique(prefix);
    let ids: Vec<String> = (0..n).map(|i| format!("{run}-{i}")).collect();
    let members: Vec<Member> = ids.iter().map(|id| member(id, tier, None, Utc::now())).collect();
    seed(h, &members).await;
    ids
}

fn template(offer: Offer) -> CouponTemplate {
    CouponTemplate { title: "Test coupon".into(), offer, valid_days: Some(7), valid_from: None, valid_until: None, tiers: vec![], per_member_limit: 1 }
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

fn batch(batch_id: &str, grant: &str, template: CouponTemplate, budget: Option<u64>, run: Option<RunRef>, member_ids: Vec<String>) -> IssueBatch {
    IssueBatch { batch_id: batch_id.into(), grant: grant.into(), template, budget, run, member_ids }
}

fn message(b: &IssueBatch) -> (String, String) {
    (unique("msg"), serde_json::to_string(b).unwrap())
}

fn failed_ids(r: &SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

async fn coupons_of(h: &Harness, ids: &[String], grant: &str) -> usize {
    futures::stream::iter(ids.iter())
        .map(|id| async move { h.env.store.coupons(id).await.unwrap().into_iter().filter(|c| c.grant == grant).count() })
        .buffer_unordered(32)
        .fold(0, |a, n| async move { a + n })
        .await
}

async fn run_counts(h: &Harness, run: &RunRef) -> Value {
    let item: Option<Value> = h.env.store.get(&keys::campaign_pk(&run.campaign_id), &keys::run_sk(&run.run_id)).await.unwrap();
    item.unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_batch_delivered_three_times_issues_each_coupon_once_and_counts_once() {
    let (app, h) = app().await;
    let mut ids = seed_ids(&h, "redeliver", 40, TierCode::Regular).await;
    ids.push(unique("nobody")); // not a member: skipped, not eligible
    let grant = unique("grant");
    let run = RunRef { campaign_id: unique("camp"), run_id: "r1".into() };
    let b = batch("b-0", &grant, amount_off(), None, Some(run.clone()), ids.clone());
    let msg = message(&b);
    for receives in 1..=3 {
        let resp = coupon_issue::worker::handle(&app, sqs_event(&[msg.clone()], receives)).await;
        assert!(resp.batch_item_failures.is_empty(), "delivery {receives}: {resp:?}");
    }
    // Two deliveries at once, too.
    let (a, b2) = tokio::join!(coupon_issue::worker::handle(&app, sqs_event(&[msg.clone()], 1)), coupon_issue::worker::handle(&app, sqs_event(&[msg.clone()], 1)));
    assert!(a.batch_item_failures.is_empty() && b2.batch_item_failures.is_empty());
    for id in &ids[..40] {
        assert_eq!(h.env.store.coupons(id).await.unwrap().len(), 1, "{id}");
    }
    let counts = run_counts(&h, &run).await;
    assert_eq!(counts["issued"], 40, "{counts}");
    assert_eq!(counts["skipped"], 1, "{counts}");
    assert_eq!(counts["skippedNotEligible"], 1, "{counts}");
    assert_eq!(counts["failed"], 0, "{counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_of_1000_across_concurrent_workers_issues_exactly_1000_and_skips_500() {
    let (app, h) = app().await;
    let ids = seed_ids(&h, "budget", 1_500, TierCode::Silver).await;
    let grant = unique("budget-grant");
    let run = RunRef { campaign_id: unique("camp"), run_id: "r1".into() };
    let messages: Vec<(String, String)> =
        ids.chunks(100).enumerate().map(|(n, c)| message(&batch(&format!("b-{n}"), &grant, amount_off(), Some(1_000), Some(run.clone()), c.to_vec()))).collect();
    // Three workers, five messages each, all at once.
    let results = futures::future::join_all(messages.chunks(5).map(|m| coupon_issue::worker::handle(&app, sqs_event(m, 1)))).await;
    for r in &results {
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
    }
    assert_eq!(coupons_of(&h, &ids, &grant).await, 1_000);
    let counts = run_counts(&h, &run).await;
    assert_eq!((counts["issued"].as_u64(), counts["skippedBudgetSpent"].as_u64(), counts["skipped"].as_u64()), (Some(1_000), Some(500), Some(500)), "{counts}");
    assert_eq!(counts["failed"], 0);
    let budget: Value = h.env.store.get(&keys::budget_pk(&grant), keys::BUDGET_SK).await.unwrap().unwrap();
    assert_eq!(budget["issued"], 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_10000_member_ids_becomes_exactly_10000_coupons() {
    let (app, h) = app().await;
    let ids = seed_ids(&h, "tenk", 10_000, TierCode::Gold).await;
    let grant = unique("tenk-grant");
    let run = RunRef { campaign_id: unique("camp"), run_id: "r1".into() };
    let messages: Vec<(String, String)> =
        ids.chunks(500).enumerate().map(|(n, c)| message(&batch(&format!("b-{n}"), &grant, amount_off(), None, Some(run.clone()), c.to_vec()))).collect();
    let results = futures::future::join_all(messages.chunks(5).map(|m| coupon_issue::worker::handle(&app, sqs_event(m, 1)))).await;
    for r in &results {
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
    }
    assert_eq!(coupons_of(&h, &ids, &grant).await, 10_000);
    let counts = run_counts(&h, &run).await;
    assert_eq!((counts["issued"].as_u64(), counts["skipped"].as_u64(), counts["failed"].as_u64()), (Some(10_000), Some(0), Some(0)), "{counts}");
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
    let resp = coupon_issue::worker::handle(&app, sqs_event(&[good.clone(), garbage.clone(), invalid.clone(), unknown_field.clone()], 1)).await;
    let mut failed = failed_ids(&resp);
    failed.sort();
    let mut want = vec![garbage.0, invalid.0, unknown_field.0];
    want.sort();
    assert_eq!(failed, want);
    assert_eq!(h.env.store.coupons(&ids[0]).await.unwrap().len(), 1);
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
    let ids: Vec<String> = [&gold, &regular, &erased].iter().map(|m| m.member_id.as_str().to_string()).collect();
    let resp = coupon_issue::worker::handle(&app, sqs_event(&[message(&batch("b-0", &unique("g"), t, None, Some(run.clone()), ids))], 1)).await;
    assert!(resp.batch_item_failures.is_empty());
    let counts = run_counts(&h, &run).await;
    assert_eq!((counts["issued"].as_u64(), counts["skippedNotEligible"].as_u64()), (Some(1), Some(2)), "{counts}");
    assert_eq!(h.env.store.coupons(gold.member_id.as_str()).await.unwrap().len(), 1);
    assert!(h.env.store.coupons(regular.member_id.as_str()).await.unwrap().is_empty());
}

#[allow(dead_code)]
fn unused(_: Duration, _: CampaignQueue) {}
