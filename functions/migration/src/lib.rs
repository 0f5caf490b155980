//! migration: bringing a program's members in from a file in the migration bucket.
//! - SQS `ImportQueue`: the bucket's "object created" notifications (an upload under
//!   `imports/` is cut into chunks of `CHUNK_LINES` lines, one message each, on the same
//!   queue) and those chunk messages (each line one member transaction; the chunk counted once).
//! - HTTP (operators, IAM): `GET /imports/{id}`, `GET /imports?key=<object key>`: progress.
//!
//! Choices, and why:
//! - **The external id is the member id.** Members sign in with tokens whose `sub` is their
//!   member id, so the identity provider's users are migrated with the same ids (or the file
//!   carries the ids the provider gave them); no mapping item to read on every request.
//! - **Chunks are byte ranges of the object**, not copies of its lines: a message stays small
//!   whatever the lines hold, and a worker reads its range with one ranged `GetObject`.
//! - **One queue for notifications and chunks**: both are "work on this file", redelivered
//!   by SQS after a crash and dead-lettered after three failures, with one alarm.

pub mod api;
pub mod import;

use lambda_runtime::Error;
use loyalty::app::Env;
use loyalty::contact::ContactKey;
use loyalty::runtime::{each_message, Outcome, Trigger};

pub struct App {
    pub env: Env,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Where chunk messages go (the queue the bucket notifies, which this function reads).
    pub queue: String,
    pub contacts: ContactKey,
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
        let env = Env::from_env().await?;
        let config = loyalty::aws::sdk_config().await;
        let queue = std::env::var("IMPORT_QUEUE_URL")
            .map_err(|_| "IMPORT_QUEUE_URL is not set".to_string())?;
        Ok(App {
            env,
            s3: s3_client(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            queue,
            contacts: ContactKey::from_env().await?,
        })
    }
}

pub async fn handle_trigger(app: &App, trigger: Trigger) -> Result<Outcome, Error> {
    match trigger {
        Trigger::Http(req) => Ok(Outcome::Http(api::handle(app, req).await)),
        Trigger::Sqs(event) => Ok(Outcome::Sqs(
            each_message(event, 2, |record| async move {
                let id = record.message_id.as_deref().unwrap_or_default();
                let result = import::on_message(app, record.body.as_deref().unwrap_or_default()).await;
                if let Err(e) = &result {
                    tracing::error!(message_id = %id, error = %e, "import message failed; it will be retried");
                }
                result.is_ok()
            })
            .await,
        )),
        Trigger::Schedule(_) => Err("migration runs no schedule".into()),
        Trigger::Stream(_) => Err("migration reads no stream".into()),
    }
}
