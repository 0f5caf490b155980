//! Rewards (the hook for the rewards catalog) events.

use super::*;

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
