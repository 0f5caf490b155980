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

use super::keys::ItemKey;
use super::keys::{self, campaign_pk, run_sk};
use super::{from_item, key, sdk, to_item, Cond, Store, StoreError, TxFailure};
use crate::campaign::award::MemberList;
use crate::campaign::{
    Audience, Campaign, Experiment, MultiplierWindow, PointsCredit, Progress, RunState, Schedule,
    Segment, SegmentMember,
};
use crate::coupon::CouponTemplate;
use crate::money::Fen;
use crate::tier::TierCode;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

/// Where the dispatcher is: target partition `part`, page `page` within it, and the index key
/// to continue after (none at the start of a partition).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    pub part: u32,
    pub page: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<HashMap<String, String>>,
    /// In a member list: the next id's index (listed) or the next line's byte (a file).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Which index partitions a run pages, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    pub index: String,
    pub partitions: Vec<String>,
    /// Sort-key range on the index (win-back: last-seen instants), inclusive lower, exclusive upper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sk_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sk_before: Option<String>,
    /// Sort-key prefixes read in each partition, one after the other (churn bands on ByTier);
    /// none: the whole partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sk_prefixes: Vec<String>,
    /// A list of member ids paged instead of an index (a bulk award's); one part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<MemberList>,
}

impl Targets {
    /// The ByTier partitions of the segment's tiers, every shard, and in each the key range of
    /// every churn band the segment names.
    pub fn segment(segment: &Segment) -> Targets {
        let partitions = segment
            .target_tiers()
            .iter()
            .flat_map(|t| (0..keys::SHARDS).map(move |s| keys::tier_segment_pk(t.as_str(), s)))
            .collect();
        let sk_prefixes =
            segment.churn_risk.iter().map(|b| keys::tier_segment_band_prefix(*b)).collect();
        Targets {
            index: "ByTier".into(),
            partitions,
            sk_from: None,
            sk_before: None,
            sk_prefixes,
            list: None,
        }
    }

    /// A list of member ids: one part, paged by offset.
    pub fn list(list: MemberList) -> Targets {
        Targets {
            index: "list".into(),
            partitions: Vec::new(),
            sk_from: None,
            sk_before: None,
            sk_prefixes: Vec::new(),
            list: Some(list),
        }
    }

    /// How many parts the dispatcher pages: each partition, times each prefix (a list: one).
    pub fn parts(&self) -> usize {
        if self.list.is_some() {
            return 1;
        }
        self.partitions.len() * self.sk_prefixes.len().max(1)
    }

    /// Part `i`: its partition and key prefix.
    pub fn part(&self, i: usize) -> Option<(&str, Option<&str>)> {
        let per = self.sk_prefixes.len().max(1);
        let partition = self.partitions.get(i / per)?;
        Some((partition, self.sk_prefixes.get(i % per).map(String::as_str)))
    }

    /// The ByLastPurchase partitions, last purchase (or join) on a program day in
    /// `[from, before)`.
    pub fn last_seen(from: chrono::NaiveDate, before: chrono::NaiveDate) -> Targets {
        Targets {
            index: "ByLastPurchase".into(),
            partitions: (0..keys::SHARDS).map(keys::seen_pk).collect(),
            sk_from: Some(from.to_string()),
            sk_before: Some(before.to_string()),
            sk_prefixes: Vec::new(),
            list: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunItem {
    #[serde(flatten)]
    pub key: ItemKey,
    pub campaign_id: String,
    pub run_id: String,
    pub label: String,
    pub attempt: u32,
    pub grant: String,
    /// The instant the run is for (its schedule time or the time it was started).
    pub at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    /// The coupon each member gets; none when the run credits points (`points`, an award's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<CouponTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<PointsCredit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    pub segment: Segment,
    pub audience: Audience,
    /// The campaign's experiment, as the run's batches carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
    pub targets: Targets,
    pub cursor: Cursor,
    /// Pages recorded so far: every cursor move is conditional on it (one dispatcher wins).
    pub cursor_seq: u64,
    pub dispatch_done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched_at: Option<DateTime<Utc>>,
    /// A later attempt of the same label that replaced this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    #[serde(flatten)]
    pub progress: Progress,
}

impl RunItem {
    pub fn state(&self) -> RunState {
        self.progress.state(self.dispatch_done, self.superseded_by.is_some())
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
    let cond = if read_version == 0 { Cond::absent() } else { Cond::version(read_version) };
    store.put(&item, Some(cond))
}

fn versioned(read_version: u64) -> Cond {
    if read_version == 0 {
        Cond::absent()
    } else {
        Cond::version(read_version)
    }
}

/// Everything a run start writes, in one transaction. `D`: the definition's item (a
/// campaign's, or an award's).
pub struct RunStart<'a, D = CampaignItem> {
    /// The definition with `last_run` and `version` already moved on.
    pub campaign: &'a D,
    /// The definition's version as read (0: it was not stored yet, e.g. a built-in's first run).
    pub campaign_read_version: u64,
    pub run: &'a RunItem,
    /// New window list and the multipliers item's version as read, when the run installs a window.
    pub multipliers: Option<(Vec<MultiplierWindow>, u64)>,
    /// The run this one replaces.
    pub supersedes: Option<&'a str>,
    /// Removes the campaign from the schedule registry (a one-off that has now run).
    pub unschedule: bool,
}

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
        match self.transact(writes).await {
            Ok(()) => Ok(Ok(())),
            Err(TxFailure::Store(e)) => Err(e),
            Err(other) => Ok(Err(other)),
        }
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
            match item.get("entity").and_then(|e| e.as_s().ok()).map(String::as_str) {
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
        let Some(def) = items.next().filter(|i| {
            i.get("entity").and_then(|e| e.as_s().ok()).map(String::as_str) == Some(entity)
        }) else {
            return Ok(None);
        };
        let runs = items.map(from_item::<RunItem>).collect::<Result<Vec<_>, _>>()?;
        Ok(Some((from_item(def)?, runs)))
    }

    pub async fn campaign_run(
        &self,
        campaign_id: &str,
        run_id: &str,
    ) -> Result<Option<RunItem>, StoreError> {
        self.get(&campaign_pk(campaign_id), &run_sk(run_id)).await
    }

    /// Starts a run: the new run, the definition's last run, the windows, the replaced run and
    /// the schedule entry, in one transaction. `Err(Conditions)`: someone else started one first.
    pub async fn start_run<D: Serialize>(
        &self,
        s: RunStart<'_, D>,
    ) -> Result<Result<(), TxFailure>, StoreError> {
        let mut writes = vec![
            self.put(s.campaign, Some(versioned(s.campaign_read_version)))?,
            self.put(s.run, Some(Cond::absent()))?,
        ];
        if let Some((windows, v)) = s.multipliers {
            writes.push(multipliers_write(self, windows, v)?);
        }
        if let Some(old) = s.supersedes {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(&campaign_pk(&s.run.campaign_id), &run_sk(old))))
                .update_expression("SET supersededBy = :by")
                .condition_expression("attribute_exists(PK)")
                .expression_attribute_values(":by", AttributeValue::S(s.run.run_id.clone()))
                .build()
                .map_err(sdk)?;
            writes.push(TransactWriteItem::builder().update(update).build());
        }
        if s.unschedule {
            writes.push(self.delete(
                keys::SCHEDULED_PK,
                &keys::scheduled_sk(&s.run.campaign_id),
                None,
            )?);
        }
        match self.transact(writes).await {
            Ok(()) => Ok(Ok(())),
            Err(TxFailure::Store(e)) => Err(e),
            Err(other) => Ok(Err(other)),
        }
    }

    /// One page of a target partition (within `prefix` of its sort key): the members it
    /// projects and where the next page starts.
    pub async fn segment_page(
        &self,
        targets: &Targets,
        (partition, prefix): (&str, Option<&str>),
        start: Option<&HashMap<String, String>>,
        limit: i32,
    ) -> Result<(Vec<SegmentMember>, Option<HashMap<String, String>>), StoreError> {
        let (pk_attr, sk_attr) = if targets.index == "ByLastPurchase" {
            ("GSI3PK", "GSI3SK")
        } else {
            ("GSI1PK", "GSI1SK")
        };
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(&targets.index)
            .expression_attribute_names("#pk", pk_attr)
            .expression_attribute_values(":pk", AttributeValue::S(partition.into()))
            .limit(limit)
            .set_exclusive_start_key(start.map(|s| {
                s.iter().map(|(k, v)| (k.clone(), AttributeValue::S(v.clone()))).collect()
            }));
        q = match (prefix, &targets.sk_from, &targets.sk_before) {
            (Some(p), _, _) => q
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
                .expression_attribute_names("#sk", sk_attr)
                .expression_attribute_values(":p", AttributeValue::S(p.into())),
            (None, Some(a), Some(b)) => q
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :a AND :b")
                .expression_attribute_names("#sk", sk_attr)
                .expression_attribute_values(":a", AttributeValue::S(a.clone()))
                // BETWEEN is inclusive: the last second before `before` is the upper bound.
                .expression_attribute_values(":b", AttributeValue::S(just_before(b))),
            _ => q.key_condition_expression("#pk = :pk"),
        };
        let out = q.send().await.map_err(sdk)?;
        let tier_of_partition = TierCode::ALL
            .into_iter()
            .find(|t| partition.starts_with(&format!("TIER#{}#", t.as_str())));
        let mut members = Vec::new();
        for item in out.items.unwrap_or_default() {
            let p: Projected = from_item(item)?;
            let Some(tier) = tier_of_partition.or(p.tier) else { continue };
            members.push(SegmentMember {
                member_id: p.member_id,
                tier,
                last_purchase_at: p.last_purchase_at,
                rolling_spend: p.rolling_spend,
                birth_month: p.birth_month,
            });
        }
        let next = out.last_evaluated_key.map(|k| {
            k.into_iter().filter_map(|(n, v)| v.as_s().ok().map(|s| (n, s.clone()))).collect()
        });
        Ok((members, next))
    }

    /// Records one dispatched page: adds `targeted`, moves the cursor (or marks the dispatch
    /// done), all conditional on the run still being at `seq` and not replaced, so a page is
    /// counted once however often it is sent. `false`: another dispatcher moved first.
    pub async fn advance_run(
        &self,
        run: &RunItem,
        seq: u64,
        next: &Cursor,
        targeted: u64,
        done: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let cursor = to_item(next)?;
        let mut u = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&run.key.pk, &run.key.sk)))
            .update_expression(if done {
                "SET #c = :c, #s = :s1, dispatchDone = :t, dispatchedAt = :now ADD targeted :n"
            } else {
                "SET #c = :c, #s = :s1 ADD targeted :n"
            })
            .condition_expression("#s = :s AND attribute_not_exists(supersededBy)")
            .expression_attribute_names("#c", "cursor")
            .expression_attribute_names("#s", "cursorSeq")
            .expression_attribute_values(":c", AttributeValue::M(cursor))
            .expression_attribute_values(":s", AttributeValue::N(seq.to_string()))
            .expression_attribute_values(":s1", AttributeValue::N((seq + 1).to_string()))
            .expression_attribute_values(":n", AttributeValue::N(targeted.to_string()));
        if done {
            u = u
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":now", AttributeValue::S(now.to_rfc3339()));
        }
        match u.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk(e)),
        }
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

/// The index projection of a member (ByTier or ByLastPurchase).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Projected {
    member_id: String,
    #[serde(default)]
    tier: Option<TierCode>,
    #[serde(default)]
    last_purchase_at: Option<DateTime<Utc>>,
    #[serde(default)]
    rolling_spend: Option<Fen>,
    #[serde(default)]
    birth_month: Option<u32>,
}

/// The largest whole-second RFC 3339 instant before `t` (for an inclusive upper bound).
fn just_before(t: &str) -> String {
    t.parse::<DateTime<Utc>>()
        .map(|d| {
            (d - chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|_| t.to_string())
}
