//! The operators' routes: imports and their progress, exports and theirs.

use crate::export::{new_export_id, queue_segments, totals};
use crate::App;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::http;
use loyalty::migration::export::{self, Counts, ExportRequest, Kind};
use loyalty::store::export::ExportJob;
use loyalty::store::migration::ImportJob;
use loyalty::ApiError;
use serde::Serialize;

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let result = match http::route(&req) {
        (Method::GET, p) if p == ["imports"] => by_key(app, &req).await,
        (Method::GET, p) if p.len() == 2 && p[0] == "imports" => by_id(app, &req, p[1]).await,
        (m, p) if p.first() == Some(&"imports") && p.len() <= 2 => {
            Err(ApiError::MethodNotAllowed(m.to_string()))
        }
        (Method::POST, p) if p == ["exports"] => start_export(app, &req).await,
        (Method::GET, p) if p.len() == 2 && p[0] == "exports" => {
            export_by_id(app, &req, p[1]).await
        }
        (m, p) if p.first() == Some(&"exports") && p.len() <= 2 => {
            Err(ApiError::MethodNotAllowed(m.to_string()))
        }
        _ => Err(http::not_found(&req)),
    };
    http::respond(&req, result)
}

/// What an operator sees of an import.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportView {
    pub import_id: String,
    pub bucket: String,
    pub key: String,
    pub format: loyalty::migration::Format,
    /// `running` until every chunk is counted, then `done`; `failed` when the file could not
    /// be read at all (`error`).
    pub state: &'static str,
    pub lines: u64,
    pub imported: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub chunks: u32,
    pub chunks_done: u32,
    /// Where the rejects are written once the import is done.
    pub rejects_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<ImportJob> for ImportView {
    fn from(j: ImportJob) -> ImportView {
        let state = match (&j.error, j.done()) {
            (Some(_), _) => "failed",
            (None, true) => "done",
            (None, false) => "running",
        };
        ImportView {
            rejects_key: loyalty::migration::rejects_key(&j.object_key),
            import_id: j.import_id,
            bucket: j.bucket,
            key: j.object_key,
            format: j.format,
            state,
            lines: j.lines,
            imported: j.imported,
            updated: j.updated,
            unchanged: j.unchanged,
            rejected: j.rejected,
            chunks: j.chunks,
            chunks_done: j.chunks_done,
            error: j.error,
            created_at: j.created_at,
        }
    }
}

async fn by_id(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::bad_request(
            "invalid_import_id",
            "an import id is up to 64 letters and digits",
        ));
    }
    match app.deps.store.import_job(id).await? {
        Some(j) => Ok(http::json(200, &ImportView::from(j))),
        None => Err(ApiError::not_found("import_not_found", format!("no import {id}"))),
    }
}

/// `?key=`: that object's latest import; without it, the 20 newest imports.
async fn by_key(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let key = http::query_param(req, "key");
    match key.as_deref() {
        None => {
            let jobs = app.deps.store.latest_imports(None, 20).await?;
            let imports: Vec<ImportView> = jobs.into_iter().map(ImportView::from).collect();
            Ok(http::json(200, &serde_json::json!({ "imports": imports })))
        }
        Some(k) if k.is_empty() || k.len() > 1024 => Err(ApiError::bad_request(
            "invalid_key",
            "an object key is 1 to 1024 bytes, e.g. imports/members.jsonl",
        )),
        Some(k) => match app.deps.store.latest_import(k).await? {
            Some(j) => {
                Ok(http::json(200, &serde_json::json!({ "imports": [ImportView::from(j)] })))
            }
            None => Err(ApiError::not_found("import_not_found", format!("no import of {k} (yet)"))),
        },
    }
}

/// What an operator sees of an export.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportView {
    pub export_id: String,
    /// `running` until every segment is read, then `done`.
    pub state: &'static str,
    pub what: Vec<Kind>,
    pub segments: u32,
    pub segments_done: u32,
    pub personal_data: bool,
    pub bucket: String,
    pub prefix: String,
    /// Written once the export is done: its counts and every object's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_key: Option<String>,
    /// Lines and points of each kind written so far (members: Σ points balance; ledger: Σ
    /// entry points).
    pub counts: Counts,
    /// The objects written so far (at most `MAX_LISTED`; the manifest lists them all).
    pub objects: Vec<String>,
    pub objects_truncated: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Object keys an answer lists at most.
const MAX_LISTED: usize = 1000;

async fn export_view(app: &App, job: ExportJob) -> Result<ExportView, ApiError> {
    let segments = app.deps.store.export_segments(&job.export_id, job.segments).await?;
    let parts: Vec<u32> = segments.iter().map(|s| s.parts).collect();
    let mut objects = export::part_keys(&job.prefix, &job.kinds, &parts);
    let objects_truncated = objects.len() > MAX_LISTED;
    objects.truncate(MAX_LISTED);
    Ok(ExportView {
        counts: totals(&job, &segments),
        state: if job.done() { "done" } else { "running" },
        manifest_key: job.done().then(|| export::manifest_key(&job.prefix)),
        objects,
        objects_truncated,
        export_id: job.export_id,
        what: job.kinds,
        segments: job.segments,
        segments_done: job.segments_done.min(job.segments),
        personal_data: job.personal_data,
        bucket: job.bucket,
        prefix: job.prefix,
        created_at: job.created_at,
    })
}

/// `POST /exports`: records the export and queues its segments. Personal data only for a
/// principal `PersonalDataExporters` names; an Idempotency-Key retry answers the same export
/// (and queues again any segment not begun, in case the first attempt died before queuing).
async fn start_export(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let caller = app.deps.caller(req);
    caller.require_operator()?;
    let body: ExportRequest = http::json_body(req)?;
    let plan = body.validate().map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    let allowed = caller
        .iam_principal()
        .is_some_and(|arn| loyalty::auth::named_by(&app.export.personal_data_exporters, arn));
    if plan.personal_data && !allowed {
        return Err(ApiError::Forbidden(
            "personal data is exported only by a principal named in PersonalDataExporters".into(),
        ));
    }
    let key = http::idempotency_key(req)?;
    let export_id = new_export_id(key.as_deref());
    let job = ExportJob {
        prefix: export::prefix(&export_id, plan.personal_data),
        fingerprint: http::fingerprint(&plan),
        export_id: export_id.clone(),
        kinds: plan.kinds,
        segments: plan.segments,
        personal_data: plan.personal_data,
        bucket: app.export.bucket.clone(),
        requested_by: caller.iam_principal().unwrap_or_default().to_string(),
        segments_done: 0,
        created_at: app.deps.clock.now(),
    };
    let store = &app.deps.store;
    if store.start_export(&job).await? {
        queue_segments(app, &export_id, 0..job.segments).await.map_err(ApiError::Internal)?;
        tracing::info!(export_id, segments = job.segments, personal_data = job.personal_data, requested_by = %job.requested_by, "export started");
        return Ok(http::json(202, &export_view(app, job).await?));
    }
    let existing = store
        .export_job(&export_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("export {export_id} vanished")))?;
    if existing.fingerprint != job.fingerprint {
        return Err(ApiError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was used for another export",
        ));
    }
    let segments = store.export_segments(&export_id, existing.segments).await?;
    let not_begun = segments.iter().filter(|s| s.parts == 0).map(|s| s.segment);
    queue_segments(app, &export_id, not_begun).await.map_err(ApiError::Internal)?;
    Ok(http::json(202, &export_view(app, existing).await?))
}

async fn export_by_id(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let id = http::id_param(id, "an export id", "invalid_export_id")?;
    match app.deps.store.export_job(id).await? {
        Some(job) => Ok(http::json(200, &export_view(app, job).await?)),
        None => Err(ApiError::not_found("export_not_found", format!("no export {id}"))),
    }
}
