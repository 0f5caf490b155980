//! One line of an import file: its fields as sent, and their validation into a member.

use crate::member::Member;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A line as sent (JSON Lines; a CSV row is read into the same shape). Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportLine {
    /// The member's id in the old program: it becomes the member id here.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub birthday: Option<String>,
    /// `YYYY-MM-DD` (midnight, program time) or an RFC 3339 instant.
    #[serde(default)]
    pub joined_at: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    /// When the tier was reached: protection runs from it (required above regular).
    #[serde(default)]
    pub tier_reached_at: Option<String>,
    #[serde(default)]
    pub lots: Vec<LotLine>,
    /// Lifetime spend, fen.
    #[serde(default)]
    pub lifetime_spend: Option<i64>,
    /// Qualifying spend by day (a total is one entry dated when it was taken); days before
    /// the tier window are dropped.
    #[serde(default)]
    pub spend: Vec<SpendLine>,
    #[serde(default)]
    pub order_count: Option<u32>,
    #[serde(default)]
    pub last_purchase_at: Option<String>,
    #[serde(default)]
    pub marketing_consent: Option<bool>,
    /// When consent was given or refused (default: the join date).
    #[serde(default)]
    pub consent_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LotLine {
    pub points: i64,
    pub earned_on: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpendLine {
    pub on: String,
    pub amount: i64,
}

/// Why a line is rejected: each a stable code in the rejects file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    OversizeLine,
    BrokenJson,
    NotAnObject,
    UnknownField,
    InvalidField,
    MissingId,
    InvalidId,
    InvalidName,
    ContactRequired,
    InvalidEmail,
    InvalidPhone,
    InvalidBirthday,
    InvalidJoinedAt,
    JoinedInFuture,
    UnknownTier,
    InvalidTierDate,
    TierDateInFuture,
    TierDateBeforeJoin,
    InvalidPoints,
    InvalidLotDate,
    LotInFuture,
    LotExpired,
    TooManyLots,
    InvalidSpend,
    SpendInFuture,
    InvalidConsentDate,
    InvalidLastPurchase,
    /// CSV: the row has another number of columns than the header.
    ColumnCount,
    DuplicateEmail,
    DuplicatePhone,
    /// The same id on two lines of one file.
    DuplicateId,
    /// A member with this id joined here, not by an import.
    MemberExists,
    /// A corrected line for a member who has had activity since the import.
    ChangedSinceImport,
}

impl RejectCode {
    pub fn as_str(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

pub type LineResult<T> = Result<T, (RejectCode, String)>;

pub(super) fn reject<T>(code: RejectCode, message: impl Into<String>) -> LineResult<T> {
    Err((code, message.into()))
}

/// A validated line: the member it describes (version 0, not yet marked) and its lots in the
/// order given, for the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedMember {
    pub member: Member,
    pub lots: Vec<(NaiveDate, i64)>,
    /// Digest of the validated content: the same member described again, whatever the
    /// spacing, field order or CSV/JSON form, has the same digest.
    pub digest: String,
}

/// Parses a JSON line into its fields, with the code of what is wrong first.
pub fn parse_json_line(text: &[u8]) -> LineResult<ImportLine> {
    if text.len() > super::MAX_LINE_BYTES {
        return reject(
            RejectCode::OversizeLine,
            format!("the line is {} bytes; at most {} are read", text.len(), super::MAX_LINE_BYTES),
        );
    }
    let value: serde_json::Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => return reject(RejectCode::BrokenJson, format!("not JSON: {e}")),
    };
    let Some(object) = value.as_object() else {
        return reject(RejectCode::NotAnObject, "a line must be one JSON object");
    };
    match object.get("id") {
        None | Some(serde_json::Value::Null) => {
            return reject(RejectCode::MissingId, "id is required")
        }
        Some(serde_json::Value::String(_)) => {}
        Some(_) => return reject(RejectCode::InvalidId, "id must be a string"),
    }
    serde_json::from_value(value).or_else(|e| {
        let text = e.to_string();
        if text.starts_with("unknown field") {
            reject(RejectCode::UnknownField, text)
        } else {
            reject(RejectCode::InvalidField, text)
        }
    })
}
