//! Bulk awards (operators, IAM): `POST /awards` defines an award and starts its first run,
//! `POST /awards/{id}/run` runs it again, `GET /awards/{id}` shows its runs' counts.
//!
//! An award runs as a one-off campaign does: a run item with the grant `award:<id>` and the
//! award's targets (a segment's index partitions, or its list), one dispatch message, and the
//! dispatcher and the coupon worker take it from there (`dispatch.rs`, coupon-issue's
//! `worker.rs`). A second run is a new attempt of the same grant that supersedes the first:
//! members credited already are counted `alreadyCredited`, the rest get theirs.

use crate::dispatch::{self, DispatchMessage};
use crate::members_file::MembersFiles;
use crate::App;
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use loyalty::calendar::program_date;
use loyalty::campaign::award::{
    self, Award, AwardCounts, AwardGift, AwardRequest, MemberList, Recipients, Whom, MAX_FILE_BYTES,
};
use loyalty::campaign::{self, Audience, PointsCredit, RunState, Segment};
use loyalty::http::{self, json_body};
use loyalty::store::award::AwardItem;
use loyalty::store::campaign::{LastRun, NewRun, RunItem, RunStart, Targets};
use loyalty::store::{backoff, TxFailure, MAX_ATTEMPTS};
use loyalty::tier::TierCode;
use loyalty::ApiError;
use serde::Serialize;
use serde_json::json;

/// Runs shown by `GET /awards/{id}`, newest first.
const RUNS_SHOWN: i32 = 10;

/// A run started, as `POST /awards` and `POST /awards/{id}/run` answer it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Started<'a> {
    award_id: &'a str,
    run_id: String,
    grant: String,
    attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    supersedes: Option<String>,
    award: &'a Award,
}

fn award_param(id: &str) -> Result<&str, ApiError> {
    http::id_param(id, "the award id", "invalid_award_id")
}

/// `POST /awards`: checks the request (and that an uploaded file exists), then defines the
/// award and starts its first run in one transaction. Nothing is written for a refused request.
/// The same Idempotency-Key again answers the same award (and queues its dispatch again if the
/// run has not finished dispatching, which is harmless); with another body it is a 409.
pub async fn create(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let body: AwardRequest = json_body(req)?;
    let key = http::idempotency_key(req)?;
    let (rules, now) = (&app.deps.rules, app.deps.clock.now());
    let today = program_date(rules.time_zone, now);
    let (name, reason, gift, whom) = body
        .validate(today, rules.points.expiry_days)
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    let recipients = match whom {
        Whom::Segment(segment) => Recipients::Segment { segment },
        Whom::Listed(member_ids) => Recipients::List { list: MemberList::Listed { member_ids } },
        Whom::File(key) => Recipients::List { list: file(app.members_files.as_ref(), key).await? },
    };
    let id = crate::new_id("award", key.as_deref());
    let fingerprint = http::fingerprint(&body);
    if let Some(existing) = app.deps.store.award(&id).await? {
        if existing.fingerprint != fingerprint {
            return Err(ApiError::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used for another award",
            ));
        }
        return resume(app, existing).await;
    }
    let award = Award {
        id: id.clone(),
        name,
        reason,
        gift,
        recipients,
        budget: body.budget,
        created_at: now,
    };
    start(app, AwardItem::new(award, fingerprint), 0).await
}

/// The uploaded list, as it is now (its size and version), or a 422 when there is none.
async fn file(files: Option<&MembersFiles>, key: String) -> Result<MemberList, ApiError> {
    let files = files.ok_or_else(|| {
        ApiError::Unavailable("member files are not configured (MIGRATION_BUCKET)".into())
    })?;
    match files.head(&key).await.map_err(ApiError::Unavailable)? {
        None => Err(ApiError::unprocessable(
            "unknown_file",
            format!("membersFile: there is no {key} in the migration bucket; upload it first"),
        )),
        Some((0, _)) => {
            Err(ApiError::unprocessable("empty_file", "membersFile: the file is empty"))
        }
        Some((size, _)) if size > MAX_FILE_BYTES => Err(ApiError::unprocessable(
            "file_too_large",
            format!("membersFile: at most {MAX_FILE_BYTES} bytes; split it into several awards"),
        )),
        Some((size, etag)) => Ok(MemberList::File { key, size, etag }),
    }
}

/// `POST /awards/{id}/run`: a new run of the award (the same grant).
pub async fn run_again(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let id = award_param(id)?;
    for attempt in 0..MAX_ATTEMPTS {
        let Some(def) = app.deps.store.award(id).await? else {
            return Err(ApiError::not_found("award_not_found", "no such award"));
        };
        let version = def.version;
        match start(app, def, version).await {
            Err(ApiError::Conflict { code: "concurrent_run", .. }) => backoff(attempt).await,
            other => return other,
        }
    }
    Err(ApiError::Unavailable("the run could not be started against concurrent runs; retry".into()))
}

/// Starts the next run of `def` (read at `read_version`; 0: a new award, written now).
async fn start(
    app: &App,
    mut def: AwardItem,
    read_version: u64,
) -> Result<Response<Body>, ApiError> {
    let now = app.deps.clock.now();
    let a = &def.award;
    let n = def.last_run.as_ref().map_or(1, |l| l.attempt + 1);
    let run_id = campaign::run_id("once", n);
    let grant = award::grant(&a.id);
    let (template, points) = match &a.gift {
        AwardGift::Coupon { template } => (Some(template.clone()), None),
        AwardGift::Points { amount, lot_day, .. } => (
            None,
            Some(PointsCredit {
                award_id: a.id.clone(),
                amount: *amount,
                lot_day: *lot_day,
                reason: a.reason.clone(),
            }),
        ),
    };
    let (segment, targets) = match &a.recipients {
        Recipients::Segment { segment } => (segment.clone(), Targets::segment(segment)),
        // A list is taken as listed: the segment is every tier and the dispatcher filters nothing.
        Recipients::List { list } => (every_tier(), Targets::list(list.clone())),
    };
    let run = RunItem::new(NewRun {
        campaign_id: a.id.clone(),
        run_id: run_id.clone(),
        label: "once".into(),
        attempt: n,
        grant: grant.clone(),
        at: now,
        started_at: now,
        template,
        points,
        budget: a.budget,
        segment,
        audience: Audience::Segment,
        experiment: None,
        targets,
    });
    let supersedes = def.last_run.as_ref().map(|l| l.run_id.clone());
    def.last_run = Some(LastRun { label: "once".into(), attempt: n, run_id: run_id.clone() });
    def.version = read_version + 1;
    let write = RunStart {
        campaign: &def,
        campaign_read_version: read_version,
        run: &run,
        multipliers: None,
        supersedes: supersedes.as_deref(),
        unschedule: false,
    };
    match app.deps.store.start_run(write).await? {
        Ok(()) => {}
        Err(TxFailure::Conditions(_) | TxFailure::Conflict) if read_version == 0 => {
            // Two requests with one Idempotency-Key at once: the other one defined it.
            return Err(ApiError::conflict(
                "award_in_progress",
                "another request with this Idempotency-Key is defining the award; retry",
            ));
        }
        Err(TxFailure::Conditions(_) | TxFailure::Conflict) => {
            return Err(ApiError::conflict("concurrent_run", "another run started first"))
        }
        Err(TxFailure::Store(e)) => return Err(e.into()),
    }
    tracing::info!(award_id = %def.award.id, run_id = %run_id, grant = %grant, "award run started");
    dispatch::send_dispatch(app, &DispatchMessage { campaign_id: def.award.id.clone(), run_id: run_id.clone() })
        .await
        .map_err(|e| ApiError::Unavailable(format!("the run {run_id} is recorded but its dispatch could not be queued ({e}); send the request again")))?;
    Ok(http::json(
        202,
        &Started {
            award_id: &def.award.id,
            run_id,
            grant,
            attempt: n,
            supersedes,
            award: &def.award,
        },
    ))
}

/// A retried `POST /awards`: the same answer; the last run's dispatch is queued again if it
/// has not finished (a second dispatcher of one run yields to the first at its cursor).
async fn resume(app: &App, def: AwardItem) -> Result<Response<Body>, ApiError> {
    let a = &def.award;
    let last =
        def.last_run.as_ref().ok_or_else(|| ApiError::Internal("an award without a run".into()))?;
    let run = app.deps.store.campaign_run(&a.id, &last.run_id).await?;
    if run.as_ref().is_some_and(|r| !r.dispatch_done && r.superseded_by.is_none()) {
        dispatch::send_dispatch(
            app,
            &DispatchMessage { campaign_id: a.id.clone(), run_id: last.run_id.clone() },
        )
        .await
        .map_err(ApiError::Unavailable)?;
    }
    Ok(http::json(
        202,
        &Started {
            award_id: &a.id,
            run_id: last.run_id.clone(),
            grant: award::grant(&a.id),
            attempt: last.attempt,
            supersedes: None,
            award: a,
        },
    ))
}

fn every_tier() -> Segment {
    Segment {
        tiers: TierCode::ALL.to_vec(),
        dormant_days: None,
        birthday_month: None,
        min_rolling_spend: None,
        churn_risk: Vec::new(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunView<'a> {
    run_id: &'a str,
    attempt: u32,
    state: RunState,
    #[serde(flatten)]
    counts: AwardCounts,
    dispatch_done: bool,
    started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dispatched_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    superseded_by: Option<&'a str>,
}

fn run_view(r: &RunItem) -> RunView<'_> {
    RunView {
        run_id: &r.run_id,
        attempt: r.attempt,
        state: r.state(),
        counts: AwardCounts::from(&r.progress),
        dispatch_done: r.dispatch_done,
        started_at: r.started_at,
        dispatched_at: r.dispatched_at,
        superseded_by: r.superseded_by.as_deref(),
    }
}

/// `GET /awards/{id}`: the award and its newest runs with their counts (one Query). In each
/// run, once drained: targeted = credited + alreadyCredited + unknown + overBudget + failed.
pub async fn show(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let id = award_param(id)?;
    let Some((def, runs)) = app.deps.store.award_with_runs(id, RUNS_SHOWN).await? else {
        return Err(ApiError::not_found("award_not_found", "no such award"));
    };
    Ok(http::json(
        200,
        &json!({ "award": def.award, "runs": runs.iter().map(run_view).collect::<Vec<_>>() }),
    ))
}
