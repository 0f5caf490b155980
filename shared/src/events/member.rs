//! Members events.

use super::*;

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
