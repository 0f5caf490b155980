//! Exports through the migration function against the local stack (DynamoDB Local, moto's S3
//! and SQS), on a table of the test's own (an export reads the whole table): an imported
//! table plus a few signups exported in parallel segments of several parts each, through the
//! real route, queue and worker; the files' line counts and point sums equal what a plain
//! scan of the table counts; every message delivered again (and the request retried) counts
//! nothing twice; personal data only when asked and allowed; bad requests write nothing.

use chrono::{Duration, Utc};
use loyalty::app::Dependencies;
use loyalty::store::Store;
use loyalty_tests::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

struct Setup {
    h: Harness,
    deps: Dependencies,
    queue: String,
    sqs: aws_sdk_sqs::Client,
    table: String,
}

async fn setup() -> Setup {
    let h = harness().await;
    let table = clone_table(&h, "export").await;
    let deps = Dependencies {
        store: Store::new(h.deps.store.client.clone(), table.clone()),
        ..h.deps.clone()
    };
    let sqs = aws_sdk_sqs::Client::new(&h.sdk_config);
    let queue =
        sqs.create_queue().queue_name(unique("export")).send().await.unwrap().queue_url.unwrap();
    Setup { h, deps, queue, sqs, table }
}

impl Setup {
    /// The function on the test's table and queue; small scan pages and two pages a part,
    /// so that every segment is read in several parts (each handing over to the next).
    fn app(&self, personal_data_exporters: &[&str]) -> migration::App {
        migration::App {
            deps: self.deps.clone(),
            s3: migration::s3_client(&self.h.sdk_config),
            sqs: self.sqs.clone(),
            queue: self.queue.clone(),
            contacts: contact_key(),
            export: migration::ExportSettings {
                page_limit: Some(25),
                pages_per_part: 2,
                ..export_settings(personal_data_exporters)
            },
        }
    }

    /// Runs the queue to empty through the function's message handler, as the event source
    /// mapping would; answers every body handled.
    async fn drain(&self, app: &migration::App) -> Vec<String> {
        let mut bodies = Vec::new();
        let deadline = SystemTime::now() + std::time::Duration::from_secs(110);
        loop {
            let got = receive_batch(&self.sqs, &self.queue).await;
            if got.is_empty() {
                return bodies;
            }
            for m in got {
                let body = m.body().unwrap().to_string();
                migration::on_message(app, &body, deadline).await.expect("a message");
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                bodies.push(body);
            }
        }
    }

    /// Imports `n` members (two lots each, 100 + i and 50 points) through the import.
    async fn import(&self, app: &migration::App, prefix: &str, n: usize) {
        let today = loyalty::calendar::program_date(self.deps.rules.time_zone, Utc::now());
        let day = |d: i64| (today + Duration::days(d)).to_string();
        let mut body = String::new();
        for i in 0..n {
            let line = json!({"id": format!("{prefix}-{i}"), "email": format!("{prefix}-{i}@example.com"),
                "name": "导出 会员", "birthday": "1990-05-18", "joinedAt": day(-400),
                "lots": [{"points": 100 + i, "earnedOn": day(-30)}, {"points": 50, "earnedOn": day(-10)}],
                "lifetimeSpend": 10_000 * i as i64, "marketingConsent": i % 2 == 0});
            body.push_str(&line.to_string());
            body.push('\n');
        }
        let key = format!("imports/{prefix}.jsonl");
        let bucket = app.export.bucket.clone();
        app.s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
        let upload = migration::import::Upload {
            bucket,
            key,
            etag: "e".into(),
            version: String::new(),
            event_time: Utc::now().to_rfc3339(),
        };
        let id = migration::import::on_object(app, &upload).await.unwrap().unwrap();
        self.drain(app).await;
        let job = self.deps.store.import_job(&id).await.unwrap().unwrap();
        assert_eq!((job.imported, job.rejected), (n as u64, 0));
    }

    /// What the table holds, by a plain Scan of the raw items (not the export's reading):
    /// (lines, points) of members (Σ wallet balance), ledger entries (Σ points), coupons.
    async fn truth(&self) -> BTreeMap<&'static str, (u64, i64)> {
        let mut out =
            BTreeMap::from([("members", (0, 0)), ("ledger", (0, 0)), ("coupons", (0, 0))]);
        let mut start = None;
        loop {
            let page = self
                .deps
                .store
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items() {
                let n = |v: Option<&aws_sdk_dynamodb::types::AttributeValue>| {
                    v.and_then(|v| v.as_n().ok()).map_or(0, |n| n.parse::<i64>().unwrap())
                };
                // A ledger item holds its change's entries: the item's own and `earlier` ones.
                let earlier = item.get("earlier").and_then(|l| l.as_l().ok());
                let earlier = earlier.map_or(&[][..], Vec::as_slice);
                let (kind, lines, points) =
                    match item.get("entity").and_then(|e| e.as_s().ok()).map(String::as_str) {
                        Some("member") => {
                            ("members", 1, n(item["wallet"].as_m().unwrap().get("balance")))
                        }
                        Some("ledger") => (
                            "ledger",
                            1 + earlier.len() as u64,
                            n(item.get("points"))
                                + earlier
                                    .iter()
                                    .map(|e| n(e.as_m().unwrap().get("points")))
                                    .sum::<i64>(),
                        ),
                        Some("coupon") => ("coupons", 1, 0),
                        _ => continue,
                    };
                let e = out.get_mut(kind).unwrap();
                e.0 += lines;
                e.1 += points;
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return out;
            }
        }
    }

    async fn call(&self, app: &migration::App, req: lambda_http::Request) -> (u16, Value, String) {
        answer(migration::api::handle(app, req).await)
    }

    async fn start(
        &self,
        app: &migration::App,
        key: Option<&str>,
        body: Value,
        who: As,
    ) -> (u16, Value, String) {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        let req = request_with_headers("POST", "/exports", Some(&body.to_string()), who, &headers);
        self.call(app, req).await
    }

    async fn show(&self, app: &migration::App, id: &str) -> Value {
        let (s, b, _) =
            self.call(app, request("GET", &format!("/exports/{id}"), None, As::Operator)).await;
        assert_eq!(s, 200, "{b}");
        b
    }

    async fn object(&self, app: &migration::App, bucket: &str, key: &str) -> String {
        let out = app
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
    }

    /// Every line of every object of an export, by kind (the key's first word).
    async fn lines(&self, app: &migration::App, view: &Value) -> BTreeMap<String, Vec<Value>> {
        let bucket = view["bucket"].as_str().unwrap();
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for key in view["objects"].as_array().unwrap() {
            let key = key.as_str().unwrap();
            let kind = key.rsplit('/').next().unwrap().split('-').next().unwrap().to_string();
            let text = self.object(app, bucket, key).await;
            let lines = out.entry(kind).or_default();
            lines.extend(text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
        }
        out
    }
}

fn sums(lines: &BTreeMap<String, Vec<Value>>, kind: &str) -> (u64, i64) {
    let l = lines.get(kind).map(Vec::as_slice).unwrap_or_default();
    (l.len() as u64, l.iter().map(|v| v["points"].as_i64().unwrap_or(0)).sum())
}

fn counted(view: &Value, kind: &str) -> (u64, i64) {
    (
        view["counts"][kind]["lines"].as_u64().unwrap(),
        view["counts"][kind]["points"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn an_export_of_the_imported_table_counts_what_the_table_holds_and_redelivery_counts_nothing_twice(
) {
    let t = setup().await;
    let app = t.app(&[]);
    let p = unique("exp");
    t.import(&app, &p, 300).await;
    // A few members who joined here: the welcome points (a ledger entry) and coupon each.
    let signup = signup_on(&t.deps);
    for i in 0..5 {
        let id = format!("{p}-joined-{i}");
        let who = As::MemberWithClaims(
            id.clone(),
            verified_claims(Some(&format!("{id}@example.com")), None),
        );
        let body = json!({"name": "Joined Here", "marketingConsent": true}).to_string();
        let (s, b, _) =
            answer(signup::handle(&signup, request("POST", "/members", Some(&body), who)).await);
        assert_eq!(s, 201, "{b}");
    }
    let truth = t.truth().await;
    assert_eq!(truth["members"].0, 305);
    assert_eq!(truth["ledger"].0, 605);
    assert_eq!(truth["coupons"].0, 5);
    assert_eq!(truth["members"].1, truth["ledger"].1, "imported and joined: points == Σ ledger");

    let key = unique("export-key");
    let ask = json!({"what": ["members", "ledger", "coupons"], "segments": 4});
    let (s, started, _) = t.start(&app, Some(&key), ask.clone(), As::Operator).await;
    assert_eq!(s, 202, "{started}");
    assert_eq!(started["state"], "running");
    let id = started["exportId"].as_str().unwrap().to_string();
    assert!(started["prefix"].as_str().unwrap().starts_with("exports/"));
    // The request retried: the same export, its segments queued again (duplicates of part 0).
    let (s, again, _) = t.start(&app, Some(&key), ask.clone(), As::Operator).await;
    assert_eq!((s, again["exportId"].as_str()), (202, Some(id.as_str())));
    let (s, b, ct) = t.start(&app, Some(&key), json!({"segments": 2}), As::Operator).await;
    assert_problem(s, &b, &ct, 409, "idempotency_key_reused");

    let handled = t.drain(&app).await;
    let view = t.show(&app, &id).await;
    assert_eq!(view["state"], "done", "{view}");
    assert_eq!(view["segmentsDone"], 4);
    let parts: usize = view["objects"].as_array().unwrap().len() / 3;
    assert!(
        parts >= 3 * 4,
        "every segment read in several parts, each handing over: {parts} parts"
    );
    for kind in ["members", "ledger", "coupons"] {
        assert_eq!(counted(&view, kind), truth[kind], "{kind}: the export counts the table");
    }
    let lines = t.lines(&app, &view).await;
    for kind in ["members", "ledger", "coupons"] {
        assert_eq!(sums(&lines, kind), truth[kind], "{kind}: the files hold the table");
    }
    let ids: HashSet<&str> = lines["members"].iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 305, "every member once");
    for m in &lines["members"] {
        for field in ["email", "phone", "name", "birthday"] {
            assert!(m.get(field).is_none(), "no personal data by default: {m}");
        }
    }
    let imported = lines["members"].iter().find(|m| m["id"] == format!("{p}-7")).unwrap();
    assert_eq!(
        (imported["points"].as_i64(), imported["tier"].as_str()),
        (Some(157), Some("regular"))
    );
    assert!(imported["importId"].is_string());
    let manifest: Value = serde_json::from_str(
        &t.object(&app, view["bucket"].as_str().unwrap(), view["manifestKey"].as_str().unwrap())
            .await,
    )
    .unwrap();
    assert_eq!((&manifest["counts"], &manifest["objects"]), (&view["counts"], &view["objects"]));

    // Every message delivered again, and one part twice at once: nothing counts twice.
    let first_part = handled.iter().find(|b| b.contains("\"part\":0")).unwrap();
    let deadline = SystemTime::now() + std::time::Duration::from_secs(110);
    let (a, b) = tokio::join!(
        migration::on_message(&app, first_part, deadline),
        migration::on_message(&app, first_part, deadline)
    );
    a.unwrap();
    b.unwrap();
    for body in &handled {
        migration::on_message(&app, body, deadline).await.unwrap();
    }
    t.drain(&app).await;
    let after = t.show(&app, &id).await;
    assert_eq!((&after["counts"], &after["objects"]), (&view["counts"], &view["objects"]));
    assert_eq!(sums(&t.lines(&app, &after).await, "members"), truth["members"]);
    t.h.deps.store.client.delete_table().table_name(&t.table).send().await.unwrap();
}

#[tokio::test]
async fn personal_data_only_when_asked_and_allowed_and_bad_requests_write_nothing() {
    let t = setup().await;
    let denied = t.app(&[]);
    let p = unique("pii");
    t.import(&denied, &p, 20).await;

    // Refused: an operator not named in PersonalDataExporters, a member, the order system.
    let key = unique("pii-key");
    let ask = json!({"what": ["members"], "segments": 2, "personalData": true});
    let (s, b, ct) = t.start(&denied, Some(&key), ask.clone(), As::Operator).await;
    assert_problem(s, &b, &ct, 403, "forbidden");
    for who in [As::Member(format!("{p}-1")), As::OrderSystem, As::OtherIam] {
        let (s, b, ct) = t.start(&denied, None, json!({}), who.clone()).await;
        assert_problem(s, &b, &ct, 403, "forbidden");
        let (s, b, ct) = t.call(&denied, request("GET", "/exports/x-00", None, who)).await;
        assert_problem(s, &b, &ct, 403, "forbidden");
    }
    let bad = [
        (json!({"segments": 0}), 422, "invalid_segments"),
        (json!({"segments": 65}), 422, "invalid_segments"),
        (json!({"what": []}), 422, "nothing_to_export"),
        (json!({"what": ["orders"]}), 400, "invalid_field"),
        (json!({"what": ["members"], "format": "csv"}), 400, "unknown_field"),
    ];
    for (body, status, code) in bad {
        let (s, b, ct) = t.start(&denied, None, body, As::Operator).await;
        assert_problem(s, &b, &ct, status, code);
    }
    let (s, b, ct) =
        t.call(&denied, request("GET", "/exports/x-0000000000000000", None, As::Operator)).await;
    assert_problem(s, &b, &ct, 404, "export_not_found");
    let (s, b, ct) = t.call(&denied, request("GET", "/exports/bad!id", None, As::Operator)).await;
    assert_problem(s, &b, &ct, 400, "invalid_export_id");
    // Nothing written: no export under the refused request's id, no message queued.
    let refused = migration::export::new_export_id(Some(&key));
    assert!(t.deps.store.export_job(&refused).await.unwrap().is_none());
    assert!(receive_batch(&t.sqs, &t.queue).await.is_empty(), "nothing queued");

    // Allowed: the operators' role named in PersonalDataExporters.
    let allowed = t.app(&[OPERATOR_ROLE]);
    let (s, started, _) = t.start(&allowed, Some(&key), ask, As::Operator).await;
    assert_eq!(s, 202, "{started}");
    assert!(started["prefix"].as_str().unwrap().starts_with("personal-exports/"), "{started}");
    t.drain(&allowed).await;
    let view = t.show(&allowed, started["exportId"].as_str().unwrap()).await;
    assert_eq!(
        (view["state"].as_str(), view["personalData"].as_bool()),
        (Some("done"), Some(true))
    );
    assert_eq!(view["counts"].as_object().unwrap().len(), 1, "members only: {view}");
    let lines = t.lines(&allowed, &view).await;
    assert_eq!(lines.keys().collect::<Vec<_>>(), vec!["members"]);
    assert_eq!(sums(&lines, "members"), t.truth().await["members"]);
    let m = lines["members"].iter().find(|m| m["id"] == format!("{p}-3")).unwrap();
    assert_eq!(m["email"], format!("{p}-3@example.com"));
    assert_eq!(
        (m["name"].as_str(), m["birthday"].as_str()),
        (Some("导出 会员"), Some("1990-05-18"))
    );
    t.h.deps.store.client.delete_table().table_name(&t.table).send().await.unwrap();
}
