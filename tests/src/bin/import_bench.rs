//! The member import at scale (scripts/bench, "Member import"): the file `BENCH_IMPORT_FILE`
//! (scripts/bench.d/gen_members.py) uploaded to the local bucket and imported by the real
//! migration function in process, its chunks worked `BENCH_IMPORT_WORKERS` at a time (the
//! event source's MaximumConcurrency); then the same file again. Counts every DynamoDB request
//! and the write units by DynamoDB's rule, checks every member's balance against its ledger
//! (one Scan of the table), and prints a Markdown section on stdout.

use futures::StreamExt;
use loyalty_tests::{harness, receive_batch, unique};
use migration::import::{self, ChunkMessage, Upload};
use std::collections::HashMap;
use std::time::Instant;

async fn run(app: &migration::App, bucket: &str, key: &str, workers: usize) -> (String, f64, u64) {
    let started = Instant::now();
    let upload = Upload {
        bucket: bucket.into(),
        key: key.into(),
        etag: unique("etag"),
        version: String::new(),
        event_time: chrono::Utc::now().to_rfc3339(),
    };
    let id =
        import::on_object(app, &upload).await.expect("the notification").expect("an import file");
    let mut messages: Vec<(String, ChunkMessage)> = Vec::new();
    loop {
        let got = receive_batch(&app.sqs, &app.queue).await;
        if got.is_empty() {
            break;
        }
        for m in got {
            messages.push((
                m.receipt_handle().unwrap().to_string(),
                serde_json::from_str(m.body().unwrap()).unwrap(),
            ));
        }
    }
    // A chunk that fails (DynamoDB Local's lock timeouts under load) is delivered again, as
    // SQS would after the visibility timeout; the chunk counts once either way.
    let redelivered = std::sync::atomic::AtomicU64::new(0);
    let redelivered = &redelivered;
    futures::stream::iter(messages)
        .for_each_concurrent(workers, |(handle, msg)| async move {
            let mut attempt = 0;
            while let Err(e) = import::on_chunk(app, &msg).await {
                attempt += 1;
                assert!(attempt < 5, "chunk {} failed {attempt} times: {e}", msg.chunk.index);
                eprintln!("import bench: chunk {} failed ({e}); delivered again", msg.chunk.index);
                redelivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            app.sqs
                .delete_message()
                .queue_url(&app.queue)
                .receipt_handle(handle)
                .send()
                .await
                .unwrap();
        })
        .await;
    let redelivered = redelivered.load(std::sync::atomic::Ordering::Relaxed);
    (id, started.elapsed().as_secs_f64(), redelivered)
}

#[tokio::main]
async fn main() {
    let file = std::env::var("BENCH_IMPORT_FILE").expect("BENCH_IMPORT_FILE");
    let workers: usize =
        std::env::var("BENCH_IMPORT_WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let h = harness().await;
    let sqs = aws_sdk_sqs::Client::new(&h.sdk_config);
    let queue = sqs
        .create_queue()
        .queue_name(unique("import-bench"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let app = migration::App {
        deps: h.deps.clone(),
        s3: migration::s3_client(&h.sdk_config),
        sqs,
        queue,
        contacts: loyalty_tests::contact_key(),
        export: loyalty_tests::export_settings(&[]),
    };
    let bucket = std::env::var("MIGRATION_BUCKET").expect("MIGRATION_BUCKET");
    let key = format!("imports/{}.jsonl", unique("bench"));
    let body = std::fs::read(&file).expect("the generated file");
    let bytes = body.len();
    app.s3.put_object().bucket(&bucket).key(&key).body(body.into()).send().await.unwrap();

    h.counter.reset();
    h.capacity.reset();
    let (first, secs, redelivered1) = run(&app, &bucket, &key, workers).await;
    let ops1 = h.counter.snapshot();
    let units1 = h.capacity.units();
    let job1 = h.deps.store.import_job(&first).await.unwrap().unwrap();

    h.counter.reset();
    h.capacity.reset();
    let (second, secs2, redelivered2) = run(&app, &bucket, &key, workers).await;
    let ops2 = h.counter.snapshot();
    let units2 = h.capacity.units();
    let job2 = h.deps.store.import_job(&second).await.unwrap().unwrap();

    // Every imported member against its ledger: one Scan of the members' partitions.
    let prefix = format!(
        "MEMBER#{}",
        std::env::var("BENCH_IMPORT_PREFIX").unwrap_or_else(|_| "bench-import-".into())
    );
    let mut balance: HashMap<String, i64> = HashMap::new();
    let mut ledger: HashMap<String, i64> = HashMap::new();
    let mut versions_not_one = 0u64;
    let mut start = None;
    loop {
        let page = h
            .deps
            .store
            .client
            .scan()
            .table_name(&h.deps.store.table)
            .filter_expression("begins_with(PK, :p)")
            .expression_attribute_values(
                ":p",
                aws_sdk_dynamodb::types::AttributeValue::S(prefix.clone()),
            )
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            let pk = item["PK"].as_s().unwrap().clone();
            match item.get("entity").and_then(|e| e.as_s().ok()).map(String::as_str) {
                Some("member") => {
                    let m: loyalty::store::member::MemberItem =
                        loyalty::store::from_item(item).unwrap();
                    if m.member.version != 1 {
                        versions_not_one += 1;
                    }
                    balance.insert(pk, m.member.wallet.balance.0);
                }
                Some("ledger") => {
                    let l: loyalty::store::ledger::LedgerItem =
                        loyalty::store::from_item(item).unwrap();
                    *ledger.entry(pk).or_default() +=
                        l.entries().iter().map(|(_, e)| e.points.0).sum::<i64>();
                }
                _ => {}
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let mismatched =
        balance.iter().filter(|(pk, b)| ledger.get(*pk).copied().unwrap_or(0) != **b).count();
    let n = job1.lines.max(1) as f64;
    let tx1 = ops1.get("TransactWriteItems").copied().unwrap_or(0);
    let tx2 = ops2.get("TransactWriteItems").copied().unwrap_or(0);
    let writes2: u64 = ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"]
        .iter()
        .map(|o| ops2.get(*o).copied().unwrap_or(0))
        .sum();

    println!("## Member import\n");
    println!("`scripts/bench.d/gen_members.py` generated {} members ({:.1} MB of JSON Lines); the migration function imported", job1.lines, bytes as f64 / 1e6);
    let build = if cfg!(debug_assertions) { "a debug build" } else { "a release build" };
    println!("them in process against DynamoDB Local and moto's S3 and SQS ({build}, on this machine: a regression signal,");
    println!("not a production figure), {workers} chunks at a time (the event source's MaximumConcurrency), 16 member transactions in flight each.\n");
    println!("| run | lines | imported | unchanged | rejected | seconds | members/s | TransactWriteItems | write units (rule) | read requests |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, j, s, ops, u, tx) in [
        ("first", &job1, secs, &ops1, units1, tx1),
        ("same file again", &job2, secs2, &ops2, units2, tx2),
    ] {
        let reads: u64 = ["GetItem", "BatchGetItem", "Query", "Scan"]
            .iter()
            .map(|o| ops.get(*o).copied().unwrap_or(0))
            .sum();
        println!(
            "| {name} | {} | {} | {} | {} | {s:.0} | {:.0} | {tx} | {:.0} | {reads} |",
            j.lines,
            j.imported,
            j.unchanged,
            j.rejected,
            j.lines as f64 / s,
            u.write
        );
    }
    println!();
    println!("Per member, first run: {:.3} TransactWriteItems ({} chunks add one each and the import one), {:.2} write units by DynamoDB's rule", tx1 as f64 / n, job1.chunks, units1.write / n);
    println!("(the member, its referral code, one uniqueness item per contact and one ledger entry per lot, each doubled in a transaction).");
    println!("Again: {tx2} TransactWriteItems for {} chunks (the import's record and one per chunk), {writes2} other writes: **zero writes to members**.", job2.chunks);
    if redelivered1 + redelivered2 > 0 {
        println!("{} chunk deliveries failed (DynamoDB Local's lock timeouts under load) and were delivered again, as SQS would.", redelivered1 + redelivered2);
    }
    println!("Checked after both runs by one Scan: {} members, {mismatched} whose balance differs from the sum of their ledger, {versions_not_one} written more than once.", balance.len());
    if mismatched > 0
        || versions_not_one > 0
        || job1.imported != job1.lines
        || job2.unchanged != job2.lines
    {
        eprintln!("import bench: the import is wrong (see above)");
        std::process::exit(1);
    }
}
