//! The dispatcher: pages a run's target partitions by index (or a bulk award's list of member
//! ids, `members_file`), packs member ids into
//! `IssueBatch` messages and sends them to the campaign queue with `SendMessageBatch`,
//! recording `targeted` and the cursor once per page. It stops when its time budget is spent
//! and queues a continuation (a message on its own dispatch queue) to go on from the cursor.
//!
//! Crash safety: a page is sent, then recorded (`Store::advance_run`, conditional on the page
//! sequence). A dispatcher that dies between the two re-sends the page on resume with the same
//! deterministic batch ids; the worker counts a batch once and finds the coupons already issued.
//! If the dispatcher dies outright, SQS redelivers its message after the visibility timeout.

use crate::App;
use loyalty::campaign::{pack_ids, IssueBatch, RunRef};
use loyalty::store::campaign::{Cursor, RunItem};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Index items read per page. A page becomes up to ten messages of at most `MAX_PACK` ids, so one
/// page is about one `SendMessageBatch` call and one cursor write.
pub const PAGE_SIZE: i32 = 5000;

/// A message on the dispatch queue: dispatch (or go on dispatching) this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DispatchMessage {
    pub campaign_id: String,
    pub run_id: String,
}

pub async fn send_dispatch(app: &App, msg: &DispatchMessage) -> Result<(), String> {
    loyalty::queue::send(&app.sqs, &app.dispatch_queue, std::slice::from_ref(msg)).await
}

/// One dispatch message: dispatches pages of its run until done or out of time.
pub async fn on_message(app: &App, body: &str, deadline: Instant) -> Result<(), String> {
    let msg: DispatchMessage =
        serde_json::from_str(body).map_err(|e| format!("not a dispatch message: {e}"))?;
    let Some(run) = app
        .deps
        .store
        .campaign_run(&msg.campaign_id, &msg.run_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        tracing::warn!(campaign_id = %msg.campaign_id, run_id = %msg.run_id, "dispatch for a run that does not exist; dropped");
        return Ok(());
    };
    match dispatch(app, run, deadline).await? {
        Step::Done | Step::Yielded => Ok(()),
        Step::OutOfTime => send_dispatch(app, &msg).await,
    }
}

/// Where the next page of a part starts: after an index key, or at an offset of a list.
enum Next {
    Start(std::collections::HashMap<String, String>),
    Offset(u64),
}

enum Step {
    Done,
    /// Another dispatcher recorded first, or a newer attempt replaced the run.
    Yielded,
    OutOfTime,
}

async fn dispatch(app: &App, mut run: RunItem, deadline: Instant) -> Result<Step, String> {
    let store = &app.deps.store;
    let overhead = serde_json::to_vec(&batch(&run, String::new(), Vec::new()))
        .map_err(|e| e.to_string())?
        .len()
        + 64;
    // Always at least one page per invocation, so a tiny budget still makes progress.
    loop {
        if run.dispatch_done || run.superseded_by.is_some() {
            return Ok(Step::Done);
        }
        let part = run.cursor.part as usize;
        let (ids, next) = match (&run.targets.list, run.targets.part(part)) {
            (Some(list), _) => {
                let (ids, next) =
                    crate::members_file::page(app, list, run.cursor.offset, PAGE_SIZE as usize)
                        .await?;
                (ids, next.map(Next::Offset))
            }
            (None, None) => (Vec::new(), None),
            (None, Some(target)) => {
                let (members, next) = store
                    .segment_page(&run.targets, target, run.cursor.start.as_ref(), PAGE_SIZE)
                    .await
                    .map_err(|e| e.to_string())?;
                let ids: Vec<String> = members
                    .into_iter()
                    .filter(|m| run.segment.matches(m, run.at))
                    .map(|m| m.member_id)
                    .collect();
                (ids, next.map(Next::Start))
            }
        };
        let targeted = ids.len() as u64;
        let batches: Vec<IssueBatch> = pack_ids(ids, overhead)
            .into_iter()
            .enumerate()
            .map(|(n, pack)| {
                batch(&run, format!("{}#{part:03}#{:06}#{n:02}", run.run_id, run.cursor.page), pack)
            })
            .collect();
        loyalty::queue::send(&app.sqs, &app.campaign_queue, &batches).await?;
        let page = run.cursor.page + 1;
        let cursor = match next {
            Some(Next::Start(start)) => {
                Cursor { part: part as u32, page, start: Some(start), offset: 0 }
            }
            Some(Next::Offset(offset)) => Cursor { part: part as u32, page, start: None, offset },
            None => Cursor { part: part as u32 + 1, ..Cursor::default() },
        };
        let done = cursor.part as usize >= run.targets.parts();
        if !store
            .advance_run(&run, run.cursor_seq, &cursor, targeted, done, app.deps.clock.now())
            .await
            .map_err(|e| e.to_string())?
        {
            tracing::info!(campaign_id = %run.campaign_id, run_id = %run.run_id, "another dispatcher or a newer attempt moved on; stopping");
            return Ok(Step::Yielded);
        }
        run.cursor = cursor;
        run.cursor_seq += 1;
        run.progress.targeted += targeted;
        run.dispatch_done = done;
        if done {
            tracing::info!(campaign_id = %run.campaign_id, run_id = %run.run_id, targeted = run.progress.targeted, "dispatch done");
            return Ok(Step::Done);
        }
        if Instant::now() >= deadline {
            tracing::info!(campaign_id = %run.campaign_id, run_id = %run.run_id, part = run.cursor.part, "time budget spent; continuing in a new invocation");
            return Ok(Step::OutOfTime);
        }
    }
}

fn batch(run: &RunItem, batch_id: String, member_ids: Vec<String>) -> IssueBatch {
    IssueBatch {
        batch_id,
        grant: run.grant.clone(),
        template: run.template.clone(),
        points: run.points.clone(),
        budget: run.budget,
        run: Some(RunRef { campaign_id: run.campaign_id.clone(), run_id: run.run_id.clone() }),
        experiment: run.experiment.clone(),
        member_ids,
    }
}
