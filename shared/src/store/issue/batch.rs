//! A campaign batch: one coupon per eligible member, counted into its run exactly once.

use super::IssueOutcome;
use crate::campaign::experiment::Assignment;
use crate::campaign::{IssueBatch, RunRef, SkipReason};
use crate::coupon::{self, CodeKey};
use crate::store::issue::Candidate;
use crate::store::keys::{self, ItemKey};
use crate::store::{backoff, key, sdk, Cond, Store, StoreError, TxFailure, MAX_ATTEMPTS};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// A campaign batch's result, in the run item's counter names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCounts {
    pub issued: u64,
    pub skipped_already_had: u64,
    pub skipped_budget_spent: u64,
    pub skipped_not_eligible: u64,
    #[serde(default)]
    pub skipped_holdout: u64,
    pub failed: u64,
}

impl BatchCounts {
    pub fn skipped(&self) -> u64 {
        self.skipped_already_had
            + self.skipped_budget_spent
            + self.skipped_not_eligible
            + self.skipped_holdout
    }
    pub fn total(&self) -> u64 {
        self.issued + self.skipped() + self.failed
    }
    pub(crate) fn skip(&mut self, reason: SkipReason) {
        match reason {
            SkipReason::AlreadyHad => self.skipped_already_had += 1,
            SkipReason::BudgetSpent => self.skipped_budget_spent += 1,
            SkipReason::NotEligible => self.skipped_not_eligible += 1,
            SkipReason::Holdout => self.skipped_holdout += 1,
        }
    }
}

/// Marks a batch as counted into its run (`keys::batch_sk`).
#[derive(Debug, Serialize, Deserialize)]
struct BatchMarker {
    #[serde(flatten)]
    key: ItemKey,
    #[serde(flatten)]
    counts: BatchCounts,
    at: DateTime<Utc>,
}

impl Store {
    /// Issues a campaign batch: one coupon per eligible member (slot 0 of the grant), with
    /// `concurrency` transactions in flight (one request per coupon). Once the budget is spent the rest are skipped without
    /// writing. A member whose write failed is counted `failed` (the caller decides whether
    /// to retry the message). Reading eligibility failing fails the whole batch.
    pub async fn issue_batch(
        &self,
        key: &CodeKey,
        batch: &IssueBatch,
        now: DateTime<Utc>,
        concurrency: usize,
    ) -> Result<BatchCounts, StoreError> {
        self.issue_batch_checked(key, batch, now, concurrency, &|_| true).await
    }

    /// `issue_batch` where a member must also pass `eligible` (a rule of the grant, e.g. the
    /// birthday coupon's); one that does not is skipped as not eligible.
    pub async fn issue_batch_checked(
        &self,
        key: &CodeKey,
        batch: &IssueBatch,
        now: DateTime<Utc>,
        concurrency: usize,
        eligible: &(dyn Fn(&Candidate) -> bool + Sync),
    ) -> Result<BatchCounts, StoreError> {
        let Some(template) = batch.template.as_ref() else {
            return Err(StoreError::Mapping("a coupon batch without a coupon template".into()));
        };
        let candidates = self.candidates(&batch.member_ids).await?;
        let spent = AtomicBool::new(false);
        let (spent, candidates) = (&spent, &candidates);
        let results: Vec<Result<SkipOrIssued, StoreError>> =
            futures::stream::iter(batch.member_ids.iter())
                .map(|member_id| async move {
                    match candidates.get(member_id) {
                        None => return Ok(SkipOrIssued::Skipped(SkipReason::NotEligible)),
                        Some(c)
                            if !template.tiers.is_empty() && !template.tiers.contains(&c.tier) =>
                        {
                            return Ok(SkipOrIssued::Skipped(SkipReason::NotEligible))
                        }
                        Some(c) if !eligible(c) => {
                            return Ok(SkipOrIssued::Skipped(SkipReason::NotEligible))
                        }
                        Some(_) => {}
                    }
                    if spent.load(Ordering::Relaxed) {
                        return Ok(SkipOrIssued::Skipped(SkipReason::BudgetSpent));
                    }
                    let (template, arm) =
                        match batch.experiment.as_ref().map(|e| e.assign(member_id)) {
                            None => (template, None),
                            Some(Assignment::Variant(a)) => {
                                (a.coupon.as_ref().unwrap_or(template), Some(&*a.name))
                            }
                            Some(Assignment::Holdout) => {
                                return Ok(match self.hold_out(member_id, batch, now).await? {
                                    true => SkipOrIssued::Skipped(SkipReason::Holdout),
                                    false => SkipOrIssued::Skipped(SkipReason::AlreadyHad),
                                });
                            }
                        };
                    let c = coupon::issue(key, template, member_id, &batch.grant, 0, now);
                    let tag = Some(batch.batch_id.as_str());
                    Ok(match self.issue_arm_coupon(&c, tag, arm, batch.budget).await? {
                        IssueOutcome::Issued => SkipOrIssued::Issued,
                        // Issued by an earlier delivery of this same batch: it counts as this batch's.
                        IssueOutcome::AlreadyHad(Some(old))
                            if old.batch_id.as_deref() == Some(batch.batch_id.as_str()) =>
                        {
                            SkipOrIssued::Issued
                        }
                        IssueOutcome::AlreadyHad(_) => {
                            SkipOrIssued::Skipped(SkipReason::AlreadyHad)
                        }
                        IssueOutcome::BudgetSpent => {
                            spent.store(true, Ordering::Relaxed);
                            SkipOrIssued::Skipped(SkipReason::BudgetSpent)
                        }
                    })
                })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
        let mut counts = BatchCounts::default();
        for r in results {
            match r {
                Ok(SkipOrIssued::Issued) => counts.issued += 1,
                Ok(SkipOrIssued::Skipped(reason)) => counts.skip(reason),
                Err(e) => {
                    tracing::warn!(batch_id = %batch.batch_id, error = %e, "issuing one coupon failed");
                    counts.failed += 1
                }
            }
        }
        Ok(counts)
    }

    /// Adds a batch's counts to its run, once: a marker item per batch is created in the same
    /// transaction. Answers false when the batch had been counted already (a redelivery).
    pub async fn count_batch(
        &self,
        run: &RunRef,
        batch_id: &str,
        counts: &BatchCounts,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let pk = keys::campaign_pk(&run.campaign_id);
        let marker = BatchMarker {
            key: ItemKey::new(pk.clone(), keys::batch_sk(&run.run_id, batch_id), "campaign_batch"),
            counts: *counts,
            at: now,
        };
        let n = |v: u64| AttributeValue::N(v.to_string());
        let add = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(&pk, &keys::run_sk(&run.run_id))))
            .update_expression(
                "ADD issued :i, skipped :s, failed :f, skippedAlreadyHad :a, skippedBudgetSpent :b, skippedNotEligible :n, skippedHoldout :h",
            )
            .expression_attribute_values(":i", n(counts.issued))
            .expression_attribute_values(":s", n(counts.skipped()))
            .expression_attribute_values(":f", n(counts.failed))
            .expression_attribute_values(":a", n(counts.skipped_already_had))
            .expression_attribute_values(":b", n(counts.skipped_budget_spent))
            .expression_attribute_values(":n", n(counts.skipped_not_eligible))
            .expression_attribute_values(":h", n(counts.skipped_holdout))
            .build()
            .map_err(sdk)?;
        let writes = vec![
            self.put(&marker, Some(Cond::absent()))?,
            TransactWriteItem::builder().update(add).build(),
        ];
        for attempt in 0..MAX_ATTEMPTS {
            match self.transact(writes.clone()).await {
                Ok(()) => return Ok(true),
                Err(TxFailure::Conditions(_)) => return Ok(false),
                Err(TxFailure::Conflict) => backoff(attempt).await,
                Err(TxFailure::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Contended)
    }
}

enum SkipOrIssued {
    Issued,
    Skipped(SkipReason),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let mut c = BatchCounts { issued: 3, failed: 1, ..Default::default() };
        c.skip(SkipReason::AlreadyHad);
        c.skip(SkipReason::BudgetSpent);
        c.skip(SkipReason::NotEligible);
        c.skip(SkipReason::Holdout);
        assert_eq!((c.skipped(), c.total()), (4, 8));
    }

    #[test]
    fn the_batch_marker_keeps_the_counter_names_of_the_run_item() {
        let m = BatchMarker {
            key: ItemKey::new("p", "s", "campaign_batch"),
            counts: BatchCounts { issued: 1, ..Default::default() },
            at: Utc::now(),
        };
        let v = serde_json::to_value(&m).unwrap();
        for f in [
            "issued",
            "skippedAlreadyHad",
            "skippedBudgetSpent",
            "skippedNotEligible",
            "skippedHoldout",
            "failed",
        ] {
            assert!(v.get(f).is_some(), "{f} in {v}");
        }
    }
}
