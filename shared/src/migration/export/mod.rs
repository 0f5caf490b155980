//! Exports: the table's members, ledger entries and coupons as JSON Lines in the migration
//! bucket, for an analytics team or the next system. Pure: what an operator may ask for, the
//! line each stored record becomes (and what leaves the engine only when asked and allowed:
//! a member's email, phone, name and birthday), the counts, and where the files go.
//!
//! Choices, and why:
//! - **Parallel scan segments.** The table is read with DynamoDB's parallel Scan
//!   (`Segment`/`TotalSegments`), one message per segment; a segment's worker writes parts
//!   of at most `pages_per_part` scan pages and hands the rest of its segment to a message of
//!   its own, so a table of any size is never one Lambda invocation.
//! - **Counts are set, not added.** A segment's progress item holds the running totals
//!   through its last recorded part, written conditionally on the part before; a redelivered
//!   part finds its part recorded and writes nothing, so nothing is counted twice.
//! - **Personal data under another prefix.** An export with personal data is written under
//!   `personal-exports/`, which the operators' policy cannot read: the IAM policy of the
//!   bucket and the handler's allow-list (`PersonalDataExporters`) both keep it apart.

mod lines;

pub use lines::{CouponLine, LedgerLine, MemberLine};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Segments when the request names none: eight Lambda invocations at once, the import
/// queue's `MaximumConcurrency`.
pub const DEFAULT_SEGMENTS: u32 = 8;
/// At most this many segments: each is a chain of messages and a progress item, and the
/// view lists every segment's parts.
pub const MAX_SEGMENTS: u32 = 64;
/// Scan pages (up to 1 MB of items each) a worker reads into one part before it records the
/// part and hands over: about 8 MB of items, a few MB of lines per kind, well inside the
/// function's memory and timeout.
pub const PAGES_PER_PART: u32 = 8;

/// What an export can hold, each its own files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Members,
    Ledger,
    Coupons,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Members, Kind::Ledger, Kind::Coupons];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Members => "members",
            Kind::Ledger => "ledger",
            Kind::Coupons => "coupons",
        }
    }

    /// The kind of a stored item, by its `entity` attribute.
    pub fn of_entity(entity: &str) -> Option<Kind> {
        match entity {
            "member" => Some(Kind::Members),
            "ledger" => Some(Kind::Ledger),
            "coupon" => Some(Kind::Coupons),
            _ => None,
        }
    }
}

/// `POST /exports`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportRequest {
    /// Default: all three.
    #[serde(default)]
    pub what: Option<Vec<Kind>>,
    #[serde(default)]
    pub segments: Option<u32>,
    /// Email, phone, name and birthday of each member; only for a caller allowed to.
    #[serde(default)]
    pub personal_data: bool,
}

/// A valid request: the kinds (each once, in a fixed order), the segments, personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportPlan {
    pub kinds: Vec<Kind>,
    pub segments: u32,
    pub personal_data: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("name at least one of members, ledger, coupons in `what`")]
    NothingToExport,
    #[error("segments must be 1 to {MAX_SEGMENTS}, not {0}")]
    Segments(u32),
}

impl ExportError {
    pub fn code(&self) -> &'static str {
        match self {
            ExportError::NothingToExport => "nothing_to_export",
            ExportError::Segments(_) => "invalid_segments",
        }
    }
}

impl ExportRequest {
    pub fn validate(self) -> Result<ExportPlan, ExportError> {
        let mut kinds = self.what.unwrap_or_else(|| Kind::ALL.to_vec());
        kinds.sort();
        kinds.dedup();
        if kinds.is_empty() {
            return Err(ExportError::NothingToExport);
        }
        let segments = self.segments.unwrap_or(DEFAULT_SEGMENTS);
        if !(1..=MAX_SEGMENTS).contains(&segments) {
            return Err(ExportError::Segments(segments));
        }
        Ok(ExportPlan { kinds, segments, personal_data: self.personal_data })
    }
}

/// Lines of one kind and the points they carry (members: Σ balance; ledger: Σ entry points;
/// coupons carry none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindCounts {
    pub lines: u64,
    pub points: i64,
}

/// Counts by kind.
pub type Counts = BTreeMap<Kind, KindCounts>;

/// Adds `line` (of `kind`, carrying `points`) to `counts`.
pub fn count(counts: &mut Counts, kind: Kind, points: i64) {
    let c = counts.entry(kind).or_default();
    c.lines += 1;
    c.points += points;
}

/// The sum of several counts (a segment's parts, the segments of an export).
pub fn total<'a>(all: impl IntoIterator<Item = &'a Counts>) -> Counts {
    let mut out = Counts::new();
    for counts in all {
        for (kind, c) in counts {
            let t = out.entry(*kind).or_default();
            t.lines += c.lines;
            t.points += c.points;
        }
    }
    out
}

/// Where an export's files go: `exports/<id>/`, or `personal-exports/<id>/` for one with
/// personal data (a prefix the operators' policy does not read).
pub fn prefix(export_id: &str, personal_data: bool) -> String {
    let root = if personal_data { "personal-exports" } else { "exports" };
    format!("{root}/{export_id}/")
}

/// One part of one kind of one segment: `<prefix><kind>-<segment>-<part>.jsonl`, numbers
/// zero-padded so that a listing sorts as the table was read.
pub fn part_key(prefix: &str, kind: Kind, segment: u32, part: u32) -> String {
    format!("{prefix}{}-{segment:02}-{part:05}.jsonl", kind.as_str())
}

/// Written when every segment is done: the kinds, the counts and every part's key.
pub fn manifest_key(prefix: &str) -> String {
    format!("{prefix}manifest.json")
}

/// Every part's key of an export whose segments recorded `parts[s]` parts, by kind, then
/// segment, then part.
pub fn part_keys(prefix: &str, kinds: &[Kind], parts: &[u32]) -> Vec<String> {
    let mut out = Vec::new();
    for kind in kinds {
        for (segment, n) in parts.iter().enumerate() {
            for part in 0..*n {
                out.push(part_key(prefix, *kind, segment as u32, part));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::Member;

    fn req(v: serde_json::Value) -> Result<ExportPlan, ExportError> {
        serde_json::from_value::<ExportRequest>(v).unwrap().validate()
    }

    #[test]
    fn a_request_defaults_to_everything_in_eight_segments_without_personal_data() {
        assert_eq!(
            req(serde_json::json!({})).unwrap(),
            ExportPlan { kinds: Kind::ALL.to_vec(), segments: 8, personal_data: false }
        );
        let p = req(serde_json::json!({"what": ["coupons", "members", "coupons"], "segments": 64}))
            .unwrap();
        assert_eq!((p.kinds, p.segments), (vec![Kind::Members, Kind::Coupons], 64));
    }

    #[test]
    fn segments_out_of_range_and_an_empty_list_are_refused() {
        assert_eq!(req(serde_json::json!({"segments": 0})), Err(ExportError::Segments(0)));
        assert_eq!(req(serde_json::json!({"segments": 65})), Err(ExportError::Segments(65)));
        assert_eq!(req(serde_json::json!({"what": []})), Err(ExportError::NothingToExport));
        assert!(serde_json::from_value::<ExportRequest>(serde_json::json!({"what": ["orders"]}))
            .is_err());
    }

    #[test]
    fn a_member_line_carries_personal_data_only_when_asked() {
        let new = crate::member::NewMember {
            email: Some("li.wei@example.com".into()),
            phone: Some("+8613800138000".into()),
            name: "Li Wei".into(),
            birthday: Some("1990-05-18".parse().unwrap()),
            referral_code: None,
            marketing_consent: true,
        };
        let joined = "2026-01-02T03:04:05Z".parse().unwrap();
        let mut m = Member::join(
            crate::member::MemberId::parse("m-1").unwrap(),
            &new,
            "CODE".into(),
            None,
            joined,
        );
        m.wallet.balance = crate::money::Points(750);
        let plain = serde_json::to_value(MemberLine::of(&m, false)).unwrap();
        for field in ["email", "phone", "name", "birthday"] {
            assert!(plain.get(field).is_none(), "{field} left out: {plain}");
        }
        assert_eq!((plain["id"].as_str(), plain["points"].as_i64()), (Some("m-1"), Some(750)));
        let personal = serde_json::to_value(MemberLine::of(&m, true)).unwrap();
        assert_eq!(personal["email"], "li.wei@example.com");
        assert_eq!(personal["birthday"], "1990-05-18");
    }

    #[test]
    fn keys_sort_as_read_and_counts_add_up() {
        let p = prefix("e-1", false);
        assert_eq!(part_key(&p, Kind::Ledger, 3, 12), "exports/e-1/ledger-03-00012.jsonl");
        assert_eq!(prefix("e-1", true), "personal-exports/e-1/");
        assert_eq!(
            part_keys(&p, &[Kind::Members], &[2, 0, 1]),
            vec![
                "exports/e-1/members-00-00000.jsonl",
                "exports/e-1/members-00-00001.jsonl",
                "exports/e-1/members-02-00000.jsonl"
            ]
        );
        let mut a = Counts::new();
        count(&mut a, Kind::Members, 5);
        count(&mut a, Kind::Members, 7);
        let mut b = Counts::new();
        count(&mut b, Kind::Members, 1);
        count(&mut b, Kind::Coupons, 0);
        let t = total([&a, &b]);
        assert_eq!(t[&Kind::Members], KindCounts { lines: 3, points: 13 });
        assert_eq!(t[&Kind::Coupons], KindCounts { lines: 1, points: 0 });
    }
}
