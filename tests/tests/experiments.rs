//! Campaign experiments end to end: a definition with variants and a holdout through
//! member-day's routes, its run through the real dispatcher and coupon worker (the queues
//! driven in process), on a table of the test's own, then every item of the grant read back.
//!
//! The members and the campaign id are fixed (an Idempotency-Key names the campaign), so the
//! assignment, and with it every count below, is the same on every run of the test.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use loyalty::campaign::experiment::{Experiment, Share, HOLDOUT_ARM};
use loyalty::campaign::Variant;
use loyalty::store::Store;
use loyalty::TierCode;
use loyalty_tests::*;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Members of the holdout test. The issue's figure, 20,000, is `scripts/bench`'s campaign run.
const MEMBERS: usize = 5_000;
/// The holdout share asked for.
const HOLDOUT: f64 = 0.2;
/// ±2 points: with n = 5,000 and p = 0.2 the binomial standard deviation of the observed share
/// is √(0.2 · 0.8 / 5,000) = 0.57 points, so 2 points is 3.5 standard deviations (a hash that
/// behaved like a fair draw would miss it about once in 2,000 populations; these ids are fixed).
const TOLERANCE: f64 = 0.02;

struct World {
    h: Harness,
    app: member_day::App,
    worker: coupon_issue::App,
    sqs: aws_sdk_sqs::Client,
}

impl World {
    async fn new() -> World {
        let mut h = harness().await;
        let table = clone_table(&h, "experiments").await;
        h.deps.store = Store::new(h.deps.store.client.clone(), table);
        let app = campaigns_on(&h, &h.deps).await;
        let sqs = app.sqs.clone();
        let worker = worker_on(&h.deps);
        World { h, app, worker, sqs }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let headers: Vec<(&str, &str)> =
            key.map(|k| vec![("idempotency-key", k)]).unwrap_or_default();
        let (s, b, _) = answer(
            member_day::handle(
                &self.app,
                request_with_headers(method, path, body.as_deref(), As::Operator, &headers),
            )
            .await,
        );
        (s, b)
    }

    async fn run(&self, id: &str) -> Value {
        let (s, run) = self.call("POST", &format!("/campaigns/{id}/run"), None, None).await;
        assert_eq!(s, 202, "{run}");
        drain_campaign_queues(&self.app, &self.worker, &self.sqs, async || {}).await;
        let (s, view) = self.call("GET", &format!("/campaigns/{id}"), None, None).await;
        assert_eq!(s, 200, "{view}");
        assert_eq!(view["runs"][0]["state"], "drained", "{view}");
        view
    }

    /// Every item of `grant` in the members' partitions, by entity: member id → the item.
    async fn grant_items(
        &self,
        grant: &str,
    ) -> HashMap<String, Vec<HashMap<String, AttributeValue>>> {
        let store = &self.h.deps.store;
        let mut out: HashMap<String, Vec<_>> = HashMap::new();
        let mut start = None;
        loop {
            let page = store
                .client
                .scan()
                .table_name(&store.table)
                .filter_expression("#g = :g")
                .expression_attribute_names("#g", "grant")
                .expression_attribute_values(":g", AttributeValue::S(grant.into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items.unwrap_or_default() {
                let entity = item["entity"].as_s().unwrap().clone();
                out.entry(entity).or_default().push(item);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return out;
            }
        }
    }
}

fn coupon(title: &str, value: i64) -> Value {
    json!({"title": title, "offer": {"kind": "amount_off", "value": value, "minSpend": 0}, "validDays": 7})
}

fn definition() -> Value {
    json!({
        "name": "Spring A/B",
        "segment": {"tiers": ["regular", "silver"]},
        "coupon": coupon("10 CNY off", 1000),
        "variants": [
            {"name": "ten", "weight": 1},
            {"name": "twenty", "weight": 1, "coupon": coupon("20 CNY off", 2000)},
        ],
        "holdout": HOLDOUT,
    })
}

fn str_of<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holdout_members_get_nothing_and_are_recorded_in_the_share_asked_for() {
    let w = World::new().await;
    let now = Utc::now();
    let ids: Vec<String> = (0..MEMBERS).map(|i| format!("xm-{i:05}")).collect();
    let members: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let tier = if i % 10 == 0 { TierCode::Gold } else { TierCode::ALL[i % 2] };
            plain_member(id, tier, now - Duration::days(30))
        })
        .collect();
    seed_members(&w.h, &members, now).await;
    let in_segment: Vec<&String> =
        ids.iter().enumerate().filter(|(i, _)| i % 10 != 0).map(|(_, id)| id).collect();

    let (s, created) =
        w.call("POST", "/campaigns", Some(definition()), Some("experiment-spring-ab")).await;
    assert_eq!(s, 201, "{created}");
    let id = created["campaignId"].as_str().unwrap().to_string();
    assert_eq!(created["campaign"]["holdout"], json!(HOLDOUT));
    assert_eq!(created["campaign"]["variants"][1]["coupon"]["title"], "20 CNY off");

    let view = w.run(&id).await;
    let run = &view["runs"][0];
    let grant = run["grant"].as_str().unwrap().to_string();
    let items = w.grant_items(&grant).await;
    let (coupons, held) = (&items["coupon"], &items["holdout"]);

    // The arms the pure assignment gives these members.
    let variants: Vec<Variant> = serde_json::from_value(definition()["variants"].clone()).unwrap();
    let e = Experiment::of(&id, &variants, Share(2000)).unwrap();
    let arm_of: HashMap<&str, &str> =
        in_segment.iter().map(|m| (m.as_str(), e.assign(m).name())).collect();

    // Zero coupons in the holdout; every holdout member recorded once, with no code.
    let coupon_holders: HashMap<&str, &HashMap<String, AttributeValue>> =
        coupons.iter().map(|c| (str_of(c, "memberId"), c)).collect();
    assert_eq!(coupon_holders.len(), coupons.len(), "one coupon per member");
    for (member, c) in &coupon_holders {
        let arm = arm_of[member];
        assert_ne!(arm, HOLDOUT_ARM, "{member} is held out but got {c:?}");
        assert_eq!(str_of(c, "arm"), arm, "the coupon carries its arm");
        let title = if arm == "twenty" { "20 CNY off" } else { "10 CNY off" };
        assert_eq!(str_of(c, "title"), title, "{member} in {arm}");
    }
    let held_ids: Vec<&str> = held.iter().map(|h| str_of(h, "memberId")).collect();
    assert!(held.iter().all(|h| h.get("code").is_none()));
    let mut expected_held: Vec<&str> =
        arm_of.iter().filter(|(_, a)| **a == HOLDOUT_ARM).map(|(m, _)| *m).collect();
    expected_held.sort();
    let mut got_held = held_ids.clone();
    got_held.sort();
    assert_eq!(got_held, expected_held, "exactly the assigned holdout is recorded");
    assert!(got_held.iter().all(|m| !coupon_holders.contains_key(m)));
    assert_eq!(coupons.len() + held.len(), in_segment.len(), "everyone in the segment, once");

    let share = held.len() as f64 / in_segment.len() as f64;
    assert!((share - HOLDOUT).abs() <= TOLERANCE, "holdout share {share}");
    let ten = coupons.iter().filter(|c| str_of(c, "arm") == "ten").count() as f64;
    let split = ten / coupons.len() as f64;
    assert!((split - 0.5).abs() <= TOLERANCE, "equal weights split {split}");

    // The run's counts add up with the holdout as a reason to skip.
    let n = |k: &str| run[k].as_u64().unwrap();
    assert_eq!(n("targeted"), in_segment.len() as u64, "{run}");
    assert_eq!(
        (n("issued"), n("skipped"), n("failed")),
        (coupons.len() as u64, held.len() as u64, 0)
    );
    assert_eq!(run["skippedReasons"]["holdout"], held.len() as u64, "{run}");

    // A second attempt of the same month: the same arms, nothing new to anyone.
    let view = w.run(&id).await;
    let again = &view["runs"][0];
    assert_eq!(again["issued"], 0, "{again}");
    assert_eq!(again["skippedReasons"]["alreadyHad"], in_segment.len() as u64, "{again}");
    let after = w.grant_items(&grant).await;
    assert_eq!((after["coupon"].len(), after["holdout"].len()), (coupons.len(), held.len()));
}

#[tokio::test]
async fn bad_experiments_are_refused_with_the_field_named_and_nothing_written() {
    let w = World::new().await;
    let cases = [
        (json!({"holdout": 0.6}), "holdout"),
        (json!({"holdout": -0.1}), "holdout"),
        (
            json!({"variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 2}]}),
            "variants[1].name",
        ),
        (
            json!({"variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 1}]}),
            "variants[0].weight",
        ),
        (
            json!({"variants": (0..11).map(|i| json!({"name": format!("v{i}"), "weight": 1})).collect::<Vec<_>>()}),
            "variants",
        ),
        (
            json!({"variants": [{"name": "a", "weight": 1, "multiplier": 2.0}, {"name": "b", "weight": 1}]}),
            "variants[0].multiplier",
        ),
        (
            json!({"multiplier": {"multiplier": 2.0, "window": {"kind": "run_day"}},
                   "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "multiplier": 0.5}]}),
            "variants[1].multiplier",
        ),
    ];
    for (change, field) in cases {
        let mut body = definition();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, problem) = w.call("POST", "/campaigns", Some(body), None).await;
        assert_eq!((s, problem["code"].as_str()), (422, Some("invalid_experiment")), "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.starts_with(&format!("{field}: ")), "{field}: {detail}");
    }
    let mut not_a_share = definition();
    not_a_share["holdout"] = json!("a fifth");
    let (s, problem) = w.call("POST", "/campaigns", Some(not_a_share), None).await;
    assert_eq!(s, 400, "{problem}");
    let store = &w.h.deps.store;
    let left = store.client.scan().table_name(&store.table).send().await.unwrap();
    assert_eq!(left.count, 0, "nothing written");
}
