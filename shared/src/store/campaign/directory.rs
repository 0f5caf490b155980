//! The campaign directory (`CAMPAIGNS`): newest first, paged by sort key.

use crate::campaign::Campaign;
use crate::store::keys::{self, ItemKey};
use crate::store::{from_item, sdk, Store, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A campaign's line in the directory (`CAMPAIGNS`): enough to list it; the rest is one
/// `GET /campaigns/{id}` away.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectoryItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(rename = "campaignId")]
    pub campaign_id: String,
    pub name: String,
    #[serde(rename = "createdAt")]
    pub created_at: DateTime<Utc>,
}

impl DirectoryItem {
    pub fn new(c: &Campaign) -> DirectoryItem {
        DirectoryItem {
            key: ItemKey::new(
                keys::CAMPAIGNS_PK,
                keys::campaign_directory_sk(c.created_at, &c.id),
                "campaign_directory",
            ),
            campaign_id: c.id.clone(),
            name: c.name.clone(),
            created_at: c.created_at,
        }
    }
}

/// A page of the directory, newest first, and the sort key to continue after.
pub struct DirectoryPage {
    pub campaigns: Vec<DirectoryItem>,
    pub next: Option<String>,
}
impl Store {
    /// The newest `limit` campaigns defined before the directory key `before` (one Query).
    pub async fn campaign_directory(
        &self,
        before: Option<&str>,
        limit: i32,
    ) -> Result<DirectoryPage, StoreError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", AttributeValue::S(keys::CAMPAIGNS_PK.into()))
            .scan_index_forward(false)
            .limit(limit);
        q = match before {
            Some(b) => q
                .key_condition_expression("PK = :pk AND SK < :b")
                .expression_attribute_values(":b", AttributeValue::S(b.into())),
            None => q.key_condition_expression("PK = :pk"),
        };
        let out = q.send().await.map_err(sdk)?;
        let campaigns = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item::<DirectoryItem>)
            .collect::<Result<Vec<_>, _>>()?;
        let next =
            out.last_evaluated_key.and_then(|k| k.get("SK").and_then(|v| v.as_s().ok()).cloned());
        Ok(DirectoryPage { campaigns, next })
    }
}
