//! Campaign items: definitions, runs (with the dispatch cursor and the progress counters),
//! the schedule registry and the program's multiplier windows.
//!
//! | PK | SK | item |
//! |---|---|---|
//! | `CAMPAIGN#<id>` | `RUN~` | the definition (a campaign, or a bulk award: entity `award`), its version and its last run |
//! | `CAMPAIGN#<id>` | `RUN#<label>.a<NNN>` | a run: grant, cursor, counters |
//! | `CAMPAIGN#<id>` | `BATCH#<runId>#<batchId>` | a batch the coupon worker has counted |
//! | `SCHEDULED` | `<id>` | a campaign a schedule starts |
//! | `CAMPAIGNS` | `<createdAt>#<id>` | the campaign directory: id, name, when defined |
//! | `PROGRAM` | `MULTIPLIERS` | the campaign multiplier windows |

mod directory;
mod run;
mod segment;

pub use directory::{DirectoryItem, DirectoryPage};
pub use run::{Cursor, NewRun, RunItem, RunStart};
pub use segment::Targets;

use super::keys::ItemKey;
use super::keys::{self, campaign_pk};
use super::{from_item, key, sdk, Cond, Store, StoreError, TxFailure};
use crate::campaign::{Campaign, MultiplierWindow, Schedule};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    pub label: String,
    pub attempt: u32,
    pub run_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(flatten)]
    pub campaign: Campaign,
    #[serde(rename = "lastRun", default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    #[serde(default)]
    pub version: u64,
}

impl CampaignItem {
    pub fn new(campaign: Campaign) -> CampaignItem {
        CampaignItem {
            key: ItemKey::new(campaign_pk(&campaign.id), keys::CAMPAIGN_SK, "campaign"),
            campaign,
            last_run: None,
            version: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduledItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(rename = "campaignId")]
    pub campaign_id: String,
    pub schedule: Schedule,
}

impl ScheduledItem {
    pub fn new(campaign_id: &str, schedule: Schedule) -> ScheduledItem {
        ScheduledItem {
            key: ItemKey::new(keys::SCHEDULED_PK, keys::scheduled_sk(campaign_id), "scheduled"),
            campaign_id: campaign_id.into(),
            schedule,
        }
    }
}

/// The program's campaign multiplier windows: the purchase function reads this one item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MultipliersItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(default)]
    pub windows: Vec<MultiplierWindow>,
    #[serde(default)]
    pub version: u64,
}

impl Default for MultipliersItem {
    fn default() -> Self {
        MultipliersItem {
            key: ItemKey::new(keys::PROGRAM_PK, keys::MULTIPLIERS_SK, "multipliers"),
            windows: Vec::new(),
            version: 0,
        }
    }
}
/// The versioned write of the multipliers item read at `read_version` (0: it did not exist).
fn multipliers_write(
    store: &Store,
    windows: Vec<MultiplierWindow>,
    read_version: u64,
) -> Result<TransactWriteItem, StoreError> {
    let item = MultipliersItem { windows, version: read_version + 1, ..Default::default() };
    store.put(&item, Some(versioned(read_version)))
}

impl Store {
    /// A definition's transaction: a refusal (the id taken, a concurrent start, changed
    /// windows) is the caller's to judge, a store error is passed on.
    async fn transact_definition(
        &self,
        writes: Vec<TransactWriteItem>,
    ) -> Result<Result<(), TxFailure>, StoreError> {
        match self.transact(writes).await {
            Ok(()) => Ok(Ok(())),
            Err(TxFailure::Store(e)) => Err(e),
            Err(other) => Ok(Err(other)),
        }
    }
}

fn versioned(read_version: u64) -> Cond {
    if read_version == 0 {
        Cond::absent()
    } else {
        Cond::version(read_version)
    }
}

impl Store {
    /// Defines a campaign: its item, its schedule entry and (for a fixed multiplier window) the
    /// program's windows, in one transaction. `false`: the id is taken or the windows changed.
    pub async fn create_campaign(
        &self,
        campaign: &Campaign,
        multipliers: Option<(Vec<MultiplierWindow>, u64)>,
    ) -> Result<Result<(), TxFailure>, StoreError> {
        let mut writes = vec![
            self.put(
                &CampaignItem { version: 1, ..CampaignItem::new(campaign.clone()) },
                Some(Cond::absent()),
            )?,
            self.put(&ScheduledItem::new(&campaign.id, campaign.schedule.clone()), None)?,
            self.put(&DirectoryItem::new(campaign), None)?,
        ];
        if let Some((windows, v)) = multipliers {
            writes.push(multipliers_write(self, windows, v)?);
        }
        self.transact_definition(writes).await
    }

    /// The definition and the multipliers item, in one BatchGetItem (strongly consistent).
    pub async fn campaign_and_multipliers(
        &self,
        id: &str,
    ) -> Result<(Option<CampaignItem>, MultipliersItem), StoreError> {
        let keys = vec![
            key(&campaign_pk(id), keys::CAMPAIGN_SK),
            key(keys::PROGRAM_PK, keys::MULTIPLIERS_SK),
        ];
        let (mut campaign, mut multipliers) = (None, MultipliersItem::default());
        for item in self.batch_get(keys).await? {
            match super::entity(&item) {
                Some("campaign") => campaign = Some(from_item(item)?),
                Some("multipliers") => multipliers = from_item(item)?,
                _ => {}
            }
        }
        Ok((campaign, multipliers))
    }

    /// The definition and its newest `runs` runs (newest first), in one Query.
    pub async fn campaign_with_runs(
        &self,
        id: &str,
        runs: i32,
    ) -> Result<Option<(CampaignItem, Vec<RunItem>)>, StoreError> {
        self.definition_with_runs(id, "campaign", runs).await
    }

    /// A definition of entity `entity` (a campaign, an award) and its newest `runs` runs
    /// (newest first), in one Query: the definition sorts right after its runs.
    pub async fn definition_with_runs<D: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        entity: &str,
        runs: i32,
    ) -> Result<Option<(D, Vec<RunItem>)>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND SK BETWEEN :a AND :b")
            .expression_attribute_values(":pk", AttributeValue::S(campaign_pk(id)))
            .expression_attribute_values(":a", AttributeValue::S(keys::RUNS_PREFIX.into()))
            .expression_attribute_values(":b", AttributeValue::S(keys::CAMPAIGN_SK.into()))
            .scan_index_forward(false)
            .limit(runs + 1)
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        let mut items = out.items.unwrap_or_default().into_iter();
        let Some(def) = items.next().filter(|i| super::entity(i) == Some(entity)) else {
            return Ok(None);
        };
        let runs = items.map(from_item::<RunItem>).collect::<Result<Vec<_>, _>>()?;
        Ok(Some((from_item(def)?, runs)))
    }
    /// The campaigns the schedules start.
    pub async fn scheduled_campaigns(&self) -> Result<Vec<ScheduledItem>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::SCHEDULED_PK.into()));
        self.query_all(query).await
    }

    /// The program's multiplier windows (what the purchase function reads).
    pub async fn multiplier_windows(&self) -> Result<Vec<MultiplierWindow>, StoreError> {
        Ok(self
            .get::<MultipliersItem>(keys::PROGRAM_PK, keys::MULTIPLIERS_SK)
            .await?
            .map(|m| m.windows)
            .unwrap_or_default())
    }
}
