//! A chunk of an upload: its lines become members, it is counted once, and the last chunk
//! counted writes the rejects file.

use super::{read_object, ChunkMessage};
use crate::App;
use futures::StreamExt;
use loyalty::migration::{
    self, parse_csv_line, parse_json_line, split_lines, Counts, Format, Outcome, Reject, RejectCode,
};
use std::collections::HashMap;

/// Member transactions of one chunk in flight at once.
const IN_FLIGHT: usize = 16;

/// A chunk message: its lines imported and the chunk counted, unless it was counted before.
pub async fn on_chunk(app: &App, msg: &ChunkMessage) -> Result<(), String> {
    let store = &app.deps.store;
    if !store.chunk_counted(&msg.import_id, msg.chunk.index).await.map_err(|e| e.to_string())? {
        let (counts, rejects) = work_chunk(app, msg).await?;
        let now = app.deps.clock.now();
        store
            .record_chunk(&msg.import_id, msg.chunk.index, counts, rejects, now)
            .await
            .map_err(|e| e.to_string())?;
    }
    finish(app, &msg.import_id).await
}

/// Imports a chunk's lines (what a crash may interrupt): every line is one member
/// transaction or a reject. Answers the chunk's counts and rejects, not yet recorded.
pub async fn work_chunk(app: &App, msg: &ChunkMessage) -> Result<(Counts, Vec<Reject>), String> {
    let (store, rules, now) = (&app.deps.store, &*app.deps.rules, app.deps.clock.now());
    let bytes =
        read_object(app, &msg.bucket, &msg.key, Some((msg.chunk.start, msg.chunk.end))).await?;
    let mut outcomes: Vec<(u64, Outcome)> = Vec::new();
    let mut accepted = Vec::new();
    // Within a chunk the lines' transactions run concurrently: a repeated id or contact is
    // told here, so that the later line is the one rejected, as it would be in file order.
    let mut seen: HashMap<String, u64> = HashMap::new();
    for raw in split_lines(&bytes, msg.chunk.first_line) {
        let parsed = match msg.format {
            Format::Jsonl => parse_json_line(raw.text),
            Format::Csv => parse_csv_line(raw.text, &msg.columns),
        };
        let checked = parsed.and_then(|l| l.validate(rules, now)).and_then(|m| {
            let claims = [
                (format!("id\0{}", m.member.member_id), RejectCode::DuplicateId, "id"),
                (
                    format!("email\0{}", m.member.email.as_deref().unwrap_or_default()),
                    RejectCode::DuplicateEmail,
                    "email",
                ),
                (
                    format!("phone\0{}", m.member.phone.as_deref().unwrap_or_default()),
                    RejectCode::DuplicatePhone,
                    "phone",
                ),
            ];
            for (claim, code, what) in &claims {
                if claim.ends_with('\0') {
                    continue;
                }
                if let Some(first) = seen.get(claim) {
                    return Err((*code, format!("the same {what} as line {first}")));
                }
            }
            for (claim, _, _) in claims {
                seen.insert(claim, raw.number);
            }
            Ok(m)
        });
        match checked {
            Ok(m) => accepted.push((raw.number, m)),
            Err((code, message)) => outcomes.push((raw.number, Outcome::Rejected(code, message))),
        }
    }
    let ids: Vec<String> =
        accepted.iter().map(|(_, m)| m.member.member_id.as_str().to_string()).collect();
    let existing = store.members_by_id(&ids).await.map_err(|e| e.to_string())?;
    let existing = &existing;
    let written: Vec<Result<(u64, Outcome), String>> = futures::stream::iter(accepted.iter())
        .map(|(number, m)| async move {
            let read = existing.get(m.member.member_id.as_str()).cloned();
            store
                .import_member(m, &msg.import_id, *number, read, &app.contacts, rules, now)
                .await
                .map(|o| (*number, o))
                .map_err(|e| format!("line {number}: {e}"))
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for w in written {
        outcomes.push(w?);
    }
    outcomes.sort_by_key(|(n, _)| *n);
    let mut counts = Counts::default();
    let mut rejects = Vec::new();
    for (line, outcome) in outcomes {
        counts.add(&outcome);
        if let Outcome::Rejected(code, message) = outcome {
            rejects.push(Reject { line, code, message });
        }
    }
    Ok((counts, rejects))
}

/// Once every chunk is counted, the rejects file next to the input (written again, the same,
/// by any later chunk delivery: whoever sees the import done).
pub(super) async fn finish(app: &App, import_id: &str) -> Result<(), String> {
    let store = &app.deps.store;
    let Some(job) = store.import_job(import_id).await.map_err(|e| e.to_string())? else {
        return Err(format!("import {import_id} is not recorded"));
    };
    if !job.done() {
        return Ok(());
    }
    let mut body = Vec::new();
    if let Some(e) = &job.error {
        body.extend(
            serde_json::to_vec(
                &serde_json::json!({"line": 1, "code": "unreadable_file", "message": e}),
            )
            .map_err(|e| e.to_string())?,
        );
        body.push(b'\n');
    }
    for r in store.import_rejects(import_id).await.map_err(|e| e.to_string())? {
        body.extend(serde_json::to_vec(&r).map_err(|e| e.to_string())?);
        body.push(b'\n');
    }
    app.s3
        .put_object()
        .bucket(&job.bucket)
        .key(migration::rejects_key(&job.object_key))
        .content_type("application/x-ndjson")
        .body(body.into())
        .send()
        .await
        .map_err(|e| {
            format!("writing the rejects: {}", aws_sdk_s3::error::DisplayErrorContext(e))
        })?;
    tracing::info!(
        import_id,
        imported = job.imported,
        updated = job.updated,
        unchanged = job.unchanged,
        rejected = job.rejected,
        "import done"
    );
    Ok(())
}
