//! Storage of points changes: the one read (a BatchGetItem of the member, the request's
//! order or receipt item and the campaign multipliers), the order item, and the pieces of
//! the one transaction every points change commits.

use super::keys::ItemKey;
use super::keys::{self, member_pk, PROFILE_SK};
use super::member::MemberItem;
use super::{entity, from_item, key, sdk, Item, Store, StoreError};
use crate::campaign::MultiplierWindow;
use crate::ledger::ExpiryNotice;
use crate::member::Member;
use crate::points::OrderRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A purchase and its refunds, in the member's partition (`ORDER#<orderId>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(rename = "memberId")]
    pub member_id: String,
    #[serde(flatten)]
    pub order: OrderRecord,
    /// The commission the order earned a partner, which its refunds
    /// reverse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affiliate: Option<crate::affiliate::Attribution>,
}

impl OrderItem {
    pub fn new(member_id: &str, order: OrderRecord) -> OrderItem {
        OrderItem {
            key: ItemKey::new(member_pk(member_id), keys::order_sk(&order.order_id), "order"),
            member_id: member_id.into(),
            order,
            affiliate: None,
        }
    }
}

/// A lot's expiry told (`PointsExpiringSoon`): one per member and lot day, written by the
/// daily sweep on the condition that it does not exist yet, so the lot is told once however
/// often the sweep meets it. It vanishes (TTL) a while after the lot's expiry day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpiryNoticeItem {
    #[serde(flatten)]
    pub key: ItemKey,
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
            key: ItemKey::new(
                member_pk(member_id),
                keys::expiry_notice_sk(notice.earned_on),
                "expiry_notice",
            ),
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
    /// Items outside the member's partition asked for by key (`points_read_with`), raw.
    pub others: std::collections::HashMap<(String, String), Item>,
}

impl PointsRead {
    /// The item at `sk` in the member's partition, typed.
    pub fn take<T: serde::de::DeserializeOwned>(
        &mut self,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        self.items.remove(sk).map(from_item).transpose()
    }

    /// The item at `(pk, sk)` outside the member's partition, typed.
    pub fn take_other<T: serde::de::DeserializeOwned>(
        &mut self,
        key: &(String, String),
    ) -> Result<Option<T>, StoreError> {
        self.others.remove(key).map(from_item).transpose()
    }
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
        self.points_read_with(member_id, sks, &[]).await
    }

    /// `points_read` with items outside the member's partition in the same request (an
    /// order's tracking code), keyed by (PK, SK) in `PointsRead::others`.
    pub async fn points_read_with(
        &self,
        member_id: &str,
        sks: &[String],
        others: &[(String, String)],
    ) -> Result<PointsRead, StoreError> {
        let pk = member_pk(member_id);
        let mut keys = vec![key(&pk, PROFILE_SK), key(keys::PROGRAM_PK, keys::MULTIPLIERS_SK)];
        keys.extend(sks.iter().map(|sk| key(&pk, sk)));
        keys.extend(others.iter().map(|(p, s)| key(p, s)));
        let mut out = PointsRead::default();
        for item in self.batch_get(keys).await? {
            let sk_of = item.get("SK").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let pk_of = item.get("PK").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            if pk_of != pk && pk_of != keys::PROGRAM_PK {
                out.others.insert((pk_of, sk_of), item);
            } else if pk_of == keys::PROGRAM_PK {
                out.windows = from_item::<MultipliersItem>(item)?.windows;
            } else if sk_of == PROFILE_SK {
                out.member = Some(from_item::<MemberItem>(item)?.member);
            } else {
                out.items.insert(sk_of, item);
            }
        }
        Ok(out)
    }

    /// A member and the lot days whose expiry it was already told, in one strongly consistent
    /// Query from the first notice to the profile (they sort next to each other).
    pub async fn member_for_sweep(
        &self,
        id: &str,
    ) -> Result<Option<(Member, Vec<NaiveDate>)>, StoreError> {
        let (mut member, mut noticed) = (None, Vec::new());
        for item in self.member_range(id, keys::EXPIRY_NOTICE_PREFIX, PROFILE_SK).await? {
            match entity(&item) {
                Some("member") => member = Some(from_item::<MemberItem>(item)?.member),
                Some("expiry_notice") => {
                    noticed.push(from_item::<ExpiryNoticeItem>(item)?.notice.earned_on)
                }
                _ => {}
            }
        }
        Ok(member.map(|m| (m, noticed)))
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
        // GSI4SK is the expiry (or release) day: everything below the next day's date is due.
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
