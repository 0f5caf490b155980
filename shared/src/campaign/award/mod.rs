//! Bulk awards: an operator gives points (with a reason and an expiry) or
//! a coupon to a segment or to a list of member ids, once per member per award.
//!
//! An award runs as a one-off campaign: its grant is `award:<id>`, its runs are campaign runs
//! (the same dispatcher, the same campaign queue and worker, the same counters), and a member's
//! share is guarded by the grant slot `GRANT#award:<id>#0` in the member's partition, as a
//! coupon's is. What differs is only what a member gets (`AwardGift`) and where the members
//! come from (`Recipients`: a segment's index partitions, or a list).

mod members_file;

pub use members_file::{file_ids, page_end, FILE_PREFIX, MAX_FILE_BYTES};

use super::Segment;
use crate::coupon::CouponTemplate;
use crate::member::MemberId;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The most points one award gives a member: a typo of a few zeros must not mint millions
/// (the same cap as a support adjustment).
pub const MAX_AWARD_POINTS: i64 = 1_000_000;
/// The most member ids a request body may list; longer lists are uploaded (`membersFile`).
pub const MAX_LISTED_MEMBERS: usize = 500;
const MAX_NAME: usize = 100;
const MAX_REASON: usize = 200;

/// Points given by an award.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PointsGift {
    pub amount: i64,
    /// The program day the points expire; none: the rules' life from the award's day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<NaiveDate>,
}

/// What an operator posts to `POST /awards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwardRequest {
    pub name: String,
    /// Why, shown in each member's ledger entry.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<PointsGift>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<CouponTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
    /// An object key in the migration bucket, under `awards/`: one member id a line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_file: Option<String>,
    /// Most members credited by the award, over all its runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
}

/// What each member gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum AwardGift {
    /// `amount` points in a lot dated `lot_day` (so it expires on `expires_on`).
    Points {
        amount: i64,
        lot_day: NaiveDate,
        expires_on: NaiveDate,
    },
    Coupon {
        template: CouponTemplate,
    },
}

/// A list of member ids the dispatcher pages (instead of an index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum MemberList {
    /// Listed in the request (at most `MAX_LISTED_MEMBERS`, each once).
    Listed { member_ids: Vec<String> },
    /// An uploaded file, as it was when the award was defined: a run reads exactly this
    /// version (`etag`), so a file replaced later cannot change who an award is for.
    File { key: String, size: u64, etag: String },
}

/// Who an award is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum Recipients {
    Segment { segment: Segment },
    List { list: MemberList },
}

/// A validated award.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Award {
    pub id: String,
    pub name: String,
    pub reason: String,
    pub gift: AwardGift,
    pub recipients: Recipients,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    pub created_at: DateTime<Utc>,
}

/// Why an award is refused; each maps to a stable problem `code` (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwardError {
    #[error("name must be 1..{MAX_NAME} characters")]
    InvalidName,
    #[error("reason: say why, in 1 to {MAX_REASON} characters (it is shown in the ledger)")]
    ReasonRequired,
    #[error("give exactly one of points and coupon")]
    OneGift,
    #[error("points.amount must be a whole number from 1 to {MAX_AWARD_POINTS}")]
    InvalidAmount,
    #[error(
        "points.expiresOn must be after {today} and at most {latest} (the points' life from today)"
    )]
    InvalidExpiry { today: NaiveDate, latest: NaiveDate },
    #[error("coupon: {0}")]
    InvalidCoupon(String),
    #[error("name exactly one of segment, members and membersFile")]
    OneRecipients,
    #[error("{0}")]
    InvalidSegment(String),
    #[error(
        "members must list 1 to {MAX_LISTED_MEMBERS} ids (upload a longer list as membersFile)"
    )]
    InvalidMembers,
    #[error("members[{0}] is not a member id")]
    InvalidMemberId(usize),
    #[error("membersFile must be an object key under {FILE_PREFIX}")]
    InvalidFileKey,
    #[error("the budget must be at least 1 member")]
    InvalidBudget,
}

impl AwardError {
    pub fn code(&self) -> &'static str {
        match self {
            AwardError::InvalidName => "invalid_name",
            AwardError::ReasonRequired => "reason_required",
            AwardError::OneGift => "one_gift",
            AwardError::InvalidAmount => "invalid_points",
            AwardError::InvalidExpiry { .. } => "invalid_expiry",
            AwardError::InvalidCoupon(_) => "invalid_coupon",
            AwardError::OneRecipients => "one_recipients",
            AwardError::InvalidSegment(_) => "invalid_segment",
            AwardError::InvalidMembers => "invalid_members",
            AwardError::InvalidMemberId(_) => "invalid_member_id",
            AwardError::InvalidFileKey => "invalid_file_key",
            AwardError::InvalidBudget => "invalid_budget",
        }
    }
}

/// What a request names as its recipients before the file (if any) is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whom {
    Segment(Segment),
    Listed(Vec<String>),
    File(String),
}

/// The grant an award's members hold: one share per member per award, whichever run gives it.
pub fn grant(award_id: &str) -> String {
    format!("award:{award_id}")
}

/// The lot an award's points go in, and the day they expire. Lots expire `expiry_days` after
/// their day, so the expiry an operator names is expressed by dating the lot `expiry_days`
/// before it: any day from tomorrow to the rules' full life from `today` can be said, and
/// nothing else (a later day would need a lot dated in the future; today or earlier would
/// credit points that are already gone). None: a lot of `today`, the rules' ordinary life.
pub fn award_lot(
    expires_on: Option<NaiveDate>,
    today: NaiveDate,
    expiry_days: u32,
) -> Result<(NaiveDate, NaiveDate), AwardError> {
    let life = Duration::days(expiry_days as i64);
    match expires_on {
        None => Ok((today, today + life)),
        Some(d) if d > today && d <= today + life => Ok((d - life, d)),
        Some(_) => Err(AwardError::InvalidExpiry { today, latest: today + life }),
    }
}

impl AwardRequest {
    /// Checks everything the request says by itself (the file's existence is the caller's to
    /// look up) and answers the award's pieces: name, reason, gift, recipients.
    pub fn validate(
        &self,
        today: NaiveDate,
        expiry_days: u32,
    ) -> Result<(String, String, AwardGift, Whom), AwardError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(AwardError::InvalidName);
        }
        let reason = self.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON {
            return Err(AwardError::ReasonRequired);
        }
        let gift = match (&self.points, &self.coupon) {
            (Some(p), None) => {
                if !(1..=MAX_AWARD_POINTS).contains(&p.amount) {
                    return Err(AwardError::InvalidAmount);
                }
                let (lot_day, expires_on) = award_lot(p.expires_on, today, expiry_days)?;
                AwardGift::Points { amount: p.amount, lot_day, expires_on }
            }
            (None, Some(c)) => {
                c.validate().map_err(AwardError::InvalidCoupon)?;
                AwardGift::Coupon { template: c.clone() }
            }
            _ => return Err(AwardError::OneGift),
        };
        let whom = match (&self.segment, &self.members, &self.members_file) {
            (Some(s), None, None) => Whom::Segment(checked_segment(s)?),
            (None, Some(ids), None) => Whom::Listed(listed(ids)?),
            (None, None, Some(key)) => {
                let ok = key.starts_with(FILE_PREFIX)
                    && key.len() > FILE_PREFIX.len()
                    && key.len() <= 1024
                    && !key.chars().any(char::is_control);
                if !ok {
                    return Err(AwardError::InvalidFileKey);
                }
                Whom::File(key.clone())
            }
            _ => return Err(AwardError::OneRecipients),
        };
        if self.budget == Some(0) {
            return Err(AwardError::InvalidBudget);
        }
        Ok((name.to_string(), reason.to_string(), gift, whom))
    }
}

/// A segment, checked as a campaign's is.
fn checked_segment(s: &Segment) -> Result<Segment, AwardError> {
    s.checked().map_err(|e| AwardError::InvalidSegment(e.to_string()))
}

/// The listed ids, each once, in the order given.
fn listed(ids: &[String]) -> Result<Vec<String>, AwardError> {
    if ids.is_empty() || ids.len() > MAX_LISTED_MEMBERS {
        return Err(AwardError::InvalidMembers);
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if MemberId::parse(id).is_none() {
            return Err(AwardError::InvalidMemberId(i));
        }
        if seen.insert(id.as_str()) {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// A run's counters as an award tells them: every targeted member is credited now, already
/// credited (an earlier run, a redelivery), unknown (no such member, erased, not an id, or
/// outside the coupon's tiers), over the budget, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwardCounts {
    pub targeted: u64,
    pub credited: u64,
    pub already_credited: u64,
    pub unknown: u64,
    pub over_budget: u64,
    pub failed: u64,
}

impl From<&super::Progress> for AwardCounts {
    fn from(p: &super::Progress) -> AwardCounts {
        AwardCounts {
            targeted: p.targeted,
            credited: p.issued,
            already_credited: p.skipped_already_had,
            unknown: p.skipped_not_eligible,
            over_budget: p.skipped_budget_spent,
            failed: p.failed,
        }
    }
}
