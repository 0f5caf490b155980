//! The campaign queue's worker: each message is an `IssueBatch`; each member gets one
//! coupon with one conditional write (codes are derived from member + grant, so a
//! redelivery finds the coupons already there), and the batch is counted into its run once.
//!
//! A message is reported failed (and redelivered by SQS) when it cannot be parsed or is
//! invalid (poison: after `maxReceiveCount` it moves to the DLQ), when reading its members
//! failed, or when some members' writes failed and deliveries remain. On the last delivery
//! the failures are counted as `failed` so that the run's counts still add up, and the
//! message still goes to the DLQ for an operator to replay.

use crate::App;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use loyalty::campaign::IssueBatch;
use loyalty::store::issue::BatchCounts;

/// Coupon writes in flight per message.
pub const ISSUE_CONCURRENCY: usize = 16;
/// The campaign queue's RedrivePolicy maxReceiveCount (template.yaml).
pub const MAX_RECEIVES: u64 = 3;

pub async fn handle(app: &App, event: SqsEvent) -> SqsBatchResponse {
    let now = app.env.clock.now();
    let results = futures::future::join_all(event.records.iter().map(|r| process(app, r, now))).await;
    let mut out = SqsBatchResponse::default();
    for (record, ok) in event.records.iter().zip(results) {
        if !ok {
            let mut f = BatchItemFailure::default();
            f.item_identifier = record.message_id.clone().unwrap_or_default();
            out.batch_item_failures.push(f);
        }
    }
    out
}

/// Why a message is refused outright (it would fail the same way on every delivery).
pub fn parse(body: &str) -> Result<IssueBatch, String> {
    let batch: IssueBatch = serde_json::from_str(body).map_err(|e| format!("not an IssueBatch: {e}"))?;
    let id_ok = |s: &str| (1..=200).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    if !id_ok(&batch.batch_id) || !id_ok(&batch.grant) {
        return Err("batchId and grant must be 1..200 visible ASCII characters".into());
    }
    batch.template.validate().map_err(|e| format!("invalid template: {e}"))?;
    if let Some(run) = &batch.run {
        if !id_ok(&run.campaign_id) || !id_ok(&run.run_id) {
            return Err("run ids must be 1..200 visible ASCII characters".into());
        }
    }
    Ok(batch)
}

async fn process(app: &App, record: &SqsMessage, now: DateTime<Utc>) -> bool {
    let message_id = record.message_id.as_deref().unwrap_or("-");
    let batch = match record.body.as_deref().ok_or_else(|| "empty message".to_string()).and_then(parse) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(message_id, error = %e, "poison message on the campaign queue");
            return false;
        }
    };
    let deliveries = record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1);
    let store = &app.env.store;
    let counts = match store.issue_batch(&app.codes, &batch, now, ISSUE_CONCURRENCY).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(message_id, batch_id = %batch.batch_id, error = %e, "batch not processed; SQS will redeliver");
            return false;
        }
    };
    log_counts(&batch, &counts, deliveries);
    let last_delivery = deliveries >= MAX_RECEIVES;
    if counts.failed > 0 && !last_delivery {
        return false;
    }
    if let Some(run) = &batch.run {
        match store.count_batch(run, &batch.batch_id, &counts, now).await {
            Ok(true) => {}
            Ok(false) => tracing::info!(batch_id = %batch.batch_id, "batch was counted by an earlier delivery"),
            Err(e) => {
                tracing::warn!(batch_id = %batch.batch_id, error = %e, "counting the batch failed; SQS will redeliver");
                return false;
            }
        }
    }
    counts.failed == 0
}

fn log_counts(batch: &IssueBatch, c: &BatchCounts, deliveries: u64) {
    tracing::info!(
        batch_id = %batch.batch_id,
        grant = %batch.grant,
        members = batch.member_ids.len(),
        issued = c.issued,
        skipped_already_had = c.skipped_already_had,
        skipped_budget_spent = c.skipped_budget_spent,
        skipped_not_eligible = c.skipped_not_eligible,
        failed = c.failed,
        deliveries,
        "batch issued"
    );
}
