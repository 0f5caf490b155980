//! Starting runs: by an operator (`POST /campaigns/{id}/run`) or by a schedule.

use crate::dispatch::{self, DispatchMessage};
use crate::App;
use chrono::{DateTime, Duration, Utc};
use loyalty::campaign::{
    self, Audience, Campaign, Schedule, MEMBER_DAY_ID, WINBACK_ID, WINBACK_LOOKBACK_DAYS,
};
use loyalty::store::campaign::{CampaignItem, LastRun, NewRun, RunItem, RunStart, Targets};
use loyalty::store::{backoff, TxFailure, MAX_ATTEMPTS};
use loyalty::ApiError;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An operator: always a new attempt of the current label. It replaces (supersedes) the last
    /// attempt of the same label, which may have died half way; the grant is the same, so members
    /// who already got their coupon are skipped and the rest get theirs.
    Manual,
    /// A schedule: at most one run per label. A repeated firing (EventBridge delivers at least
    /// once) re-sends the dispatch message of an unfinished run instead, which is harmless.
    Scheduled,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    pub campaign_id: String,
    pub run_id: String,
    pub grant: String,
    pub attempt: u32,
    /// A new run was created (false: a scheduled re-fire resumed the existing one).
    pub created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
}

fn builtin(id: &str, app: &App, now: DateTime<Utc>) -> Option<Campaign> {
    match id {
        MEMBER_DAY_ID => Some(Campaign::member_day(&app.deps.rules, now)),
        WINBACK_ID => Some(Campaign::win_back(&app.deps.rules, now)),
        _ => None,
    }
}

/// Starts (or, for a schedule, resumes) a run of campaign `id` for instant `at`. `None`: no such
/// campaign, or a schedule found nothing to do.
pub async fn start_run(
    app: &App,
    id: &str,
    at: DateTime<Utc>,
    mode: Mode,
) -> Result<Option<Started>, ApiError> {
    let (store, rules, now) = (&app.deps.store, &app.deps.rules, app.deps.clock.now());
    for attempt in 0..MAX_ATTEMPTS {
        let (def, multipliers) = store.campaign_and_multipliers(id).await?;
        let (mut def, read_version) = match def {
            Some(d) => {
                let v = d.version;
                (d, v)
            }
            None => match builtin(id, app, now) {
                Some(c) => (CampaignItem::new(c), 0),
                None => return Ok(None),
            },
        };
        let c = &def.campaign;
        let plan = c.plan(rules, at);
        let last = def.last_run.clone().filter(|l| l.label == plan.label);
        if mode == Mode::Scheduled {
            if let Some(last) = last {
                return resume(app, id, &last, &plan.grant).await;
            }
        }
        let n = last.as_ref().map_or(1, |l| l.attempt + 1);
        let run_id = campaign::run_id(&plan.label, n);
        let targets = match c.audience {
            Audience::Segment => Targets::segment(&c.segment),
            Audience::Dormant => {
                // Dormant: no purchase on the `dormantDays` program days before the run's day.
                let cutoff = loyalty::calendar::program_date(rules.time_zone, at)
                    - Duration::days(rules.winback.dormant_days as i64);
                Targets::last_seen(cutoff - Duration::days(WINBACK_LOOKBACK_DAYS), cutoff)
            }
        };
        let run = RunItem::new(NewRun {
            campaign_id: id.into(),
            run_id: run_id.clone(),
            label: plan.label.clone(),
            attempt: n,
            grant: plan.grant.clone(),
            at,
            started_at: now,
            template: Some(c.coupon.clone()),
            points: None,
            budget: c.budget,
            segment: c.segment.clone(),
            audience: c.audience,
            experiment: c.experiment(),
            targets,
        });
        let window = c.multiplier_window(rules.time_zone, at);
        let windows = window.map(|w| {
            (campaign::merge_windows(multipliers.windows, Some(w), now), multipliers.version)
        });
        let unschedule =
            matches!(c.schedule, Schedule::Once { .. }) && !matches!(c.audience, Audience::Dormant);
        def.last_run =
            Some(LastRun { label: plan.label.clone(), attempt: n, run_id: run_id.clone() });
        def.version = read_version + 1;
        let supersedes = last.map(|l| l.run_id);
        let write = RunStart {
            campaign: &def,
            campaign_read_version: read_version,
            run: &run,
            multipliers: windows,
            supersedes: supersedes.as_deref(),
            unschedule,
        };
        match store.start_run(write).await? {
            Ok(()) => {
                tracing::info!(campaign_id = %id, run_id = %run_id, grant = %plan.grant, "run started");
                dispatch::send_dispatch(app, &DispatchMessage { campaign_id: id.into(), run_id: run_id.clone() })
                    .await
                    .map_err(|e| ApiError::Unavailable(format!("the run {run_id} is recorded but its dispatch could not be queued ({e}); run it again")))?;
                return Ok(Some(Started {
                    campaign_id: id.into(),
                    run_id,
                    grant: plan.grant,
                    attempt: n,
                    created: true,
                    supersedes,
                }));
            }
            Err(TxFailure::Conditions(_) | TxFailure::Conflict) => backoff(attempt).await,
            Err(TxFailure::Store(e)) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable(
        "the run could not be started against concurrent changes; retry".into(),
    ))
}

/// A schedule fired again for a label that already has a run: if its dispatch has not finished,
/// queue it again (the cursor guard makes a second dispatcher harmless), else nothing to do.
async fn resume(
    app: &App,
    id: &str,
    last: &LastRun,
    grant: &str,
) -> Result<Option<Started>, ApiError> {
    let run = app.deps.store.campaign_run(id, &last.run_id).await?;
    match run {
        Some(r) if !r.dispatch_done && r.superseded_by.is_none() => {
            dispatch::send_dispatch(
                app,
                &DispatchMessage { campaign_id: id.into(), run_id: r.run_id.clone() },
            )
            .await
            .map_err(ApiError::Unavailable)?;
            Ok(Some(Started {
                campaign_id: id.into(),
                run_id: r.run_id,
                grant: grant.into(),
                attempt: r.attempt,
                created: false,
                supersedes: None,
            }))
        }
        _ => Ok(None),
    }
}

/// A scheduled job: `member-day` (the built-in member day and every monthly campaign),
/// `win-back` (daily), `campaigns-due` (one-off campaigns whose time has come).
pub async fn run_job(app: &App, job: &str, at: DateTime<Utc>) -> Result<Vec<Started>, ApiError> {
    let rules = &app.deps.rules;
    let ids: Vec<String> = match job {
        "member-day" => {
            if !loyalty::calendar::is_day_of_month(
                rules.time_zone,
                at,
                rules.member_day.day_of_month,
            ) {
                // The cron and the rules' day disagree: issuing on the wrong day would be worse than not at all.
                tracing::warn!(%at, day = rules.member_day.day_of_month, "member-day job fired on a day that is not the member day; nothing started");
                return Ok(Vec::new());
            }
            let monthly = app
                .deps
                .store
                .scheduled_campaigns()
                .await?
                .into_iter()
                .filter(|s| s.schedule == Schedule::MonthlyMemberDay)
                .map(|s| s.campaign_id);
            std::iter::once(MEMBER_DAY_ID.to_string()).chain(monthly).collect()
        }
        "win-back" => vec![WINBACK_ID.to_string()],
        "campaigns-due" => app
            .deps
            .store
            .scheduled_campaigns()
            .await?
            .into_iter()
            .filter(|s| matches!(s.schedule, Schedule::Once { at: due } if due <= at))
            .map(|s| s.campaign_id)
            .collect(),
        other => {
            return Err(ApiError::bad_request(
                "unknown_job",
                format!("unknown job {other:?}: expected member-day, win-back or campaigns-due"),
            ))
        }
    };
    let mut started = Vec::new();
    for id in ids {
        let when = match app
            .deps
            .store
            .campaign_and_multipliers(&id)
            .await?
            .0
            .map(|d| d.campaign.schedule)
        {
            Some(Schedule::Once { at: due }) => due,
            _ => at,
        };
        started.extend(start_run(app, &id, when, Mode::Scheduled).await?);
    }
    Ok(started)
}
