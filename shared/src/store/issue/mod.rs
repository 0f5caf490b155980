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

mod batch;
mod eligibility;

pub use batch::BatchCounts;
pub use eligibility::{BirthdayMember, Candidate};

use crate::coupon::Coupon;
use crate::store::coupon::{CouponItem, GrantItem};
use crate::store::keys::{self, member_pk};
use crate::store::write::throttled;
use crate::store::{backoff, from_item, key, sdk, to_item, Item, Store, StoreError, MAX_ATTEMPTS};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::Deserialize;

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
                        if throttled(reasons) {
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

    /// One coupon of a member (strongly consistent).
    pub async fn coupon(
        &self,
        member_id: &str,
        code: &str,
    ) -> Result<Option<CouponItem>, StoreError> {
        self.get(&member_pk(member_id), &keys::coupon_sk(code)).await
    }
}
