//! The read side every store module builds on: one item, every page of a Query, and batch
//! reads that ask again for what the database left unprocessed.

use super::{backoff, from_item, key, keys, sdk, Item, Store, StoreError, MAX_ATTEMPTS};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde::de::DeserializeOwned;

impl Store {
    /// Every item a Query returns, following its pages.
    pub async fn query_all<T: DeserializeOwned>(
        &self,
        query: QueryFluentBuilder,
    ) -> Result<Vec<T>, StoreError> {
        self.query_items(query).await?.into_iter().map(from_item).collect()
    }

    /// `query_all` as stored: for a Query whose items are of several kinds (see `entity`).
    pub async fn query_items(&self, query: QueryFluentBuilder) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = query.clone().set_exclusive_start_key(start).send().await.map_err(sdk)?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// Every item of a member's partition whose sort key lies from `from` to `to` (both
    /// included), strongly consistent, every page: items that sort next to each other read
    /// in one request (the profile with its coupons, or with its expiry notices).
    pub async fn member_range(
        &self,
        member_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND SK BETWEEN :a AND :b")
            .expression_attribute_values(":pk", AttributeValue::S(keys::member_pk(member_id)))
            .expression_attribute_values(":a", AttributeValue::S(from.into()))
            .expression_attribute_values(":b", AttributeValue::S(to.into()))
            .consistent_read(true);
        self.query_items(query).await
    }

    /// Every item of one kind in a member's partition: the items whose sort key starts with
    /// `prefix` (coupons, reward claims, tier changes...), in sort-key order, every page.
    pub async fn member_items<T: DeserializeOwned>(
        &self,
        member_id: &str,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::member_pk(member_id)))
            .expression_attribute_values(":p", AttributeValue::S(prefix.into()));
        self.query_all(query).await
    }

    /// Strongly consistent read of up to 100 items in one BatchGetItem (keys the database
    /// leaves unprocessed, under throttling, are asked again after a backoff). Items that do
    /// not exist are simply not in the answer.
    pub async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let request =
            KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build();
        self.batch_get_with(request.map_err(sdk)?).await
    }

    /// `batch_get` with the caller's request (a projection, say): the one loop that asks
    /// again for unprocessed keys, used by every batch read of the store.
    pub async fn batch_get_with(
        &self,
        request: KeysAndAttributes,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::with_capacity(request.keys().len());
        let mut request = Some(request).filter(|r| !r.keys().is_empty());
        let mut attempt = 0;
        while let Some(req) = request.take() {
            let page = self
                .client
                .batch_get_item()
                .request_items(&self.table, req)
                .send()
                .await
                .map_err(sdk)?;
            out.extend(page.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
            request = page
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys().is_empty());
            if request.is_some() {
                if attempt >= MAX_ATTEMPTS {
                    return Err(StoreError::Throttled("BatchGetItem left keys unprocessed".into()));
                }
                backoff(attempt).await;
                attempt += 1;
            }
        }
        Ok(out)
    }

    /// Strongly consistent read of one item.
    pub async fn get<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        out.item.map(from_item).transpose()
    }
}
