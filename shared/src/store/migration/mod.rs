//! Member imports: the import's item with its counters, one item per counted chunk (with its
//! rejects), and the one conditional transaction that writes an imported member.
//!
//! Crash safety: a chunk is counted by putting its item (condition: absent) in the same
//! transaction that adds its counts to the import, so a redelivered chunk adds nothing twice;
//! the members of a chunk redone after a crash find their own import mark (same import, same
//! line) and count as what they were, with nothing written again.

mod member;

use super::keys::{self, ItemKey};
use super::{from_item, key, sdk, Cond, Store, StoreError, TxFailure};
use crate::migration::{Counts, Format, Reject};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
/// One upload of a file: where it is, how it was cut, and the counts of its counted chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportJob {
    pub import_id: String,
    pub bucket: String,
    pub object_key: String,
    pub format: Format,
    /// CSV: the header's columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Non-blank member lines of the file (a CSV header excluded).
    pub lines: u64,
    pub chunks: u32,
    #[serde(default)]
    pub chunks_done: u32,
    #[serde(default)]
    pub imported: u64,
    #[serde(default)]
    pub updated: u64,
    #[serde(default)]
    pub unchanged: u64,
    #[serde(default)]
    pub rejected: u64,
    pub created_at: DateTime<Utc>,
    /// Why the file could not be read at all (a CSV header naming no known column...): no
    /// line was imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ImportJob {
    pub fn done(&self) -> bool {
        self.chunks_done >= self.chunks
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImportJobItem {
    #[serde(flatten)]
    key: ItemKey,
    #[serde(flatten)]
    job: ImportJob,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImportKeyItem {
    #[serde(flatten)]
    key: ItemKey,
    #[serde(rename = "importId")]
    import_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChunkItem {
    #[serde(flatten)]
    key: ItemKey,
    #[serde(flatten)]
    counts: Counts,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rejects: Vec<Reject>,
    at: DateTime<Utc>,
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl Store {
    /// Records a new import with its pointer from the object key. False: it exists (the
    /// object's notification was delivered again).
    pub async fn start_import(&self, job: &ImportJob) -> Result<bool, StoreError> {
        let id = &job.import_id;
        let item = ImportJobItem {
            key: ItemKey::new(keys::import_pk(id), keys::IMPORT_JOB_SK, "import"),
            job: job.clone(),
        };
        let pointer = ImportKeyItem {
            key: ItemKey::new(
                keys::import_key_pk(&job.object_key),
                format!(
                    "{}#{id}",
                    job.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                ),
                "import_key",
            ),
            import_id: id.clone(),
        };
        let listed = ImportKeyItem {
            key: ItemKey::new(keys::IMPORTS_PK, pointer.key.sk.clone(), "import_key"),
            import_id: id.clone(),
        };
        let writes = vec![
            self.put(&item, Some(Cond::absent()))?,
            self.put(&pointer, None)?,
            self.put(&listed, None)?,
        ];
        for attempt in 0..super::MAX_ATTEMPTS {
            match self.transact(writes.clone()).await {
                Ok(()) => return Ok(true),
                Err(TxFailure::Conditions(_)) => return Ok(false),
                Err(TxFailure::Conflict) => super::backoff(attempt).await,
                Err(TxFailure::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Contended)
    }

    pub async fn import_job(&self, import_id: &str) -> Result<Option<ImportJob>, StoreError> {
        Ok(self
            .get::<ImportJobItem>(&keys::import_pk(import_id), keys::IMPORT_JOB_SK)
            .await?
            .map(|i| i.job))
    }

    /// The newest imports of an object key, or of any key (`None`), newest first.
    pub async fn latest_imports(
        &self,
        object_key: Option<&str>,
        limit: i32,
    ) -> Result<Vec<ImportJob>, StoreError> {
        let pk = object_key.map_or(keys::IMPORTS_PK.to_string(), keys::import_key_pk);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .limit(limit)
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        let mut jobs = Vec::new();
        for item in out.items.unwrap_or_default() {
            if let Some(job) = self.import_job(&from_item::<ImportKeyItem>(item)?.import_id).await?
            {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// The latest import of an object key.
    pub async fn latest_import(&self, object_key: &str) -> Result<Option<ImportJob>, StoreError> {
        Ok(self.latest_imports(Some(object_key), 1).await?.into_iter().next())
    }

    /// Whether a chunk was counted already.
    pub async fn chunk_counted(&self, import_id: &str, index: u32) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(&keys::import_pk(import_id), &keys::import_chunk_sk(index))))
            .projection_expression("PK")
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        Ok(out.item.is_some())
    }

    /// Counts a chunk once: its item (with its rejects) and the import's counters in one
    /// transaction. False: it was counted before.
    pub async fn record_chunk(
        &self,
        import_id: &str,
        index: u32,
        counts: Counts,
        rejects: Vec<Reject>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let chunk = ChunkItem {
            key: ItemKey::new(
                keys::import_pk(import_id),
                keys::import_chunk_sk(index),
                "import_chunk",
            ),
            counts,
            rejects,
            at: now,
        };
        let add =
            Cond::new("ADD chunksDone :one, imported :i, updated :u, unchanged :n, rejected :r")
                .value(":one", n(1))
                .value(":i", n(counts.imported))
                .value(":u", n(counts.updated))
                .value(":n", n(counts.unchanged))
                .value(":r", n(counts.rejected));
        let writes = vec![
            self.put(&chunk, Some(Cond::absent()))?,
            self.update(&keys::import_pk(import_id), keys::IMPORT_JOB_SK, add, Cond::present())?,
        ];
        for attempt in 0..super::MAX_ATTEMPTS {
            match self.transact(writes.clone()).await {
                Ok(()) => return Ok(true),
                Err(TxFailure::Conditions(failed)) if failed.contains(&0) => return Ok(false),
                Err(TxFailure::Conditions(_)) => {
                    return Err(StoreError::Mapping(format!("import {import_id} does not exist")))
                }
                Err(TxFailure::Conflict) => super::backoff(attempt).await,
                Err(TxFailure::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Contended)
    }

    /// Every reject of an import, by line.
    pub async fn import_rejects(&self, import_id: &str) -> Result<Vec<Reject>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
            .expression_attribute_values(":pk", s(keys::import_pk(import_id)))
            .expression_attribute_values(":p", s(keys::IMPORT_CHUNK_PREFIX))
            .consistent_read(true);
        let chunks: Vec<ChunkItem> = self.query_all(query).await?;
        let mut all: Vec<Reject> = chunks.into_iter().flat_map(|c| c.rejects).collect();
        all.sort_by_key(|r| r.line);
        Ok(all)
    }
}
