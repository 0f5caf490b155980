//! Which index partitions a run pages, and one page of them.

use crate::campaign::award::MemberList;
use crate::campaign::{Segment, SegmentMember};
use crate::money::Fen;
use crate::store::keys;
use crate::store::{from_item, sdk, Store, StoreError};
use crate::tier::TierCode;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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
impl Store {
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
