//! The campaign routes: define one, show it with its latest runs, list the directory, run
//! one again now.

use crate::{campaign_param, start_run, App, Mode};
use lambda_http::{Body, Request, Response};
use loyalty::campaign::{self, Campaign, CampaignRequest, Progress, RunState};
use loyalty::http::{self, json_body};
use loyalty::store::campaign::{CampaignItem, RunItem};
use loyalty::store::{backoff, TxFailure, MAX_ATTEMPTS};
use loyalty::ApiError;
use serde::Serialize;
use serde_json::json;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    campaign_id: &'a str,
    campaign: &'a Campaign,
}

pub(crate) async fn create(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let body: CampaignRequest = json_body(req)?;
    let key = http::idempotency_key(req)?;
    let (store, rules, now) = (&app.deps.store, &app.deps.rules, app.deps.clock.now());
    let id = crate::new_id("campaign", key.as_deref());
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

pub(crate) async fn show(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let id = campaign_param(id)?;
    let Some((def, runs)) = app.deps.store.campaign_with_runs(id, RUNS_SHOWN).await? else {
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
pub(crate) async fn list(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let bad_cursor =
        || ApiError::bad_request("invalid_cursor", "cursor is not one this API handed out");
    let before = match http::query_param(req, "cursor") {
        None => None,
        Some(c) => Some(unhex(&c).ok_or_else(bad_cursor)?),
    };
    let page = app.deps.store.campaign_directory(before.as_deref(), LIST_PAGE).await?;
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

pub(crate) async fn run_now(
    app: &App,
    req: &Request,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let id = campaign_param(id)?;
    match start_run(app, id, app.deps.clock.now(), Mode::Manual).await? {
        Some(started) => Ok(http::json(202, &started)),
        None => Err(ApiError::not_found("campaign_not_found", "no such campaign")),
    }
}
