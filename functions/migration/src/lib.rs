//! migration: bringing a program's members in from a file in the migration bucket, and
//! taking members, ledger and coupons out to it.
//! - SQS `ImportQueue`: the bucket's "object created" notifications (an upload under
//!   `imports/` is cut into chunks of `CHUNK_LINES` lines, one message each, on the same
//!   queue) and those chunk messages (each line one member transaction; the chunk counted
//!   once); an export's segment messages (one part of a parallel Scan segment each).
//! - HTTP (operators, IAM): `GET /imports/{id}`, `GET /imports?key=<object key>`: progress;
//!   `POST /exports`, `GET /exports/{id}`: an export and its progress.
//!
//! Choices, and why:
//! - **The external id is the member id.** Members sign in with tokens whose `sub` is their
//!   member id, so the identity provider's users are migrated with the same ids (or the file
//!   carries the ids the provider gave them); no mapping item to read on every request.
//! - **Chunks are byte ranges of the object**, not copies of its lines: a message stays small
//!   whatever the lines hold, and a worker reads its range with one ranged `GetObject`.
//! - **One queue for notifications and chunks**: both are "work on this file", redelivered
//!   by SQS after a crash and dead-lettered after three failures, with one alarm. Exports
//!   ride the same queue for the same reasons; its `MaximumConcurrency` (8) also bounds how
//!   many segments read the table at once, so an export cannot take the table's capacity
//!   from the members.

pub mod api;
pub mod export;
pub mod import;

use lambda_runtime::Error;
use loyalty::app::Dependencies;
use loyalty::contact::ContactKey;
use loyalty::runtime::{each_message, Outcome, Trigger};
use std::time::SystemTime;

pub struct App {
    pub deps: Dependencies,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Where chunk messages go (the queue the bucket notifies, which this function reads).
    pub queue: String,
    pub contacts: ContactKey,
    pub export: ExportSettings,
}

/// How exports are written, and who may take personal data out.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// The migration bucket (`MIGRATION_BUCKET`).
    pub bucket: String,
    /// The IAM principals that may export personal data (`PERSONAL_DATA_EXPORTERS`, the
    /// template's `PersonalDataExporters`: role or user names or whole ARNs). Empty: nobody,
    /// whatever the operator lists say.
    pub personal_data_exporters: Vec<String>,
    /// Items a scan page evaluates (none: DynamoDB's 1 MB page).
    pub page_limit: Option<i32>,
    /// Scan pages per part before a worker hands its segment over.
    pub pages_per_part: u32,
}

impl ExportSettings {
    pub fn from_env() -> Result<ExportSettings, String> {
        Ok(ExportSettings {
            bucket: std::env::var("MIGRATION_BUCKET")
                .map_err(|_| "MIGRATION_BUCKET is not set".to_string())?,
            personal_data_exporters: std::env::var("PERSONAL_DATA_EXPORTERS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            page_limit: None,
            pages_per_part: loyalty::migration::export::PAGES_PER_PART,
        })
    }
}

/// An S3 client for the environment's endpoint: path-style addressing against a local
/// endpoint (`AWS_ENDPOINT_URL_S3`), whose buckets are not DNS names.
pub fn s3_client(config: &loyalty::aws::SdkConfig) -> aws_sdk_s3::Client {
    let local = std::env::var("AWS_ENDPOINT_URL_S3").is_ok_and(|v| !v.is_empty());
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config).force_path_style(local).build(),
    )
}

impl App {
    pub async fn from_env() -> Result<App, String> {
        let deps = Dependencies::from_env().await?;
        let config = loyalty::aws::sdk_config().await;
        let queue = std::env::var("IMPORT_QUEUE_URL")
            .map_err(|_| "IMPORT_QUEUE_URL is not set".to_string())?;
        Ok(App {
            deps,
            s3: s3_client(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            queue,
            contacts: ContactKey::from_env().await?,
            export: ExportSettings::from_env()?,
        })
    }
}

/// One message of the import queue: an export's segment, or an import's notification or chunk.
pub async fn on_message(app: &App, body: &str, deadline: SystemTime) -> Result<(), String> {
    match serde_json::from_str::<export::SegmentMessage>(body) {
        Ok(msg) => export::on_segment(app, &msg, deadline).await,
        Err(_) => import::on_message(app, body).await,
    }
}

/// Every trigger of the function; `deadline`: the invocation's.
pub async fn handle_trigger(
    app: &App,
    trigger: Trigger,
    deadline: SystemTime,
) -> Result<Outcome, Error> {
    match trigger {
        Trigger::Http(req) => Ok(Outcome::Http(api::handle(app, req).await)),
        Trigger::Sqs(event) => Ok(Outcome::Sqs(
            each_message(event, 2, |record| async move {
                let id = record.message_id.as_deref().unwrap_or_default();
                let result = on_message(app, record.body.as_deref().unwrap_or_default(), deadline).await;
                if let Err(e) = &result {
                    tracing::error!(message_id = %id, error = %e, "migration message failed; it will be retried");
                }
                result.is_ok()
            })
            .await,
        )),
        Trigger::Schedule(_) => Err("migration runs no schedule".into()),
        Trigger::Stream(_) => Err("migration reads no stream".into()),
    }
}
