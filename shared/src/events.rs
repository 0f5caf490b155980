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

mod affiliate;
pub use affiliate::*;
mod member;
pub use member::*;
mod points;
pub use points::*;
mod tier;
pub use tier::*;
mod coupon;
pub use coupon::*;
mod checkout;
pub use checkout::*;
mod reward;
pub use reward::*;
mod campaign;
pub use campaign::*;

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
    RebateCredited,
    RebateAvailable,
    RebateReversed,
    RebateSpent,
    RebateReturned,
    CommissionAccrued,
    CommissionReversed,
    StatementClosed,
}

impl DetailType {
    pub const ALL: [DetailType; 25] = [
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
        DetailType::RebateCredited,
        DetailType::RebateAvailable,
        DetailType::RebateReversed,
        DetailType::RebateSpent,
        DetailType::RebateReturned,
        DetailType::CommissionAccrued,
        DetailType::CommissionReversed,
        DetailType::StatementClosed,
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
            DetailType::RebateCredited => "RebateCredited",
            DetailType::RebateAvailable => "RebateAvailable",
            DetailType::RebateReversed => "RebateReversed",
            DetailType::RebateSpent => "RebateSpent",
            DetailType::RebateReturned => "RebateReturned",
            DetailType::CommissionAccrued => "CommissionAccrued",
            DetailType::CommissionReversed => "CommissionReversed",
            DetailType::StatementClosed => "StatementClosed",
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
            rebate: Fen::ZERO,
            rebate_pending: Fen::ZERO,
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
