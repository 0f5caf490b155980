//! A gift claim's fulfilment: pending moves once, to shipped or cancelled (points back).

use crate::calendar::program_date;
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::Member;
use crate::money::{Fen, Points};
use crate::rules::Rules;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::claim::{Claim, ClaimError, ClaimStatus};

/// `POST /internal/members/{id}/reward-claims/{claimId}/fulfilment`: where a gift goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fulfilment {
    Shipped,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FulfilmentRequest {
    pub status: Fulfilment,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a fulfilment request does to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The claim is there already: the same answer again, nothing written.
    Already,
    Ship,
    Cancel,
}

/// The step from the claim's status to `to`: pending moves once, to shipped or cancelled;
/// asking for where it is already is a no-op; the other way round is refused.
pub fn fulfil(claim: &Claim, to: Fulfilment) -> Result<Step, ClaimError> {
    match (claim.status, to) {
        (ClaimStatus::Issued, _) => Err(ClaimError::NotAGift),
        (ClaimStatus::Pending, Fulfilment::Shipped) => Ok(Step::Ship),
        (ClaimStatus::Pending, Fulfilment::Cancelled) => Ok(Step::Cancel),
        (ClaimStatus::Shipped, Fulfilment::Shipped)
        | (ClaimStatus::Cancelled, Fulfilment::Cancelled) => Ok(Step::Already),
        (ClaimStatus::Shipped, Fulfilment::Cancelled) => Err(ClaimError::AlreadyShipped),
        (ClaimStatus::Cancelled, Fulfilment::Shipped) => Err(ClaimError::AlreadyCancelled),
    }
}

pub fn ship(claim: &mut Claim, note: Option<String>, now: DateTime<Utc>) {
    claim.status = ClaimStatus::Shipped;
    claim.shipped_at = Some(now);
    claim.note = note;
}

/// Cancels a pending gift claim: its points come back to `member` (whose wallet the caller has
/// settled) as a `reward` entry, dated like the oldest lot they were spent from, so a point
/// whose life ended meanwhile expires at once (a second entry, after the return).
pub fn cancel(
    member: &mut Member,
    claim: &mut Claim,
    note: Option<String>,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Vec<LedgerEntry> {
    let today = program_date(rules.time_zone, now);
    member.wallet.earn(claim.price, claim.spent_from.unwrap_or(today));
    let mut entries = vec![LedgerEntry {
        kind: EntryKind::Reward,
        points: Points(claim.price),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        rebate: Fen::ZERO,
        rebate_pending: Fen::ZERO,
        reason: format!("gift claim {} cancelled: its points are given back", claim.claim_id),
        reference: Some(format!("{}:cancelled", claim.claim_id)),
        at: now,
    }];
    let expired = member.wallet.expire(today, rules.points.expiry_days);
    if expired > 0 {
        // After the return (and with its own reference): the settle before it may have
        // written today's expiry entry already.
        entries.push(LedgerEntry {
            kind: EntryKind::Expiry,
            points: Points(-expired),
            balance_after: member.wallet.balance,
            pending: Points::ZERO,
            rebate: Fen::ZERO,
            rebate_pending: Fen::ZERO,
            reason: "points given back had already reached the end of their life".into(),
            reference: Some(format!("expiry-{today}:{}", claim.claim_id)),
            at: now + Duration::microseconds(1),
        });
    }
    claim.status = ClaimStatus::Cancelled;
    claim.cancelled_at = Some(now);
    claim.note = note;
    claim.points_returned = claim.price;
    entries
}
