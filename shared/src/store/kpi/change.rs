//! One stream record as the KPI mappings read it.

use super::super::stream::{Decoder, StreamError};
use crate::calendar::program_date;
use crate::events::{self, DetailType};
use crate::kpi::{self, Bump};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use serde_dynamo::Item;

/// The marker of a stored change: a digest of the item's key, the stream record's sequence
/// number (the same when the record is delivered again, another for every write) and which of
/// the record's facts (a write may add several refunds).
fn change_marker(pk: &str, sk: &str, sequence: &str, what: &str) -> String {
    // The detail type only salts the digest, as for an event id.
    events::event_id(DetailType::MemberJoined, pk, sk, &format!("{sequence}#{what}"))
}

/// One stream record as the mappings read it: the images, whether it is an insert, the day of
/// an instant in the program's zone and the once-only marker of each fact.
pub(super) struct Change<'a> {
    pub(super) d: Decoder<'a>,
    pub(super) new: &'a Item,
    pub(super) old: Option<&'a Item>,
    pub(super) inserted: bool,
    /// When the stream recorded the change (for facts that carry no time of their own).
    pub(super) at: DateTime<Utc>,
    pub(super) tz: Tz,
    pub(super) sequence: &'a str,
}

impl Change<'_> {
    pub(super) fn day(&self, t: DateTime<Utc>) -> NaiveDate {
        program_date(self.tz, t)
    }

    /// The bump of one fact of this change, counted once however often it is delivered.
    pub(super) fn once(&self, what: &str) -> Bump {
        Bump::new(change_marker(self.d.pk, self.d.sk, self.sequence, what), kpi::REDELIVERY_DAYS)
    }

    pub(super) fn decode_new<T: DeserializeOwned>(&self) -> Result<T, StreamError> {
        self.d.decode(self.new)
    }

    /// The item before the change, for a modification.
    pub(super) fn before<T: DeserializeOwned>(&self) -> Result<Option<T>, StreamError> {
        self.old.map(|o| self.d.decode(o)).transpose()
    }
}
