//! tier-recompute: the nightly tier evaluation.
//!
//! - **Schedule** (`{"job":"tier-evaluation"}`, optional `detail.now`, `detail.sweep`): the
//!   coordinator. Sends one `ShardTask` per shard to the shard queue (SendMessageBatch, ten a
//!   call): the review index of the shard, and, when the tier rules changed since the last
//!   sweep (or `sweep` is asked), every tier segment of the shard too.
//! - **Sqs**: the worker. Pages through its index slice, evaluates each member
//!   (`tier::evaluate`), rescores its churn risk (`churn::assess`, in `MemberItem::new`) and
//!   writes changed members with their tier history in one versioned transaction. Churn
//!   rides on this job because it is the nightly pass that already reads and writes members
//!   by a review date: the review date is the earlier of the day the tier could fall and the
//!   day the churn band could rise, so a member is visited exactly when time alone changes
//!   either (the expiry sweep visits only members holding points, for their lots). A task
//!   that runs out of its time budget re-enqueues its continuation (the cursor); a failed
//!   task is reported as a batch item failure and retried from its own cursor, which is safe
//!   because an evaluation on a date already evaluated is a no-op.

mod worker;

pub use worker::{evaluate_member, run_task, work, Step, Tally};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use lambda_runtime::Error;
use loyalty::app::{Clock, Dependencies};
use loyalty::runtime::{job_time, Outcome, Trigger};
use loyalty::store::tier::{Cursor, TierRulesMark};
use loyalty::store::{keys, Store};
use loyalty::{calendar, tier, Rules, TierCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const JOB: &str = "tier-evaluation";

pub struct App {
    pub deps: Dependencies,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    /// How long a worker evaluates before it hands the rest of its slice to a continuation
    /// message (well inside the function timeout).
    pub budget: Duration,
    /// Members per index page.
    pub page_size: i32,
    /// Members evaluated at once within a page.
    pub concurrency: usize,
}

impl App {
    pub async fn from_env() -> Result<App, String> {
        let config = loyalty::aws::sdk_config().await;
        let store = Store::from_env(&config).await?;
        let rules = Rules::from_env().map_err(|e| e.to_string())?;
        let queue_url = std::env::var("TIER_SHARD_QUEUE_URL")
            .map_err(|_| "TIER_SHARD_QUEUE_URL is not set".to_string())?;
        let budget = match std::env::var("TIER_SHARD_BUDGET_SECONDS") {
            Ok(s) => s.parse().map_err(|_| {
                format!("TIER_SHARD_BUDGET_SECONDS is not a number of seconds: {s}")
            })?,
            Err(_) => 600,
        };
        Ok(App {
            deps: Dependencies {
                store,
                rules: Arc::new(rules),
                clock: Clock::System,
                principals: Arc::new(loyalty::auth::Principals::from_env()),
            },
            sqs: aws_sdk_sqs::Client::new(&config),
            queue_url,
            budget: Duration::from_secs(budget),
            page_size: 100,
            concurrency: 16,
        })
    }
}

/// One slice of the nightly work: an index partition of one shard, from a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardTask {
    /// The evaluation instant; its program date is the evaluation date, the same for every
    /// slice and continuation of the night.
    pub now: DateTime<Utc>,
    pub shard: u32,
    pub segment: Segment,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "index", rename_all = "camelCase", deny_unknown_fields)]
pub enum Segment {
    /// ByTierReview: members whose review date is due.
    Review,
    /// ByTier: every member of a tier (after a rules change).
    Tier { tier: TierCode },
}

pub async fn handle_trigger(app: &App, trigger: Trigger) -> Result<Outcome, Error> {
    match trigger {
        Trigger::Schedule(event) => coordinate(app, &event).await.map(Outcome::Done),
        Trigger::Sqs(event) => Ok(Outcome::Sqs(work(app, event).await)),
        Trigger::Http(_) => Err("tier-recompute has no HTTP routes".into()),
        Trigger::Stream(_) => Err("tier-recompute reads no stream".into()),
    }
}

/// The coordinator: one task per shard (and per tier segment when sweeping) on the queue.
pub async fn coordinate(app: &App, event: &EventBridgeEvent<Value>) -> Result<Value, Error> {
    let job = event.detail.get("job").and_then(Value::as_str);
    if job != Some(JOB) {
        return Err(format!("tier-recompute runs the job {JOB:?}, not {job:?}").into());
    }
    let now = job_time(event, &app.deps.clock);
    let rules = &app.deps.rules;
    let fingerprint = tier::rules_fingerprint(rules);
    let mark = app.deps.store.tier_rules_mark().await?;
    let rules_changed = mark.as_ref().map(|m| &m.fingerprint) != Some(&fingerprint);
    let sweep = rules_changed || event.detail.get("sweep").and_then(Value::as_bool) == Some(true);
    let tasks = tasks(now, sweep);
    loyalty::queue::send(&app.sqs, &app.queue_url, &tasks).await?;
    if rules_changed {
        // Only once every sweep task is queued (the queue and its DLQ keep them): a crash
        // before this line just sweeps again tomorrow, which changes nothing twice.
        app.deps.store.set_tier_rules_mark(&TierRulesMark::new(fingerprint, now)).await?;
    }
    let date = calendar::program_date(rules.time_zone, now);
    tracing::info!(job = JOB, %date, %now, tasks = tasks.len(), sweep, rules_changed, "tier evaluation fanned out");
    Ok(
        json!({"job": JOB, "date": date, "now": now, "tasks": tasks.len(), "sweep": sweep, "rulesChanged": rules_changed}),
    )
}

/// Every shard's review slice, and with `sweep` every shard's tier segments.
pub fn tasks(now: DateTime<Utc>, sweep: bool) -> Vec<ShardTask> {
    let mut out = Vec::new();
    for shard in 0..keys::SHARDS {
        out.push(ShardTask { now, shard, segment: Segment::Review, cursor: None });
        if sweep {
            out.extend(TierCode::ALL.into_iter().map(|tier| ShardTask {
                now,
                shard,
                segment: Segment::Tier { tier },
                cursor: None,
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_night_is_one_task_per_shard_and_a_sweep_adds_every_tier_segment() {
        let now: DateTime<Utc> = "2026-11-26T16:30:00Z".parse().unwrap();
        assert_eq!(tasks(now, false).len(), keys::SHARDS as usize);
        let sweep = tasks(now, true);
        assert_eq!(sweep.len(), keys::SHARDS as usize * 5);
        assert!(sweep.contains(&ShardTask {
            now,
            shard: 3,
            segment: Segment::Tier { tier: TierCode::Regular },
            cursor: None
        }));
    }

    #[test]
    fn shard_tasks_read_as_the_sample_event_writes_them() {
        let body = r##"{"now":"2026-11-26T16:30:00Z","shard":7,"segment":{"index":"review"},"cursor":{"GSI5PK":"TREV#07","GSI5SK":"2026-11-20","PK":"MEMBER#m1","SK":"#PROFILE"}}"##;
        let t: ShardTask = serde_json::from_str(body).unwrap();
        assert_eq!((t.shard, t.segment), (7, Segment::Review));
        assert_eq!(serde_json::to_string(&t).unwrap(), body);
        let tier: ShardTask = serde_json::from_str(
            r#"{"now":"2026-11-26T16:30:00Z","shard":0,"segment":{"index":"tier","tier":"gold"}}"#,
        )
        .unwrap();
        assert_eq!(tier.segment, Segment::Tier { tier: TierCode::Gold });
        assert!(serde_json::from_str::<ShardTask>(
            r#"{"now":"2026-11-26T16:30:00Z","shard":0,"segment":{"index":"scan"}}"#
        )
        .is_err());
    }
}

#[cfg(test)]
mod sample_events {
    use super::*;
    use loyalty::runtime::classify;

    #[test]
    fn the_sample_events_are_a_schedule_and_shard_tasks() {
        let schedule: Value =
            serde_json::from_str(include_str!("../../../events/tier-recompute-schedule.json"))
                .unwrap();
        let Ok(Trigger::Schedule(e)) = classify(schedule) else {
            panic!("the schedule sample is not a schedule")
        };
        assert_eq!(
            job_time(&e, &Clock::System),
            "2026-11-26T16:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let shard: Value =
            serde_json::from_str(include_str!("../../../events/tier-recompute-shard.json"))
                .unwrap();
        let Ok(Trigger::Sqs(e)) = classify(shard) else {
            panic!("the shard sample is not an SQS batch")
        };
        let tasks: Vec<ShardTask> = e
            .records
            .iter()
            .map(|r| serde_json::from_str(r.body.as_deref().unwrap()).unwrap())
            .collect();
        assert_eq!(tasks[1].segment, Segment::Tier { tier: TierCode::Gold });
        assert!(tasks[1].cursor.is_some());
    }
}
