//! Issuing coupons. One coupon is ONE conditional write: a `PutItem` that only lands if the
//! coupon (whose code is derived from member + grant + slot) is not there yet, or, when the
//! grant has a budget, one `TransactWriteItems` of that Put and the budget counter's
//! conditional increment. A batch reads its members' eligibility with BatchGetItem and
//! counts its progress into the campaign run exactly once (a marker item per batch).

use super::coupon::CouponItem;
use super::keys::{self, member_pk, PROFILE_SK};
use super::{backoff, from_item, key, sdk, to_item, Cond, Item, Store, StoreError, TxFailure, MAX_ATTEMPTS};
use crate::campaign::{IssueBatch, RunRef, SkipReason};
use crate::contact::PriorGifts;
use crate::coupon::{self, CodeKey, Coupon};
use crate::member::MemberId;
use crate::tier::TierCode;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

/// BatchGetItem takes at most this many keys per request.
const BATCH_GET_MAX: usize = 100;

/// What one issue attempt did.
#[derive(Debug, Clone)]
pub enum IssueOutcome {
    /// The coupon was written now.
    Issued,
    /// The member already holds this grant's coupon (for this slot). The stored item comes
    /// back with the failed condition when the database returns it.
    AlreadyHad(Option<Box<CouponItem>>),
    /// The grant's budget is spent: nothing was written.
    BudgetSpent,
}

/// A campaign batch's result, in the run item's counter names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCounts {
    pub issued: u64,
    pub skipped_already_had: u64,
    pub skipped_budget_spent: u64,
    pub skipped_not_eligible: u64,
    pub failed: u64,
}

impl BatchCounts {
    pub fn skipped(&self) -> u64 {
        self.skipped_already_had + self.skipped_budget_spent + self.skipped_not_eligible
    }
    pub fn total(&self) -> u64 {
        self.issued + self.skipped() + self.failed
    }
    fn skip(&mut self, reason: SkipReason) {
        match reason {
            SkipReason::AlreadyHad => self.skipped_already_had += 1,
            SkipReason::BudgetSpent => self.skipped_budget_spent += 1,
            SkipReason::NotEligible => self.skipped_not_eligible += 1,
        }
    }
}

/// Marks a batch as counted into its run (`keys::batch_sk`).
#[derive(Debug, Serialize, Deserialize)]
struct BatchMarker {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    entity: String,
    #[serde(flatten)]
    counts: BatchCounts,
    at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct Eligibility {
    #[serde(rename = "memberId")]
    member_id: String,
    tier: TierCode,
    #[serde(rename = "erasedAt", default)]
    erased_at: Option<DateTime<Utc>>,
    #[serde(default)]
    birthday: Option<NaiveDate>,
    #[serde(rename = "birthdaySetAt", default)]
    birthday_set_at: Option<DateTime<Utc>>,
    #[serde(rename = "joinedAt")]
    joined_at: DateTime<Utc>,
    #[serde(rename = "priorGifts", default)]
    prior_gifts: PriorGifts,
}

/// What a batch's eligibility check sees of a member that exists and is not erased (read
/// from the member record, strongly consistent, with the tier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub tier: TierCode,
    pub birthday: Option<NaiveDate>,
    /// When the birthday was recorded (`Member::birthday_recorded_at`).
    pub birthday_recorded_at: DateTime<Utc>,
    /// The last year an erased membership of this member's contact had a birthday coupon.
    pub prior_birthday_gift_year: Option<i32>,
}

impl Candidate {
    /// The facts `birthday::gift_allowed` judges, in the program calendar `tz`.
    pub fn birthday_facts(&self, tz: chrono_tz::Tz) -> crate::birthday::BirthdayFacts {
        crate::birthday::BirthdayFacts { birthday: self.birthday, recorded_on: crate::calendar::program_date(tz, self.birthday_recorded_at), prior_gift_year: self.prior_birthday_gift_year }
    }
}

/// A member found by the birthday index (which projects the id and the tier).
#[derive(Debug, Clone, Deserialize)]
pub struct BirthdayMember {
    #[serde(rename = "memberId")]
    pub member_id: String,
    pub tier: TierCode,
}

impl Store {
    /// Issues `coupon` with one conditional write. `batch_id` tags the item with the batch
    /// that issued it; `budget` caps how many coupons the coupon's grant may issue in all.
    /// Transaction conflicts on the budget counter are retried with backoff.
    pub async fn issue_coupon(&self, coupon: &Coupon, batch_id: Option<&str>, budget: Option<u64>) -> Result<IssueOutcome, StoreError> {
        let mut item = CouponItem::new(coupon.clone());
        item.batch_id = batch_id.map(str::to_string);
        let item = to_item(&item)?;
        match budget {
            None => self.put_coupon(item).await,
            Some(budget) => self.put_coupon_within_budget(item, &coupon.grant, budget).await,
        }
    }

    async fn put_coupon(&self, item: Item) -> Result<IssueOutcome, StoreError> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(IssueOutcome::Issued),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                PutItemError::ConditionalCheckFailedException(c) => Ok(IssueOutcome::AlreadyHad(c.item.and_then(|i| from_item(i).ok()).map(Box::new))),
                other => Err(sdk(other)),
            },
            Err(e) => Err(sdk(e)),
        }
    }

    async fn put_coupon_within_budget(&self, item: Item, grant: &str, budget: u64) -> Result<IssueOutcome, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(sdk)?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(&keys::budget_pk(grant), keys::BUDGET_SK)))
            .update_expression("SET #entity = :entity, #budget = :budget ADD #issued :one")
            .condition_expression("attribute_not_exists(#issued) OR #issued < :budget")
            .expression_attribute_names("#entity", "entity")
            .expression_attribute_names("#budget", "budget")
            .expression_attribute_names("#issued", "issued")
            .expression_attribute_values(":entity", AttributeValue::S("budget".into()))
            .expression_attribute_values(":budget", AttributeValue::N(budget.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .map_err(sdk)?;
        let writes = vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(count).build()];
        for attempt in 0..MAX_ATTEMPTS {
            match self.client.transact_write_items().set_transact_items(Some(writes.clone())).send().await {
                Ok(_) => return Ok(IssueOutcome::Issued),
                Err(SdkError::ServiceError(e)) => match e.into_err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => {
                        let reasons = c.cancellation_reasons();
                        let failed = |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
                        // The coupon's own condition first: a member who has it was not refused by the budget.
                        if failed(0) {
                            let old = reasons[0].item().and_then(|i| from_item(i.clone()).ok()).map(Box::new);
                            return Ok(IssueOutcome::AlreadyHad(old));
                        }
                        if failed(1) {
                            return Ok(IssueOutcome::BudgetSpent);
                        }
                        if reasons.iter().any(|r| matches!(r.code(), Some("ProvisionedThroughputExceeded" | "ThrottlingError" | "RequestLimitExceeded"))) {
                            return Err(StoreError::Throttled("issuing a coupon within budget".into()));
                        }
                        backoff(attempt).await
                    }
                    TransactWriteItemsError::TransactionInProgressException(_) => backoff(attempt).await,
                    other => return Err(sdk(other)),
                },
                Err(e) => return Err(sdk(e)),
            }
        }
        Err(StoreError::Contended)
    }

    /// The tier of each member that exists and is not erased; members missing from the
    /// answer are not eligible.
    pub async fn member_tiers(&self, member_ids: &[String]) -> Result<HashMap<String, TierCode>, StoreError> {
        Ok(self.candidates(member_ids).await?.into_iter().map(|(id, c)| (id, c.tier)).collect())
    }

    /// What eligibility needs of each member that exists and is not erased; members missing
    /// from the answer are not eligible. One BatchGetItem per 100 members, only the needed
    /// attributes.
    pub async fn candidates(&self, member_ids: &[String]) -> Result<HashMap<String, Candidate>, StoreError> {
        let unique: Vec<&String> = {
            let mut seen = HashSet::new();
            // An id that cannot be a member id (empty, too long for a key...) is simply not eligible.
            member_ids.iter().filter(|id| MemberId::parse(id).is_some() && seen.insert(id.as_str())).collect()
        };
        let mut out = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let keys: Vec<Item> = chunk.iter().map(|id| key(&member_pk(id), PROFILE_SK)).collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .projection_expression("#m, #t, #e, #b, #bs, #j, #pg")
                    .expression_attribute_names("#m", "memberId")
                    .expression_attribute_names("#t", "tier")
                    .expression_attribute_names("#e", "erasedAt")
                    .expression_attribute_names("#b", "birthday")
                    .expression_attribute_names("#bs", "birthdaySetAt")
                    .expression_attribute_names("#j", "joinedAt")
                    .expression_attribute_names("#pg", "priorGifts")
                    .consistent_read(true)
                    .build()
                    .map_err(sdk)?,
            );
            let mut attempt = 0;
            while let Some(req) = request.take() {
                let page = self.client.batch_get_item().request_items(&self.table, req).send().await.map_err(sdk)?;
                for item in page.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                    let e: Eligibility = from_item(item)?;
                    if e.erased_at.is_none() {
                        let c = Candidate {
                            tier: e.tier,
                            birthday: e.birthday,
                            birthday_recorded_at: e.birthday_set_at.unwrap_or(e.joined_at),
                            prior_birthday_gift_year: e.prior_gifts.birthday_year,
                        };
                        out.insert(e.member_id, c);
                    }
                }
                request = page.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).filter(|k| !k.keys().is_empty());
                if request.is_some() {
                    if attempt >= MAX_ATTEMPTS {
                        return Err(StoreError::Throttled("BatchGetItem left keys unprocessed".into()));
                    }
                    backoff(attempt).await;
                    attempt += 1;
                }
            }
        }
        Ok(out)
    }

    /// Issues a campaign batch: one coupon per eligible member (slot 0 of the grant), with
    /// `concurrency` writes in flight. Once the budget is spent the rest are skipped without
    /// writing. A member whose write failed is counted `failed` (the caller decides whether
    /// to retry the message). Reading eligibility failing fails the whole batch.
    pub async fn issue_batch(&self, key: &CodeKey, batch: &IssueBatch, now: DateTime<Utc>, concurrency: usize) -> Result<BatchCounts, StoreError> {
        self.issue_batch_checked(key, batch, now, concurrency, &|_| true).await
    }

    /// `issue_batch` where a member must also pass `eligible` (a rule of the grant, e.g. the
    /// birthday coupon's); one that does not is skipped as not eligible.
    pub async fn issue_batch_checked(&self, key: &CodeKey, batch: &IssueBatch, now: DateTime<Utc>, concurrency: usize, eligible: &(dyn Fn(&Candidate) -> bool + Sync)) -> Result<BatchCounts, StoreError> {
        let candidates = self.candidates(&batch.member_ids).await?;
        let spent = AtomicBool::new(false);
        let (spent, candidates) = (&spent, &candidates);
        let results: Vec<Result<SkipOrIssued, StoreError>> = futures::stream::iter(batch.member_ids.iter())
            .map(|member_id| async move {
                match candidates.get(member_id) {
                    None => return Ok(SkipOrIssued::Skipped(SkipReason::NotEligible)),
                    Some(c) if !batch.template.tiers.is_empty() && !batch.template.tiers.contains(&c.tier) => {
                        return Ok(SkipOrIssued::Skipped(SkipReason::NotEligible))
                    }
                    Some(c) if !eligible(c) => return Ok(SkipOrIssued::Skipped(SkipReason::NotEligible)),
                    Some(_) => {}
                }
                if spent.load(Ordering::Relaxed) {
                    return Ok(SkipOrIssued::Skipped(SkipReason::BudgetSpent));
                }
                let c = coupon::issue(key, &batch.template, member_id, &batch.grant, 0, now);
                Ok(match self.issue_coupon(&c, Some(&batch.batch_id), batch.budget).await? {
                    IssueOutcome::Issued => SkipOrIssued::Issued,
                    // Issued by an earlier delivery of this same batch: it counts as this batch's.
                    IssueOutcome::AlreadyHad(Some(old)) if old.batch_id.as_deref() == Some(batch.batch_id.as_str()) => SkipOrIssued::Issued,
                    IssueOutcome::AlreadyHad(_) => SkipOrIssued::Skipped(SkipReason::AlreadyHad),
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
    pub async fn count_batch(&self, run: &RunRef, batch_id: &str, counts: &BatchCounts, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let pk = keys::campaign_pk(&run.campaign_id);
        let marker = BatchMarker { pk: pk.clone(), sk: keys::batch_sk(&run.run_id, batch_id), entity: "campaign_batch".into(), counts: *counts, at: now };
        let n = |v: u64| AttributeValue::N(v.to_string());
        let add = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(&pk, &keys::run_sk(&run.run_id))))
            .update_expression(
                "ADD issued :i, skipped :s, failed :f, skippedAlreadyHad :a, skippedBudgetSpent :b, skippedNotEligible :n",
            )
            .expression_attribute_values(":i", n(counts.issued))
            .expression_attribute_values(":s", n(counts.skipped()))
            .expression_attribute_values(":f", n(counts.failed))
            .expression_attribute_values(":a", n(counts.skipped_already_had))
            .expression_attribute_values(":b", n(counts.skipped_budget_spent))
            .expression_attribute_values(":n", n(counts.skipped_not_eligible))
            .build()
            .map_err(sdk)?;
        let writes = vec![self.put(&marker, Some(Cond::absent()))?, TransactWriteItem::builder().update(add).build()];
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

    /// The members whose birthday key (`MM-DD`) is `mm_dd`, from the ByBirthday index.
    pub async fn birthdays(&self, mm_dd: &str) -> Result<Vec<BirthdayMember>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("ByBirthday")
            .key_condition_expression("GSI2PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::birthday_pk(mm_dd)));
        self.query_all(query).await
    }

    /// One coupon of a member (strongly consistent).
    pub async fn coupon(&self, member_id: &str, code: &str) -> Result<Option<CouponItem>, StoreError> {
        self.get(&member_pk(member_id), &keys::coupon_sk(code)).await
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
        assert_eq!((c.skipped(), c.total()), (3, 7));
    }

    #[test]
    fn the_batch_marker_keeps_the_counter_names_of_the_run_item() {
        let m = BatchMarker { pk: "p".into(), sk: "s".into(), entity: "campaign_batch".into(), counts: BatchCounts { issued: 1, ..Default::default() }, at: Utc::now() };
        let v = serde_json::to_value(&m).unwrap();
        for f in ["issued", "skippedAlreadyHad", "skippedBudgetSpent", "skippedNotEligible", "failed"] {
            assert!(v.get(f).is_some(), "{f} in {v}");
        }
    }
}
