//! Issuing coupons. One coupon is ONE `TransactWriteItems`: the grant slot's key item
//! (`GRANT#<grant>#<slot>`, which must not exist yet) and the coupon (`COUPON#<code>`, which
//! must not exist yet), and when the grant has a budget the budget counter's conditional
//! increment. Uniqueness rests on the grant slot, not on the code: the code is an HMAC under
//! the coupon secret, so a rotated secret makes new codes, and without the slot item a re-run
//! would issue a second coupon. A batch reads its members' eligibility with BatchGetItem and
//! counts its progress into the campaign run exactly once (a marker item per batch).
//!
//! Write units: a transactional write costs two units per item (up to 1 KiB each), so a coupon
//! costs 4 (grant slot + coupon), 6 with a budget; before the slot item it was one PutItem (1).

use super::coupon::{CouponItem, GrantItem};
use super::keys::ItemKey;
use super::keys::{self, member_pk, PROFILE_SK};
use super::{
    backoff, from_item, key, sdk, to_item, Cond, Item, Store, StoreError, TxFailure, MAX_ATTEMPTS,
};
use crate::campaign::experiment::Assignment;
use crate::campaign::{IssueBatch, RunRef, SkipReason};
use crate::contact::PriorGifts;
use crate::coupon::{self, CodeKey, Coupon};
use crate::member::MemberId;
use crate::tier::TierCode;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
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
    /// The member already holds this grant slot: nothing was written. Which coupon holds it
    /// (its code may come from an earlier secret) when the store can tell.
    AlreadyHad(Option<Held>),
    /// The grant's budget is spent: nothing was written.
    BudgetSpent,
}

/// The coupon that holds a grant slot, as its slot item (or, for a coupon issued before slot
/// items existed, the coupon item itself) names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Held {
    pub code: String,
    /// The batch that issued it, so a redelivery of that batch counts it as issued.
    #[serde(rename = "batchId", default)]
    pub batch_id: Option<String>,
}

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
        crate::birthday::BirthdayFacts {
            birthday: self.birthday,
            recorded_on: crate::calendar::program_date(tz, self.birthday_recorded_at),
            prior_gift_year: self.prior_birthday_gift_year,
        }
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
    /// The grant slot's item and the coupon, each only if absent: every coupon is written
    /// with these two (issuing here, the welcome coupon at signup), in one transaction.
    pub fn coupon_writes(
        &self,
        coupon: &Coupon,
        batch_id: Option<&str>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        self.arm_coupon_writes(coupon, batch_id, None)
    }

    /// `coupon_writes` of a coupon issued to an experiment arm: both items name the arm.
    fn arm_coupon_writes(
        &self,
        coupon: &Coupon,
        batch_id: Option<&str>,
        arm: Option<&str>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut item = CouponItem::new(coupon.clone());
        item.batch_id = batch_id.map(str::to_string);
        item.arm = arm.map(str::to_string);
        let mut grant = GrantItem::of(coupon, batch_id);
        grant.arm = item.arm.clone();
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(PK)")
                // The holder of a taken slot comes back with the refusal: no read to tell who.
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(sdk)
        };
        Ok(vec![put(to_item(&grant)?)?, put(to_item(&item)?)?])
    }

    /// Issues `coupon` (member, grant and slot) with one transaction: the slot item, the
    /// coupon and, with a `budget` (how many coupons the grant may issue in all), the budget
    /// counter. `batch_id` tags the coupon and its slot with the batch that issued them.
    /// Transaction conflicts (the budget counter is shared) are retried with backoff.
    pub async fn issue_coupon(
        &self,
        coupon: &Coupon,
        batch_id: Option<&str>,
        budget: Option<u64>,
    ) -> Result<IssueOutcome, StoreError> {
        self.issue_arm_coupon(coupon, batch_id, None, budget).await
    }

    /// `issue_coupon` to a member of experiment arm `arm`.
    pub async fn issue_arm_coupon(
        &self,
        coupon: &Coupon,
        batch_id: Option<&str>,
        arm: Option<&str>,
        budget: Option<u64>,
    ) -> Result<IssueOutcome, StoreError> {
        let mut writes = self.arm_coupon_writes(coupon, batch_id, arm)?;
        if let Some(budget) = budget {
            writes.push(self.budget_write(&coupon.grant, budget)?);
        }
        for attempt in 0..MAX_ATTEMPTS {
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok(IssueOutcome::Issued),
                Err(SdkError::ServiceError(e)) => match e.into_err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => {
                        let reasons = c.cancellation_reasons();
                        let failed = |i: usize| {
                            reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
                        };
                        // The slot first (then a coupon of the same code issued before slot
                        // items existed): a member who has it was not refused by the budget.
                        if let Some(i) = [0, 1].into_iter().find(|i| failed(*i)) {
                            let old =
                                reasons[i].item().and_then(|it| from_item::<Held>(it.clone()).ok());
                            return Ok(IssueOutcome::AlreadyHad(match old {
                                Some(h) => Some(h),
                                None => self.holder(coupon).await?,
                            }));
                        }
                        if failed(2) {
                            return Ok(IssueOutcome::BudgetSpent);
                        }
                        if reasons.iter().any(|r| {
                            matches!(
                                r.code(),
                                Some(
                                    "ProvisionedThroughputExceeded"
                                        | "ThrottlingError"
                                        | "RequestLimitExceeded"
                                )
                            )
                        }) {
                            return Err(StoreError::Throttled("issuing a coupon".into()));
                        }
                        backoff(attempt).await
                    }
                    TransactWriteItemsError::TransactionInProgressException(_) => {
                        backoff(attempt).await
                    }
                    other => return Err(sdk(other)),
                },
                Err(e) => return Err(sdk(e)),
            }
        }
        Err(StoreError::Contended)
    }

    /// Who holds `coupon`'s slot, read back: only when a refused write did not return it.
    async fn holder(&self, coupon: &Coupon) -> Result<Option<Held>, StoreError> {
        let pk = member_pk(&coupon.member_id);
        if let Some(h) = self.get::<Held>(&pk, &keys::grant_sk(&coupon.grant, coupon.slot)).await? {
            return Ok(Some(h));
        }
        self.get::<Held>(&pk, &keys::coupon_sk(&coupon.code)).await
    }

    /// `BUDGET#<grant>`: one more coupon, only while fewer than `budget` were issued.
    pub(crate) fn budget_write(
        &self,
        grant: &str,
        budget: u64,
    ) -> Result<TransactWriteItem, StoreError> {
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
        Ok(TransactWriteItem::builder().update(count).build())
    }

    /// The tier of each member that exists and is not erased; members missing from the
    /// answer are not eligible.
    pub async fn member_tiers(
        &self,
        member_ids: &[String],
    ) -> Result<HashMap<String, TierCode>, StoreError> {
        Ok(self.candidates(member_ids).await?.into_iter().map(|(id, c)| (id, c.tier)).collect())
    }

    /// What eligibility needs of each member that exists and is not erased; members missing
    /// from the answer are not eligible. One BatchGetItem per 100 members, only the needed
    /// attributes.
    pub async fn candidates(
        &self,
        member_ids: &[String],
    ) -> Result<HashMap<String, Candidate>, StoreError> {
        let unique: Vec<&String> = {
            let mut seen = HashSet::new();
            // An id that cannot be a member id (empty, too long for a key...) is simply not eligible.
            member_ids
                .iter()
                .filter(|id| MemberId::parse(id).is_some() && seen.insert(id.as_str()))
                .collect()
        };
        let mut out = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let keys: Vec<Item> = chunk.iter().map(|id| key(&member_pk(id), PROFILE_SK)).collect();
            let request = KeysAndAttributes::builder()
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
                .map_err(sdk)?;
            for item in self.batch_get_with(request).await? {
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
        }
        Ok(out)
    }

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
    pub async fn coupon(
        &self,
        member_id: &str,
        code: &str,
    ) -> Result<Option<CouponItem>, StoreError> {
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
