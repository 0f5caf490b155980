//! One chunk of bumps: the conversion facts they imply, and the transaction that writes
//! their markers and summed counters.

use super::{summed, target_key, CounterItem, MarkerItem, TOUCH_DAYS, TX_ITEMS};
use crate::kpi::{self, Bump, Target};
use crate::store::keys::{self, ItemKey, KPI_MARK_SK, KPI_TOUCH_SK};
use crate::store::{backoff, sdk, Cond, Store, StoreError, TxFailure, MAX_ATTEMPTS};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};

impl Store {
    /// The orders' conversion facts: the buyers' campaign coupons as stored (one BatchGetItem
    /// per 100 buyers) and as issued earlier in the same batch, whose issue day is at most
    /// `days` before the order's. A coupon issued twice to a member (a grant of several
    /// slots) keeps its first day: later touches of the batch are dropped.
    pub(super) async fn with_conversions(
        &self,
        mut bumps: Vec<Bump>,
        days: u32,
    ) -> Result<Vec<Bump>, StoreError> {
        let buyers: BTreeSet<String> =
            bumps.iter().filter_map(|b| b.bought.clone()).map(|(m, _, _)| m).collect();
        let mut touched: BTreeMap<String, BTreeMap<String, kpi::Touch>> = BTreeMap::new();
        let buyers: Vec<String> = buyers.into_iter().collect();
        for ids in buyers.chunks(100) {
            let keys = ids
                .iter()
                .map(|m| crate::store::key(&keys::kpi_touch_pk(m), KPI_TOUCH_SK))
                .collect();
            for item in self.batch_get(keys).await? {
                let item: CounterItem = crate::store::from_item(item)?;
                if let Some(member) = item.key.pk.strip_prefix("KPI#TOUCH#") {
                    touched.insert(member.to_string(), kpi::touches(&item.counters));
                }
            }
        }
        for b in &mut bumps {
            b.adds.retain(|a| match &a.target {
                Target::Touch(member) => {
                    let mine = touched.entry(member.clone()).or_default();
                    let day = NaiveDate::from_num_days_from_ce_opt(a.n as i32);
                    match (kpi::parse_touch(&a.counter), day) {
                        (Some((grant, arm)), Some(day)) if !mine.contains_key(&grant) => {
                            mine.insert(grant, kpi::Touch { day, arm });
                            true
                        }
                        _ => false,
                    }
                }
                _ => true,
            });
            if let Some((member, day, paid)) = b.bought.clone() {
                let empty = BTreeMap::new();
                let mine = touched.get(&member).unwrap_or(&empty);
                b.facts.extend(kpi::conversion_facts(&member, day, mine, days));
                b.adds.extend(kpi::arm_spend(day, paid, mine, days));
            }
        }
        Ok(bumps)
    }

    /// One transaction of bumps: their markers (each change's, then its facts') first, then
    /// one update per counter item.
    pub(super) async fn add_chunk(
        &self,
        mut bumps: Vec<Bump>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let marker = |b: &Bump| MarkerItem {
            key: ItemKey::new(keys::kpi_marker_pk(&b.marker), KPI_MARK_SK, "kpi_marker"),
            expires_at: now.timestamp() + b.keep_days * 86_400,
        };
        for attempt in 0..MAX_ATTEMPTS {
            if bumps.is_empty() {
                return Ok(());
            }
            let mut items: Vec<TransactWriteItem> = Vec::with_capacity(TX_ITEMS);
            // Which bump (and which of its facts) each marker item is.
            let mut whose: Vec<(usize, Option<usize>)> = Vec::new();
            for (i, b) in bumps.iter().enumerate() {
                items.push(self.put(&marker(b), Some(Cond::absent()))?);
                whose.push((i, None));
                for (f, fact) in b.facts.iter().enumerate() {
                    items.push(self.put(&marker(fact), Some(Cond::absent()))?);
                    whose.push((i, Some(f)));
                }
            }
            for (target, adds) in summed(&bumps) {
                items.push(self.counter_update(&target, &adds, now)?);
            }
            match self.transact(items).await {
                Ok(()) => return Ok(()),
                Err(TxFailure::Conditions(failed)) => {
                    // Only markers carry conditions: each failed one was counted before.
                    let failed: Vec<(usize, Option<usize>)> =
                        failed.into_iter().filter_map(|k| whose.get(k).copied()).collect();
                    let counted: BTreeSet<usize> =
                        failed.iter().filter(|(_, f)| f.is_none()).map(|(i, _)| *i).collect();
                    let mut seen: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
                    for (i, f) in &failed {
                        if let Some(f) = f {
                            seen.entry(*i).or_default().insert(*f);
                        }
                    }
                    bumps = std::mem::take(&mut bumps)
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !counted.contains(i))
                        .map(|(i, mut b)| {
                            if let Some(facts) = seen.get(&i) {
                                b.facts = std::mem::take(&mut b.facts)
                                    .into_iter()
                                    .enumerate()
                                    .filter_map(|(f, fact)| match facts.contains(&f) {
                                        true => fact.otherwise.map(|o| *o),
                                        false => Some(fact),
                                    })
                                    .collect();
                            }
                            b
                        })
                        .collect();
                }
                Err(TxFailure::Conflict) => backoff(attempt).await,
                Err(TxFailure::Store(StoreError::Throttled(_))) => backoff(attempt).await,
                Err(TxFailure::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Contended)
    }

    fn counter_update(
        &self,
        target: &Target,
        adds: &BTreeMap<String, i64>,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let (pk, sk) = target_key(target);
        let entity = match target {
            Target::Day(_) => "kpi_day",
            Target::Total => "kpi_total",
            Target::Grant(..) => "kpi_grant",
            Target::Touch(_) => "kpi_touch",
        };
        let mut set = vec!["#entity = :entity".to_string()];
        let mut cond = Cond::new("")
            .name("#entity", "entity")
            .value(":entity", AttributeValue::S(entity.into()));
        if let Target::Grant(_, first) = target {
            set.push("#first = if_not_exists(#first, :first)".into());
            cond = cond
                .name("#first", "firstDay")
                .value(":first", AttributeValue::S(first.to_string()));
        }
        let mut add = Vec::new();
        let touch = matches!(target, Target::Touch(_));
        if touch {
            // Read within the conversion window (at most 90 days) of its latest coupon.
            set.push("#exp = :exp".into());
            cond = cond.name("#exp", "expiresAt").value(
                ":exp",
                AttributeValue::N(
                    (now + chrono::Duration::days(TOUCH_DAYS)).timestamp().to_string(),
                ),
            );
        }
        for (i, (counter, n)) in adds.iter().enumerate() {
            match touch {
                // An issue day, not a count: the first coupon of a grant keeps its day.
                true => set.push(format!("#c{i} = if_not_exists(#c{i}, :c{i})")),
                false => add.push(format!("#c{i} :c{i}")),
            }
            cond = cond
                .name(&format!("#c{i}"), counter)
                .value(&format!(":c{i}"), AttributeValue::N(n.to_string()));
        }
        cond.expr = format!("SET {}", set.join(", "));
        if !add.is_empty() {
            cond.expr.push_str(&format!(" ADD {}", add.join(", ")));
        }
        // Counter items are created by their first update: no condition.
        let u = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .set_key(Some(crate::store::key(&pk, &sk)))
            .update_expression(cond.expr)
            .set_expression_attribute_names(cond.names)
            .set_expression_attribute_values(cond.values)
            .build()
            .map_err(sdk)?;
        Ok(TransactWriteItem::builder().update(u).build())
    }
}
