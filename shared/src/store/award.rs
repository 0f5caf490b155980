//! Bulk awards: the definition (`CAMPAIGN#<id>` / `RUN~`, entity `award`, next to its runs as a
//! campaign's definition is) and the crediting of an award's points, one member at a time.
//!
//! Exactly once per member per award: a member's points, their `award` ledger entry and the
//! grant slot `MEMBER#<id>` / `GRANT#award:<id>#0` (entity `award_slot`, which must not exist)
//! are one transaction, through the one member-change loop (`Store::change_member`). The slot,
//! not the ledger entry, is the guard because ledger keys begin with the instant (the ledger
//! is read newest first by key), so no entry's key can be known before it is written; the slot
//! is the same guard a coupon's grant has, at the same key, so an award of a coupon and an
//! award of points are held alike. A second run, a redelivered batch or a member listed twice
//! reads the slot (in the same BatchGetItem as the member) and writes nothing; two writers
//! racing for it meet the condition, and the loser reads again and finds it.
//!
//! Budget: with one, the grant's budget counter (`BUDGET#award:<id>`, the campaigns' counter)
//! is incremented in the same transaction on condition that it is below the budget, so no
//! number of concurrent runs and workers credits more members than the budget.

use super::campaign::LastRun;
use super::change::{Attempt, Failed};
use super::issue::BatchCounts;
use super::keys::{self, campaign_pk, member_pk, ItemKey};
use super::{Cond, Store, StoreError};
use crate::campaign::award::Award;
use crate::campaign::{IssueBatch, PointsCredit, SkipReason};
use crate::member::MemberId;
use crate::rules::Rules;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

/// An award's definition, with its last run and version (as a campaign's item has them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AwardItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(flatten)]
    pub award: Award,
    /// The request's fingerprint: an Idempotency-Key retry must be the same request.
    pub fingerprint: String,
    #[serde(rename = "lastRun", default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    #[serde(default)]
    pub version: u64,
}

impl AwardItem {
    pub fn new(award: Award, fingerprint: String) -> AwardItem {
        AwardItem {
            key: ItemKey::new(campaign_pk(&award.id), keys::CAMPAIGN_SK, "award"),
            award,
            fingerprint,
            last_run: None,
            version: 0,
        }
    }
}

/// A member's share of an award of points: its grant slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwardSlot {
    #[serde(flatten)]
    pub key: ItemKey,
    pub member_id: String,
    pub award_id: String,
    pub points: i64,
    /// The batch that credited it, so a redelivery of that batch counts it as its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    pub credited_at: DateTime<Utc>,
}

/// What crediting one member did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credit {
    Credited,
    /// The member's slot was taken, by the batch named (when it says).
    AlreadyCredited(Option<String>),
    /// No such member, or erased.
    Unknown,
    BudgetSpent,
}

/// Why an attempt stopped without crediting (the change loop's error).
enum Stop {
    Budget,
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Store(e)
    }
}

impl Store {
    /// The award's definition and its newest `runs` runs (newest first), in one Query.
    pub async fn award_with_runs(
        &self,
        id: &str,
        runs: i32,
    ) -> Result<Option<(AwardItem, Vec<super::campaign::RunItem>)>, StoreError> {
        self.definition_with_runs(id, "award", runs).await
    }

    /// The award's definition (strongly consistent). Awards and campaigns share the definition
    /// key, so the item's kind is checked before it is read as an award: a campaign's id is
    /// "no such award", not an item that fails to decode.
    pub async fn award(&self, id: &str) -> Result<Option<AwardItem>, StoreError> {
        let found = self.batch_get(vec![super::key(&campaign_pk(id), keys::CAMPAIGN_SK)]).await?;
        found
            .into_iter()
            .find(|item| super::entity(item) == Some("award"))
            .map(super::from_item)
            .transpose()
    }

    /// Credits `award` to `member_id`, a member of `batch` (its grant, id and budget), once:
    /// one read (the member and its slot), one transaction (the member, its ledger entries,
    /// the slot, the budget counter).
    /// `budget_spent`: the batch already met the budget, so a member not yet credited is
    /// answered over budget without writing (the counter never goes down).
    pub async fn credit_award(
        &self,
        member_id: &str,
        batch: &IssueBatch,
        award: &PointsCredit,
        budget_spent: bool,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Credit, StoreError> {
        let (grant, batch_id, budget) =
            (batch.grant.as_str(), batch.batch_id.as_str(), batch.budget);
        let slot_sk = keys::grant_sk(grant, 0);
        let outcome = self
            .change_member(async || {
                let today = crate::calendar::program_date(rules.time_zone, now);
                let mut read = self.points_read(member_id, std::slice::from_ref(&slot_sk)).await?;
                if let Some(slot) = read.take::<AwardSlot>(&slot_sk)? {
                    return Ok(Attempt::Answer(Credit::AlreadyCredited(slot.batch_id)));
                }
                let Some(mut member) = read.member.take().filter(|m| !m.is_erased()) else {
                    return Ok(Attempt::Answer(Credit::Unknown));
                };
                if budget_spent {
                    return Ok(Attempt::Answer(Credit::BudgetSpent));
                }
                let read_version = member.version;
                member.version += 1;
                let entries = crate::points::award::credit(&mut member, award, rules, today, now);
                let mut writes = self.member_change(&member, read_version, entries, rules, now)?;
                let slot = writes.len();
                writes.push(self.put(
                    &AwardSlot {
                        key: ItemKey::new(member_pk(member_id), slot_sk.clone(), "award_slot"),
                        member_id: member_id.into(),
                        award_id: award.award_id.clone(),
                        points: award.amount,
                        batch_id: Some(batch_id.into()),
                        credited_at: now,
                    },
                    Some(Cond::absent()),
                )?);
                if let Some(b) = budget {
                    writes.push(self.budget_write(grant, b)?);
                }
                let budget_at = budget.map(|_| slot + 1);
                Ok(Attempt::CommitOr(
                    writes,
                    Credit::Credited,
                    Box::new(move |failed: &[usize]| {
                        if failed.contains(&slot) {
                            // Someone credited the member meanwhile: the next read says who.
                            Failed::ReadAgainNow
                        } else if budget_at.is_some_and(|b| failed.contains(&b)) {
                            Failed::Refused(Stop::Budget)
                        } else {
                            Failed::Contended
                        }
                    }),
                ))
            })
            .await;
        match outcome {
            Ok(c) => Ok(c),
            Err(Stop::Budget) => Ok(Credit::BudgetSpent),
            Err(Stop::Store(e)) => Err(e),
        }
    }

    /// Credits a batch of an award of points, `concurrency` members at a time, and counts it in
    /// the run's counter names: credited as `issued`, already credited as `skippedAlreadyHad`,
    /// unknown as `skippedNotEligible`, over budget as `skippedBudgetSpent`. A member listed
    /// twice in the batch is credited once (the second is already credited); a member that
    /// failed is `failed` (the worker decides whether to retry the message).
    pub async fn credit_batch(
        &self,
        batch: &IssueBatch,
        award: &PointsCredit,
        rules: &Rules,
        now: DateTime<Utc>,
        concurrency: usize,
    ) -> BatchCounts {
        let mut seen = HashSet::new();
        let firsts: Vec<bool> =
            batch.member_ids.iter().map(|id| seen.insert(id.as_str())).collect();
        let spent = AtomicBool::new(false);
        let spent = &spent;
        let results: Vec<Result<Credit, StoreError>> =
            futures::stream::iter(batch.member_ids.iter().zip(firsts))
                .map(|(id, first)| async move {
                    if MemberId::parse(id).is_none() {
                        return Ok(Credit::Unknown);
                    }
                    if !first {
                        return Ok(Credit::AlreadyCredited(None));
                    }
                    let c = self
                        .credit_award(id, batch, award, spent.load(Ordering::Relaxed), rules, now)
                        .await?;
                    if c == Credit::BudgetSpent {
                        spent.store(true, Ordering::Relaxed);
                    }
                    Ok(c)
                })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
        let mut counts = BatchCounts::default();
        for r in results {
            match r {
                Ok(Credit::Credited) => counts.issued += 1,
                // Credited by an earlier delivery of this same batch: it counts as this batch's.
                Ok(Credit::AlreadyCredited(Some(b))) if b == batch.batch_id => counts.issued += 1,
                Ok(Credit::AlreadyCredited(_)) => counts.skip(SkipReason::AlreadyHad),
                Ok(Credit::Unknown) => counts.skip(SkipReason::NotEligible),
                Ok(Credit::BudgetSpent) => counts.skip(SkipReason::BudgetSpent),
                Err(e) => {
                    tracing::warn!(batch_id = %batch.batch_id, error = %e, "crediting one member failed");
                    counts.failed += 1
                }
            }
        }
        counts
    }
}
