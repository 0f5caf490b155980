//! The campaign queue's worker: each message is an `IssueBatch`; each member gets one
//! coupon with one conditional write (codes are derived from member + grant, so a
//! redelivery finds the coupons already there), or, for a bulk award of points, its points
//! with one member change guarded by the award's grant slot (`Store::credit_batch`); the
//! batch is counted into its run once.
//!
//! A message is reported failed (and redelivered by SQS) when it cannot be parsed or is
//! invalid (poison: after `maxReceiveCount` it moves to the DLQ), when reading its members
//! failed, or when some members' writes failed and deliveries remain. On the last delivery
//! the failures are counted as `failed` so that the run's counts still add up, and the
//! message still goes to the DLQ for an operator to replay.
//!
//! Birthday batches (grant `birthday-<year>`) also apply the birthday rule to each member's
//! record (`birthday::gift_allowed`): a birthday recorded less than `birthday.minDaysKnown`
//! days before it, or a contact whose erased membership had this year's coupon, is skipped
//! as not eligible.

use crate::App;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use loyalty::birthday;
use loyalty::campaign::award::MAX_AWARD_POINTS;
use loyalty::campaign::IssueBatch;
use loyalty::store::issue::{BatchCounts, Candidate};

/// Coupon writes in flight per message.
pub const ISSUE_CONCURRENCY: usize = 16;
/// The campaign queue's RedrivePolicy maxReceiveCount (template.yaml).
pub const MAX_RECEIVES: u64 = 3;

pub async fn handle(app: &App, event: SqsEvent) -> SqsBatchResponse {
    let now = app.deps.clock.now();
    // Every message of the batch at once (each bounds its own writes: ISSUE_CONCURRENCY).
    let all = event.records.len();
    loyalty::runtime::each_message(
        event,
        all,
        |record| async move { process(app, &record, now).await },
    )
    .await
}

/// Why a message is refused outright (it would fail the same way on every delivery).
pub fn parse(body: &str) -> Result<IssueBatch, String> {
    let batch: IssueBatch =
        serde_json::from_str(body).map_err(|e| format!("not an IssueBatch: {e}"))?;
    let id_ok = |s: &str| (1..=200).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    if !id_ok(&batch.batch_id) || !id_ok(&batch.grant) {
        return Err("batchId and grant must be 1..200 visible ASCII characters".into());
    }
    match (&batch.template, &batch.points) {
        (Some(t), None) => t.validate().map_err(|e| format!("invalid template: {e}"))?,
        (None, Some(p)) => {
            if p.amount <= 0 || p.amount > MAX_AWARD_POINTS || !id_ok(&p.award_id) {
                return Err("points: an amount of 1..1000000 and an award id".into());
            }
        }
        _ => return Err("a batch gives exactly one of template and points".into()),
    }
    if let Some(run) = &batch.run {
        if !id_ok(&run.campaign_id) || !id_ok(&run.run_id) {
            return Err("run ids must be 1..200 visible ASCII characters".into());
        }
    }
    Ok(batch)
}

async fn process(app: &App, record: &SqsMessage, now: DateTime<Utc>) -> bool {
    let message_id = record.message_id.as_deref().unwrap_or("-");
    let batch =
        match record.body.as_deref().ok_or_else(|| "empty message".to_string()).and_then(parse) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(message_id, error = %e, "poison message on the campaign queue");
                return false;
            }
        };
    let deliveries = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse::<u64>().ok())
        .unwrap_or(1);
    let store = &app.deps.store;
    let rules = &app.deps.rules;
    // A birthday grant's coupon goes only to birthdays recorded far enough ahead, and not to a
    // contact whose erased membership had this year's (checked on the member record, which
    // the index the job read may lag).
    let birthday_year = birthday::grant_year(&batch.grant);
    let eligible = |c: &Candidate| match birthday_year {
        Some(year) => birthday::gift_allowed(
            &c.birthday_facts(rules.time_zone),
            year,
            rules.birthday.min_days_known,
        )
        .is_ok(),
        None => true,
    };
    let issued = match &batch.points {
        // A bulk award's points: one member change each (`Store::credit_batch`).
        Some(points) => Ok(store.credit_batch(&batch, points, rules, now, ISSUE_CONCURRENCY).await),
        None => {
            store.issue_batch_checked(&app.codes, &batch, now, ISSUE_CONCURRENCY, &eligible).await
        }
    };
    let counts = match issued {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(message_id, batch_id = %batch.batch_id, error = %e, "batch not processed; SQS will redeliver");
            return false;
        }
    };
    log_counts(&batch, &counts, deliveries);
    let settle = settle(&counts, deliveries);
    if !settle.count {
        return false;
    }
    if let Some(run) = &batch.run {
        match store.count_batch(run, &batch.batch_id, &counts, now).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(batch_id = %batch.batch_id, "batch was counted by an earlier delivery")
            }
            Err(e) => {
                tracing::warn!(batch_id = %batch.batch_id, error = %e, "counting the batch failed; SQS will redeliver");
                return false;
            }
        }
    }
    settle.done
}

/// What to do with a processed batch.
#[derive(Debug, PartialEq, Eq)]
pub struct Settle {
    /// Add the counts to the run now.
    pub count: bool,
    /// Acknowledge the message (else SQS redelivers it, and after the last delivery moves it to the DLQ).
    pub done: bool,
}

/// A batch with failed writes is retried by redelivery without being counted, so that its
/// counts come out right once it succeeds; on the last delivery its failures are counted as
/// `failed` (targeted = issued + skipped + failed still holds) and the message goes to the DLQ.
pub fn settle(counts: &BatchCounts, deliveries: u64) -> Settle {
    let clean = counts.failed == 0;
    Settle { count: clean || deliveries >= MAX_RECEIVES, done: clean }
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
        skipped_holdout = c.skipped_holdout,
        failed = c.failed,
        deliveries,
        "batch issued"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_writes_are_retried_uncounted_until_the_last_delivery() {
        let ok = BatchCounts { issued: 5, ..Default::default() };
        let failing = BatchCounts { issued: 4, failed: 1, ..Default::default() };
        assert_eq!(settle(&ok, 1), Settle { count: true, done: true });
        assert_eq!(settle(&failing, 1), Settle { count: false, done: false });
        assert_eq!(settle(&failing, MAX_RECEIVES - 1), Settle { count: false, done: false });
        assert_eq!(settle(&failing, MAX_RECEIVES), Settle { count: true, done: false });
    }

    #[test]
    fn poison_is_refused_before_any_work() {
        assert!(parse("{").is_err());
        assert!(parse(r#"{"batchId":"b","grant":"g","template":{"title":"t","offer":{"kind":"free_shipping"},"validDays":0},"memberIds":[]}"#)
            .unwrap_err()
            .contains("invalid template"));
        assert!(parse(r#"{"batchId":"","grant":"g","template":{"title":"t","offer":{"kind":"free_shipping"},"validDays":1},"memberIds":[]}"#).is_err());
        assert!(parse(r#"{"batchId":"b","grant":"g","template":{"title":"t","offer":{"kind":"free_shipping"},"validDays":1},"memberIds":["m1"]}"#).is_ok());
        let points = r#"{"awardId":"a-1","amount":100,"lotDay":"2026-01-01","reason":"r"}"#;
        assert!(parse(&format!(
            r#"{{"batchId":"b","grant":"award:a-1","points":{points},"memberIds":["m1"]}}"#
        ))
        .is_ok());
        assert!(parse(r#"{"batchId":"b","grant":"g","memberIds":["m1"]}"#)
            .unwrap_err()
            .contains("exactly one"));
        assert!(parse(&format!(r#"{{"batchId":"b","grant":"g","points":{points},"template":{{"title":"t","offer":{{"kind":"free_shipping"}},"validDays":1}},"memberIds":[]}}"#)).is_err());
        let zero = points.replace("100", "0");
        assert!(parse(&format!(r#"{{"batchId":"b","grant":"g","points":{zero},"memberIds":[]}}"#))
            .is_err());
    }
}
