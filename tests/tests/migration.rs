//! Member imports through the migration function against the local stack (DynamoDB Local,
//! moto's S3 and SQS): every bad line its own code and line number, the same file again
//! unchanged with no member written, corrections only while untouched, and a crash half way
//! (chunks redelivered, one of them after its members were written but before it was
//! counted) importing nothing twice.

use chrono::{Duration, Utc};
use loyalty::ledger::EntryKind;
use loyalty::migration::{Reject, RejectCode};
use loyalty::store::migration::ImportJob;
use loyalty_tests::{harness, receive_batch, unique, Harness};
use migration::import::{self, ChunkMessage};
use serde_json::{json, Value};

struct Import {
    app: migration::App,
    bucket: String,
}

/// The function over this harness's store, with a queue of its own (tests run in parallel and
/// must not take each other's chunks).
async fn app(h: &Harness) -> Import {
    let sqs = aws_sdk_sqs::Client::new(&h.sdk_config);
    let queue = sqs
        .create_queue()
        .queue_name(unique("import-test"))
        .send()
        .await
        .expect("create a queue")
        .queue_url
        .expect("a queue url");
    let bucket = std::env::var("MIGRATION_BUCKET").expect("MIGRATION_BUCKET (scripts/stack)");
    Import {
        app: migration::App {
            deps: h.deps.clone(),
            s3: migration::s3_client(&h.sdk_config),
            sqs,
            queue,
            contacts: loyalty_tests::contact_key(),
            export: loyalty_tests::export_settings(&[]),
        },
        bucket,
    }
}

impl Import {
    /// Uploads `body` and delivers the bucket's notification (as S3 writes it, key
    /// form-encoded), without draining the chunks. Answers the import and the notification.
    async fn upload(&self, key: &str, body: &[u8]) -> (String, String) {
        self.app
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.to_vec().into())
            .send()
            .await
            .expect("put");
        let note = json!({"Records": [{"eventName": "ObjectCreated:Put", "eventTime": Utc::now().to_rfc3339(),
            "s3": {"bucket": {"name": self.bucket}, "object": {"key": key.replace('/', "%2F"), "eTag": "e", "size": body.len()}}}]});
        import::on_message(&self.app, &note.to_string()).await.expect("the notification");
        let job =
            self.app.deps.store.latest_import(key).await.unwrap().expect("an import of the key");
        (job.import_id, note.to_string())
    }

    async fn chunk_messages(&self) -> Vec<(String, ChunkMessage)> {
        let mut out = Vec::new();
        loop {
            let got = receive_batch(&self.app.sqs, &self.app.queue).await;
            if got.is_empty() {
                return out;
            }
            for m in got {
                let msg: ChunkMessage = serde_json::from_str(m.body().unwrap()).unwrap();
                out.push((m.receipt_handle().unwrap().to_string(), msg));
            }
        }
    }

    async fn delete(&self, handle: &str) {
        self.app
            .sqs
            .delete_message()
            .queue_url(&self.app.queue)
            .receipt_handle(handle)
            .send()
            .await
            .unwrap();
    }

    /// Runs the chunks to empty as the event source mapping would.
    async fn drain(&self) {
        for (handle, msg) in self.chunk_messages().await {
            import::on_chunk(&self.app, &msg).await.expect("a chunk");
            self.delete(&handle).await;
        }
    }

    async fn run(&self, key: &str, body: &[u8]) -> ImportJob {
        let (id, _) = self.upload(key, body).await;
        self.drain().await;
        self.app.deps.store.import_job(&id).await.unwrap().unwrap()
    }

    async fn rejects(&self, key: &str) -> Vec<Reject> {
        let out = self
            .app
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(loyalty::migration::rejects_key(key))
            .send()
            .await
            .expect("the rejects file");
        let bytes = out.body.collect().await.unwrap().into_bytes();
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A program day (the rules' time zone, as the import judges "future" and "expired").
fn day(offset: i64) -> String {
    let today = loyalty::calendar::program_date(loyalty::Rules::default().time_zone, Utc::now());
    (today + Duration::days(offset)).to_string()
}

/// A good line: a gold member with two lots and some spend.
fn good(id: &str) -> Value {
    json!({"id": id, "email": format!("{id}@example.com"), "name": "迁移 会员", "birthday": "1990-05-18",
        "joinedAt": day(-400), "tier": "gold", "tierReachedAt": day(-100),
        "lots": [{"points": 500, "earnedOn": day(-30)}, {"points": 250, "earnedOn": day(-10)}],
        "lifetimeSpend": 2_500_000, "spend": [{"on": day(-100), "amount": 1_200_000}],
        "marketingConsent": true, "consentAt": day(-300)})
}

fn with(mut v: Value, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    f(v.as_object_mut().unwrap());
    v.to_string()
}

fn jsonl(lines: &[String]) -> Vec<u8> {
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    out
}

/// Each imported member: balance = Σ ledger, one import entry per lot, the tier as given.
async fn check_member(h: &Harness, id: &str, lots: usize, points: i64) {
    let m = h.deps.store.member(id).await.unwrap().unwrap_or_else(|| panic!("{id} imported"));
    let ledger = h.deps.store.ledger_all(id).await.unwrap();
    assert!(
        ledger.iter().all(|e| e.kind == EntryKind::Import),
        "{id}: only import entries (no welcome points)"
    );
    assert_eq!(ledger.len(), lots, "{id}: one entry per lot");
    assert_eq!(
        ledger.iter().map(|e| e.points.0).sum::<i64>(),
        m.wallet.balance.0,
        "{id}: points == Σ ledger"
    );
    assert_eq!(m.wallet.balance.0, points);
    assert!(m.wallet.is_consistent());
    let coupons: Vec<Value> = h.deps.store.member_items(id, "COUPON#").await.unwrap();
    assert!(coupons.is_empty(), "{id}: no welcome coupon");
}

#[tokio::test]
async fn every_bad_line_is_rejected_with_its_code_and_line_and_every_good_line_imported() {
    let h = harness().await;
    let t = app(&h).await;
    let p = unique("mig");
    // Members already here: one who joined here, one imported before with the contacts the
    // file repeats.
    let joined_here = format!("{p}-here");
    loyalty_tests::seed_members(
        &h,
        &[loyalty_tests::plain_member(&joined_here, loyalty::TierCode::Regular, Utc::now())],
        Utc::now(),
    )
    .await;
    let first = format!("{p}-first");
    // A phone of this run only (the stack outlives a run, and phones are unique among members).
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64 ^ std::process::id() as u64;
    let phone = format!("+86137{:08}", nanos % 100_000_000);
    let before = with(good(&first), |o| {
        o.insert("phone".into(), json!(phone));
    });
    let job = t.run(&format!("imports/{p}-before.jsonl"), &jsonl(&[before])).await;
    assert_eq!((job.imported, job.rejected), (1, 0));

    let id = |n: &str| format!("{p}-{n}");
    let mut lines: Vec<(String, Option<RejectCode>)> = vec![
        (good(&id("g1")).to_string(), None),
        ("{\"id\": \"x\",".into(), Some(RejectCode::BrokenJson)),
        ("[1, 2]".into(), Some(RejectCode::NotAnObject)),
        (
            with(good(&id("b3")), |o| {
                o.remove("id");
            }),
            Some(RejectCode::MissingId),
        ),
        (
            with(good(&id("b4")), |o| {
                o.insert("id".into(), json!("has space"));
            }),
            Some(RejectCode::InvalidId),
        ),
        (
            with(good(&id("b5")), |o| {
                o.insert("level".into(), json!(3));
            }),
            Some(RejectCode::UnknownField),
        ),
        (
            with(good(&id("b6")), |o| {
                o.insert("lifetimeSpend".into(), json!("lots"));
            }),
            Some(RejectCode::InvalidField),
        ),
        (
            with(good(&id("b7")), |o| {
                o.insert("name".into(), json!(" "));
            }),
            Some(RejectCode::InvalidName),
        ),
        (
            with(good(&id("b8")), |o| {
                o.remove("email");
            }),
            Some(RejectCode::ContactRequired),
        ),
        (
            with(good(&id("b9")), |o| {
                o.insert("email".into(), json!("nope@"));
            }),
            Some(RejectCode::InvalidEmail),
        ),
        (
            with(good(&id("b10")), |o| {
                o.insert("phone".into(), json!("12345"));
            }),
            Some(RejectCode::InvalidPhone),
        ),
        (
            with(good(&id("b11")), |o| {
                o.insert("birthday".into(), json!("1990-02-30"));
            }),
            Some(RejectCode::InvalidBirthday),
        ),
        (
            with(good(&id("b12")), |o| {
                o.insert("joinedAt".into(), json!("yesterday"));
            }),
            Some(RejectCode::InvalidJoinedAt),
        ),
        (
            with(good(&id("b13")), |o| {
                o.insert("joinedAt".into(), json!(day(3)));
            }),
            Some(RejectCode::JoinedInFuture),
        ),
        (
            with(good(&id("b14")), |o| {
                o.insert("tier".into(), json!("platinum"));
            }),
            Some(RejectCode::UnknownTier),
        ),
        (
            with(good(&id("b15")), |o| {
                o.remove("tierReachedAt");
            }),
            Some(RejectCode::InvalidTierDate),
        ),
        (
            with(good(&id("b16")), |o| {
                o.insert("tierReachedAt".into(), json!(day(2)));
            }),
            Some(RejectCode::TierDateInFuture),
        ),
        (
            with(good(&id("b17")), |o| {
                o.insert("tierReachedAt".into(), json!(day(-500)));
            }),
            Some(RejectCode::TierDateBeforeJoin),
        ),
        (
            with(good(&id("b18")), |o| {
                o.insert("lots".into(), json!([{"points": -5, "earnedOn": day(-3)}]));
            }),
            Some(RejectCode::InvalidPoints),
        ),
        (
            with(good(&id("b19")), |o| {
                o.insert("lots".into(), json!([{"points": 5, "earnedOn": day(1)}]));
            }),
            Some(RejectCode::LotInFuture),
        ),
        (
            with(good(&id("b20")), |o| {
                o.insert("lots".into(), json!([{"points": 5, "earnedOn": day(-400)}]));
            }),
            Some(RejectCode::LotExpired),
        ),
        (
            with(good(&id("b21")), |o| {
                o.insert(
                    "lots".into(),
                    json!((0..51)
                        .map(|_| json!({"points": 1, "earnedOn": day(-1)}))
                        .collect::<Vec<_>>()),
                );
            }),
            Some(RejectCode::TooManyLots),
        ),
        (
            with(good(&id("b22")), |o| {
                o.insert("spend".into(), json!([{"on": day(-1), "amount": -1}]));
            }),
            Some(RejectCode::InvalidSpend),
        ),
        (
            with(good(&id("b23")), |o| {
                o.insert("name".into(), json!("x".repeat(20_000)));
            }),
            Some(RejectCode::OversizeLine),
        ),
        (
            with(good(&id("b24")), |o| {
                o.insert("email".into(), json!(format!("{first}@example.com")));
            }),
            Some(RejectCode::DuplicateEmail),
        ),
        (
            with(good(&id("b25")), |o| {
                o.insert("phone".into(), json!(phone));
                o.insert("email".into(), json!(format!("{p}-b25@example.com")));
            }),
            Some(RejectCode::DuplicatePhone),
        ),
        (
            with(good(&id("g1")), |o| {
                o.insert("email".into(), json!(format!("{p}-other@example.com")));
            }),
            Some(RejectCode::DuplicateId),
        ),
        (
            with(good(&joined_here), |o| {
                o.insert("email".into(), json!(format!("{p}-here@example.com")));
            }),
            Some(RejectCode::MemberExists),
        ),
        (
            with(good(&id("b28")), |o| {
                o.insert("lastPurchaseAt".into(), json!(day(5)));
            }),
            Some(RejectCode::InvalidLastPurchase),
        ),
        (
            with(good(&id("b29")), |o| {
                o.insert("consentAt".into(), json!(day(5)));
            }),
            Some(RejectCode::InvalidConsentDate),
        ),
        (
            with(good(&id("b30")), |o| {
                o.insert("spend".into(), json!([{"on": day(4), "amount": 10}]));
            }),
            Some(RejectCode::SpendInFuture),
        ),
        (
            with(good(&id("b31")), |o| {
                o.insert("lots".into(), json!([{"points": 5, "earnedOn": "2026/01/01"}]));
            }),
            Some(RejectCode::InvalidLotDate),
        ),
    ];
    // Good lines between the bad ones, and a blank line (numbered, not counted).
    for n in 0..10 {
        lines.insert(3 + n * 3, (good(&id(&format!("g{}", n + 2))).to_string(), None));
    }
    lines.insert(5, (String::new(), None));
    let key = format!("imports/{p}.jsonl");
    let body = jsonl(&lines.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>());
    let job = t.run(&key, &body).await;

    let expected: Vec<(u64, RejectCode)> =
        lines.iter().enumerate().filter_map(|(n, (_, c))| c.map(|c| (n as u64 + 1, c))).collect();
    let kinds: std::collections::HashSet<RejectCode> = expected.iter().map(|(_, c)| *c).collect();
    assert!(kinds.len() >= 20, "{} kinds of bad lines", kinds.len());
    let rejects = t.rejects(&key).await;
    let got: Vec<(u64, RejectCode)> = rejects.iter().map(|r| (r.line, r.code)).collect();
    assert_eq!(got, expected, "each bad line with its own code and line number");
    assert!(rejects.iter().all(|r| !r.message.is_empty()));
    let good_lines = lines.iter().filter(|(l, c)| c.is_none() && !l.is_empty()).count() as u64;
    assert_eq!(
        (job.lines, job.imported, job.updated, job.unchanged, job.rejected),
        (good_lines + expected.len() as u64, good_lines, 0, 0, expected.len() as u64)
    );
    for n in 1..=11 {
        check_member(&h, &id(&format!("g{n}")), 2, 750).await;
    }
    let m = h.deps.store.member(&id("g1")).await.unwrap().unwrap();
    assert_eq!(m.tier, loyalty::TierCode::Gold);
    assert_eq!(
        loyalty::calendar::program_date(h.deps.rules.time_zone, m.tier_since).to_string(),
        day(-100),
        "protection runs from the date reached"
    );
    assert_eq!(
        m.email.as_deref(),
        Some(format!("{}@example.com", id("g1")).as_str()),
        "the first line of a repeated id wins"
    );
    for (n, (_, c)) in lines.iter().enumerate() {
        if c.is_some() && ![RejectCode::DuplicateId, RejectCode::MemberExists].contains(&c.unwrap())
        {
            if let Ok(v) = serde_json::from_str::<Value>(&lines[n].0) {
                if let Some(rid) = v.get("id").and_then(Value::as_str) {
                    assert!(
                        h.deps.store.member(rid).await.unwrap().is_none(),
                        "line {}: nothing written",
                        n + 1
                    );
                }
            }
        }
    }
    let here = h.deps.store.member(&joined_here).await.unwrap().unwrap();
    assert!(
        here.imported.is_none() && here.version == 0,
        "a member who joined here is not overwritten"
    );
}

#[tokio::test]
async fn the_same_file_again_changes_nothing_and_a_correction_applies_only_while_untouched() {
    let h = harness().await;
    let t = app(&h).await;
    let p = unique("again");
    let ids: Vec<String> = (0..300).map(|n| format!("{p}-{n}")).collect();
    let body = jsonl(&ids.iter().map(|i| good(i).to_string()).collect::<Vec<_>>());
    let key = format!("imports/{p}.jsonl");
    let first = t.run(&key, &body).await;
    assert_eq!((first.imported, first.chunks), (300, 2));

    h.counter.reset();
    let again = t.run(&key, &body).await;
    assert_ne!(again.import_id, first.import_id, "another upload is another import");
    assert_eq!(
        (again.lines, again.imported, again.updated, again.unchanged, again.rejected),
        (300, 0, 0, 300, 0)
    );
    // The import's own items only: its record and one counted chunk each; no member write.
    assert_eq!(h.counter.snapshot().get("TransactWriteItems").copied().unwrap_or(0), 1 + 2);
    assert_eq!(h.counter.snapshot().get("PutItem").copied().unwrap_or(0), 0);
    for id in ids.iter().step_by(37) {
        let m = h.deps.store.member(id).await.unwrap().unwrap();
        assert_eq!(m.version, 1, "{id}: written once");
        assert_eq!(m.imported.as_ref().unwrap().job, first.import_id);
    }

    // The same members as CSV: the same meaning, unchanged.
    let mut csv = String::from("id,email,name,birthday,joinedAt,tier,tierReachedAt,lots,lifetimeSpend,spend,marketingConsent,consentAt\n");
    for i in ids.iter().take(5) {
        csv.push_str(&format!("{i},{i}@example.com,迁移 会员,1990-05-18,{},gold,{},500@{};250@{},2500000,1200000@{},true,{}\n", day(-400), day(-100), day(-30), day(-10), day(-100), day(-300)));
    }
    let csv_job = t.run(&format!("imports/{p}.csv"), csv.as_bytes()).await;
    assert_eq!(
        (csv_job.unchanged, csv_job.rejected),
        (5, 0),
        "{:?}",
        t.rejects(&format!("imports/{p}.csv")).await
    );

    // A corrected line: applied to an untouched member (the ledger gets the difference), not
    // to one with activity since the import.
    let touched = &ids[1];
    let changed = h
        .deps
        .store
        .change_birthday(
            touched,
            &loyalty::birthday::BirthdayChange {
                birthday: "1991-01-02".parse().unwrap(),
                reason: "support".into(),
            },
            "arn:ops",
            &h.deps.rules,
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(matches!(changed, loyalty::store::member::BirthdayChanged::Done(_, true)));
    let fix = |id: &str| {
        with(good(id), |o| {
            o.insert("lots".into(), json!([{"points": 900, "earnedOn": day(-30)}]));
        })
    };
    let fixed_key = format!("imports/{p}-fix.jsonl");
    let fixed = t.run(&fixed_key, &jsonl(&[fix(&ids[0]), fix(touched)])).await;
    assert_eq!((fixed.updated, fixed.rejected), (1, 1));
    assert_eq!(
        t.rejects(&fixed_key).await.iter().map(|r| (r.line, r.code)).collect::<Vec<_>>(),
        vec![(2, RejectCode::ChangedSinceImport)]
    );
    let m = h.deps.store.member(&ids[0]).await.unwrap().unwrap();
    let ledger = h.deps.store.ledger_all(&ids[0]).await.unwrap();
    assert_eq!((m.wallet.balance.0, ledger.len()), (900, 3));
    assert_eq!(ledger.iter().map(|e| e.points.0).sum::<i64>(), 900);
    check_member(&h, touched, 2, 750).await;
}

#[tokio::test]
async fn a_crash_half_way_imports_nothing_twice() {
    let h = harness().await;
    let t = app(&h).await;
    let p = unique("crash");
    let ids: Vec<String> = (0..600).map(|n| format!("{p}-{n}")).collect();
    let body = jsonl(&ids.iter().map(|i| good(i).to_string()).collect::<Vec<_>>());
    let key = format!("imports/{p}.jsonl");
    let (import_id, note) = t.upload(&key, &body).await;
    // The notification delivered again: the same import, its chunks queued again.
    import::on_message(&t.app, &note).await.unwrap();
    let mut chunks = t.chunk_messages().await;
    assert_eq!(chunks.len(), 6);
    assert!(chunks.iter().all(|(_, c)| c.import_id == import_id));
    chunks.sort_by_key(|(_, c)| c.chunk.index);
    chunks.dedup_by_key(|(_, c)| c.chunk.index);

    // Chunk 0: its members written, then the worker dies before counting it.
    let (counts, _) = import::work_chunk(&t.app, &chunks[0].1).await.unwrap();
    assert_eq!(counts.imported, 250);
    // Chunk 1: delivered twice at once.
    let (a, b) = tokio::join!(
        import::on_chunk(&t.app, &chunks[1].1),
        import::on_chunk(&t.app, &chunks[1].1)
    );
    a.unwrap();
    b.unwrap();
    let half = h.deps.store.import_job(&import_id).await.unwrap().unwrap();
    assert_eq!((half.chunks_done, half.imported), (1, 250));
    // Everything redelivered after the visibility timeout (chunk 0 again, chunk 1 a third
    // time, chunk 2 for the first time).
    for (_, msg) in &chunks {
        import::on_chunk(&t.app, msg).await.unwrap();
    }
    let job = h.deps.store.import_job(&import_id).await.unwrap().unwrap();
    assert_eq!(
        (job.lines, job.imported, job.unchanged, job.rejected, job.chunks_done),
        (600, 600, 0, 0, 3)
    );
    let members = h.deps.store.members_by_id(&ids).await.unwrap();
    assert_eq!(members.len(), 600);
    assert!(members.values().all(|m| m.version == 1), "each member written once");
    for id in ids.iter().step_by(23) {
        check_member(&h, id, 2, 750).await;
    }
    assert!(t.rejects(&key).await.is_empty());
}

#[tokio::test]
async fn a_csv_whose_header_is_wrong_imports_nothing_and_says_why_on_line_one() {
    let h = harness().await;
    let t = app(&h).await;
    let p = unique("header");
    let row = |id: &str| format!("{id},{id}@example.com,gold,{}\n", day(-400));
    let cases = [
        ("unknown", "id,emial,tier,joinedAt\n", "emial"),
        ("twice", "id,email,email,joinedAt\n", "twice"),
        ("no-id", "email,tier,joinedAt\n", "no id column"),
    ];
    for (name, header, says) in cases {
        let key = format!("imports/{p}-{name}.csv");
        let id = format!("{p}-{name}");
        let body = format!("{header}{}", row(&id));
        let job = t.run(&key, body.as_bytes()).await;
        let error = job.error.clone().unwrap_or_default();
        assert!(error.starts_with("line 1: ") && error.contains(says), "{name}: {error}");
        assert_eq!((job.lines, job.chunks, job.imported, job.rejected), (0, 0, 0, 0), "{name}");
        assert!(h.deps.store.member(&id).await.unwrap().is_none(), "{name}: nobody imported");
        // The file-wide reason is a rejects line of its own code (no member line's code).
        let out = t
            .app
            .s3
            .get_object()
            .bucket(&t.bucket)
            .key(loyalty::migration::rejects_key(&key))
            .send()
            .await
            .expect("the rejects file");
        let text = out.body.collect().await.unwrap().into_bytes();
        let lines: Vec<Value> = String::from_utf8(text.to_vec())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {lines:?}");
        assert_eq!(
            (lines[0]["line"].as_u64(), lines[0]["code"].as_str()),
            (Some(1), Some("unreadable_file"))
        );
    }
}
