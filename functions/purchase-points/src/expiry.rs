//! The daily expiry sweep (`{"job": "expiry-sweep"}`).

use crate::App;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use loyalty::calendar::program_date;
use loyalty::points;
use loyalty::store::change::Attempt;
use loyalty::store::keys;
use loyalty::store::points::ExpiryNoticeItem;
use loyalty::store::{Cond, StoreError};
use serde::Serialize;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// The sweep stops when less than this is left of the invocation; the rest stays due.
pub const SWEEP_MARGIN: Duration = Duration::from_secs(10);
const SWEEP_PARALLEL: usize = 8;
/// The sweep's time when the invocation carries no usable deadline (local emulators).
const LOCAL_SWEEP_BUDGET: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub members: u64,
    pub points_expired: i64,
    /// Lots whose coming expiry was told (one notice item each).
    pub notices: u64,
    pub failed: u64,
    /// False when the sweep stopped for time; the next run continues.
    pub complete: bool,
}

pub async fn handle_schedule(
    app: &App,
    event: EventBridgeEvent<Value>,
    deadline: SystemTime,
) -> Result<Value, lambda_runtime::Error> {
    match event.detail.get("job").and_then(Value::as_str) {
        Some("expiry-sweep") => {
            let now = loyalty::runtime::job_time(&event, &app.deps.clock);
            // Lambda always gives a deadline ahead of the start; local emulators may not, and
            // then the sweep gets a fixed budget rather than stopping before it starts.
            let started = SystemTime::now();
            let deadline = if deadline > started { deadline } else { started + LOCAL_SWEEP_BUDGET };
            let remaining_ms = deadline.duration_since(started).map(|d| d.as_millis()).unwrap_or(0);
            tracing::info!(%now, remaining_ms, "expiry sweep starting");
            let report = expiry_sweep(app, now, deadline).await?;
            tracing::info!(
                members = report.members,
                points = report.points_expired,
                notices = report.notices,
                failed = report.failed,
                complete = report.complete,
                "expiry sweep"
            );
            Ok(json!(report))
        }
        other => Err(format!("unknown job {other:?}: this function runs expiry-sweep").into()),
    }
}

pub async fn expiry_sweep(
    app: &App,
    now: DateTime<Utc>,
    deadline: SystemTime,
) -> Result<SweepReport, StoreError> {
    let today = program_date(app.deps.rules.time_zone, now);
    // Members whose first expiry is within the notice horizon are read too (ByExpiry keys the
    // earlier of the first expiry and the first release), so a lot is told before it goes.
    let horizon = today + chrono::Duration::days(app.deps.rules.points.expiry_notice_days as i64);
    let mut report = SweepReport::default();
    let time_left =
        || deadline.duration_since(SystemTime::now()).unwrap_or_default() > SWEEP_MARGIN;
    for shard in 0..keys::SHARDS {
        let mut start = None;
        loop {
            if !time_left() {
                return Ok(report);
            }
            let (ids, next) = app.deps.store.expiry_due(shard, horizon, start).await?;
            let results: Vec<_> = futures::stream::iter(ids)
                .map(|id| async move { expire_member(app, &id, today, now).await })
                .buffer_unordered(SWEEP_PARALLEL)
                .collect()
                .await;
            for r in results {
                match r {
                    Ok(swept) => {
                        report.members += 1;
                        report.points_expired += swept.expired;
                        report.notices += swept.notices;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "expiring a member failed; it stays due");
                        report.failed += 1;
                    }
                }
            }
            start = next;
            if start.is_none() {
                break;
            }
        }
    }
    report.complete = true;
    Ok(report)
}

/// What the sweep did to one member.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub expired: i64,
    pub notices: u64,
}

/// Releases one member's pending points whose window ended, expires their due lots and tells
/// the lots expiring within the notice horizon (each once: a notice item that must not exist
/// yet), in one transaction: the member's write is versioned, and a notice another sweep
/// wrote first fails it too, so the retry reads both again.
pub async fn expire_member(
    app: &App,
    id: &str,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Swept, StoreError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    store
        .change_member(async || {
            let Some((mut member, noticed)) = store.member_for_sweep(id).await? else {
                return Ok(Attempt::Answer(Swept::default()));
            };
            let read_version = member.version;
            member.version += 1;
            let entries = points::settle(&mut member, rules, today, now);
            let notices = points::expiry_notices(&member, rules, today, &noticed);
            if entries.is_empty() && notices.is_empty() {
                return Ok(Attempt::Answer(Swept::default()));
            }
            let expired = entries
                .iter()
                .filter(|e| e.kind == loyalty::ledger::EntryKind::Expiry)
                .map(|e| -e.points.0)
                .sum();
            let mut writes = if entries.is_empty() {
                Vec::new()
            } else {
                store.member_change(&member, read_version, entries, rules, now)?
            };
            for n in &notices {
                writes.push(store.put(&ExpiryNoticeItem::new(id, *n, now), Some(Cond::absent()))?);
            }
            Ok(Attempt::Commit(writes, Swept { expired, notices: notices.len() as u64 }))
        })
        .await
}
