//! Events out: the facts a platform can react to, as published on the program's EventBridge
//! bus (source `loyalty`). Every event is derived from one item the engine wrote, as the
//! table's stream delivers it (`store::stream` decodes the record; this module decides what
//! it means), so no handler publishes anything itself: what is stored is what is told.
//!
//! Each event's `detail` is camelCase JSON with a common head — `eventId`, `version`,
//! `memberId` (when the fact is a member's), `at` (when it happened, from the item) and
//! `sequenceNumber` (the stream record's) — and the fields of its type. It never carries
//! email, phone, name or birthday. The schemas are in `events/schemas/<DetailType>.json`.
//!
//! `eventId` is a digest of the item's key and of what makes the change *that* event (the
//! detail type, an order id for a coupon redemption...), never of the delivery: the same
//! stream record delivered again gives the same id, so consumers de-duplicate on it.

use crate::campaign::Progress;
use crate::coupon::Coupon;
use crate::ledger::{EntryKind, ExpiryNotice, LedgerEntry};
use crate::money::Fen;
use crate::tier::{TierChange, TierCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `source` of every event.
pub const SOURCE: &str = "loyalty";
/// The detail's schema version. A field added keeps it; a field renamed, removed or changed
/// in meaning raises it (and the schema's `$id` with it).
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DetailType {
    MemberJoined,
    MemberErased,
    PointsEarned,
    PointsPending,
    PointsAvailable,
    PointsRedeemed,
    PointsExpired,
    PointsExpiringSoon,
    PointsClawedBack,
    PointsReturned,
    TierChanged,
    CouponIssued,
    CouponRedeemed,
    CouponReturned,
    CheckoutConfirmed,
    RewardClaimed,
    CampaignRunDrained,
}

impl DetailType {
    pub const ALL: [DetailType; 17] = [
        DetailType::MemberJoined,
        DetailType::MemberErased,
        DetailType::PointsEarned,
        DetailType::PointsPending,
        DetailType::PointsAvailable,
        DetailType::PointsRedeemed,
        DetailType::PointsExpired,
        DetailType::PointsExpiringSoon,
        DetailType::PointsClawedBack,
        DetailType::PointsReturned,
        DetailType::TierChanged,
        DetailType::CouponIssued,
        DetailType::CouponRedeemed,
        DetailType::CouponReturned,
        DetailType::CheckoutConfirmed,
        DetailType::RewardClaimed,
        DetailType::CampaignRunDrained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DetailType::MemberJoined => "MemberJoined",
            DetailType::MemberErased => "MemberErased",
            DetailType::PointsEarned => "PointsEarned",
            DetailType::PointsPending => "PointsPending",
            DetailType::PointsAvailable => "PointsAvailable",
            DetailType::PointsRedeemed => "PointsRedeemed",
            DetailType::PointsExpired => "PointsExpired",
            DetailType::PointsExpiringSoon => "PointsExpiringSoon",
            DetailType::PointsClawedBack => "PointsClawedBack",
            DetailType::PointsReturned => "PointsReturned",
            DetailType::TierChanged => "TierChanged",
            DetailType::CouponIssued => "CouponIssued",
            DetailType::CouponRedeemed => "CouponRedeemed",
            DetailType::CouponReturned => "CouponReturned",
            DetailType::CheckoutConfirmed => "CheckoutConfirmed",
            DetailType::RewardClaimed => "RewardClaimed",
            DetailType::CampaignRunDrained => "CampaignRunDrained",
        }
    }

    pub fn parse(s: &str) -> Option<DetailType> {
        DetailType::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for DetailType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event as it goes on the bus: its detail type, its time (the fact's) and its detail.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub detail_type: DetailType,
    pub time: DateTime<Utc>,
    pub detail: Value,
}

impl Event {
    pub fn event_id(&self) -> &str {
        self.detail.get("eventId").and_then(Value::as_str).unwrap_or_default()
    }
}

/// Where a change comes from: the item's key and the stream record's sequence number.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub pk: &'a str,
    pub sk: &'a str,
    pub sequence: &'a str,
}

/// The stable id of the event `detail_type` that the item at (pk, sk) caused, `discriminator`
/// being what tells this event apart from others of the same item and type (empty when the
/// item can cause it only once). 128 bits of SHA-256, hex.
pub fn event_id(detail_type: DetailType, pk: &str, sk: &str, discriminator: &str) -> String {
    let mut h = Sha256::new();
    for part in [detail_type.as_str(), pk, sk, discriminator] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The common head of every detail, then the body's own fields.
fn event<T: Serialize>(
    detail_type: DetailType,
    origin: Origin<'_>,
    discriminator: &str,
    member_id: Option<&str>,
    at: DateTime<Utc>,
    body: &T,
) -> Result<Event, serde_json::Error> {
    let mut detail = Map::new();
    detail.insert(
        "eventId".into(),
        Value::String(event_id(detail_type, origin.pk, origin.sk, discriminator)),
    );
    detail.insert("version".into(), Value::from(VERSION));
    if let Some(m) = member_id {
        detail.insert("memberId".into(), Value::String(m.into()));
    }
    detail.insert("at".into(), serde_json::to_value(at)?);
    detail.insert("sequenceNumber".into(), Value::String(origin.sequence.into()));
    // Bodies are structs (objects); an event with nothing of its own passes `Value::Null`.
    if let Value::Object(fields) = serde_json::to_value(body)? {
        detail.extend(fields);
    }
    Ok(Event { detail_type, time: at, detail: Value::Object(detail) })
}

// ---------------------------------------------------------------------------------------
// Members

/// What a member event may say about the member: ids, standing and consent, no contact data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberFacts {
    pub member_id: String,
    pub tier: TierCode,
    pub joined_at: DateTime<Utc>,
    #[serde(default)]
    pub referred_by: Option<String>,
    #[serde(default)]
    pub marketing_consent: bool,
    #[serde(default)]
    pub erased_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Joined<'a> {
    tier: TierCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    referred_by: Option<&'a str>,
    marketing_consent: bool,
}

/// A member item was written: joined when it is new, erased when this write erased it. With
/// no old image (a stream of NEW_IMAGE only) an erased member's every write would say erased
/// again — with the same eventId, so still de-duplicable.
pub fn member_events(
    origin: Origin<'_>,
    old: Option<&MemberFacts>,
    new: &MemberFacts,
    inserted: bool,
) -> Result<Vec<Event>, serde_json::Error> {
    let mut out = Vec::new();
    let id = new.member_id.as_str();
    if inserted {
        let body = Joined {
            tier: new.tier,
            referred_by: new.referred_by.as_deref(),
            marketing_consent: new.marketing_consent,
        };
        out.push(event(DetailType::MemberJoined, origin, "", Some(id), new.joined_at, &body)?);
    }
    if let Some(erased_at) = new.erased_at {
        if old.is_none_or(|o| o.erased_at.is_none()) {
            out.push(event(
                DetailType::MemberErased,
                origin,
                "",
                Some(id),
                erased_at,
                &Value::Null,
            )?);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Points

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PointsChange<'a> {
    kind: EntryKind,
    /// The change to the available balance.
    points: i64,
    /// The change to the pending points (the return window).
    pending: i64,
    balance_after: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
}

/// The event a ledger entry is, by its kind and the sign of its two changes. An entry that
/// moves nothing (a purchase under 1 CNY) is no event.
pub fn points_detail_type(entry: &LedgerEntry) -> Option<DetailType> {
    let (points, pending) = (entry.points.0, entry.pending.0);
    if points == 0 && pending == 0 {
        return None;
    }
    Some(match entry.kind {
        EntryKind::Release => DetailType::PointsAvailable,
        EntryKind::Redemption => DetailType::PointsRedeemed,
        EntryKind::Expiry => DetailType::PointsExpired,
        EntryKind::Refund => DetailType::PointsClawedBack,
        EntryKind::Returned => DetailType::PointsReturned,
        // Points spent on a reward, or given back by a cancelled gift claim.
        EntryKind::Reward if points < 0 => DetailType::PointsRedeemed,
        EntryKind::Reward => DetailType::PointsReturned,
        // Earnings: pending inside the return window, available at once otherwise; a
        // referral reward cancelled by its order's refund takes pending points back.
        EntryKind::Welcome | EntryKind::Purchase | EntryKind::Activity | EntryKind::Referral => {
            if pending > 0 {
                DetailType::PointsPending
            } else if points > 0 {
                DetailType::PointsEarned
            } else {
                DetailType::PointsClawedBack
            }
        }
    })
}

pub fn ledger_events(
    origin: Origin<'_>,
    member_id: &str,
    entry: &LedgerEntry,
) -> Result<Vec<Event>, serde_json::Error> {
    let Some(dt) = points_detail_type(entry) else { return Ok(Vec::new()) };
    let body = PointsChange {
        kind: entry.kind,
        points: entry.points.0,
        pending: entry.pending.0,
        balance_after: entry.balance_after.0,
        reference: entry.reference.as_deref(),
    };
    Ok(vec![event(dt, origin, "", Some(member_id), entry.at, &body)?])
}

pub fn expiry_notice_events(
    origin: Origin<'_>,
    member_id: &str,
    notice: &ExpiryNotice,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, serde_json::Error> {
    Ok(vec![event(DetailType::PointsExpiringSoon, origin, "", Some(member_id), at, notice)?])
}

// ---------------------------------------------------------------------------------------
// Tiers

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TierMove {
    from: TierCode,
    to: TierCode,
    reason: &'static str,
}

/// The reason of a tier change as a code: the nightly and refund reasons are stored as codes;
/// an upgrade at a purchase stores a sentence ("rolling spend … reached …").
pub fn tier_reason(stored: &str) -> &'static str {
    match stored {
        "nightly_upgrade" => "nightly_upgrade",
        "step_down" => "step_down",
        "refund" => "refund",
        s if s.starts_with("rolling spend") => "purchase",
        _ => "other",
    }
}

pub fn tier_events(
    origin: Origin<'_>,
    member_id: &str,
    change: &TierChange,
) -> Result<Vec<Event>, serde_json::Error> {
    let body = TierMove { from: change.from, to: change.to, reason: tier_reason(&change.reason) };
    Ok(vec![event(DetailType::TierChanged, origin, "", Some(member_id), change.at, &body)?])
}

// ---------------------------------------------------------------------------------------
// Coupons

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Issued<'a> {
    code: &'a str,
    grant: &'a str,
    title: &'a str,
    offer: &'a crate::coupon::Offer,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
    #[serde(skip_serializing_if = "<[TierCode]>::is_empty")]
    tiers: &'a [TierCode],
    stackable: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Redeemed<'a> {
    code: &'a str,
    grant: &'a str,
    order_id: &'a str,
    order_amount: Fen,
    discount: Fen,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Returned<'a> {
    code: &'a str,
    grant: &'a str,
    order_id: &'a str,
}

/// A coupon item was written: issued when new; redeemed when an order took it; returned when
/// a full refund of that order gave it back. Without an old image a return cannot be told
/// (the new image no longer names the order), a redemption still can.
pub fn coupon_events(
    origin: Origin<'_>,
    old: Option<&Coupon>,
    new: &Coupon,
    inserted: bool,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, serde_json::Error> {
    let member = Some(new.member_id.as_str());
    if inserted {
        let body = Issued {
            code: &new.code,
            grant: &new.grant,
            title: &new.title,
            offer: &new.offer,
            valid_from: new.valid_from,
            valid_until: new.valid_until,
            tiers: &new.tiers,
            stackable: new.stackable,
        };
        return Ok(vec![event(
            DetailType::CouponIssued,
            origin,
            "",
            member,
            new.issued_at,
            &body,
        )?]);
    }
    let was = old.and_then(|o| o.redemption.as_ref());
    match (&new.redemption, was) {
        (Some(r), prev) if prev.is_none_or(|p| p.order_id != r.order_id) => {
            let body = Redeemed {
                code: &new.code,
                grant: &new.grant,
                order_id: &r.order_id,
                order_amount: r.order_amount,
                discount: r.discount,
            };
            Ok(vec![event(DetailType::CouponRedeemed, origin, &r.order_id, member, r.at, &body)?])
        }
        (None, Some(prev)) => {
            let body = Returned { code: &new.code, grant: &new.grant, order_id: &prev.order_id };
            Ok(vec![event(DetailType::CouponReturned, origin, &prev.order_id, member, at, &body)?])
        }
        _ => Ok(Vec::new()),
    }
}

// ---------------------------------------------------------------------------------------
// Checkout

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Confirmed<'a> {
    order_id: &'a str,
    amount: Fen,
    member_discount: Fen,
    coupon_discount: Fen,
    coupon_codes: Vec<&'a str>,
    points_used: i64,
    points_discount: Fen,
    payable: Fen,
    free_shipping: bool,
}

/// A checkout confirmed by this write (a confirmed checkout is never written again).
pub fn checkout_events(
    origin: Origin<'_>,
    member_id: &str,
    quoted: &crate::checkout::Quoted,
    confirmed_now: bool,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, serde_json::Error> {
    if !confirmed_now {
        return Ok(Vec::new());
    }
    let q = &quoted.quote;
    let body = Confirmed {
        order_id: &quoted.order_id,
        amount: q.amount,
        member_discount: q.member_discount,
        coupon_discount: q.coupon_discount,
        coupon_codes: q.coupons.iter().map(|c| c.code.as_str()).collect(),
        points_used: q.points_used,
        points_discount: q.points_discount,
        payable: q.payable,
        free_shipping: q.free_shipping,
    };
    Ok(vec![event(DetailType::CheckoutConfirmed, origin, "", Some(member_id), at, &body)?])
}

// ---------------------------------------------------------------------------------------
// Rewards (the hook for the rewards catalog)

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Claim<'a> {
    claim_key: &'a str,
}

/// A reward claimed: an item of entity `reward_claim` in a member's partition, new in this write.
/// The rewards catalog decides its item's shape; until it extends this mapping, the event
/// says who claimed and which item (its sort key) and nothing else, so no attribute it may
/// hold (a delivery address...) can leak.
pub fn claim_events(
    origin: Origin<'_>,
    member_id: &str,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, serde_json::Error> {
    Ok(vec![event(
        DetailType::RewardClaimed,
        origin,
        "",
        Some(member_id),
        at,
        &Claim { claim_key: origin.sk },
    )?])
}

// ---------------------------------------------------------------------------------------
// Campaigns

/// What the drained event tells of a run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFacts {
    pub campaign_id: String,
    pub run_id: String,
    pub label: String,
    pub attempt: u32,
    pub grant: String,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub dispatch_done: bool,
    #[serde(default)]
    pub dispatched_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub superseded_by: Option<String>,
    #[serde(flatten)]
    pub progress: Progress,
}

impl RunFacts {
    pub fn drained(&self) -> bool {
        self.progress.state(self.dispatch_done, self.superseded_by.is_some())
            == crate::campaign::RunState::Drained
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Drained<'a> {
    campaign_id: &'a str,
    run_id: &'a str,
    label: &'a str,
    attempt: u32,
    grant: &'a str,
    started_at: DateTime<Utc>,
    targeted: u64,
    issued: u64,
    skipped: u64,
    skipped_already_had: u64,
    skipped_budget_spent: u64,
    skipped_not_eligible: u64,
    skipped_holdout: u64,
    failed: u64,
}

/// A run that this write drained: every targeted member is accounted for.
pub fn run_events(
    origin: Origin<'_>,
    old: Option<&RunFacts>,
    new: &RunFacts,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, serde_json::Error> {
    if !new.drained() || old.is_some_and(RunFacts::drained) {
        return Ok(Vec::new());
    }
    let p = &new.progress;
    let body = Drained {
        campaign_id: &new.campaign_id,
        run_id: &new.run_id,
        label: &new.label,
        attempt: new.attempt,
        grant: &new.grant,
        started_at: new.started_at,
        targeted: p.targeted,
        issued: p.issued,
        skipped: p.skipped,
        skipped_already_had: p.skipped_already_had,
        skipped_budget_spent: p.skipped_budget_spent,
        skipped_not_eligible: p.skipped_not_eligible,
        skipped_holdout: p.skipped_holdout,
        failed: p.failed,
    };
    Ok(vec![event(DetailType::CampaignRunDrained, origin, "", None, at, &body)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Points;

    fn origin() -> Origin<'static> {
        Origin {
            pk: "MEMBER#m1",
            sk: "LEDGER#2026-11-27T00:00:00.000000Z#purchase#o-1",
            sequence: "100",
        }
    }

    fn entry(kind: EntryKind, points: i64, pending: i64) -> LedgerEntry {
        LedgerEntry {
            kind,
            points: Points(points),
            balance_after: Points(500),
            pending: Points(pending),
            reason: "r".into(),
            reference: Some("o-1".into()),
            at: "2026-11-27T00:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn each_ledger_kind_is_its_event() {
        use DetailType::*;
        let cases = [
            (entry(EntryKind::Purchase, 0, 250), Some(PointsPending)),
            (entry(EntryKind::Purchase, 250, 0), Some(PointsEarned)),
            (entry(EntryKind::Purchase, 0, 0), None),
            (entry(EntryKind::Welcome, 100, 0), Some(PointsEarned)),
            (entry(EntryKind::Activity, 5, 0), Some(PointsEarned)),
            (entry(EntryKind::Referral, 0, 200), Some(PointsPending)),
            (entry(EntryKind::Referral, 0, -200), Some(PointsClawedBack)),
            (entry(EntryKind::Release, 250, -250), Some(PointsAvailable)),
            (entry(EntryKind::Redemption, -100, 0), Some(PointsRedeemed)),
            (entry(EntryKind::Expiry, -30, 0), Some(PointsExpired)),
            (entry(EntryKind::Refund, -20, -30), Some(PointsClawedBack)),
            (entry(EntryKind::Returned, 100, 0), Some(PointsReturned)),
        ];
        for (e, want) in cases {
            assert_eq!(points_detail_type(&e), want, "{e:?}");
        }
    }

    #[test]
    fn a_ledger_event_has_the_common_head_and_a_stable_id() {
        let e = &ledger_events(origin(), "m1", &entry(EntryKind::Purchase, 0, 250)).unwrap()[0];
        let again = &ledger_events(
            Origin { sequence: "999", ..origin() },
            "m1",
            &entry(EntryKind::Purchase, 0, 250),
        )
        .unwrap()[0];
        assert_eq!(e.detail_type, DetailType::PointsPending);
        assert_eq!(e.event_id(), again.event_id(), "the id is the item's, not the delivery's");
        assert_eq!(e.event_id().len(), 32);
        let d = &e.detail;
        assert_eq!(
            (d["version"].as_u64(), d["memberId"].as_str(), d["sequenceNumber"].as_str()),
            (Some(1), Some("m1"), Some("100"))
        );
        assert_eq!(
            (
                d["kind"].as_str(),
                d["points"].as_i64(),
                d["pending"].as_i64(),
                d["balanceAfter"].as_i64()
            ),
            (Some("purchase"), Some(0), Some(250), Some(500))
        );
        assert_eq!(d["at"], "2026-11-27T00:00:00Z");
    }

    #[test]
    fn ids_differ_by_item_type_and_discriminator() {
        let a = event_id(DetailType::CouponRedeemed, "MEMBER#m", "COUPON#X", "o-1");
        assert_ne!(a, event_id(DetailType::CouponRedeemed, "MEMBER#m", "COUPON#X", "o-2"));
        assert_ne!(a, event_id(DetailType::CouponReturned, "MEMBER#m", "COUPON#X", "o-1"));
        assert_ne!(
            event_id(DetailType::MemberJoined, "MEMBER#ab", "c", ""),
            event_id(DetailType::MemberJoined, "MEMBER#a", "bc", "")
        );
    }

    fn facts(erased: bool) -> MemberFacts {
        MemberFacts {
            member_id: "m1".into(),
            tier: TierCode::Regular,
            joined_at: "2026-11-01T00:00:00Z".parse().unwrap(),
            referred_by: None,
            marketing_consent: true,
            erased_at: erased.then(|| "2026-11-27T00:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn a_member_joins_once_and_is_erased_once() {
        let o = Origin { pk: "MEMBER#m1", sk: "#PROFILE", sequence: "1" };
        let joined = member_events(o, None, &facts(false), true).unwrap();
        assert_eq!(
            joined.iter().map(|e| e.detail_type).collect::<Vec<_>>(),
            [DetailType::MemberJoined]
        );
        assert!(
            member_events(o, Some(&facts(false)), &facts(false), false).unwrap().is_empty(),
            "a points change is no member event"
        );
        let erased = member_events(o, Some(&facts(false)), &facts(true), false).unwrap();
        assert_eq!(
            erased.iter().map(|e| e.detail_type).collect::<Vec<_>>(),
            [DetailType::MemberErased]
        );
        assert!(
            member_events(o, Some(&facts(true)), &facts(true), false).unwrap().is_empty(),
            "a later write of an erased member"
        );
    }

    #[test]
    fn tier_reasons_are_codes() {
        assert_eq!(tier_reason("step_down"), "step_down");
        assert_eq!(tier_reason("rolling spend 2000.00 CNY reached silver"), "purchase");
        assert_eq!(tier_reason("something new"), "other");
    }
}
