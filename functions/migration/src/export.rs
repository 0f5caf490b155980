//! The export: `POST /exports` records the export and queues one message per scan segment
//! (`start`); each message reads one part of its segment (`on_segment`: a few scan pages, or
//! fewer near the invocation's deadline), writes that part's lines of every kind asked for,
//! records the part and hands the rest of the segment to a message of its own; the last
//! segment done writes the manifest.

use crate::App;
use loyalty::migration::export::{
    self, count, part_key, part_keys, total, Counts, CouponLine, Kind, LedgerLine, MemberLine,
};
use loyalty::store::export::{records_of, Cursor, ExportJob, Record, SegmentProgress};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// A worker stops reading when the deadline is this near, leaving time to write the part's
/// objects and record it (the function's timeout is 120 s).
const HAND_OVER_MARGIN: Duration = Duration::from_secs(30);

/// One part of one segment to read, on the import queue (its `exportId` tells it from an
/// import's messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentMessage {
    pub export_id: String,
    pub segment: u32,
    pub part: u32,
    /// Where the part starts; none for a segment's first part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
}

impl SegmentMessage {
    pub fn first(export_id: &str, segment: u32) -> SegmentMessage {
        SegmentMessage { export_id: export_id.to_string(), segment, part: 0, cursor: None }
    }
}

/// An export's id: derived from the Idempotency-Key (a retry is the same export), else
/// random.
pub fn new_export_id(key: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    let bytes: Vec<u8> = match key {
        Some(k) => Sha256::digest(format!("export-idempotency\0{k}").as_bytes())[..8].to_vec(),
        None => {
            let mut b = [0u8; 8];
            let _ = getrandom::fill(&mut b);
            b.to_vec()
        }
    };
    format!("x-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Queues the first part of each of these segments.
pub async fn queue_segments(
    app: &App,
    export_id: &str,
    segments: impl IntoIterator<Item = u32>,
) -> Result<(), String> {
    let messages: Vec<SegmentMessage> =
        segments.into_iter().map(|s| SegmentMessage::first(export_id, s)).collect();
    loyalty::queue::send(&app.sqs, &app.queue, &messages).await
}

/// One part of a segment: read, written, recorded once, handed over. A part recorded before
/// (a redelivery, or a duplicate of the message) writes and counts nothing; if it was the
/// segment's last recorded part, its hand-over is done again (it may have been lost).
pub async fn on_segment(
    app: &App,
    msg: &SegmentMessage,
    deadline: SystemTime,
) -> Result<(), String> {
    let store = &app.deps.store;
    let job = store
        .export_job(&msg.export_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("export {} is not recorded", msg.export_id))?;
    if msg.segment >= job.segments {
        return Err(format!("export {} has no segment {}", job.export_id, msg.segment));
    }
    let seen =
        store.export_segment(&job.export_id, msg.segment).await.map_err(|e| e.to_string())?;
    if seen.parts != msg.part {
        if seen.parts == msg.part + 1 {
            return hand_over(app, &job, &seen).await;
        }
        if seen.parts < msg.part {
            return Err(format!(
                "export {} segment {}: part {} before part {} is recorded",
                job.export_id, msg.segment, msg.part, seen.parts
            ));
        }
        return Ok(());
    }
    let part = read_part(app, &job, msg, deadline).await?;
    let writes = job.kinds.iter().map(|kind| {
        let body = part.files.get(kind).cloned().unwrap_or_default();
        put_object(app, &job.bucket, part_key(&job.prefix, *kind, msg.segment, msg.part), body)
    });
    futures::future::try_join_all(writes).await?;
    let progress = SegmentProgress {
        segment: msg.segment,
        parts: msg.part + 1,
        done: part.next.is_none(),
        next: part.next,
        counts: total([&seen.counts, &part.counts]),
    };
    let now = app.deps.clock.now();
    if !store.record_export_part(&job.export_id, &progress, now).await.map_err(|e| e.to_string())? {
        // Another delivery of this part recorded it first, and hands over.
        return Ok(());
    }
    tracing::info!(export_id = %job.export_id, segment = msg.segment, part = msg.part, done = progress.done, "export part recorded");
    hand_over(app, &job, &progress).await
}

/// What one part read: the lines of each kind and their counts, and where the segment goes on.
struct Part {
    files: BTreeMap<Kind, Vec<u8>>,
    counts: Counts,
    next: Option<Cursor>,
}

async fn read_part(
    app: &App,
    job: &ExportJob,
    msg: &SegmentMessage,
    deadline: SystemTime,
) -> Result<Part, String> {
    let mut part = Part { files: BTreeMap::new(), counts: Counts::new(), next: msg.cursor.clone() };
    for kind in &job.kinds {
        part.counts.insert(*kind, Default::default());
    }
    let mut pages = 0;
    loop {
        let page = app
            .deps
            .store
            .export_scan_page(msg.segment, job.segments, part.next.as_ref(), app.export.page_limit)
            .await
            .map_err(|e| e.to_string())?;
        for item in page.items {
            for record in records_of(item).map_err(|e| e.to_string())? {
                add_line(&mut part, job, &record)?;
            }
        }
        part.next = page.next;
        pages += 1;
        let late = SystemTime::now() + HAND_OVER_MARGIN >= deadline;
        if part.next.is_none() || pages >= app.export.pages_per_part || late {
            return Ok(part);
        }
    }
}

fn add_line(part: &mut Part, job: &ExportJob, record: &Record) -> Result<(), String> {
    let (kind, line, points) = match record {
        Record::Member(m) => {
            let line = MemberLine::of(m, job.personal_data);
            let points = line.points;
            (Kind::Members, serde_json::to_vec(&line), points)
        }
        Record::Ledger(member, entry) => {
            let line = LedgerLine::of(member, entry);
            let points = line.points;
            (Kind::Ledger, serde_json::to_vec(&line), points)
        }
        Record::Coupon(c) => (Kind::Coupons, serde_json::to_vec(&CouponLine::of(c)), 0),
    };
    if !job.kinds.contains(&kind) {
        return Ok(());
    }
    let file = part.files.entry(kind).or_default();
    file.extend(line.map_err(|e| e.to_string())?);
    file.push(b'\n');
    count(&mut part.counts, kind, points);
    Ok(())
}

/// After a recorded part: the segment's next part queued, or, the segment read, the
/// manifest if every segment is.
async fn hand_over(app: &App, job: &ExportJob, progress: &SegmentProgress) -> Result<(), String> {
    match (&progress.next, progress.done) {
        (Some(cursor), false) => {
            let next = SegmentMessage {
                export_id: job.export_id.clone(),
                segment: progress.segment,
                part: progress.parts,
                cursor: Some(cursor.clone()),
            };
            loyalty::queue::send(&app.sqs, &app.queue, &[next]).await
        }
        _ => finish(app, &job.export_id).await,
    }
}

/// What `manifest.json` says: the export, its counts and every part's key.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub export_id: String,
    pub what: Vec<Kind>,
    pub segments: u32,
    pub personal_data: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub counts: Counts,
    pub objects: Vec<String>,
}

/// Once every segment is read, the manifest (written again, the same, by any later delivery
/// that sees the export done).
async fn finish(app: &App, export_id: &str) -> Result<(), String> {
    let store = &app.deps.store;
    let Some(job) = store.export_job(export_id).await.map_err(|e| e.to_string())? else {
        return Err(format!("export {export_id} is not recorded"));
    };
    if !job.done() {
        return Ok(());
    }
    let segments =
        store.export_segments(export_id, job.segments).await.map_err(|e| e.to_string())?;
    let parts: Vec<u32> = segments.iter().map(|s| s.parts).collect();
    let manifest = Manifest {
        counts: totals(&job, &segments),
        objects: part_keys(&job.prefix, &job.kinds, &parts),
        export_id: job.export_id.clone(),
        what: job.kinds.clone(),
        segments: job.segments,
        personal_data: job.personal_data,
        created_at: job.created_at,
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    put_object(app, &job.bucket, export::manifest_key(&job.prefix), body).await?;
    tracing::info!(export_id, counts = ?manifest.counts, "export done");
    Ok(())
}

/// An export's counts: every kind asked for (zero when none was read yet).
pub fn totals(job: &ExportJob, segments: &[SegmentProgress]) -> Counts {
    let mut out: Counts = job.kinds.iter().map(|k| (*k, Default::default())).collect();
    for (k, c) in total(segments.iter().map(|s| &s.counts)) {
        out.insert(k, c);
    }
    out
}

async fn put_object(app: &App, bucket: &str, key: String, body: Vec<u8>) -> Result<(), String> {
    let content_type =
        if key.ends_with(".json") { "application/json" } else { "application/x-ndjson" };
    app.s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .content_type(content_type)
        .body(body.into())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!("writing s3://{bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(e))
        })
}
