//! The line each stored record becomes in an export file.

use crate::coupon::{Coupon, CouponStatus, Offer, Redemption};
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::Member;
use crate::TierCode;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// One member. Without personal data: the membership (tier, points, spend, consent, dates),
/// nothing that names or reaches the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberLine {
    pub id: String,
    pub tier: TierCode,
    pub tier_since: DateTime<Utc>,
    /// Available points (the wallet's balance: Σ of the member's ledger entries).
    pub points: i64,
    /// Points earned but still inside the return window.
    pub pending_points: i64,
    pub lifetime_spend: i64,
    pub order_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_purchase_at: Option<DateTime<Utc>>,
    pub joined_at: DateTime<Utc>,
    pub marketing_consent: bool,
    pub consent_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_by: Option<String>,
    /// The import that brought the member in, for a member of an earlier program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<NaiveDate>,
}

impl MemberLine {
    pub fn of(m: &Member, personal_data: bool) -> MemberLine {
        let personal = |v: &Option<String>| v.clone().filter(|_| personal_data);
        MemberLine {
            id: m.member_id.as_str().to_string(),
            tier: m.tier,
            tier_since: m.tier_since,
            points: m.wallet.balance.0,
            pending_points: m.wallet.pending.iter().map(|p| p.points).sum(),
            lifetime_spend: m.lifetime_spend.0,
            order_count: m.order_count,
            last_purchase_at: m.last_purchase_at,
            joined_at: m.joined_at,
            marketing_consent: m.marketing_consent,
            consent_at: m.consent_at,
            referred_by: m.referred_by.as_ref().map(|r| r.as_str().to_string()),
            import_id: m.imported.as_ref().map(|i| i.job.clone()),
            erased_at: m.erased_at,
            email: personal(&m.email),
            phone: personal(&m.phone),
            name: personal(&m.name),
            birthday: m.birthday.filter(|_| personal_data),
        }
    }
}

/// One ledger entry of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerLine {
    pub member_id: String,
    pub at: DateTime<Utc>,
    pub kind: EntryKind,
    pub points: i64,
    pub balance_after: i64,
    #[serde(default, skip_serializing_if = "crate::money::is_zero")]
    pub pending: i64,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl LedgerLine {
    pub fn of(member_id: &str, e: &LedgerEntry) -> LedgerLine {
        LedgerLine {
            member_id: member_id.to_string(),
            at: e.at,
            kind: e.kind,
            points: e.points.0,
            balance_after: e.balance_after.0,
            pending: e.pending.0,
            reason: e.reason.clone(),
            reference: e.reference.clone(),
        }
    }
}

/// One issued coupon. The status is as stored (`active` or `redeemed`): whether an active
/// coupon has expired is `validUntil` against the reader's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CouponLine {
    pub code: String,
    pub member_id: String,
    pub grant: String,
    pub slot: u32,
    pub title: String,
    pub offer: Offer,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    pub status: CouponStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redemption: Option<Redemption>,
}

impl CouponLine {
    pub fn of(c: &Coupon) -> CouponLine {
        CouponLine {
            code: c.code.clone(),
            member_id: c.member_id.clone(),
            grant: c.grant.clone(),
            slot: c.slot,
            title: c.title.clone(),
            offer: c.offer.clone(),
            valid_from: c.valid_from,
            valid_until: c.valid_until,
            issued_at: c.issued_at,
            status: c.status,
            redemption: c.redemption.clone(),
        }
    }
}
