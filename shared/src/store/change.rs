//! The one way a member changes: read afresh, decide, commit with the member's version as
//! the condition, and on contention read again after a backoff (`Store::change_member`).
//! Every command of every function that changes a member goes through it.

use super::ledger::LedgerItem;
use super::{Store, StoreError, TxFailure};
use crate::ledger::LedgerEntry;
use crate::member::Member;
use crate::rules::Rules;
use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};

/// Whether a points transaction landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    Done,
    /// A condition failed or another transaction held an item: read again and redo.
    Retry,
}

/// What one attempt of `Store::change_member` decided from what it read.
pub enum Attempt<T, E> {
    /// Answer without writing: a replayed request, or nothing to change.
    Answer(T),
    /// Commit these writes, then answer (or read again if another write came between).
    Commit(Vec<TransactWriteItem>, T),
    /// Like `Commit`, but what failed conditions mean is for the function to judge, given
    /// the indexes of the writes whose condition failed.
    CommitOr(Vec<TransactWriteItem>, T, Judge<E>),
}

/// Judges a commit's failed conditions from the indexes of the writes that failed them.
pub type Judge<E> = Box<dyn FnOnce(&[usize]) -> Failed<E> + Send>;

/// What a commit's failed conditions meant.
pub enum Failed<E> {
    /// Another write came between: read again after a backoff (what `Commit` always does).
    Contended,
    /// Read again at once: the read tells what changed, and there is nothing to wait for.
    ReadAgainNow,
    /// The change is refused.
    Refused(E),
}

impl Store {
    /// The versioned write of a changed member with its ledger entries: one new ledger item
    /// for all of them (`LedgerItem::of_change`).
    pub fn member_change(
        &self,
        member: &Member,
        read_version: u64,
        entries: Vec<LedgerEntry>,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let id = member.member_id.as_str();
        let mut writes = vec![self.member_write(member, read_version, rules, now)?];
        if let Some(item) = LedgerItem::of_change(id, entries) {
            writes.push(self.put(&item, Some(super::Cond::absent()))?);
        }
        Ok(writes)
    }

    /// The one optimistic-concurrency loop of a member change. Each call of `attempt` reads
    /// what it needs afresh (the member and its version, the receipt or order that makes the
    /// request idempotent), decides, and answers either without writing (a replay, nothing
    /// to do) or with the writes, the member's version-checked write among them. A commit
    /// that fails on a version or uniqueness condition, or against another transaction, is
    /// tried again from a fresh read after a backoff; after `MAX_ATTEMPTS` the change gives up
    /// with `StoreError::Contended`.
    pub async fn change_member<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T, E>, E>>,
    {
        for n in 0..super::MAX_ATTEMPTS {
            match attempt().await? {
                Attempt::Answer(answer) => return Ok(answer),
                Attempt::Commit(writes, answer) => {
                    if self.commit(writes, n).await? == Commit::Done {
                        return Ok(answer);
                    }
                }
                Attempt::CommitOr(writes, answer, judge) => match self.transact(writes).await {
                    Ok(()) => return Ok(answer),
                    Err(TxFailure::Conditions(failed)) => match judge(&failed) {
                        Failed::Refused(refused) => return Err(refused),
                        Failed::ReadAgainNow => {}
                        Failed::Contended => super::backoff(n).await,
                    },
                    Err(TxFailure::Conflict) => super::backoff(n).await,
                    Err(TxFailure::Store(e)) => return Err(e.into()),
                },
            }
        }
        Err(StoreError::Contended.into())
    }

    /// Commits one points transaction. Version and uniqueness conditions failing, or a
    /// conflicting transaction, mean "read again" (after a backoff).
    pub async fn commit(
        &self,
        writes: Vec<TransactWriteItem>,
        attempt: u32,
    ) -> Result<Commit, StoreError> {
        match self.transact(writes).await {
            Ok(()) => Ok(Commit::Done),
            Err(TxFailure::Conditions(_) | TxFailure::Conflict) => {
                super::backoff(attempt).await;
                Ok(Commit::Retry)
            }
            Err(TxFailure::Store(e)) => Err(e),
        }
    }
}
