//! Exports: the export's item (what it holds, how many segments are done), one progress item
//! per scan segment, and the parallel Scan pages the workers read.
//!
//! Crash safety: a segment's progress item holds the number of parts recorded, the cursor
//! after the last one and the running counts. A part is recorded by a write conditional on
//! the part before it being the last one recorded (absent for part 0), with the counts set to
//! the new totals; the segment's last part also adds one to the export's `segmentsDone` in
//! the same transaction. A redelivered part finds itself recorded and writes nothing, so no
//! line is counted twice and the export is done once.

use super::keys::{self, ItemKey};
use super::{entity, from_item, sdk, Cond, Item, Store, StoreError, TxFailure};
use crate::migration::export::{Counts, Kind};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One export: what it holds and where, who asked, and how many segments are done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportJob {
    pub export_id: String,
    pub kinds: Vec<Kind>,
    pub segments: u32,
    pub personal_data: bool,
    pub bucket: String,
    /// `exports/<id>/` or `personal-exports/<id>/`.
    pub prefix: String,
    /// The operator's IAM principal (the audit trail of who took the data out).
    pub requested_by: String,
    /// The request's digest: an Idempotency-Key retry must ask for the same export.
    pub fingerprint: String,
    #[serde(default)]
    pub segments_done: u32,
    pub created_at: DateTime<Utc>,
}

impl ExportJob {
    pub fn done(&self) -> bool {
        self.segments_done >= self.segments
    }
}

/// Where a scan stopped: the table key of the last item it evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
}

/// A segment's recorded parts: how many, where the next one starts (none: the segment is
/// read to its end), and the counts through the last one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentProgress {
    pub segment: u32,
    pub parts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Cursor>,
    pub done: bool,
    #[serde(default)]
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExportJobItem {
    #[serde(flatten)]
    key: ItemKey,
    #[serde(flatten)]
    job: ExportJob,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SegmentItem {
    #[serde(flatten)]
    key: ItemKey,
    #[serde(flatten)]
    progress: SegmentProgress,
    at: DateTime<Utc>,
}

/// One page of a segment's scan: the items of the kinds exported, and where the next page
/// starts (none: the segment is read).
#[derive(Debug, Default)]
pub struct ScanPage {
    pub items: Vec<Item>,
    pub next: Option<Cursor>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl Store {
    /// Records a new export. False: an export of this id exists (an Idempotency-Key retry).
    pub async fn start_export(&self, job: &ExportJob) -> Result<bool, StoreError> {
        let item = ExportJobItem {
            key: ItemKey::new(keys::export_pk(&job.export_id), keys::EXPORT_JOB_SK, "export"),
            job: job.clone(),
        };
        match self.transact(vec![self.put(&item, Some(Cond::absent()))?]).await {
            Ok(()) => Ok(true),
            Err(TxFailure::Conditions(_)) => Ok(false),
            Err(TxFailure::Conflict) => Err(StoreError::Contended),
            Err(TxFailure::Store(e)) => Err(e),
        }
    }

    pub async fn export_job(&self, export_id: &str) -> Result<Option<ExportJob>, StoreError> {
        Ok(self
            .get::<ExportJobItem>(&keys::export_pk(export_id), keys::EXPORT_JOB_SK)
            .await?
            .map(|i| i.job))
    }

    /// A segment's progress (none recorded yet: part 0 is next).
    pub async fn export_segment(
        &self,
        export_id: &str,
        segment: u32,
    ) -> Result<SegmentProgress, StoreError> {
        Ok(self
            .get::<SegmentItem>(&keys::export_pk(export_id), &keys::export_segment_sk(segment))
            .await?
            .map_or(SegmentProgress { segment, ..Default::default() }, |i| i.progress))
    }

    /// Every segment's progress, by segment (segments with nothing recorded yet included).
    pub async fn export_segments(
        &self,
        export_id: &str,
        segments: u32,
    ) -> Result<Vec<SegmentProgress>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
            .expression_attribute_values(":pk", s(keys::export_pk(export_id)))
            .expression_attribute_values(":p", s(keys::EXPORT_SEGMENT_PREFIX))
            .consistent_read(true);
        let items: Vec<SegmentItem> = self.query_all(query).await?;
        let mut by: HashMap<u32, SegmentProgress> =
            items.into_iter().map(|i| (i.progress.segment, i.progress)).collect();
        Ok((0..segments)
            .map(|n| by.remove(&n).unwrap_or(SegmentProgress { segment: n, ..Default::default() }))
            .collect())
    }

    /// Records part `progress.parts - 1` of a segment: its progress set to `progress`,
    /// conditional on the part before being the last recorded; the last part also counts the
    /// segment done on the export. False: this part was recorded already.
    pub async fn record_export_part(
        &self,
        export_id: &str,
        progress: &SegmentProgress,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let part = progress.parts.checked_sub(1).ok_or_else(|| {
            StoreError::Mapping("a recorded segment has at least one part".into())
        })?;
        let item = SegmentItem {
            key: ItemKey::new(
                keys::export_pk(export_id),
                keys::export_segment_sk(progress.segment),
                "export_segment",
            ),
            progress: progress.clone(),
            at: now,
        };
        let before = match part {
            0 => Cond::absent(),
            n => Cond::new("parts = :before").value(":before", AttributeValue::N(n.to_string())),
        };
        let mut writes = vec![self.put(&item, Some(before))?];
        if progress.done {
            writes.push(self.update(
                &keys::export_pk(export_id),
                keys::EXPORT_JOB_SK,
                Cond::new("ADD segmentsDone :one").value(":one", AttributeValue::N("1".into())),
                Cond::present(),
            )?);
        }
        for attempt in 0..super::MAX_ATTEMPTS {
            match self.transact(writes.clone()).await {
                Ok(()) => return Ok(true),
                Err(TxFailure::Conditions(failed)) if failed.contains(&0) => return Ok(false),
                Err(TxFailure::Conditions(_)) => {
                    return Err(StoreError::Mapping(format!("export {export_id} does not exist")))
                }
                Err(TxFailure::Conflict) => super::backoff(attempt).await,
                Err(TxFailure::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Contended)
    }

    /// One page of segment `segment` of `total` of a parallel Scan of the table, from
    /// `start`: only members, ledger entries and coupons come back (the filter is applied
    /// after the read, so the page still costs what it read). `limit`: items evaluated per
    /// page (none: DynamoDB's 1 MB page).
    pub async fn export_scan_page(
        &self,
        segment: u32,
        total: u32,
        start: Option<&Cursor>,
        limit: Option<i32>,
    ) -> Result<ScanPage, StoreError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .segment(segment as i32)
            .total_segments(total as i32)
            .set_exclusive_start_key(start.map(|c| super::key(&c.pk, &c.sk)))
            .set_limit(limit)
            .filter_expression("entity IN (:m, :l, :c)")
            .expression_attribute_values(":m", s("member"))
            .expression_attribute_values(":l", s("ledger"))
            .expression_attribute_values(":c", s("coupon"))
            .send()
            .await
            .map_err(sdk)?;
        let next = match out.last_evaluated_key {
            Some(k) if !k.is_empty() => Some(from_item::<Cursor>(k)?),
            _ => None,
        };
        Ok(ScanPage { items: out.items.unwrap_or_default(), next })
    }
}

/// A stored record an export writes a line for.
#[derive(Debug, Clone)]
pub enum Record {
    Member(Box<crate::member::Member>),
    Ledger(String, crate::ledger::LedgerEntry),
    Coupon(Box<crate::coupon::Coupon>),
}

/// The records an item of a scan page holds, by its `entity` (none: another kind of item;
/// a ledger item holds a change's entries, one record each).
pub fn records_of(item: Item) -> Result<Vec<Record>, StoreError> {
    let kind = entity(&item);
    Ok(match kind.and_then(Kind::of_entity) {
        Some(Kind::Members) => {
            vec![Record::Member(Box::new(from_item::<super::member::MemberItem>(item)?.member))]
        }
        Some(Kind::Ledger) => {
            let l = from_item::<super::ledger::LedgerItem>(item)?;
            l.entries()
                .into_iter()
                .map(|(_, e)| Record::Ledger(l.member_id.clone(), e.clone()))
                .collect()
        }
        Some(Kind::Coupons) => {
            vec![Record::Coupon(Box::new(from_item::<super::coupon::CouponItem>(item)?.coupon))]
        }
        None => Vec::new(),
    })
}
