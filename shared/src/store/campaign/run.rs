//! Runs: the dispatch cursor, the progress counters, and the transaction that starts one.

use super::{multipliers_write, versioned, CampaignItem, Targets};
use crate::campaign::{
    Audience, Experiment, MultiplierWindow, PointsCredit, Progress, RunState, Segment,
};
use crate::coupon::CouponTemplate;
use crate::store::keys;
use crate::store::keys::{campaign_pk, run_sk, ItemKey};
use crate::store::{key, sdk, to_item, Cond, Store, StoreError, TxFailure};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

/// What starts a run, a campaign's or an award's: the rest of a run item is its dispatch and
/// progress state, which every run begins at zero.
pub struct NewRun {
    pub campaign_id: String,
    pub run_id: String,
    pub label: String,
    pub attempt: u32,
    pub grant: String,
    pub at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub template: Option<CouponTemplate>,
    pub points: Option<PointsCredit>,
    pub budget: Option<u64>,
    pub segment: Segment,
    pub audience: Audience,
    pub experiment: Option<Experiment>,
    pub targets: Targets,
}

impl RunItem {
    /// A run not yet dispatched.
    pub fn new(run: NewRun) -> RunItem {
        RunItem {
            key: ItemKey::new(campaign_pk(&run.campaign_id), run_sk(&run.run_id), "campaign_run"),
            campaign_id: run.campaign_id,
            run_id: run.run_id,
            label: run.label,
            attempt: run.attempt,
            grant: run.grant,
            at: run.at,
            started_at: run.started_at,
            template: run.template,
            points: run.points,
            budget: run.budget,
            segment: run.segment,
            audience: run.audience,
            experiment: run.experiment,
            targets: run.targets,
            cursor: Cursor::default(),
            cursor_seq: 0,
            dispatch_done: false,
            dispatched_at: None,
            superseded_by: None,
            progress: Progress::default(),
        }
    }

    pub fn state(&self) -> RunState {
        self.progress.state(self.dispatch_done, self.superseded_by.is_some())
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
impl Store {
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
        self.transact_definition(writes).await
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
}
