//! What each stored change adds: a stream record mapped to its bumps (the table in the
//! module's documentation).

use super::super::checkout::{CheckoutItem, CheckoutState};
use super::super::coupon::CouponItem;
use super::super::holdout::HoldoutItem;
use super::super::ledger::LedgerItem;
use super::super::member::TierChangeItem;
use super::super::points::OrderItem;
use super::super::reward::ClaimItem;
use super::super::stream::{string, Decoder, StreamError};
use crate::calendar::program_date;
use crate::campaign::experiment;
use crate::churn::{band_of_mark, Band};
use crate::events::{self, DetailType};
use crate::kpi::{self, Bump, Target};
use crate::money::Fen;
use crate::tier::TierCode;
use aws_lambda_events::dynamodb::EventRecord;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
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
