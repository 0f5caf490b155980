//! Storage of points changes: the one read (a BatchGetItem of the member, the request's
//! order or receipt item and the campaign multipliers), the order item, and the pieces of
//! the one transaction every points change commits.

use super::keys::{self, member_pk, PROFILE_SK};
use super::ledger::LedgerItem;
use super::member::MemberItem;
use super::{from_item, key, sdk, Item, Store, StoreError, TxFailure};
use crate::campaign::MultiplierWindow;
use crate::events::ExpiryNotice;
use crate::ledger::LedgerEntry;
use crate::member::Member;
use crate::points::OrderRecord;
use crate::rules::Rules;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A purchase and its refunds, in the member's partition (`ORDER#<orderId>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub entity: String,
    #[serde(rename = "memberId")]
    pub member_id: String,
    #[serde(flatten)]
    pub order: OrderRecord,
}

impl OrderItem {
    pub fn new(member_id: &str, order: OrderRecord) -> OrderItem {
        OrderItem {
            pk: member_pk(member_id),
            sk: keys::order_sk(&order.order_id),
            entity: "order".into(),
            member_id: member_id.into(),
            order,
        }
    }
}

/// A lot's expiry told (`PointsExpiringSoon`): one per member and lot day, written by the
/// daily sweep on the condition that it does not exist yet, so the lot is told once however
/// often the sweep meets it. It vanishes (TTL) a while after the lot's expiry day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpiryNoticeItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub entity: String,
    #[serde(rename = "memberId")]
    pub member_id: String,
    #[serde(flatten)]
    pub notice: ExpiryNotice,
    pub at: DateTime<Utc>,
    #[serde(rename = "expiresAt")]
    pub expires_at: i64,
}

/// Days a notice is kept after its lot expired: past that no sweep can meet the lot again.
const KEEP_NOTICE_DAYS: i64 = 30;

impl ExpiryNoticeItem {
    pub fn new(member_id: &str, notice: ExpiryNotice, at: DateTime<Utc>) -> ExpiryNoticeItem {
        let gone = notice.expires_on + chrono::Duration::days(KEEP_NOTICE_DAYS);
        ExpiryNoticeItem {
            pk: member_pk(member_id),
            sk: keys::expiry_notice_sk(notice.earned_on),
            entity: "expiry_notice".into(),
            member_id: member_id.into(),
            notice,
            at,
            expires_at: gone.and_time(chrono::NaiveTime::MIN).and_utc().timestamp(),
        }
    }
}

/// The campaign multiplier windows (one item, written by the campaigns side).
pub use super::campaign::MultipliersItem;

/// What one points change reads: the member, the items that make the request idempotent
/// (order, receipts; raw and keyed by sort key, the caller knows their types) and the
/// campaign windows.
#[derive(Debug, Clone, Default)]
pub struct PointsRead {
    pub member: Option<Member>,
    pub items: std::collections::HashMap<String, Item>,
    pub windows: Vec<MultiplierWindow>,
}

impl PointsRead {
    /// The item at `sk` in the member's partition, typed.
    pub fn take<T: serde::de::DeserializeOwned>(
        &mut self,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        self.items.remove(sk).map(from_item).transpose()
    }
}

/// Whether a points transaction landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    Done,
    /// A condition failed or another transaction held an item: read again and redo.
    Retry,
}

/// What one attempt of `Store::change_member` decided from what it read.
pub enum Attempt<T, E> {
    /// Answer without writing: a replayed request, or nothing to change.
    Answer(T),
    /// Commit these writes, then answer (or read again if another write came between).
    Commit(Vec<TransactWriteItem>, T),
    /// Like `Commit`, but what failed conditions mean is for the function to judge, given
    /// the indexes of the writes whose condition failed.
    CommitOr(Vec<TransactWriteItem>, T, Judge<E>),
}

/// Judges a commit's failed conditions from the indexes of the writes that failed them.
pub type Judge<E> = Box<dyn FnOnce(&[usize]) -> Failed<E> + Send>;

/// What a commit's failed conditions meant.
pub enum Failed<E> {
    /// Another write came between: read again after a backoff (what `Commit` always does).
    Contended,
    /// Read again at once: the read tells what changed, and there is nothing to wait for.
    ReadAgainNow,
    /// The change is refused.
    Refused(E),
}

impl Store {
    /// One BatchGetItem (strongly consistent) of the member, the items at `sks` in the
    /// member's partition, and the campaign multipliers item. Unprocessed keys (throttling)
    /// are asked again, which is the only case of a second request.
    pub async fn points_read(
        &self,
        member_id: &str,
        sks: &[String],
    ) -> Result<PointsRead, StoreError> {
        let pk = member_pk(member_id);
        let mut keys = vec![key(&pk, PROFILE_SK), key(keys::PROGRAM_PK, keys::MULTIPLIERS_SK)];
        keys.extend(sks.iter().map(|sk| key(&pk, sk)));
        let mut out = PointsRead::default();
        for attempt in 0..super::MAX_ATTEMPTS {
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(keys.clone()))
                .consistent_read(true)
                .build()
                .map_err(sdk)?;
            let resp = self
                .client
                .batch_get_item()
                .request_items(&self.table, ka)
                .send()
                .await
                .map_err(sdk)?;
            for item in resp.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                let sk_of = item.get("SK").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let pk_of = item.get("PK").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                if pk_of == keys::PROGRAM_PK {
                    out.windows = from_item::<MultipliersItem>(item)?.windows;
                } else if sk_of == PROFILE_SK {
                    out.member = Some(from_item::<MemberItem>(item)?.member);
                } else {
                    out.items.insert(sk_of, item);
                }
            }
            keys = resp
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if keys.is_empty() {
                return Ok(out);
            }
            super::backoff(attempt).await;
        }
        Err(StoreError::Throttled("batch read left keys unprocessed".into()))
    }

    /// The versioned write of a changed member with its ledger entries (each entry new).
    pub fn member_change(
        &self,
        member: &Member,
        read_version: u64,
        entries: Vec<LedgerEntry>,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let id = member.member_id.as_str();
        let mut writes = vec![self.member_write(member, read_version, rules, now)?];
        for e in entries {
            writes.push(self.put(&LedgerItem::new(id, e), Some(super::Cond::absent()))?);
        }
        Ok(writes)
    }

    /// The one optimistic-concurrency loop of a member change. Each call of `attempt` reads
    /// what it needs afresh (the member and its version, the receipt or order that makes the
    /// request idempotent), decides, and answers either without writing (a replay, nothing
    /// to do) or with the writes, the member's version-checked write among them. A commit
    /// that fails on a version or uniqueness condition, or against another transaction, is
    /// tried again from a fresh read after a backoff; after `MAX_ATTEMPTS` the change gives up
    /// with `StoreError::Contended`.
    pub async fn change_member<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Attempt<T, E>, E>>,
    {
        for n in 0..super::MAX_ATTEMPTS {
            match attempt().await? {
                Attempt::Answer(answer) => return Ok(answer),
                Attempt::Commit(writes, answer) => {
                    if self.commit(writes, n).await? == Commit::Done {
                        return Ok(answer);
                    }
                }
                Attempt::CommitOr(writes, answer, judge) => match self.transact(writes).await {
                    Ok(()) => return Ok(answer),
                    Err(TxFailure::Conditions(failed)) => match judge(&failed) {
                        Failed::Refused(refused) => return Err(refused),
                        Failed::ReadAgainNow => {}
                        Failed::Contended => super::backoff(n).await,
                    },
                    Err(TxFailure::Conflict) => super::backoff(n).await,
                    Err(TxFailure::Store(e)) => return Err(e.into()),
                },
            }
        }
        Err(StoreError::Contended.into())
    }

    /// Commits one points transaction. Version and uniqueness conditions failing, or a
    /// conflicting transaction, mean "read again" (after a backoff).
    pub async fn commit(
        &self,
        writes: Vec<TransactWriteItem>,
        attempt: u32,
    ) -> Result<Commit, StoreError> {
        match self.transact(writes).await {
            Ok(()) => Ok(Commit::Done),
            Err(TxFailure::Conditions(_) | TxFailure::Conflict) => {
                super::backoff(attempt).await;
                Ok(Commit::Retry)
            }
            Err(TxFailure::Store(e)) => Err(e),
        }
    }

    /// A member and the lot days whose expiry it was already told, in one strongly consistent
    /// Query from the first notice to the profile (they sort next to each other).
    pub async fn member_for_sweep(
        &self,
        id: &str,
    ) -> Result<Option<(Member, Vec<NaiveDate>)>, StoreError> {
        let (mut member, mut noticed, mut start) = (None, Vec::new(), None);
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND SK BETWEEN :a AND :b")
                .expression_attribute_values(":pk", AttributeValue::S(member_pk(id)))
                .expression_attribute_values(
                    ":a",
                    AttributeValue::S(keys::EXPIRY_NOTICE_PREFIX.into()),
                )
                .expression_attribute_values(":b", AttributeValue::S(PROFILE_SK.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk)?;
            for item in page.items.unwrap_or_default() {
                match item.get("entity").and_then(|e| e.as_s().ok()).map(String::as_str) {
                    Some("member") => member = Some(from_item::<MemberItem>(item)?.member),
                    Some("expiry_notice") => {
                        noticed.push(from_item::<ExpiryNoticeItem>(item)?.notice.earned_on)
                    }
                    _ => {}
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(member.map(|m| (m, noticed)));
            }
        }
    }

    /// One page of members whose first lot expiry or release is on or before `until`
    /// (ByExpiry index), for one shard: member ids and where to continue. The sweep asks up to
    /// its notice horizon, so that members with a lot expiring soon are met before it expires.
    pub async fn expiry_due(
        &self,
        shard: u32,
        until: NaiveDate,
        start: Option<Item>,
    ) -> Result<(Vec<String>, Option<Item>), StoreError> {
        // GSI4SK is `<expiry date>#<member id>`: everything below the next day's date is due.
        let bound = (until + chrono::Duration::days(1)).to_string();
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("ByExpiry")
            .key_condition_expression("GSI4PK = :pk AND GSI4SK < :b")
            .expression_attribute_values(":pk", AttributeValue::S(keys::expiry_pk(shard)))
            .expression_attribute_values(":b", AttributeValue::S(bound))
            .limit(100)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(sdk)?;
        let ids = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|i| {
                i.get("PK")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix("MEMBER#"))
                    .map(str::to_string)
            })
            .collect();
        Ok((ids, out.last_evaluated_key))
    }
}
