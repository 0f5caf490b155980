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

use super::checkout::{CheckoutItem, CheckoutState};
use super::coupon::CouponItem;
use super::holdout::HoldoutItem;
use super::keys::ItemKey;
use super::keys::{self, KPI_DAYS_PK, KPI_GRANTS_PK, KPI_MARK_SK, KPI_TOTAL_SK, KPI_TOUCH_SK};
use super::ledger::LedgerItem;
use super::member::TierChangeItem;
use super::points::OrderItem;
use super::reward::ClaimItem;
use super::stream::{string, Decoder, StreamError};
use super::{backoff, sdk, Cond, Store, StoreError, TxFailure, MAX_ATTEMPTS};
use crate::calendar::program_date;
use crate::campaign::experiment;
use crate::churn::{band_of_mark, Band};
use crate::events::{self, DetailType};
use crate::kpi::{self, Bump, Counters, Target};
use crate::money::Fen;
use crate::tier::TierCode;
use aws_lambda_events::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What the counters need of a member image (no contact data).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberKpiFacts {
    tier: TierCode,
    joined_at: DateTime<Utc>,
    #[serde(default)]
    erased_at: Option<DateTime<Utc>>,
    #[serde(default)]
    order_count: u32,
    #[serde(default)]
    lifetime_spend: Fen,
    #[serde(default)]
    last_purchase_at: Option<DateTime<Utc>>,
    #[serde(default)]
    churn: Option<String>,
}

impl MemberKpiFacts {
    fn band(&self) -> Option<Band> {
        self.churn.as_deref().and_then(band_of_mark)
    }
}

/// The marker of a stored change: a digest of the item's key, the stream record's sequence
/// number (the same when the record is delivered again, another for every write) and which of
/// the record's facts (a write may add several refunds).
fn change_marker(pk: &str, sk: &str, sequence: &str, what: &str) -> String {
    // The detail type only salts the digest, as for an event id.
    events::event_id(DetailType::MemberJoined, pk, sk, &format!("{sequence}#{what}"))
}

/// The counters one stream record adds (none for most records).
pub fn bumps_of(record: &EventRecord, tz: Tz) -> Result<Vec<Bump>, StreamError> {
    let change = &record.change;
    let inserted = match record.event_name.as_str() {
        "INSERT" => true,
        "MODIFY" => false,
        _ => return Ok(Vec::new()),
    };
    let new = &change.new_image;
    let (Some(pk), Some(sk), Some(entity)) =
        (string(new, "PK"), string(new, "SK"), string(new, "entity"))
    else {
        return Ok(Vec::new());
    };
    let old = (!change.old_image.is_empty()).then_some(&change.old_image);
    let at = change.approximate_creation_date_time;
    let day = |t: DateTime<Utc>| program_date(tz, t);
    let d = Decoder { entity, pk, sk };
    let sequence = change.sequence_number.as_deref().unwrap_or_default();
    if sequence.is_empty() {
        return Err(StreamError::Malformed(record.event_id.clone(), "no SequenceNumber"));
    }
    let marker = |what: &str| change_marker(pk, sk, sequence, what);
    let once = |what: &str| Bump::new(marker(what), kpi::REDELIVERY_DAYS);
    let mut out = Vec::new();
    match entity {
        "member" => {
            let m: MemberKpiFacts = d.decode(new)?;
            if inserted {
                let j = day(m.joined_at);
                let mut b =
                    once("joined").day(j, kpi::JOINED, 1).running(j, &kpi::tier_count(m.tier), 1);
                if let Some(band) = m.band() {
                    b = b.add(Target::Total, &kpi::churn_count(band), 1);
                }
                out.push(b);
            } else if let Some(before) = old.map(|o| d.decode::<MemberKpiFacts>(o)).transpose()? {
                let joined = day(m.joined_at);
                let mut b = once("member");
                if let (Some(erased), None) = (m.erased_at, before.erased_at) {
                    let e = day(erased);
                    b = b.day(e, kpi::ERASED, 1).running(e, &kpi::tier_count(m.tier), -1);
                }
                if before.order_count == 0 && m.order_count > 0 {
                    if let Some(first) = m.last_purchase_at {
                        let gap = (day(first) - joined).num_days();
                        for window in kpi::cohort_windows(gap) {
                            b = b.day(joined, window, 1);
                        }
                    }
                }
                b = b.day(joined, kpi::COHORT_SPEND, m.lifetime_spend.0 - before.lifetime_spend.0);
                // Members per churn band: the band this write left and the one it entered (none
                // once erased). On the totals only: the member item keeps no time of a rescore,
                // so the bands are a figure of now, not of a day.
                if before.band() != m.band() {
                    for (band, n) in [(before.band(), -1), (m.band(), 1)] {
                        if let Some(band) = band {
                            b = b.add(Target::Total, &kpi::churn_count(band), n);
                        }
                    }
                }
                out.push(b);
            }
        }
        "order" => {
            let item: OrderItem = d.decode(new)?;
            let o = &item.order;
            if inserted {
                out.push(
                    once("purchase")
                        .day(o.day, kpi::PURCHASES, 1)
                        .day(o.day, kpi::GMV, o.paid.0)
                        .with_facts(kpi::buyer_facts(&item.member_id, o.day))
                        .bought(&item.member_id, o.day, o.paid),
                );
            } else {
                let before: Option<OrderItem> = old.map(|x| d.decode(x)).transpose()?;
                let seen: BTreeSet<&str> = before
                    .as_ref()
                    .map(|b| b.order.refunds.iter().map(|r| r.refund_id.as_str()).collect())
                    .unwrap_or_default();
                for r in o.refunds.iter().filter(|r| !seen.contains(r.refund_id.as_str())) {
                    let when = day(r.at.unwrap_or(at));
                    out.push(
                        once(&format!("refund:{}", r.refund_id)).day(when, kpi::REFUNDS, 1).day(
                            when,
                            kpi::REFUNDED,
                            r.amount.0,
                        ),
                    );
                }
            }
        }
        "ledger" if inserted => {
            let item: LedgerItem = d.decode(new)?;
            let e = &item.entry;
            let (points, pending, when) = (e.points.0, e.pending.0, day(e.at));
            let mut b = once("entry").running(when, kpi::LIABILITY, points + pending);
            b = match events::points_detail_type(e) {
                Some(DetailType::PointsEarned) => b.day(when, kpi::POINTS_EARNED, points),
                Some(DetailType::PointsPending) => b.day(when, kpi::POINTS_PENDING, pending),
                Some(DetailType::PointsAvailable) => b.day(when, kpi::POINTS_RELEASED, points),
                Some(DetailType::PointsRedeemed) => b.day(when, kpi::POINTS_REDEEMED, -points),
                Some(DetailType::PointsExpired) => b.day(when, kpi::POINTS_EXPIRED, -points),
                Some(DetailType::PointsClawedBack) => {
                    b.day(when, kpi::POINTS_CLAWED_BACK, -(points + pending))
                }
                Some(DetailType::PointsReturned) => b.day(when, kpi::POINTS_RETURNED, points),
                _ => b,
            };
            let (rebate, rebate_pending) = (e.rebate.0, e.rebate_pending.0);
            b = b.running(when, kpi::REBATE_LIABILITY, rebate + rebate_pending);
            b = match events::rebate_detail_type(e) {
                Some(DetailType::RebateCredited) => {
                    b.day(when, kpi::REBATE_CREDITED, rebate + rebate_pending)
                }
                Some(DetailType::RebateAvailable) => b.day(when, kpi::REBATE_RELEASED, rebate),
                Some(DetailType::RebateReversed) => {
                    b.day(when, kpi::REBATE_REVERSED, -(rebate + rebate_pending))
                }
                Some(DetailType::RebateSpent) => b.day(when, kpi::REBATE_SPENT, -rebate),
                Some(DetailType::RebateReturned) => b.day(when, kpi::REBATE_RETURNED, rebate),
                _ => b,
            };
            out.push(b);
        }
        "tier_change" if inserted => {
            let item: TierChangeItem = d.decode(new)?;
            let c = &item.change;
            let when = day(c.at);
            out.push(
                once("tier")
                    .day(when, &kpi::tier_move(c.from, c.to), 1)
                    .running(when, &kpi::tier_count(c.from), -1)
                    .running(when, &kpi::tier_count(c.to), 1),
            );
        }
        "coupon" => {
            let item: CouponItem = d.decode(new)?;
            let c = &item.coupon;
            let family = kpi::grant_family(&c.grant);
            let results = kpi::has_results(&c.grant);
            let grant = |when: NaiveDate| Target::Grant(c.grant.clone(), when);
            if inserted {
                let when = day(c.issued_at);
                let mut b = once("issued").day(when, kpi::COUPONS_ISSUED, 1).day(
                    when,
                    &kpi::issued_of(family),
                    1,
                );
                if results {
                    let arm = item.arm.as_deref();
                    b = b.add(grant(when), kpi::GRANT_ISSUED, 1).touch(
                        &c.member_id,
                        &c.grant,
                        arm,
                        when,
                    );
                    if let Some(arm) = arm {
                        b = b.add(grant(when), &kpi::arm_members(arm), 1);
                    }
                }
                out.push(b);
            } else {
                let before: Option<CouponItem> = old.map(|x| d.decode(x)).transpose()?;
                let was = before.as_ref().and_then(|b| b.coupon.redemption.as_ref());
                let first = day(c.issued_at);
                match (&c.redemption, was) {
                    (Some(r), prev) if prev.is_none_or(|p| p.order_id != r.order_id) => {
                        let when = day(r.at);
                        let mut b = once(&format!("redeemed:{}", r.order_id))
                            .day(when, kpi::COUPONS_REDEEMED, 1)
                            .day(when, &kpi::redeemed_of(family), 1);
                        if results {
                            b = b.add(grant(first), kpi::GRANT_REDEEMED, 1).add(
                                grant(first),
                                kpi::GRANT_DISCOUNT,
                                r.discount.0,
                            );
                        }
                        out.push(b);
                    }
                    (None, Some(prev)) => {
                        let returned = string(new, "returnedAt")
                            .and_then(|s| s.parse::<DateTime<Utc>>().ok())
                            .unwrap_or(at);
                        let mut b = once(&format!("returned:{}", prev.order_id)).day(
                            day(returned),
                            kpi::COUPONS_RETURNED,
                            1,
                        );
                        if results {
                            b = b.add(grant(first), kpi::GRANT_RETURNED, 1);
                        }
                        out.push(b);
                    }
                    _ => {}
                }
            }
        }
        "checkout" if !inserted => {
            let item: CheckoutItem = d.decode(new)?;
            let was_confirmed = old
                .map(|o| d.decode::<CheckoutItem>(o))
                .transpose()?
                .is_some_and(|o| o.state == CheckoutState::Confirmed);
            if item.state == CheckoutState::Confirmed && !was_confirmed {
                let (q, when) = (&item.quoted.quote, day(item.finished_at.unwrap_or(at)));
                let mut b = once("confirmed")
                    .day(when, kpi::CHECKOUTS, 1)
                    .day(when, kpi::MEMBER_DISCOUNT, q.member_discount.0)
                    .day(when, kpi::COUPON_DISCOUNT, q.coupon_discount.0)
                    .day(when, kpi::POINTS_DISCOUNT, q.points_discount.0)
                    .day(when, kpi::POINTS_USED, q.points_used)
                    .day(when, kpi::REBATE_DISCOUNT, q.rebate_used.0);
                let grants: BTreeMap<&str, NaiveDate> = item
                    .quoted
                    .coupons
                    .iter()
                    .filter(|c| kpi::has_results(&c.grant))
                    .map(|c| (c.grant.as_str(), day(c.issued_at)))
                    .collect();
                for (g, first) in grants {
                    let target = Target::Grant(g.into(), first);
                    b = b.add(target.clone(), kpi::GRANT_ORDERS, 1).add(
                        target,
                        kpi::GRANT_GMV,
                        q.payable.0,
                    );
                }
                out.push(b);
            }
        }
        "holdout" if inserted => {
            let item: HoldoutItem = d.decode(new)?;
            if kpi::has_results(&item.grant) {
                let (when, arm) = (day(item.held_at), experiment::HOLDOUT_ARM);
                out.push(
                    once("held_out")
                        .add(Target::Grant(item.grant.clone(), when), &kpi::arm_members(arm), 1)
                        .touch(&item.member_id, &item.grant, Some(arm), when),
                );
            }
        }
        "reward_claim" if inserted => {
            let item: ClaimItem = d.decode(new)?;
            out.push(once("claimed").day(day(item.claim.claimed_at), kpi::REWARDS_CLAIMED, 1));
        }
        _ => {}
    }
    Ok(out.into_iter().filter(|b| !b.is_empty()).collect())
}

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

    /// The orders' conversion facts: the buyers' campaign coupons as stored (one BatchGetItem
    /// per 100 buyers) and as issued earlier in the same batch, whose issue day is at most
    /// `days` before the order's. A coupon issued twice to a member (a grant of several
    /// slots) keeps its first day: later touches of the batch are dropped.
    async fn with_conversions(
        &self,
        mut bumps: Vec<Bump>,
        days: u32,
    ) -> Result<Vec<Bump>, StoreError> {
        let buyers: BTreeSet<String> =
            bumps.iter().filter_map(|b| b.bought.clone()).map(|(m, _, _)| m).collect();
        let mut touched: BTreeMap<String, BTreeMap<String, kpi::Touch>> = BTreeMap::new();
        let buyers: Vec<String> = buyers.into_iter().collect();
        for ids in buyers.chunks(100) {
            let keys =
                ids.iter().map(|m| super::key(&keys::kpi_touch_pk(m), KPI_TOUCH_SK)).collect();
            for item in self.batch_get(keys).await? {
                let item: CounterItem = super::from_item(item)?;
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
    async fn add_chunk(&self, mut bumps: Vec<Bump>, now: DateTime<Utc>) -> Result<(), StoreError> {
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
            .set_key(Some(super::key(&pk, &sk)))
            .update_expression(cond.expr)
            .set_expression_attribute_names(cond.names)
            .set_expression_attribute_values(cond.values)
            .build()
            .map_err(sdk)?;
        Ok(TransactWriteItem::builder().update(u).build())
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
