//! The contracts between the member-day dispatcher, the coupon worker and the points
//! function: multiplier windows, the campaign queue's `IssueBatch` messages and their packing.

use super::experiment::{Assignment, Experiment};
use crate::coupon::CouponTemplate;
use crate::money::Multiplier;
use crate::tier_code::TierCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A points multiplier a campaign grants for a window of time. Active windows are kept in one
/// small item (`keys::PROGRAM_PK` / `keys::MULTIPLIERS_SK`) so a purchase reads them in the
/// same BatchGetItem as the member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiplierWindow {
    pub campaign_id: String,
    pub multiplier: Multiplier,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Tiers it applies to; empty means every tier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierCode>,
    /// The campaign's experiment (without coupons): a holdout member gets no multiplier, a
    /// variant's member its variant's. The arm is computed from the member id, as the coupon
    /// worker computes it, so the purchase reads nothing more to know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
}

impl MultiplierWindow {
    pub fn applies(&self, tier: TierCode, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.until && (self.tiers.is_empty() || self.tiers.contains(&tier))
    }

    /// The multiplier this window gives `member_id` (1× for the experiment's holdout).
    pub fn multiplier_for(&self, member_id: &str) -> Multiplier {
        match self.experiment.as_ref().map(|e| e.assign(member_id)) {
            None => self.multiplier,
            Some(Assignment::Holdout) => Multiplier::ONE,
            Some(Assignment::Variant(arm)) => arm.multiplier.unwrap_or(self.multiplier),
        }
    }
}

/// The campaign multiplier of a member's purchase: the largest that applies (campaign
/// multipliers do not stack with each other), at least 1. The rules' member day counts as one
/// of them.
pub fn campaign_multiplier<'a>(
    windows: impl IntoIterator<Item = &'a MultiplierWindow>,
    member_id: &str,
    tier: TierCode,
    at: DateTime<Utc>,
) -> Multiplier {
    windows
        .into_iter()
        .filter(|w| w.applies(tier, at))
        .map(|w| w.multiplier_for(member_id))
        .max()
        .unwrap_or(Multiplier::ONE)
        .max(Multiplier::ONE)
}

/// One SQS message on the campaign queue: issue `template` under `grant` to each member.
/// The coupon worker issues with one conditional write per coupon (codes are derived from
/// member + grant + slot, so a redelivery finds them already there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueBatch {
    /// Unique per message content (e.g. `<runId>#<page>#<n>`): progress is counted once per batch.
    pub batch_id: String,
    /// The grant the coupons belong to: one coupon per member per grant (and slot).
    pub grant: String,
    /// The coupon each member gets; none for a batch of an award's points (`points`).
    /// Exactly one of the two (the worker refuses a batch with both or neither).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<CouponTemplate>,
    /// The points each member gets (a bulk award), instead of a coupon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<PointsCredit>,
    /// Most coupons the grant may issue, enforced atomically on a counter item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// The campaign run whose progress counters this batch adds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRef>,
    /// The run's experiment: each member's arm is computed from it (none: `template` for all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
    pub member_ids: Vec<String>,
}

/// What an award's batch credits each member: `amount` points in the lot of `lot_day` (its
/// expiry follows from the day), with an `award` ledger entry giving `reason` and naming the
/// award. Fixed when the award is defined, so every run and redelivery credits the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PointsCredit {
    pub award_id: String,
    pub amount: i64,
    pub lot_day: chrono::NaiveDate,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRef {
    pub campaign_id: String,
    pub run_id: String,
}

/// Why a member of a batch got no coupon: all count as skipped, not failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    AlreadyHad,
    BudgetSpent,
    NotEligible,
    /// In the experiment's holdout: recorded, given nothing.
    Holdout,
}

/// Member ids per SQS message: at most `MAX_PACK` ids and `MAX_MESSAGE_BYTES` of JSON, so a
/// full `SendMessageBatch` (10 messages) stays within SQS's classic 256 KiB limit for the whole
/// request, and a worker issues one message's coupons well inside the queue's visibility timeout.
pub const MAX_PACK: usize = 500;
pub const MAX_MESSAGE_BYTES: usize = 24 * 1024;

/// Splits `ids` into packs for messages whose fixed part (everything but the ids) is
/// `overhead` bytes of JSON. Ids are plain ASCII (member ids allow no characters JSON escapes),
/// so an id costs its length plus two quotes and a comma.
pub fn pack_ids(ids: Vec<String>, overhead: usize) -> Vec<Vec<String>> {
    let mut packs = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut bytes = overhead;
    for id in ids {
        let cost = id.len() + 3;
        if !cur.is_empty() && (cur.len() == MAX_PACK || bytes + cost > MAX_MESSAGE_BYTES) {
            packs.push(std::mem::take(&mut cur));
            bytes = overhead;
        }
        bytes += cost;
        cur.push(id);
    }
    if !cur.is_empty() {
        packs.push(cur);
    }
    packs
}
