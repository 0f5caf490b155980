//! Claims: checking and making one (a gift's fulfilment afterwards is in `fulfilment`).

use crate::calendar::program_date;
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::Member;
use crate::money::{Fen, Points};
use crate::rules::Rules;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::catalog::*;
use super::definition::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// A coupon reward: the coupon was issued with the claim.
    Issued,
    /// A gift waiting to be fulfilled.
    Pending,
    Shipped,
    /// A gift that will not be fulfilled; its points were given back.
    Cancelled,
}

/// `POST /members/{id}/reward-claims` (the member, with an `Idempotency-Key`): the reward and
/// the price the member was shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    pub reward_id: String,
    pub price: i64,
}

/// A member's claim of a reward, kept in their partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub claim_id: String,
    pub reward_id: String,
    /// The reward's name and version when it was claimed.
    pub name: String,
    pub reward_version: u64,
    pub kind: RewardKind,
    /// Points spent.
    pub price: i64,
    pub status: ClaimStatus,
    pub claimed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
    /// The limit counter it counts in, if the reward had a per-member limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// The earning day of the oldest lot it spent: points given back keep it, so a cancel
    /// never lengthens a point's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_from: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The fulfiller's note (a tracking number, why it was cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default)]
    pub points_returned: i64,
}

/// A claim's id: derived from the member and the Idempotency-Key, so a retry addresses the
/// same claim (and the same coupon grant).
pub fn claim_id(member_id: &str, idempotency_key: &str) -> String {
    format!(
        "rc-{}",
        hex(&Sha256::digest(format!("reward-claim\0{member_id}\0{idempotency_key}").as_bytes())
            [..8])
    )
}

/// The coupon grant of a coupon reward's claim: one coupon per claim.
pub fn grant(claim_id: &str) -> String {
    format!("reward:{claim_id}")
}

/// Why a claim or a fulfilment step is refused; each maps to one status and a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("this reward is not active")]
    Inactive,
    #[error("{0}")]
    NotAvailable(String),
    #[error("the member's tier may not claim this reward")]
    TierNotEligible,
    #[error("the price is now {now} points, not the {seen} shown; claim again at the new price")]
    PriceChanged { seen: i64, now: i64 },
    #[error("this reward is out of stock")]
    OutOfStock,
    #[error("at most {limit} claims of this reward per member{}", if *.monthly { " per month" } else { "" })]
    LimitReached { limit: u32, monthly: bool },
    #[error("{available} points are available (pending points and points held by open checkouts do not count), {asked} needed")]
    InsufficientPoints { available: i64, asked: i64 },
    #[error("this claim is a coupon, issued with the claim: there is nothing to fulfil")]
    NotAGift,
    #[error("this claim is shipped: it can no longer be cancelled")]
    AlreadyShipped,
    #[error("this claim is cancelled: it can no longer be shipped")]
    AlreadyCancelled,
}

impl ClaimError {
    pub fn code(&self) -> &'static str {
        match self {
            ClaimError::Inactive => "reward_inactive",
            ClaimError::NotAvailable(_) => "reward_not_available",
            ClaimError::TierNotEligible => "tier_not_eligible",
            ClaimError::PriceChanged { .. } => "price_changed",
            ClaimError::OutOfStock => "out_of_stock",
            ClaimError::LimitReached { .. } => "claim_limit_reached",
            ClaimError::InsufficientPoints { .. } => "insufficient_points",
            ClaimError::NotAGift => "not_a_gift",
            ClaimError::AlreadyShipped => "claim_shipped",
            ClaimError::AlreadyCancelled => "claim_cancelled",
        }
    }

    /// 422 where the member cannot claim (tier, points; as at checkout), 409 where the
    /// reward's or the claim's state stands in the way.
    pub fn status(&self) -> u16 {
        match self {
            ClaimError::TierNotEligible | ClaimError::InsufficientPoints { .. } => 422,
            _ => 409,
        }
    }
}

/// Whether `member` may claim `reward` now at the price they saw: the reward is active, in its
/// window, for their tier, at that price, in stock (`claimed` units taken), under their limit
/// (`claims_in_period` so far) and within their available points. Checked in that order, so
/// the answer names what the reward says before what the member lacks.
pub fn check_claim(
    reward: &Reward,
    claimed: u64,
    member: &Member,
    claims_in_period: u32,
    price_seen: i64,
    now: DateTime<Utc>,
) -> Result<(), ClaimError> {
    if !reward.active {
        return Err(ClaimError::Inactive);
    }
    if let Some(from) = reward.available_from.filter(|f| now < *f) {
        return Err(ClaimError::NotAvailable(format!(
            "this reward can be claimed from {}",
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    if let Some(until) = reward.available_until.filter(|u| now >= *u) {
        return Err(ClaimError::NotAvailable(format!(
            "this reward could be claimed until {}",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    if !reward.tier_may_claim(member.tier) {
        return Err(ClaimError::TierNotEligible);
    }
    if price_seen != reward.price {
        return Err(ClaimError::PriceChanged { seen: price_seen, now: reward.price });
    }
    if reward.stock_left(claimed) == Some(0) {
        return Err(ClaimError::OutOfStock);
    }
    if let Some(limit) = reward.per_member_limit.filter(|l| claims_in_period >= *l) {
        return Err(ClaimError::LimitReached {
            limit,
            monthly: reward.limit_period == LimitPeriod::Month,
        });
    }
    let available = member.available_points(now, None);
    if available < reward.price {
        return Err(ClaimError::InsufficientPoints { available, asked: reward.price });
    }
    Ok(())
}

/// What a claim did to the member: the claim and its ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub claim: Claim,
    pub entry: LedgerEntry,
}

/// Claims `reward` for `member` (whose wallet the caller has settled): checks it, spends the
/// price from the oldest lots and answers the claim (without its coupon code, which the caller
/// issues) and its `reward` ledger entry.
#[allow(clippy::too_many_arguments)]
pub fn claim(
    member: &mut Member,
    reward: &Reward,
    claimed: u64,
    claims_in_period: u32,
    price_seen: i64,
    claim_id: &str,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Claimed, ClaimError> {
    check_claim(reward, claimed, member, claims_in_period, price_seen, now)?;
    let spent_from = member.wallet.lots.first().map(|l| l.earned_on);
    member.wallet.spend(reward.price).map_err(|_| ClaimError::InsufficientPoints {
        available: member.available_points(now, None),
        asked: reward.price,
    })?;
    let entry = LedgerEntry {
        kind: EntryKind::Reward,
        points: Points(-reward.price),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        rebate: Fen::ZERO,
        rebate_pending: Fen::ZERO,
        reason: format!("reward {}: {}", reward.reward_id, reward.name),
        reference: Some(claim_id.to_string()),
        at: now,
    };
    let claim = Claim {
        claim_id: claim_id.to_string(),
        reward_id: reward.reward_id.clone(),
        name: reward.name.clone(),
        reward_version: reward.version,
        kind: reward.kind,
        price: reward.price,
        status: match reward.kind {
            RewardKind::Coupon => ClaimStatus::Issued,
            RewardKind::Gift => ClaimStatus::Pending,
        },
        claimed_at: now,
        coupon_code: None,
        period: period(reward, program_date(rules.time_zone, now)),
        spent_from,
        shipped_at: None,
        cancelled_at: None,
        note: None,
        points_returned: 0,
    };
    Ok(Claimed { claim, entry })
}
