//! The table's stream, read: a record's images decoded by their `entity` into the items this
//! store writes, and handed to `events` to say what the change means. Pure: no I/O.
//!
//! | entity | record | events |
//! |---|---|---|
//! | `member` | INSERT / MODIFY | `MemberJoined` (new) / `MemberErased` (erased by this write) |
//! | `ledger` | INSERT | one `Points*` event by kind and sign (`events::points_detail_type`) |
//! | `expiry_notice` | INSERT | `PointsExpiringSoon` |
//! | `tier_change` | INSERT | `TierChanged` |
//! | `coupon` | INSERT / MODIFY | `CouponIssued` / `CouponRedeemed` / `CouponReturned` |
//! | `checkout` | MODIFY | `CheckoutConfirmed` (confirmed by this write) |
//! | `campaign_run` | MODIFY | `CampaignRunDrained` (drained by this write) |
//! | `reward_claim` | INSERT | `RewardClaimed` (see `events::claim_events`) |
//! | `commission` | INSERT / MODIFY | `CommissionAccrued` (new) / `CommissionReversed` (more reversed by this write) |
//! | `commission_adjustment` | INSERT | `CommissionReversed` (charged to a later month) |
//! | `partner_statement` | INSERT / MODIFY | `StatementClosed` (paid by this write) |
//!
//! Every other entity (orders, receipts, uniqueness and budget items, campaign definitions,
//! batch markers...) and every REMOVE (TTL expiries, erased uniqueness items) is no event.
//! Transitions compare the old image with the new one, so the stream must carry both
//! (`NEW_AND_OLD_IMAGES`); a later write of the same item never tells the same fact again.

use super::checkout::{CheckoutItem, CheckoutState};
use super::coupon::CouponItem;
use super::keys;
use super::ledger::LedgerItem;
use super::member::TierChangeItem;
use super::points::ExpiryNoticeItem;
use crate::events::{self, Event, MemberFacts, Origin, RunFacts};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_dynamo::{AttributeValue, Item};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The record lacks what every stream record of this table has.
    #[error("stream record {0}: {1}")]
    Malformed(String, &'static str),
    /// An item of a known entity that does not decode. Quoted values are blanked out of the
    /// detail, so that no attribute value (personal data) reaches a log.
    #[error("{entity} item {pk} / {sk} does not decode: {detail}")]
    Mapping { entity: String, pk: String, sk: String, detail: String },
}

/// One change of an item as the table's stream records it: what the mappings read of a
/// stream record (the Lambda edge makes it from the event's record: `loyalty::runtime`).
#[derive(Debug, Clone, Copy)]
pub struct StreamChange<'a> {
    /// The record's id, named when the record lacks what every record of this table has.
    pub event_id: &'a str,
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: &'a str,
    pub keys: &'a Item,
    pub new_image: &'a Item,
    /// Empty on an insert.
    pub old_image: &'a Item,
    pub sequence_number: Option<&'a str>,
    /// When the stream recorded the change (DynamoDB's approximate creation time).
    pub at: DateTime<Utc>,
}

/// The events one stream record means (none for most records).
pub fn events_of(record: &StreamChange) -> Result<Vec<Event>, StreamError> {
    let sequence = record.sequence_number.unwrap_or_default();
    if sequence.is_empty() {
        return Err(StreamError::Malformed(record.event_id.to_string(), "no SequenceNumber"));
    }
    let inserted = match record.event_name {
        "INSERT" => true,
        "MODIFY" => false,
        // Deletions (TTL, erasure of uniqueness items) tell nothing a platform acts on.
        _ => return Ok(Vec::new()),
    };
    let new = record.new_image;
    if new.is_empty() {
        return Err(StreamError::Malformed(
            sequence.into(),
            "no NewImage: the stream must be NEW_AND_OLD_IMAGES",
        ));
    }
    let (Some(pk), Some(sk)) = (
        string(new, "PK").or_else(|| string(record.keys, "PK")),
        string(new, "SK").or_else(|| string(record.keys, "SK")),
    ) else {
        return Err(StreamError::Malformed(sequence.into(), "no PK/SK"));
    };
    let Some(entity) = string(new, "entity") else { return Ok(Vec::new()) };
    let old = (!record.old_image.is_empty()).then_some(record.old_image);
    let origin = Origin { pk, sk, sequence };
    let approximate = record.at;
    let d = Decoder { entity, pk, sk };
    let mapped = match entity {
        "member" => {
            let new_facts: MemberFacts = d.decode(new)?;
            let old_facts: Option<MemberFacts> = old.map(|o| d.decode(o)).transpose()?;
            events::member_events(origin, old_facts.as_ref(), &new_facts, inserted)
        }
        "ledger" if inserted => {
            // Each entry of the change's item as if it had its own: its own key names its events.
            let item: LedgerItem = d.decode(new)?;
            let each = item.entries().into_iter().map(|(sk, entry)| {
                events::ledger_events(Origin { sk: &sk, ..origin }, &item.member_id, entry)
            });
            each.collect::<Result<Vec<_>, _>>().map(|events| events.concat())
        }
        "expiry_notice" if inserted => {
            let item: ExpiryNoticeItem = d.decode(new)?;
            events::expiry_notice_events(origin, &item.member_id, &item.notice, item.at)
        }
        "tier_change" if inserted => {
            let item: TierChangeItem = d.decode(new)?;
            events::tier_events(origin, &item.member_id, &item.change)
        }
        "coupon" => {
            let item: CouponItem = d.decode(new)?;
            let before: Option<CouponItem> = old.map(|o| d.decode(o)).transpose()?;
            events::coupon_events(
                origin,
                before.as_ref().map(|b| &b.coupon),
                &item.coupon,
                inserted,
                approximate,
            )
        }
        "checkout" => {
            let item: CheckoutItem = d.decode(new)?;
            let was_confirmed = old
                .map(|o| d.decode::<CheckoutItem>(o))
                .transpose()?
                .is_some_and(|o| o.state == CheckoutState::Confirmed);
            events::checkout_events(
                origin,
                &item.member_id,
                &item.quoted,
                item.state == CheckoutState::Confirmed && !was_confirmed,
                approximate,
            )
        }
        "campaign_run" => {
            let run: RunFacts = d.decode(new)?;
            let before: Option<RunFacts> = old.map(|o| d.decode(o)).transpose()?;
            events::run_events(origin, before.as_ref(), &run, approximate)
        }
        "reward_claim" if inserted => {
            let member = keys::member_id_of(pk)
                .ok_or_else(|| d.error("a claim outside a member partition"))?;
            let at = string(new, "claimedAt")
                .and_then(|s| s.parse::<DateTime<Utc>>().ok())
                .unwrap_or(approximate);
            events::claim_events(origin, member, at)
        }
        "commission" => {
            let item: events::CommissionFacts = d.decode(new)?;
            let before: Option<events::CommissionFacts> = old.map(|o| d.decode(o)).transpose()?;
            events::commission_events(origin, before.as_ref(), &item, approximate)
        }
        "commission_adjustment" if inserted => {
            events::adjustment_events(origin, &d.decode::<events::AdjustmentFacts>(new)?)
        }
        "partner_statement" => {
            let item: events::StatementFacts = d.decode(new)?;
            let before: Option<events::StatementFacts> = old.map(|o| d.decode(o)).transpose()?;
            events::statement_events(origin, before.as_ref(), &item)
        }
        _ => Ok(Vec::new()),
    };
    mapped.map_err(|e| d.error(&e.to_string()))
}

pub(super) fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    }
}

pub(super) struct Decoder<'a> {
    pub(super) entity: &'a str,
    pub(super) pk: &'a str,
    pub(super) sk: &'a str,
}

impl Decoder<'_> {
    pub(super) fn decode<T: DeserializeOwned>(&self, item: &Item) -> Result<T, StreamError> {
        serde_dynamo::from_item(item.clone()).map_err(|e| self.error(&e.to_string()))
    }

    pub(super) fn error(&self, detail: &str) -> StreamError {
        StreamError::Mapping {
            entity: self.entity.into(),
            pk: self.pk.into(),
            sk: self.sk.into(),
            detail: redact(detail),
        }
    }
}

/// serde quotes what it found (`unknown variant `…``, `invalid type: string "…"`): blank every
/// quoted part, except the field name of a missing field, which is the schema's, not a value.
fn redact(detail: &str) -> String {
    if detail.starts_with("missing field") {
        return detail.to_string();
    }
    let mut out = String::with_capacity(detail.len());
    let mut open: Option<char> = None;
    for c in detail.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if matches!(c, '"' | '`' | '\'') {
                    open = Some(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A stream record's parts, owned (images in DynamoDB's JSON, as the stream sends them).
    struct Record {
        name: &'static str,
        keys: Item,
        new: Item,
        old: Item,
    }

    impl Record {
        fn change(&self) -> StreamChange<'_> {
            StreamChange {
                event_id: "e",
                event_name: self.name,
                keys: &self.keys,
                new_image: &self.new,
                old_image: &self.old,
                sequence_number: Some("42"),
                at: DateTime::from_timestamp(1_794_900_000, 0).unwrap(),
            }
        }
    }

    fn record(
        name: &'static str,
        new: serde_json::Value,
        old: Option<serde_json::Value>,
    ) -> Record {
        let item = |v: serde_json::Value| -> Item { serde_json::from_value(v).unwrap() };
        Record {
            name,
            keys: item(json!({"PK": new["PK"], "SK": new["SK"]})),
            old: old.map(item).unwrap_or_else(|| {
                Item::from(std::collections::HashMap::<String, AttributeValue>::new())
            }),
            new: item(new),
        }
    }

    #[test]
    fn other_entities_and_removals_are_no_events() {
        let receipt = json!({"PK": {"S": "MEMBER#m"}, "SK": {"S": "RECEIPT#signup#-"}, "entity": {"S": "receipt"}});
        assert_eq!(events_of(&record("INSERT", receipt.clone(), None).change()), Ok(vec![]));
        assert_eq!(events_of(&record("REMOVE", receipt, None).change()), Ok(vec![]));
    }

    #[test]
    fn a_known_entity_that_does_not_decode_is_an_error_without_its_values() {
        let bad = json!({"PK": {"S": "MEMBER#m"}, "SK": {"S": "#PROFILE"}, "entity": {"S": "member"}, "memberId": {"S": "m"}, "tier": {"S": "li.wei@example.com"}, "joinedAt": {"S": "2026-01-01T00:00:00Z"}});
        let Err(StreamError::Mapping { entity, detail, .. }) =
            events_of(&record("INSERT", bad, None).change())
        else {
            panic!("a bad tier must not map")
        };
        assert_eq!(entity, "member");
        assert!(!detail.contains("example.com"), "{detail}");
        assert_eq!(redact("missing field `joinedAt`"), "missing field `joinedAt`");
        assert_eq!(
            redact("invalid type: string \"+8613800138000\", expected i64"),
            "invalid type: string \"…\", expected i64"
        );
    }

    #[test]
    fn a_claim_is_published_at_the_time_it_was_claimed() {
        let claim = json!({"PK": {"S": "MEMBER#m"}, "SK": {"S": "REWARD_CLAIM#rc-1"}, "entity": {"S": "reward_claim"}, "claimedAt": {"S": "2026-11-20T10:00:00Z"}});
        let events = events_of(&record("INSERT", claim, None).change()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].detail_type, crate::events::DetailType::RewardClaimed);
        assert_eq!(events[0].time, "2026-11-20T10:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }

    #[test]
    fn a_stream_without_new_images_is_refused() {
        let mut r =
            record("INSERT", json!({"PK": {"S": "MEMBER#m"}, "SK": {"S": "#PROFILE"}}), None);
        r.new = Item::from(std::collections::HashMap::<String, AttributeValue>::new());
        assert!(matches!(events_of(&r.change()), Err(StreamError::Malformed(_, _))));
    }
}
