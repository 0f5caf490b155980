//! Tiers events.

use super::*;

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
