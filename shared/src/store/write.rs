//! The write side every store module builds on: one transaction's items, and the request
//! that commits them with what a refusal means.

use super::{key, sdk, to_item, Cond, Store, StoreError, TxFailure};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    CancellationReason, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use serde::Serialize;

impl Store {
    pub fn put<T: Serialize>(
        &self,
        item: &T,
        condition: Option<Cond>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(to_item(item)?));
        if let Some(c) = condition {
            put = put
                .condition_expression(c.expr)
                .set_expression_attribute_names(c.names)
                .set_expression_attribute_values(c.values);
        }
        Ok(TransactWriteItem::builder().put(put.build().map_err(sdk)?).build())
    }

    pub fn delete(
        &self,
        pk: &str,
        sk: &str,
        condition: Option<Cond>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut del = Delete::builder().table_name(&self.table).set_key(Some(key(pk, sk)));
        if let Some(c) = condition {
            del = del
                .condition_expression(c.expr)
                .set_expression_attribute_names(c.names)
                .set_expression_attribute_values(c.values);
        }
        Ok(TransactWriteItem::builder().delete(del.build().map_err(sdk)?).build())
    }

    /// An UpdateItem in a transaction: `update.expr` is the update expression; its names and
    /// values share one placeholder space with the condition's.
    pub fn update(
        &self,
        pk: &str,
        sk: &str,
        update: Cond,
        condition: Cond,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut names = update.names.unwrap_or_default();
        names.extend(condition.names.unwrap_or_default());
        let mut values = update.values.unwrap_or_default();
        values.extend(condition.values.unwrap_or_default());
        let u = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression(update.expr)
            .condition_expression(condition.expr)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(sdk)?;
        Ok(TransactWriteItem::builder().update(u).build())
    }

    pub fn check(
        &self,
        pk: &str,
        sk: &str,
        condition: Cond,
    ) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .condition_expression(condition.expr)
            .set_expression_attribute_names(condition.names)
            .set_expression_attribute_values(condition.values)
            .build()
            .map_err(sdk)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// One `TransactWriteItems` request.
    pub async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxFailure> {
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    let reasons = c.cancellation_reasons();
                    let failed: Vec<usize> = reasons
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                        .map(|(i, _)| i)
                        .collect();
                    if !failed.is_empty() {
                        Err(TxFailure::Conditions(failed))
                    } else if throttled(reasons) {
                        Err(TxFailure::Store(StoreError::Throttled("transaction".into())))
                    } else {
                        Err(TxFailure::Conflict)
                    }
                }
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    Err(TxFailure::Conflict)
                }
                other => Err(TxFailure::Store(StoreError::Sdk(other.to_string()))),
            },
            Err(e) => Err(TxFailure::Store(sdk(e))),
        }
    }
}

/// Whether a cancelled transaction was refused for capacity (not for a condition or a
/// conflict): such a refusal is passed on rather than retried at once.
pub(crate) fn throttled(reasons: &[CancellationReason]) -> bool {
    reasons.iter().any(|r| {
        matches!(
            r.code(),
            Some("ProvisionedThroughputExceeded" | "ThrottlingError" | "RequestLimitExceeded")
        )
    })
}
