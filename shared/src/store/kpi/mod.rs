//! The KPI counters, kept from the table's stream (the same records events-out publishes),
//! and read back for the report.
//!
//! | entity | record | counts |
//! |---|---|---|
//! | `member` | INSERT | joined, live members of its tier |
//! | `member` | MODIFY | erased (and out of its tier's count) when this write erased it; the first order's cohort windows; the spend change of its join-day cohort; a move between churn bands |
//! | `order` | INSERT | a purchase and its paid amount (GMV) on the order's day; buyers of the day, of the month, repeat buyers of the month |
//! | `order` | MODIFY | each refund this write added, and its amount |
//! | `ledger` | INSERT | points earned / pending / released / redeemed / expired / clawed back / returned; rebates credited / released / reversed / spent / returned; the points and rebate liabilities |
//! | `tier_change` | INSERT | the move from → to, and the tiers' counts |
//! | `coupon` | INSERT / MODIFY | issued / redeemed / returned, by grant family, and the campaign grant's results |
//! | `checkout` | MODIFY | a confirmed checkout's discounts, and the GMV of its coupons' grants |
//! | `reward_claim` | INSERT | a reward claimed |
//!
//! Facts are counted on the program day they happened, from the item (a refund's, a confirm's
//! and a coupon return's recorded time; the stream record's time only for items written
//! before those times were kept).
//!
//! Each record's counters are one `Bump` whose marker is the change's identity (the item's
//! key and the stream record's sequence number), so a redelivered record adds nothing. A
//! batch's bumps are written in as few transactions as fit: every marker (condition: absent)
//! and one `ADD` per touched counter item, summed. A marker that exists fails its condition:
//! the transaction is cancelled, the change's bump dropped (or a fact's replaced by its
//! `otherwise`), and the rest written again.

mod bumps;
mod change;
mod chunk;
mod commerce;

use super::keys::ItemKey;
use super::keys::{self, KPI_DAYS_PK, KPI_GRANTS_PK, KPI_TOTAL_SK, KPI_TOUCH_SK};
use super::{Store, StoreError};
use crate::kpi::{Bump, Counters, Target};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub use bumps::bumps_of;

// ---------------------------------------------------------------------------------------
// Items

/// A marker: the change or fact it names is counted. Never read; kept `keep_days` (TTL).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkerItem {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(rename = "expiresAt")]
    pub expires_at: i64,
}

/// A day's counters, the running totals, or a grant's results: every number of the item
/// that is not its key is a counter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CounterItem {
    #[serde(flatten)]
    pub key: ItemKey,
    /// A grant's first day (the day its run issued its first coupon).
    #[serde(rename = "firstDay", default, skip_serializing_if = "Option::is_none")]
    pub first_day: Option<NaiveDate>,
    #[serde(flatten)]
    pub counters: Counters,
}

fn target_key(t: &Target) -> (String, String) {
    match t {
        Target::Day(d) => (KPI_DAYS_PK.into(), d.to_string()),
        Target::Total => (KPI_DAYS_PK.into(), KPI_TOTAL_SK.into()),
        Target::Grant(g, _) => (KPI_GRANTS_PK.into(), g.clone()),
        Target::Touch(m) => (keys::kpi_touch_pk(m), KPI_TOUCH_SK.into()),
    }
}

/// A member's touch item is kept this long after its latest campaign coupon (the
/// conversion window is at most 90 days).
const TOUCH_DAYS: i64 = 100;

/// A transaction holds at most this many items (DynamoDB's limit is 100).
const TX_ITEMS: usize = 100;

impl Store {
    /// Adds the bumps' counters, each once: a change counted before (its marker exists) adds
    /// nothing, a fact counted before its `otherwise`. Bumps go in order, as many per
    /// transaction as fit.
    pub async fn add_counts(
        &self,
        bumps: Vec<Bump>,
        now: DateTime<Utc>,
        conversion_days: u32,
    ) -> Result<(), StoreError> {
        let bumps = self.with_conversions(bumps, conversion_days).await?;
        let mut chunk: Vec<Bump> = Vec::new();
        let mut targets: BTreeSet<Target> = BTreeSet::new();
        let mut markers: BTreeSet<String> = BTreeSet::new();
        // Facts an earlier bump of the batch claims: their markers exist once it is written
        // (or existed before), so a later bump goes straight to the fallback instead of
        // failing a transaction to learn it (a member's orders of a day in one batch).
        let mut claimed: BTreeSet<String> = BTreeSet::new();
        for mut bump in bumps {
            bump.facts = std::mem::take(&mut bump.facts)
                .into_iter()
                .filter_map(|fact| {
                    let mut fact = Some(fact);
                    while let Some(f) = fact.take_if(|f| claimed.contains(&f.marker)) {
                        fact = f.otherwise.map(|o| *o);
                    }
                    if let Some(f) = &fact {
                        claimed.insert(f.marker.clone());
                    }
                    fact
                })
                .collect();
            let mut with = targets.clone();
            with.extend(bump_targets(&bump));
            let mine = bump_markers(&bump);
            let items: usize = chunk.iter().map(marker_count).sum::<usize>() + marker_count(&bump);
            // A transaction writes an item once: a marker met again (a member's second order
            // of the day in the same batch) goes to the next transaction, which finds it.
            let full = items + with.len() > TX_ITEMS || !markers.is_disjoint(&mine);
            if !chunk.is_empty() && full {
                self.add_chunk(std::mem::take(&mut chunk), now).await?;
                markers.clear();
                with = bump_targets(&bump);
            }
            targets = with;
            markers.extend(mine);
            chunk.push(bump);
        }
        if !chunk.is_empty() {
            self.add_chunk(chunk, now).await?;
        }
        Ok(())
    }

    /// The days from `from` on (every day with counters up to the latest) and the running
    /// totals: one Query of the days' partition, every page.
    pub async fn kpi_days(
        &self,
        from: NaiveDate,
    ) -> Result<(BTreeMap<NaiveDate, Counters>, Counters), StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND SK >= :from")
            .expression_attribute_values(":pk", AttributeValue::S(KPI_DAYS_PK.into()))
            .expression_attribute_values(":from", AttributeValue::S(from.to_string()));
        let items: Vec<CounterItem> = self.query_all(query).await?;
        let mut days = BTreeMap::new();
        let mut total = Counters::new();
        for item in items {
            match item.key.sk.parse::<NaiveDate>() {
                Ok(d) => {
                    days.insert(d, item.counters);
                }
                Err(_) if item.key.sk == KPI_TOTAL_SK => total = item.counters,
                Err(_) => {
                    return Err(StoreError::Mapping(format!("a KPI day item {}", item.key.sk)));
                }
            }
        }
        Ok((days, total))
    }

    /// Every campaign grant's results: one Query of the grants' partition, every page.
    pub async fn kpi_grants(&self) -> Result<Vec<(String, NaiveDate, Counters)>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(KPI_GRANTS_PK.into()));
        let items: Vec<CounterItem> = self.query_all(query).await?;
        Ok(items
            .into_iter()
            .filter_map(|i| i.first_day.map(|d| (i.key.sk, d, i.counters)))
            .collect())
    }
}

fn bump_targets(b: &Bump) -> BTreeSet<Target> {
    let mut out: BTreeSet<Target> = b.adds.iter().map(|a| a.target.clone()).collect();
    for other in b.otherwise.iter().map(|o| &**o).chain(&b.facts) {
        out.extend(bump_targets(other));
    }
    out
}

/// Every marker a bump may write (its own, its facts' and their fallbacks').
fn bump_markers(b: &Bump) -> BTreeSet<String> {
    let mut out = BTreeSet::from([b.marker.clone()]);
    for other in b.otherwise.iter().map(|o| &**o).chain(&b.facts) {
        out.extend(bump_markers(other));
    }
    out
}

/// The marker items a bump writes in one transaction.
fn marker_count(b: &Bump) -> usize {
    1 + b.facts.len()
}

/// The counters of a chunk, summed per item (a transaction writes an item once).
fn summed(bumps: &[Bump]) -> BTreeMap<Target, BTreeMap<String, i64>> {
    let mut out: BTreeMap<Target, BTreeMap<String, i64>> = BTreeMap::new();
    for b in bumps {
        for a in b.adds.iter().chain(b.facts.iter().flat_map(|f| &f.adds)) {
            *out.entry(a.target.clone()).or_default().entry(a.counter.clone()).or_default() += a.n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpi;
    use crate::kpi::Add;

    #[test]
    fn a_chunk_writes_each_counter_item_once_with_the_sums() {
        let d: NaiveDate = "2026-11-20".parse().unwrap();
        let bumps = vec![
            Bump::new("a".into(), 3).day(d, kpi::PURCHASES, 1).day(d, kpi::GMV, 100),
            Bump::new("b".into(), 3).day(d, kpi::PURCHASES, 1).running(d, kpi::LIABILITY, 5),
        ];
        let s = summed(&bumps);
        assert_eq!(s.len(), 2, "the day and the total");
        assert_eq!(s[&Target::Day(d)][kpi::PURCHASES], 2);
        assert_eq!(s[&Target::Total][kpi::LIABILITY], 5);
        let other = Bump::new("c".into(), 3).or_else(Bump {
            marker: "d".into(),
            keep_days: 3,
            adds: vec![Add { target: Target::Total, counter: "x".into(), n: 1 }],
            otherwise: None,
            facts: vec![],
            bought: None,
        });
        assert_eq!(bump_targets(&other), BTreeSet::from([Target::Total]));
    }
}
