//! What each stored change adds: a stream record mapped to its bumps (the table in the
//! module's documentation).

use super::super::ledger::LedgerItem;
use super::super::member::TierChangeItem;
use super::super::points::OrderItem;
use super::super::stream::{string, Decoder, StreamChange, StreamError};
use super::change::Change;
use super::commerce;
use crate::churn::{band_of_mark, Band};
use crate::events::{self, DetailType};
use crate::kpi::{self, Bump, Target};
use crate::ledger::LedgerEntry;
use crate::money::Fen;
use crate::tier::TierCode;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeSet;

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

/// The counters one stream record adds (none for most records).
pub fn bumps_of(record: &StreamChange, tz: Tz) -> Result<Vec<Bump>, StreamError> {
    let inserted = match record.event_name {
        "INSERT" => true,
        "MODIFY" => false,
        _ => return Ok(Vec::new()),
    };
    let new = record.new_image;
    let (Some(pk), Some(sk), Some(entity)) =
        (string(new, "PK"), string(new, "SK"), string(new, "entity"))
    else {
        return Ok(Vec::new());
    };
    let sequence = record.sequence_number.unwrap_or_default();
    if sequence.is_empty() {
        return Err(StreamError::Malformed(record.event_id.to_string(), "no SequenceNumber"));
    }
    let c = Change {
        d: Decoder { entity, pk, sk },
        new,
        old: (!record.old_image.is_empty()).then_some(record.old_image),
        inserted,
        at: record.at,
        tz,
        sequence,
    };
    let out = match entity {
        "member" => member(&c)?,
        "order" => order(&c)?,
        "ledger" if inserted => ledger(&c)?,
        "tier_change" if inserted => tier_change(&c)?,
        "coupon" => commerce::coupon(&c)?,
        "checkout" if !inserted => commerce::checkout(&c)?,
        "holdout" if inserted => commerce::holdout(&c)?,
        "reward_claim" if inserted => commerce::reward_claim(&c)?,
        _ => Vec::new(),
    };
    Ok(out.into_iter().filter(|b| !b.is_empty()).collect())
}

/// Joins, erasures, first purchases, cohort spend and churn bands.
pub(super) fn member(c: &Change) -> Result<Vec<Bump>, StreamError> {
    let mut out = Vec::new();
    let m: MemberKpiFacts = c.decode_new()?;
    if c.inserted {
        let j = c.day(m.joined_at);
        let mut b = c.once("joined").day(j, kpi::JOINED, 1).running(j, &kpi::tier_count(m.tier), 1);
        if let Some(band) = m.band() {
            b = b.add(Target::Total, &kpi::churn_count(band), 1);
        }
        out.push(b);
    } else if let Some(before) = c.before::<MemberKpiFacts>()? {
        let joined = c.day(m.joined_at);
        let mut b = c.once("member");
        if let (Some(erased), None) = (m.erased_at, before.erased_at) {
            let e = c.day(erased);
            b = b.day(e, kpi::ERASED, 1).running(e, &kpi::tier_count(m.tier), -1);
        }
        if before.order_count == 0 && m.order_count > 0 {
            if let Some(first) = m.last_purchase_at {
                let gap = (c.day(first) - joined).num_days();
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
    Ok(out)
}

/// Purchases (on insert) and each refund once (on the modifications that add one).
pub(super) fn order(c: &Change) -> Result<Vec<Bump>, StreamError> {
    let mut out = Vec::new();
    let item: OrderItem = c.decode_new()?;
    let o = &item.order;
    if c.inserted {
        out.push(
            c.once("purchase")
                .day(o.day, kpi::PURCHASES, 1)
                .day(o.day, kpi::GMV, o.paid.0)
                .with_facts(kpi::buyer_facts(&item.member_id, o.day))
                .bought(&item.member_id, o.day, o.paid),
        );
    } else {
        let before: Option<OrderItem> = c.before()?;
        let seen: BTreeSet<&str> = before
            .as_ref()
            .map(|b| b.order.refunds.iter().map(|r| r.refund_id.as_str()).collect())
            .unwrap_or_default();
        for r in o.refunds.iter().filter(|r| !seen.contains(r.refund_id.as_str())) {
            let when = c.day(r.at.unwrap_or(c.at));
            out.push(c.once(&format!("refund:{}", r.refund_id)).day(when, kpi::REFUNDS, 1).day(
                when,
                kpi::REFUNDED,
                r.amount.0,
            ));
        }
    }
    Ok(out)
}

/// Points and rebate flows and their running liabilities, for each entry of the change's item.
pub(super) fn ledger(c: &Change) -> Result<Vec<Bump>, StreamError> {
    let item: LedgerItem = c.decode_new()?;
    let bumps = item.entries().into_iter().enumerate().map(|(i, (sk, e))| {
        // The item's own entry keeps the marker it always had; the change's earlier entries
        // are told apart by the keys they would have.
        let marker = if i == 0 { "entry".to_string() } else { format!("entry:{sk}") };
        entry_bump(c, c.once(&marker), e)
    });
    Ok(bumps.collect())
}

fn entry_bump(c: &Change, b: Bump, e: &LedgerEntry) -> Bump {
    let (points, pending, when) = (e.points.0, e.pending.0, c.day(e.at));
    let mut b = b.running(when, kpi::LIABILITY, points + pending);
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
    match events::rebate_detail_type(e) {
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
    }
}

/// Tier moves and members per tier.
pub(super) fn tier_change(c: &Change) -> Result<Vec<Bump>, StreamError> {
    let mut out = Vec::new();
    let item: TierChangeItem = c.decode_new()?;
    let tc = &item.change;
    let when = c.day(tc.at);
    out.push(
        c.once("tier")
            .day(when, &kpi::tier_move(tc.from, tc.to), 1)
            .running(when, &kpi::tier_count(tc.from), -1)
            .running(when, &kpi::tier_count(tc.to), 1),
    );
    Ok(out)
}
