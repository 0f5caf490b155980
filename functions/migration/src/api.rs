//! The operators' routes: imports and their progress.

use crate::App;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::http;
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
    app.env.caller(req).require_operator()?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::bad_request(
            "invalid_import_id",
            "an import id is up to 64 letters and digits",
        ));
    }
    match app.env.store.import_job(id).await? {
        Some(j) => Ok(http::json(200, &ImportView::from(j))),
        None => Err(ApiError::not_found("import_not_found", format!("no import {id}"))),
    }
}

/// `?key=`: that object's latest import; without it, the 20 newest imports.
async fn by_key(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    app.env.caller(req).require_operator()?;
    let key = http::query_param(req, "key");
    match key.as_deref() {
        None => {
            let jobs = app.env.store.latest_imports(None, 20).await?;
            let imports: Vec<ImportView> = jobs.into_iter().map(ImportView::from).collect();
            Ok(http::json(200, &serde_json::json!({ "imports": imports })))
        }
        Some(k) if k.is_empty() || k.len() > 1024 => Err(ApiError::bad_request(
            "invalid_key",
            "an object key is 1 to 1024 bytes, e.g. imports/members.jsonl",
        )),
        Some(k) => match app.env.store.latest_import(k).await? {
            Some(j) => {
                Ok(http::json(200, &serde_json::json!({ "imports": [ImportView::from(j)] })))
            }
            None => Err(ApiError::not_found("import_not_found", format!("no import of {k} (yet)"))),
        },
    }
}
