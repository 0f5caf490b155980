//! member-day: campaigns. Admin routes `POST /campaigns`, `GET /campaigns/{id}`,
//! `POST /campaigns/{id}/run`, bulk awards `POST /awards`, `GET /awards/{id}`,
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
pub mod dispatch;
pub mod members_file;
mod report;
mod start;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::app::Env;
use loyalty::campaign::{self, Campaign, CampaignRequest, Progress, RunState};
use loyalty::http::{self, json_body};
use loyalty::runtime::{each_message, job_time, Outcome, Trigger};
use loyalty::store::campaign::{CampaignItem, RunItem};
use loyalty::store::{backoff, TxFailure, MAX_ATTEMPTS};
use loyalty::ApiError;
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

pub use members_file::MembersFiles;
pub use start::{start_run, Mode, Started};

pub struct App {
    pub env: Env,
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
        let env = Env::from_env().await?;
        let config = loyalty::aws::sdk_config().await;
        let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
        let budget = match std::env::var("DISPATCH_BUDGET_SECONDS") {
            Ok(s) => s.parse::<u64>().map_err(|_| {
                "DISPATCH_BUDGET_SECONDS must be a whole number of seconds".to_string()
            })?,
            Err(_) => 90,
        };
        Ok(App {
            env,
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
            let at = job_time(&event, &app.env.clock);
            let job = event.detail.get("job").and_then(|j| j.as_str()).unwrap_or_default().to_string();
            let started = start::run_job(app, &job, at).await.map_err(|e| format!("job {job}: {e}"))?;
            Ok(Outcome::Done(json!({ "job": job, "at": at, "started": started })))
        }
        Trigger::Stream(_) => Err("member-day reads no stream".into()),
    }
}

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let result = match http::route(&req) {
        (Method::POST, p) if p == ["campaigns"] => create(app, &req).await,
        (Method::GET, p) if p == ["campaigns"] => list(app, &req).await,
        (Method::GET, p) if p.len() == 2 && p[0] == "campaigns" => show(app, &req, p[1]).await,
        (Method::POST, p) if p.len() == 3 && p[0] == "campaigns" && p[2] == "run" => {
            run_now(app, &req, p[1]).await
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

fn campaign_param(id: &str) -> Result<&str, ApiError> {
    http::id_param(id, "the campaign id", "invalid_campaign_id")
}

/// A new campaign's id: from the Idempotency-Key when given (a retry finds the same campaign),
/// else random.
fn new_campaign_id(key: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    let bytes: Vec<u8> = match key {
        Some(k) => Sha256::digest(format!("campaign-idempotency\0{k}").as_bytes())[..8].to_vec(),
        None => {
            let mut b = [0u8; 8];
            let _ = getrandom::fill(&mut b);
            b.to_vec()
        }
    };
    format!("c-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    campaign_id: &'a str,
    campaign: &'a Campaign,
}

async fn create(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    app.env.caller(req).require_operator()?;
    let body: CampaignRequest = json_body(req)?;
    let key = http::idempotency_key(req)?;
    let (store, rules, now) = (&app.env.store, &app.env.rules, app.env.clock.now());
    let id = new_campaign_id(key.as_deref());
    let campaign = body
        .validate(id.clone(), now)
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    for attempt in 0..MAX_ATTEMPTS {
        let (existing, multipliers) = store.campaign_and_multipliers(&id).await?;
        if let Some(existing) = existing {
            // Only an Idempotency-Key retry can name an existing id: same definition, same answer.
            let same = Campaign { created_at: existing.campaign.created_at, ..campaign.clone() }
                == existing.campaign;
            return match same {
                true => {
                    Ok(http::json(201, &Created { campaign_id: &id, campaign: &existing.campaign }))
                }
                false => Err(ApiError::conflict(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for another campaign",
                )),
            };
        }
        // A fixed window is known now: install it with the definition. Run-day windows come with each run.
        let window = match campaign.multiplier.as_ref().map(|m| &m.window) {
            Some(campaign::WindowSpec::Fixed { .. }) => {
                campaign.multiplier_window(rules.time_zone, now)
            }
            _ => None,
        };
        let windows = window.map(|w| {
            (campaign::merge_windows(multipliers.windows, Some(w), now), multipliers.version)
        });
        match store.create_campaign(&campaign, windows).await? {
            Ok(()) => {
                tracing::info!(campaign_id = %id, "campaign defined");
                return Ok(http::json(201, &Created { campaign_id: &id, campaign: &campaign }));
            }
            Err(TxFailure::Conditions(_) | TxFailure::Conflict) => backoff(attempt).await,
            Err(TxFailure::Store(e)) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable(
        "the campaign could not be saved against concurrent changes; retry".into(),
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SkipReasons {
    already_had: u64,
    budget_spent: u64,
    not_eligible: u64,
    holdout: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunView<'a> {
    run_id: &'a str,
    grant: &'a str,
    attempt: u32,
    state: RunState,
    targeted: u64,
    issued: u64,
    skipped: u64,
    skipped_reasons: SkipReasons,
    failed: u64,
    dispatch_done: bool,
    started_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dispatched_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    superseded_by: Option<&'a str>,
}

fn run_view(r: &RunItem) -> RunView<'_> {
    let p: &Progress = &r.progress;
    RunView {
        run_id: &r.run_id,
        grant: &r.grant,
        attempt: r.attempt,
        state: r.state(),
        targeted: p.targeted,
        issued: p.issued,
        skipped: p.skipped,
        skipped_reasons: SkipReasons {
            already_had: p.skipped_already_had,
            budget_spent: p.skipped_budget_spent,
            not_eligible: p.skipped_not_eligible,
            holdout: p.skipped_holdout,
        },
        failed: p.failed,
        dispatch_done: r.dispatch_done,
        started_at: r.started_at,
        dispatched_at: r.dispatched_at,
        superseded_by: r.superseded_by.as_deref(),
    }
}

/// How many of the newest runs the campaign view shows.
const RUNS_SHOWN: i32 = 5;

async fn show(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    app.env.caller(req).require_operator()?;
    let id = campaign_param(id)?;
    let Some((def, runs)) = app.env.store.campaign_with_runs(id, RUNS_SHOWN).await? else {
        return Err(ApiError::not_found("campaign_not_found", "no such campaign"));
    };
    let CampaignItem { campaign, .. } = def;
    Ok(http::json(
        200,
        &json!({ "campaign": campaign, "runs": runs.iter().map(run_view).collect::<Vec<_>>() }),
    ))
}

/// How many campaigns one page of the list holds, at most.
const LIST_PAGE: i32 = 50;

/// `GET /campaigns`: the campaigns defined through the API, newest first, a page at a time
/// (`cursor` is the last directory key seen, hex-encoded). One Query of the directory.
async fn list(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    app.env.caller(req).require_operator()?;
    let bad_cursor =
        || ApiError::bad_request("invalid_cursor", "cursor is not one this API handed out");
    let before = match http::query_param(req, "cursor") {
        None => None,
        Some(c) => Some(unhex(&c).ok_or_else(bad_cursor)?),
    };
    let page = app.env.store.campaign_directory(before.as_deref(), LIST_PAGE).await?;
    let campaigns: Vec<_> = page
        .campaigns
        .iter()
        .map(|c| json!({ "campaignId": c.campaign_id, "name": c.name, "createdAt": c.created_at }))
        .collect();
    let mut body = json!({ "campaigns": campaigns });
    if let Some(next) = page.next {
        body["nextCursor"] = json!(next.bytes().map(|b| format!("{b:02x}")).collect::<String>());
    }
    Ok(http::json(200, &body))
}

fn unhex(c: &str) -> Option<String> {
    if c.is_empty() || c.len() > 512 || !c.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..c.len())
        .step_by(2)
        .map(|i| c.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

async fn run_now(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    app.env.caller(req).require_operator()?;
    let id = campaign_param(id)?;
    match start_run(app, id, app.env.clock.now(), Mode::Manual).await? {
        Some(started) => Ok(http::json(202, &started)),
        None => Err(ApiError::not_found("campaign_not_found", "no such campaign")),
    }
}
