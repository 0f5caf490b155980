//! The import: an uploaded object is cut into chunks (`on_object`), each chunk's lines become
//! members (`work_chunk`) and the chunk is counted once (`on_chunk`); the last chunk counted
//! writes the rejects file next to the input.

mod chunk;

use chunk::finish;
pub use chunk::{on_chunk, work_chunk};

use crate::App;
use loyalty::migration::{self, parse_header, plan_chunks, split_lines, ChunkRange, Format};
use loyalty::store::migration::ImportJob;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A chunk of an upload, on the import queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChunkMessage {
    pub import_id: String,
    pub bucket: String,
    pub key: String,
    pub format: Format,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    pub chunk: ChunkRange,
}

/// One message of the import queue: a chunk, or the bucket's notification (`Records`), or
/// the test event S3 sends when a notification is configured.
pub async fn on_message(app: &App, body: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if v.get("importId").is_some() {
        let msg: ChunkMessage =
            serde_json::from_value(v).map_err(|e| format!("not a chunk message: {e}"))?;
        return on_chunk(app, &msg).await;
    }
    if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(());
    }
    let records = v
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| "neither a chunk nor an S3 notification".to_string())?;
    for r in records {
        let text = |path: &[&str]| {
            let mut cur = r;
            for p in path {
                cur = cur.get(p)?;
            }
            cur.as_str().map(str::to_string)
        };
        let (Some(bucket), Some(key)) =
            (text(&["s3", "bucket", "name"]), text(&["s3", "object", "key"]))
        else {
            return Err("an S3 record without bucket or key".into());
        };
        if !text(&["eventName"]).unwrap_or_default().starts_with("ObjectCreated") {
            continue;
        }
        let upload = Upload {
            bucket,
            key: url_decode(&key),
            etag: text(&["s3", "object", "eTag"]).unwrap_or_default(),
            version: text(&["s3", "object", "versionId"])
                .or_else(|| text(&["s3", "object", "sequencer"]))
                .unwrap_or_default(),
            event_time: text(&["eventTime"]).unwrap_or_default(),
        };
        on_object(app, &upload).await?;
    }
    Ok(())
}

/// One uploaded object, as its notification names it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub etag: String,
    /// The object's version id or the event's sequencer, when S3 gives them.
    pub version: String,
    pub event_time: String,
}

impl Upload {
    /// The import's id: the same notification delivered again is the same import; the same
    /// file uploaded again is another one (whose lines then count as `unchanged`).
    pub fn import_id(&self) -> String {
        let mut h = Sha256::new();
        for part in [&self.bucket, &self.key, &self.etag, &self.version, &self.event_time] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.finalize().iter().take(10).map(|b| format!("{b:02x}")).collect()
    }
}

/// Keys in notifications are form-encoded (`+` for a space, `%XX` for other bytes).
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) async fn read_object(
    app: &App,
    bucket: &str,
    key: &str,
    range: Option<(u64, u64)>,
) -> Result<Vec<u8>, String> {
    let mut get = app.s3.get_object().bucket(bucket).key(key);
    if let Some((start, end)) = range {
        if end <= start {
            return Ok(Vec::new());
        }
        get = get.range(format!("bytes={start}-{}", end - 1));
    }
    let out = get.send().await.map_err(|e| {
        format!("reading s3://{bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(e))
    })?;
    let bytes =
        out.body.collect().await.map_err(|e| format!("reading s3://{bucket}/{key}: {e}"))?;
    Ok(bytes.into_bytes().to_vec())
}

/// An uploaded object: cut it into chunks, record the import, queue every chunk. A
/// notification delivered again re-queues the chunks of the same import, which count once.
pub async fn on_object(app: &App, upload: &Upload) -> Result<Option<String>, String> {
    if upload.key.ends_with(migration::REJECTS_SUFFIX) {
        return Ok(None);
    }
    let Some(format) = Format::of_key(&upload.key) else {
        tracing::warn!(key = %upload.key, "not an import file (.jsonl, .ndjson or .csv); ignored");
        return Ok(None);
    };
    let import_id = upload.import_id();
    let bytes = read_object(app, &upload.bucket, &upload.key, None).await?;
    let mut error = None;
    let mut columns = Vec::new();
    let (chunks, lines) = match format {
        Format::Jsonl => plan_chunks(&bytes, 0, migration::CHUNK_LINES),
        Format::Csv => {
            let header = split_lines(&bytes, 1).into_iter().next();
            match header.filter(|h| h.number == 1).map(|h| parse_header(h.text)) {
                Some(Ok(c)) => {
                    columns = c;
                    plan_chunks(&bytes, 1, migration::CHUNK_LINES)
                }
                Some(Err(e)) => {
                    error = Some(format!("line 1: {e}"));
                    (Vec::new(), 0)
                }
                None => {
                    error = Some("line 1: a CSV file starts with its header".into());
                    (Vec::new(), 0)
                }
            }
        }
    };
    let job = ImportJob {
        import_id: import_id.clone(),
        bucket: upload.bucket.clone(),
        object_key: upload.key.clone(),
        format,
        columns: columns.clone(),
        lines,
        chunks: chunks.len() as u32,
        chunks_done: 0,
        imported: 0,
        updated: 0,
        unchanged: 0,
        rejected: 0,
        created_at: app.deps.clock.now(),
        error,
    };
    let created = app.deps.store.start_import(&job).await.map_err(|e| e.to_string())?;
    tracing::info!(import_id = %import_id, key = %upload.key, lines, chunks = chunks.len(), created, "import planned");
    let messages: Vec<ChunkMessage> = chunks
        .into_iter()
        .map(|chunk| ChunkMessage {
            import_id: import_id.clone(),
            bucket: upload.bucket.clone(),
            key: upload.key.clone(),
            format,
            columns: columns.clone(),
            chunk,
        })
        .collect();
    loyalty::queue::send(&app.sqs, &app.queue, &messages).await?;
    if messages.is_empty() {
        finish(app, &import_id).await?;
    }
    Ok(Some(import_id))
}

#[cfg(test)]
mod tests {
    #[test]
    fn notification_keys_are_form_decoded() {
        assert_eq!(super::url_decode("imports/my+file%281%29.jsonl"), "imports/my file(1).jsonl");
        assert_eq!(super::url_decode("a%2"), "a%2");
    }
}
