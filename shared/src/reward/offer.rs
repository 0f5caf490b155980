//! What a member sees of the catalog: each reward's price for them and whether they can
//! claim it now.

use crate::coupon::CouponTemplate;
use crate::member::Member;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::claim::*;
use super::definition::*;

/// A reward in the member's catalog: what it costs them and whether they can claim it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Offered<'a> {
    pub reward_id: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<&'a str>,
    pub kind: RewardKind,
    pub price: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon: Option<&'a CouponTemplate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock_left: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_member_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_period: Option<LimitPeriod>,
    /// Claims the member has left under the limit (this month, for a monthly one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_until: Option<DateTime<Utc>>,
    pub enough_points: bool,
    /// Everything holds: a claim at this price now would go through.
    pub claimable: bool,
    /// Why not, when not (a claim's problem code: out_of_stock, claim_limit_reached, insufficient_points).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// `reward` as `member` sees it now, or none when it is not for them now (inactive, outside
/// its window, another tier's).
pub fn offer<'a>(
    reward: &'a Reward,
    claimed: u64,
    member: &Member,
    claims_in_period: u32,
    now: DateTime<Utc>,
) -> Option<Offered<'a>> {
    if !reward.active || !reward.in_window(now) || !reward.tier_may_claim(member.tier) {
        return None;
    }
    let verdict = check_claim(reward, claimed, member, claims_in_period, reward.price, now);
    Some(Offered {
        reward_id: &reward.reward_id,
        name: &reward.name,
        description: &reward.description,
        image_url: reward.image_url.as_deref(),
        kind: reward.kind,
        price: reward.price,
        coupon: reward.coupon.as_ref(),
        stock_left: reward.stock_left(claimed),
        per_member_limit: reward.per_member_limit,
        limit_period: reward.per_member_limit.map(|_| reward.limit_period),
        remaining: reward.per_member_limit.map(|l| l.saturating_sub(claims_in_period)),
        available_until: reward.available_until,
        enough_points: member.available_points(now, None) >= reward.price,
        claimable: verdict.is_ok(),
        reason: verdict.err().map(|e| e.code()),
    })
}
