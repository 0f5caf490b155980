//! The worker: one shard task's slice of the index, each member evaluated and written once.

use crate::{App, Segment, ShardTask};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use lambda_runtime::Error;
use loyalty::app::Dependencies;
use loyalty::store::change::Attempt;
use loyalty::store::member::{MemberItem, TierChangeItem};
use loyalty::store::tier::MemberPage;
use loyalty::store::{keys, StoreError};
use loyalty::{calendar, tier};
use std::time::Instant;

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
    let today = calendar::program_date(app.deps.rules.time_zone, task.now);
    let mut tally = Tally::default();
    let mut cursor = task.cursor.clone();
    loop {
        let page: MemberPage = match task.segment {
            Segment::Review => {
                app.deps.store.tier_review_page(task.shard, today, cursor, app.page_size).await?
            }
            Segment::Tier { tier } => {
                app.deps.store.tier_segment_page(tier, task.shard, cursor, app.page_size).await?
            }
        };
        tally.listed += page.member_ids.len();
        let done: Vec<Step> = futures::stream::iter(
            page.member_ids.iter().map(|id| evaluate_member(&app.deps, id, task.now)),
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
            loyalty::queue::send(&app.sqs, &app.queue_url, std::slice::from_ref(&rest)).await?;
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
    deps: &Dependencies,
    member_id: &str,
    now: DateTime<Utc>,
) -> Result<Step, StoreError> {
    let rules = &deps.rules;
    let (step, change) = deps
        .store
        .change_member(async || {
            let Some(stored) =
                deps.store.get::<MemberItem>(&keys::member_pk(member_id), keys::PROFILE_SK).await?
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
            let mut writes = vec![deps.store.member_write(&next, member.version, rules, now)?];
            if let Some(change) = &eval.change {
                writes.push(deps.store.put(&TierChangeItem::new(member_id, change.clone()), None)?);
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
