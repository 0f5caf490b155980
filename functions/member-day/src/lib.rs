//! member-day: campaigns. Admin routes `POST /campaigns`, `GET /campaigns/{id}`,
//! `POST /campaigns/{id}/run` (`campaigns.rs`), bulk awards `POST /awards`, `GET /awards/{id}`,
//! `POST /awards/{id}/run` (`awards.rs`), and the KPI report `GET /reports/kpis` (`report.rs`); the schedules (`member-day` monthly, `win-back` daily,
//! `campaigns-due` for one-off campaigns); and the dispatcher, fed by its own dispatch queue,
//! which pages a run's segment by index and fans member ids out to the campaign queue.
//!
//! Choices, and why:
//! - **Continuation by a message on the function's own dispatch queue** (not an async
//!   self-invoke): the template needs no `lambda:InvokeFunction` on itself (a circular
//!   reference), a dispatcher that dies is redelivered by SQS after the visibility timeout and
//!   resumes from the saved cursor, repeated failures land in a DLQ with an alarm, and the
//!   local stack drives it the same way as AWS.
//! - **Pack size**: at most 500 ids and 24 KiB of JSON per message (`campaign::pack_ids`,
//!   measured in `a_full_message_fits_the_budget_when_serialized`): ten messages of one
//!   `SendMessageBatch` stay within SQS's classic 256 KiB request limit on every endpoint, a
//!   page of 5,000 index items is about one `SendMessageBatch` and one cursor write, and a
//!   worker (16 writes in flight) finishes 500 coupons in seconds, far inside its 360 s
//!   visibility timeout. Uuid-sized ids fill 500 per message (~20 KiB); 128-character ids ~180.
//! - **Targeted counted once per page**: the cursor write (`Store::advance_run`) adds the page's
//!   count and moves the cursor under the condition `cursorSeq = <seq read>`, so a page re-sent
//!   after a crash, or by a second dispatcher, is counted once; batch ids are deterministic
//!   (`<runId>#<part>#<page>#<n>`), so the worker counts a re-sent batch once too.
//! - **Re-runs**: `POST /campaigns/{id}/run` starts a new attempt of the current label with the
//!   same grant and marks the previous attempt superseded (its dispatcher stops at its next
//!   page). Members who already hold the grant's coupon are skipped as `alreadyHad`, the rest
//!   get theirs: no duplicate, nobody missed, whether the dispatcher or workers died.
//! - **Win-back cooldown**: the grant is keyed by the 180-day period (`winback:<period start>`)
//!   and the daily run targets members who crossed 90 days without a purchase within the last
//!   week (`ByLastPurchase`, a key range, never a scan). So a member gets at most one win-back
//!   coupon per aligned 180-day period, with no per-member marker to write or read. Caveat:
//!   periods are aligned, so two coupons can be less than 180 days apart across a period
//!   boundary (a member who lapses late in one period and again early in the next); an exact
//!   rolling cooldown would need a per-member marker read by the dispatcher.

mod awards;
mod campaigns;
pub mod dispatch;
pub mod members_file;
mod report;
mod start;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::app::Dependencies;
use loyalty::http::{self};
use loyalty::runtime::{each_message, job_time, Outcome, Trigger};
use loyalty::ApiError;
use serde_json::json;
use std::time::{Duration, Instant};

pub use members_file::MembersFiles;
pub use start::{start_run, Mode, Started};

pub struct App {
    pub deps: Dependencies,
    pub sqs: aws_sdk_sqs::Client,
    /// Where member batches go (the coupon worker consumes it).
    pub campaign_queue: String,
    /// Where dispatch and continuation messages go (this function consumes it).
    pub dispatch_queue: String,
    /// How long one invocation dispatches before handing over to a continuation message;
    /// kept well under the function's timeout.
    pub budget: Duration,
    /// Where bulk awards' member lists are uploaded (`MIGRATION_BUCKET`, under `awards/`).
    pub members_files: Option<MembersFiles>,
}

impl App {
    pub async fn from_env() -> Result<App, String> {
        let deps = Dependencies::from_env().await?;
        let config = loyalty::aws::sdk_config().await;
        let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
        let budget = match std::env::var("DISPATCH_BUDGET_SECONDS") {
            Ok(s) => s.parse::<u64>().map_err(|_| {
                "DISPATCH_BUDGET_SECONDS must be a whole number of seconds".to_string()
            })?,
            Err(_) => 90,
        };
        Ok(App {
            deps,
            sqs: aws_sdk_sqs::Client::new(&config),
            campaign_queue: var("CAMPAIGN_QUEUE_URL")?,
            dispatch_queue: var("DISPATCH_QUEUE_URL")?,
            budget: Duration::from_secs(budget),
            members_files: std::env::var("MIGRATION_BUCKET")
                .ok()
                .filter(|b| !b.is_empty())
                .map(|b| MembersFiles::new(&config, b)),
        })
    }
}

/// Every trigger of the function.
pub async fn handle_trigger(app: &App, trigger: Trigger) -> Result<Outcome, lambda_runtime::Error> {
    let deadline = Instant::now() + app.budget;
    match trigger {
        Trigger::Http(req) => Ok(Outcome::Http(handle(app, req).await)),
        Trigger::Sqs(event) => Ok(Outcome::Sqs(
            each_message(event, 1, |record| async move {
                let id = record.message_id.as_deref().unwrap_or_default();
                let result = dispatch::on_message(app, record.body.as_deref().unwrap_or_default(), deadline).await;
                if let Err(e) = &result {
                    tracing::error!(message_id = %id, error = %e, "dispatch failed; the message will be retried");
                }
                result.is_ok()
            })
            .await,
        )),
        Trigger::Schedule(event) => {
            let at = job_time(&event, &app.deps.clock);
            let job = event.detail.get("job").and_then(|j| j.as_str()).unwrap_or_default().to_string();
            let started = start::run_job(app, &job, at).await.map_err(|e| format!("job {job}: {e}"))?;
            Ok(Outcome::Done(json!({ "job": job, "at": at, "started": started })))
        }
        Trigger::Stream(_) => Err("member-day reads no stream".into()),
    }
}

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let result = match http::route(&req) {
        (Method::POST, p) if p == ["campaigns"] => campaigns::create(app, &req).await,
        (Method::GET, p) if p == ["campaigns"] => campaigns::list(app, &req).await,
        (Method::GET, p) if p.len() == 2 && p[0] == "campaigns" => {
            campaigns::show(app, &req, p[1]).await
        }
        (Method::POST, p) if p.len() == 3 && p[0] == "campaigns" && p[2] == "run" => {
            campaigns::run_now(app, &req, p[1]).await
        }
        (Method::POST, p) if p == ["awards"] => awards::create(app, &req).await,
        (Method::GET, p) if p.len() == 2 && p[0] == "awards" => awards::show(app, &req, p[1]).await,
        (Method::POST, p) if p.len() == 3 && p[0] == "awards" && p[2] == "run" => {
            awards::run_again(app, &req, p[1]).await
        }
        (m, p) if p.first() == Some(&"awards") && p.len() <= 3 => {
            Err(ApiError::MethodNotAllowed(m.to_string()))
        }
        (Method::GET, p) if p == ["reports", "kpis"] => report::kpis(app, &req).await,
        (m, p) if p == ["reports", "kpis"] => Err(ApiError::MethodNotAllowed(m.to_string())),
        (m, p) if p.first() == Some(&"campaigns") && p.len() <= 3 => {
            Err(ApiError::MethodNotAllowed(m.to_string()))
        }
        _ => Err(http::not_found(&req)),
    };
    http::respond(&req, result)
}

/// A new campaign's or award's id (`kind` `campaign` or `award`): from the Idempotency-Key
/// when given (a retry finds the same definition), else random. Its first letter keeps the
/// two kinds apart in the key space they share (`c-`, `a-`).
fn new_id(kind: &str, key: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    let bytes: Vec<u8> = match key {
        Some(k) => Sha256::digest(format!("{kind}-idempotency\0{k}").as_bytes())[..8].to_vec(),
        None => {
            let mut b = [0u8; 8];
            let _ = getrandom::fill(&mut b);
            b.to_vec()
        }
    };
    format!("{}-{}", &kind[..1], bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn campaign_param(id: &str) -> Result<&str, ApiError> {
    http::id_param(id, "the campaign id", "invalid_campaign_id")
}
