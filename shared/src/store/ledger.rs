//! Ledger entries: one item per entry in the member's partition, newest last by key.

use super::keys::ItemKey;
use super::keys::{self, member_pk};
use super::{from_item, sdk, Store, StoreError};
use crate::ledger::LedgerEntry;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(rename = "memberId")]
    pub member_id: String,
    #[serde(flatten)]
    pub entry: LedgerEntry,
}

impl LedgerItem {
    pub fn new(member_id: &str, entry: LedgerEntry) -> LedgerItem {
        let kind = serde_json::to_value(entry.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        LedgerItem {
            key: ItemKey::new(
                member_pk(member_id),
                keys::ledger_sk(entry.at, &kind, entry.reference.as_deref().unwrap_or("-")),
                "ledger",
            ),
            member_id: member_id.to_string(),
            entry,
        }
    }
}

/// One page of a member's ledger, newest first.
pub struct LedgerPage {
    pub entries: Vec<LedgerEntry>,
    /// The sort key to continue after, if there is more.
    pub next: Option<String>,
}

impl Store {
    pub async fn ledger_page(
        &self,
        member_id: &str,
        after_sk: Option<&str>,
        limit: i32,
    ) -> Result<LedgerPage, StoreError> {
        let pk = member_pk(member_id);
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .expression_attribute_values(":p", AttributeValue::S(keys::LEDGER_PREFIX.into()))
            .scan_index_forward(false)
            .limit(limit);
        if let Some(sk) = after_sk {
            q = q
                .exclusive_start_key("PK", AttributeValue::S(pk))
                .exclusive_start_key("SK", AttributeValue::S(sk.into()));
        }
        let out = q.send().await.map_err(sdk)?;
        let next =
            out.last_evaluated_key().and_then(|k| k.get("SK")).and_then(|v| v.as_s().ok()).cloned();
        let entries = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| from_item::<LedgerItem>(i).map(|l| l.entry))
            .collect::<Result<_, _>>()?;
        Ok(LedgerPage { entries, next })
    }

    /// Every entry of a member's ledger (tests and audits; pages through the partition).
    pub async fn ledger_all(&self, member_id: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.ledger_page(member_id, after.as_deref(), 500).await?;
            all.extend(page.entries);
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(all),
            }
        }
    }
}
