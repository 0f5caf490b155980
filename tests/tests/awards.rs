//! Bulk awards end to end: the real member-day handler (`POST /awards`,
//! `GET /awards/{id}`, `POST /awards/{id}/run`) and dispatcher, the real coupon-issue worker,
//! the local SQS queues, moto's S3 (the uploaded member list) and DynamoDB Local. Each test
//! works on a table of its own (a segment covers the whole table) and queues of its own.

use aws_lambda_events::sqs::SqsEvent;
use chrono::{Duration, Utc};
use futures::StreamExt;
use loyalty::app::Dependencies;
use loyalty::calendar::program_date;
use loyalty::ledger::EntryKind;
use loyalty::store::Store;
use loyalty::TierCode;
use loyalty_tests::*;
use serde_json::{json, Value};

struct Stack {
    h: Harness,
    md: member_day::App,
    worker: coupon_issue::App,
    store: Store,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

async fn stack() -> Stack {
    let h = harness().await;
    let table = clone_table(&h, "awards").await;
    let store = Store::new(h.deps.store.client.clone(), table);
    let deps = Dependencies { store: store.clone(), ..h.deps.clone() };
    let mut md = campaigns_on(&h, &deps).await;
    let bucket = std::env::var("MIGRATION_BUCKET").expect("MIGRATION_BUCKET (scripts/stack)");
    let files = member_day::MembersFiles::new(&h.sdk_config, bucket.clone());
    let s3 = files.s3.clone();
    md.members_files = Some(files);
    let worker = worker_on(&deps);
    Stack { h, md, worker, store, s3, bucket }
}

impl Stack {
    /// `n` members of every tier in turn, seeded straight into the table.
    async fn members(&self, prefix: &str, n: usize) -> Vec<String> {
        let now = Utc::now();
        let members: Vec<_> = (0..n)
            .map(|i| plain_member(&unique(prefix), TierCode::ALL[i % 4], now - Duration::days(30)))
            .collect();
        let deps = Harness {
            deps: Dependencies { store: self.store.clone(), ..self.h.deps.clone() },
            counter: self.h.counter.clone(),
            capacity: self.h.capacity.clone(),
            sdk_config: self.h.sdk_config.clone(),
        };
        seed_members(&deps, &members, now).await;
        members.iter().map(|m| m.member_id.as_str().to_string()).collect()
    }

    async fn upload(&self, lines: &[String]) -> String {
        let key = format!("awards/{}.txt", unique("list"));
        let body = lines.join("\n") + "\n";
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(body.into_bytes().into())
            .send()
            .await
            .expect("upload");
        key
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        who: As,
    ) -> (u16, Value, String) {
        self.call_with(method, path, body, who, &[]).await
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        who: As,
        headers: &[(&str, &str)],
    ) -> (u16, Value, String) {
        let body = body.map(|b| b.to_string());
        answer(
            member_day::handle(
                &self.md,
                request_with_headers(method, path, body.as_deref(), who, headers),
            )
            .await,
        )
    }

    /// Every dispatch message through the dispatcher (which queues the batches).
    async fn dispatch(&self) {
        loop {
            let got = receive_batch(&self.md.sqs, &self.md.dispatch_queue).await;
            if got.is_empty() {
                return;
            }
            for m in got {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                member_day::dispatch::on_message(&self.md, m.body().unwrap(), deadline)
                    .await
                    .expect("dispatch");
                self.delete(&self.md.dispatch_queue, &m).await;
            }
        }
    }

    async fn delete(&self, queue: &str, m: &aws_sdk_sqs::types::Message) {
        self.md
            .sqs
            .delete_message()
            .queue_url(queue)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }

    /// The batches queued now, each taken off the queue.
    async fn batches(&self) -> Vec<aws_sdk_sqs::types::Message> {
        let mut out = Vec::new();
        loop {
            let got = receive_batch(&self.md.sqs, &self.md.campaign_queue).await;
            if got.is_empty() {
                return out;
            }
            for m in got {
                self.delete(&self.md.campaign_queue, &m).await;
                out.push(m);
            }
        }
    }

    /// One delivery of a batch to the worker (`receives`: its ApproximateReceiveCount).
    async fn work(&self, m: &aws_sdk_sqs::types::Message, receives: u32) {
        let event: SqsEvent = serde_json::from_value(json!({"Records": [{
            "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
            "attributes": {"ApproximateReceiveCount": receives.to_string()}, "messageAttributes": {}, "eventSource": "aws:sqs"}]}))
        .unwrap();
        let resp = coupon_issue::worker::handle(&self.worker, event).await;
        assert!(resp.batch_item_failures.is_empty(), "a batch failed");
    }

    /// Dispatches, then works every batch (four at a time), each delivered once.
    async fn drain(&self) {
        self.dispatch().await;
        let batches = self.batches().await;
        futures::stream::iter(batches.iter()).for_each_concurrent(4, |m| self.work(m, 1)).await;
    }

    async fn runs(&self, id: &str) -> Vec<Value> {
        let (s, v, _) = self.call("GET", &format!("/awards/{id}"), None, As::Operator).await;
        assert_eq!(s, 200, "{v}");
        v["runs"].as_array().unwrap().clone()
    }

    /// The award's `award` ledger entries of a member, the balance and Σ ledger.
    async fn ledger(&self, member: &str, award: &str) -> (usize, i64, i64) {
        let m = self.store.member(member).await.unwrap().unwrap();
        assert!(m.wallet.is_consistent(), "{:?}", m.wallet);
        let entries = self.store.ledger_all(member).await.unwrap();
        let awards = entries
            .iter()
            .filter(|e| e.kind == EntryKind::Award && e.reference.as_deref() == Some(award))
            .count();
        (awards, m.wallet.balance.0, entries.iter().map(|e| e.points.0).sum())
    }

    async fn item_count(&self) -> i32 {
        let mut n = 0;
        let mut start = None;
        loop {
            let out = self
                .store
                .client
                .scan()
                .table_name(&self.store.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            n += out.count();
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return n,
            }
        }
    }
}

/// targeted, credited, alreadyCredited, unknown, overBudget, failed — and that they add up.
fn counts(run: &Value) -> [u64; 6] {
    let c = ["targeted", "credited", "alreadyCredited", "unknown", "overBudget", "failed"]
        .map(|k| run[k].as_u64().unwrap_or_else(|| panic!("{k} in {run}")));
    assert_eq!(c[0], c[1..].iter().sum::<u64>(), "counts add up: {run}");
    assert_eq!(run["state"], "drained", "{run}");
    c
}

#[tokio::test]
async fn points_to_an_uploaded_list_run_twice_and_redelivered_credit_each_member_once() {
    let s = stack().await;
    let members = s.members("aw-list", 700).await;
    // 700 members, one of them listed twice, three unknown ids and a line that is no id.
    let mut lines = members.clone();
    lines.insert(350, members[3].clone());
    lines.extend(["aw-nobody-1", "aw-nobody-2", "aw-nobody-3", "not an id!"].map(String::from));
    let key = s.upload(&lines).await;
    let today = program_date(s.h.deps.rules.time_zone, Utc::now());
    let expires = today + Duration::days(30);
    let body = json!({"name": "Outage apology", "reason": "Sorry for the outage on 11-11",
        "points": {"amount": 250, "expiresOn": expires}, "membersFile": key});
    let idem_key = unique("award-list");
    let idem = [("idempotency-key", idem_key.as_str())];
    let (st, v, _) = s.call_with("POST", "/awards", Some(body.clone()), As::Operator, &idem).await;
    assert_eq!(st, 202, "{v}");
    let id = v["awardId"].as_str().unwrap().to_string();
    assert_eq!(v["grant"], format!("award:{id}"));

    // Run 1, with the first batch delivered twice (the second delivery finds it all done).
    s.dispatch().await;
    let batches = s.batches().await;
    assert!(batches.len() >= 2, "a list of 705 lines spans more than one message");
    s.work(&batches[0], 1).await;
    s.work(&batches[0], 2).await;
    futures::stream::iter(batches[1..].iter()).for_each_concurrent(4, |m| s.work(m, 1)).await;
    let runs = s.runs(&id).await;
    assert_eq!(counts(&runs[0]), [705, 700, 1, 4, 0, 0]);

    // The same request again (Idempotency-Key) is the same award, and starts nothing.
    let (st, again, _) = s.call_with("POST", "/awards", Some(body), As::Operator, &idem).await;
    assert_eq!(
        (st, again["awardId"].as_str(), again["attempt"].as_u64()),
        (202, Some(id.as_str()), Some(1))
    );

    // Run 2: nobody is credited again.
    let (st, v, _) = s.call("POST", &format!("/awards/{id}/run"), None, As::Operator).await;
    assert_eq!((st, v["attempt"].as_u64()), (202, Some(2)), "{v}");
    s.drain().await;
    let runs = s.runs(&id).await;
    assert_eq!(runs.len(), 2);
    assert_eq!(counts(&runs[0]), [705, 0, 701, 4, 0, 0]);

    let rules = &s.h.deps.rules;
    for m in &members {
        let (entries, balance, sum) = s.ledger(m, &id).await;
        assert_eq!((entries, balance, sum), (1, 250, 250), "{m}");
    }
    // The lot expires on the day asked for, and the entry carries the reason.
    let m = s.store.member(&members[0]).await.unwrap().unwrap();
    assert_eq!(m.wallet.next_expiry(rules.points.expiry_days), Some(expires));
    let entry = s.store.ledger_all(&members[0]).await.unwrap().pop().unwrap();
    assert_eq!(entry.reason, "Sorry for the outage on 11-11");
}

#[tokio::test]
async fn points_to_a_segment_reach_its_members_only_and_a_rerun_credits_nobody_twice() {
    let s = stack().await;
    let members = s.members("aw-seg", 800).await;
    let body = json!({"name": "Gold and Diamond thank you", "reason": "Thank you for your loyalty",
        "points": {"amount": 100}, "segment": {"tiers": ["diamond", "gold"]}});
    let (st, v, _) = s.call("POST", "/awards", Some(body), As::Operator).await;
    assert_eq!(st, 202, "{v}");
    let id = v["awardId"].as_str().unwrap().to_string();
    s.drain().await;
    assert_eq!(counts(&s.runs(&id).await[0]), [400, 400, 0, 0, 0, 0]);
    s.call("POST", &format!("/awards/{id}/run"), None, As::Operator).await;
    s.drain().await;
    assert_eq!(counts(&s.runs(&id).await[0]), [400, 0, 400, 0, 0, 0]);
    let today = program_date(s.h.deps.rules.time_zone, Utc::now());
    for (i, m) in members.iter().enumerate() {
        let gets = matches!(TierCode::ALL[i % 4], TierCode::Gold | TierCode::Diamond);
        let (entries, balance, sum) = s.ledger(m, &id).await;
        assert_eq!((entries, balance, sum), if gets { (1, 100, 100) } else { (0, 0, 0) }, "{m}");
        if gets && i < 8 {
            // No expiresOn: the rules' life from the award's day.
            let w = s.store.member(m).await.unwrap().unwrap().wallet;
            let life = s.h.deps.rules.points.expiry_days as i64;
            assert_eq!(w.next_expiry(life as u32), Some(today + Duration::days(life)));
        }
    }
}

#[tokio::test]
async fn a_coupon_award_to_listed_members_gives_each_one_coupon() {
    let s = stack().await;
    let members = s.members("aw-cpn", 6).await;
    let mut listed = members.clone();
    listed.push("aw-nobody".into());
    listed.push(members[0].clone());
    let body = json!({"name": "VIP coupon", "reason": "VIP event",
        "coupon": {"title": "VIP: 50 CNY off", "offer": {"kind": "amount_off", "value": 5000, "minSpend": 10000}, "validDays": 14},
        "members": listed});
    let (st, v, _) = s.call("POST", "/awards", Some(body), As::Operator).await;
    assert_eq!(st, 202, "{v}");
    let id = v["awardId"].as_str().unwrap().to_string();
    s.drain().await;
    // A member listed twice is listed once.
    assert_eq!(counts(&s.runs(&id).await[0]), [7, 6, 0, 1, 0, 0]);
    s.call("POST", &format!("/awards/{id}/run"), None, As::Operator).await;
    s.drain().await;
    assert_eq!(counts(&s.runs(&id).await[0]), [7, 0, 6, 1, 0, 0]);
    for m in &members {
        let (st, v, _) = answer(
            coupon_issue::api::handle(
                &s.worker,
                request("GET", &format!("/members/{m}/coupons"), None, As::Member(m.clone())),
            )
            .await,
        );
        assert_eq!(st, 200, "{v}");
        let titles: Vec<&str> =
            v["coupons"].as_array().unwrap().iter().filter_map(|c| c["title"].as_str()).collect();
        assert_eq!(titles, ["VIP: 50 CNY off"], "{m}: {v}");
        let (entries, balance, _) = s.ledger(m, &id).await;
        assert_eq!((entries, balance), (0, 0), "a coupon award moves no points");
    }
}

#[tokio::test]
async fn the_budget_holds_under_a_concurrent_double_run() {
    let s = stack().await;
    let members = s.members("aw-bud", 600).await;
    let key = s.upload(&members).await;
    let body = json!({"name": "First 250", "reason": "Early birds", "points": {"amount": 80},
        "membersFile": key, "budget": 250});
    let (st, v, _) = s.call("POST", "/awards", Some(body), As::Operator).await;
    assert_eq!(st, 202, "{v}");
    let id = v["awardId"].as_str().unwrap().to_string();
    // Run 1 is dispatched, then run 2 starts before any batch is worked: both runs' batches
    // are worked at once.
    s.dispatch().await;
    let (st, _, _) = s.call("POST", &format!("/awards/{id}/run"), None, As::Operator).await;
    assert_eq!(st, 202);
    s.dispatch().await;
    let batches = s.batches().await;
    futures::stream::iter(batches.iter()).for_each_concurrent(8, |m| s.work(m, 1)).await;
    let runs = s.runs(&id).await;
    let (r2, r1) = (counts(&runs[0]), counts(&runs[1]));
    assert_eq!(r1[1] + r2[1], 250, "exactly the budget credited: {r1:?} {r2:?}");
    let mut credited = 0;
    for m in &members {
        let (entries, balance, sum) = s.ledger(m, &id).await;
        assert!(entries <= 1 && balance == sum && balance == 80 * entries as i64, "{m}");
        credited += entries;
    }
    assert_eq!(credited, 250);
}

#[tokio::test]
async fn only_operators_award_and_bad_requests_are_refused_with_nothing_written() {
    let s = stack().await;
    let members = s.members("aw-bad", 2).await;
    let key = s.upload(&members).await;
    let good = json!({"name": "n", "reason": "r", "points": {"amount": 10}, "members": members});
    let before = s.item_count().await;
    for who in [As::Member(members[0].clone()), As::OrderSystem, As::OtherIam] {
        let (st, v, ct) = s.call("POST", "/awards", Some(good.clone()), who.clone()).await;
        assert_problem(st, &v, &ct, 403, "forbidden");
        let (st, v, ct) = s.call("GET", "/awards/a-0000000000000000", None, who.clone()).await;
        assert_problem(st, &v, &ct, 403, "forbidden");
        let (st, v, ct) = s.call("POST", "/awards/a-0000000000000000/run", None, who).await;
        assert_problem(st, &v, &ct, 403, "forbidden");
    }
    let today = program_date(s.h.deps.rules.time_zone, Utc::now());
    let coupon = json!({"title": "t", "offer": {"kind": "free_shipping"}, "validDays": 3});
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut v = good.as_object().unwrap().clone();
        f(&mut v);
        Value::Object(v)
    };
    let too_many: Vec<String> = (0..501).map(|i| format!("m{i}")).collect();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            with(&|v| {
                v.insert("coupon".into(), coupon.clone());
            }),
            422,
            "one_gift",
        ),
        (
            with(&|v| {
                v.remove("points");
            }),
            422,
            "one_gift",
        ),
        (
            with(&|v| {
                v.insert("points".into(), json!({"amount": 0}));
            }),
            422,
            "invalid_points",
        ),
        (
            with(&|v| {
                v.insert("points".into(), json!({"amount": -5}));
            }),
            422,
            "invalid_points",
        ),
        (
            with(&|v| {
                v.insert("points".into(), json!({"amount": 1_000_001}));
            }),
            422,
            "invalid_points",
        ),
        (
            with(&|v| {
                v.insert("points".into(), json!({"amount": 5, "expiresOn": today}));
            }),
            422,
            "invalid_expiry",
        ),
        (
            with(&|v| {
                v.insert(
                    "points".into(),
                    json!({"amount": 5, "expiresOn": today + Duration::days(400)}),
                );
            }),
            422,
            "invalid_expiry",
        ),
        (
            with(&|v| {
                v.insert("reason".into(), json!("  "));
            }),
            422,
            "reason_required",
        ),
        (
            with(&|v| {
                v.remove("reason");
            }),
            400,
            "invalid_body",
        ),
        (
            with(&|v| {
                v.insert("segment".into(), json!({"tiers": ["gold"]}));
            }),
            422,
            "one_recipients",
        ),
        (
            with(&|v| {
                v.remove("members");
            }),
            422,
            "one_recipients",
        ),
        (
            with(&|v| {
                v.insert("members".into(), json!([]));
            }),
            422,
            "invalid_members",
        ),
        (
            with(&|v| {
                v.insert("members".into(), json!(too_many));
            }),
            422,
            "invalid_members",
        ),
        (
            with(&|v| {
                v.insert("members".into(), json!(["ok", "not an id"]));
            }),
            422,
            "invalid_member_id",
        ),
        (
            with(&|v| {
                v.remove("members");
                v.insert("segment".into(), json!({"tiers": ["platinum"]}));
            }),
            400,
            "invalid_body",
        ),
        (
            with(&|v| {
                v.remove("members");
                v.insert("segment".into(), json!({"tiers": []}));
            }),
            422,
            "invalid_segment",
        ),
        (
            with(&|v| {
                v.remove("members");
                v.insert("membersFile".into(), json!("awards/nothing-here.txt"));
            }),
            422,
            "unknown_file",
        ),
        (
            with(&|v| {
                v.remove("members");
                v.insert("membersFile".into(), json!(key.replace("awards/", "imports/")));
            }),
            422,
            "invalid_file_key",
        ),
        (
            with(&|v| {
                v.insert("budget".into(), json!(0));
            }),
            422,
            "invalid_budget",
        ),
        (
            with(&|v| {
                v.insert(
                    "coupon".into(),
                    json!({"title": "", "offer": {"kind": "free_shipping"}, "validDays": 3}),
                );
                v.remove("points");
            }),
            422,
            "invalid_coupon",
        ),
    ];
    for (body, status, code) in cases {
        let (st, v, ct) = s.call("POST", "/awards", Some(body.clone()), As::Operator).await;
        if st == 413 {
            panic!("{body} is too large for a body");
        }
        if code == "invalid_body" {
            assert_eq!((st, ct.as_str()), (status, "application/problem+json"), "{body}: {v}");
        } else {
            assert_problem(st, &v, &ct, status, code);
        }
    }
    let (st, v, ct) = s.call("GET", "/awards/a-0000000000000000", None, As::Operator).await;
    assert_problem(st, &v, &ct, 404, "award_not_found");
    let (st, v, ct) = s.call("POST", "/awards/a-0000000000000000/run", None, As::Operator).await;
    assert_problem(st, &v, &ct, 404, "award_not_found");
    assert_eq!(s.item_count().await, before, "nothing written");
    assert!(receive_batch(&s.md.sqs, &s.md.dispatch_queue).await.is_empty());
}

/// Awards and campaigns share the definition key: a campaign's id on an award route (and an
/// award's on a campaign route) is "not found", never an item that fails to decode (a 500).
#[tokio::test]
async fn a_campaign_id_on_the_award_routes_and_an_award_id_on_the_campaign_routes_are_not_found() {
    let s = stack().await;
    let members = s.members("aw-cross", 1).await;
    let campaign = json!({
        "name": "cross", "segment": {"tiers": ["gold"]},
        "coupon": {"title": "t", "offer": {"kind": "free_shipping"}, "validDays": 3},
        "schedule": {"kind": "once", "at": (Utc::now() + Duration::days(30)).to_rfc3339()},
    });
    let (st, c, _) = s.call("POST", "/campaigns", Some(campaign), As::Operator).await;
    assert_eq!(st, 201, "{c}");
    let campaign_id = c["campaignId"].as_str().unwrap().to_string();
    let award = json!({"name": "n", "reason": "r", "points": {"amount": 10}, "members": members});
    let (st, a, _) = s.call("POST", "/awards", Some(award), As::Operator).await;
    assert_eq!(st, 202, "{a}");
    let award_id = a["awardId"].as_str().unwrap().to_string();
    for (method, path) in
        [("GET", format!("/awards/{campaign_id}")), ("POST", format!("/awards/{campaign_id}/run"))]
    {
        let (st, v, ct) = s.call(method, &path, None, As::Operator).await;
        assert_problem(st, &v, &ct, 404, "award_not_found");
    }
    for (method, path) in
        [("GET", format!("/campaigns/{award_id}")), ("POST", format!("/campaigns/{award_id}/run"))]
    {
        let (st, v, _) = s.call(method, &path, None, As::Operator).await;
        assert_eq!(st, 404, "{path}: {v}");
    }
}
