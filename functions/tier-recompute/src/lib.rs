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

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use lambda_runtime::Error;
use loyalty::app::{Clock, Env};
use loyalty::runtime::{job_time, Outcome, Trigger};
use loyalty::store::change::Attempt;
use loyalty::store::member::{MemberItem, TierChangeItem};
use loyalty::store::tier::{Cursor, MemberPage, TierRulesMark};
use loyalty::store::{keys, Store, StoreError};
use loyalty::{calendar, tier, Rules, TierCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const JOB: &str = "tier-evaluation";

pub struct App {
    pub env: Env,
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
            env: Env {
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
    let now = job_time(event, &app.env.clock);
    let rules = &app.env.rules;
    let fingerprint = tier::rules_fingerprint(rules);
    let mark = app.env.store.tier_rules_mark().await?;
    let rules_changed = mark.as_ref().map(|m| &m.fingerprint) != Some(&fingerprint);
    let sweep = rules_changed || event.detail.get("sweep").and_then(Value::as_bool) == Some(true);
    let tasks = tasks(now, sweep);
    loyalty::queue::send(&app.sqs, &app.queue_url, &tasks).await?;
    if rules_changed {
        // Only once every sweep task is queued (the queue and its DLQ keep them): a crash
        // before this line just sweeps again tomorrow, which changes nothing twice.
        app.env.store.set_tier_rules_mark(&TierRulesMark::new(fingerprint, now)).await?;
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

/// The worker: each record is one task; a failed task is reported for redelivery.
pub async fn work(app: &App, event: SqsEvent) -> SqsBatchResponse {
    let started = Instant::now();
    loyalty::runtime::each_message(event, 1, |record| async move {
        let id = record.message_id.as_deref().unwrap_or_default();
        let task = serde_json::from_str::<ShardTask>(record.body.as_deref().unwrap_or_default())
            .map_err(|e| format!("not a shard task: {e}"));
        let result = match task {
            Ok(task) => run_task(app, task, started).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(error) = &result {
            tracing::error!(message_id = %id, %error, "shard task failed; it will be retried");
        }
        result.is_ok()
    })
    .await
}

/// What one task did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub listed: usize,
    pub written: usize,
    pub changed: usize,
    pub continued: bool,
}

/// Evaluates a task's slice page by page; past the time budget, the rest goes back on the
/// queue as a continuation.
pub async fn run_task(app: &App, task: ShardTask, started: Instant) -> Result<Tally, Error> {
    if task.shard >= keys::SHARDS {
        return Err(format!("shard {} is out of range 0..{}", task.shard, keys::SHARDS).into());
    }
    let today = calendar::program_date(app.env.rules.time_zone, task.now);
    let mut tally = Tally::default();
    let mut cursor = task.cursor.clone();
    loop {
        let page: MemberPage = match task.segment {
            Segment::Review => {
                app.env.store.tier_review_page(task.shard, today, cursor, app.page_size).await?
            }
            Segment::Tier { tier } => {
                app.env.store.tier_segment_page(tier, task.shard, cursor, app.page_size).await?
            }
        };
        tally.listed += page.member_ids.len();
        let done: Vec<Step> = futures::stream::iter(
            page.member_ids.iter().map(|id| evaluate_member(&app.env, id, task.now)),
        )
        .buffer_unordered(app.concurrency)
        .try_collect()
        .await?;
        tally.written += done.iter().filter(|s| **s != Step::Unchanged).count();
        tally.changed += done.iter().filter(|s| **s == Step::Changed).count();
        cursor = page.next;
        let Some(next) = cursor.clone() else { break };
        if started.elapsed() >= app.budget {
            let rest = ShardTask { cursor: Some(next), ..task.clone() };
            app.sqs
                .send_message()
                .queue_url(&app.queue_url)
                .message_body(serde_json::to_string(&rest)?)
                .send()
                .await?;
            tally.continued = true;
            break;
        }
    }
    tracing::info!(shard = task.shard, segment = ?task.segment, %today, listed = tally.listed, written = tally.written, changed = tally.changed, continued = tally.continued, "shard task done");
    Ok(tally)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to write (already evaluated, erased, gone, or nothing changed).
    Unchanged,
    /// Spend trimmed, review date moved or churn band rescored.
    Written,
    /// Tier changed and recorded.
    Changed,
}

/// One member's evaluation: read, decide, one versioned transaction (member + tier history),
/// retried from a fresh read when another writer got there first.
pub async fn evaluate_member(
    env: &Env,
    member_id: &str,
    now: DateTime<Utc>,
) -> Result<Step, StoreError> {
    let rules = &env.rules;
    let (step, change) = env
        .store
        .change_member(async || {
            let Some(stored) =
                env.store.get::<MemberItem>(&keys::member_pk(member_id), keys::PROFILE_SK).await?
            else {
                return Ok(Attempt::Answer((Step::Unchanged, None)));
            };
            let member = stored.member;
            let Some(eval) = tier::evaluate(&member, rules, now) else {
                return Ok(Attempt::Answer((Step::Unchanged, None)));
            };
            // The stored review key may have been computed under other rules: compare with it.
            // The churn band is rescored as of tonight: a member is due on the day it can rise.
            let item = MemberItem::new(&eval.member, rules, now);
            let moved = item.gsi5sk != stored.gsi5sk || item.churn != stored.churn;
            if eval.change.is_none() && eval.trimmed == 0 && !moved {
                return Ok(Attempt::Answer((Step::Unchanged, None)));
            }
            let mut next = eval.member;
            next.version = member.version + 1;
            let mut writes = vec![env.store.member_write(&next, member.version, rules, now)?];
            if let Some(change) = &eval.change {
                writes.push(env.store.put(&TierChangeItem::new(member_id, change.clone()), None)?);
            }
            let step = if eval.change.is_some() { Step::Changed } else { Step::Written };
            Ok(Attempt::Commit(writes, (step, eval.change)))
        })
        .await?;
    if let Some(c) = &change {
        tracing::info!(member_id, from = %c.from, to = %c.to, reason = %c.reason, "tier changed");
    }
    Ok(step)
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
