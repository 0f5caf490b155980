//! What an accepted line does to the member the store holds under its id.

use super::line::{ImportedMember, RejectCode};
use crate::member::Member;

/// The member an accepted line becomes over what the store holds: a new member, or a
/// correction of one an earlier import wrote (its referral code, version and ledger kept).
pub fn apply_line(
    line: &ImportedMember,
    job: &str,
    number: u64,
    existing: Option<&Member>,
) -> Member {
    let mut m = line.member.clone();
    match existing {
        None => {
            m.version = 1;
            m.imported = Some(crate::member::ImportMark {
                job: job.into(),
                line: number,
                digest: line.digest.clone(),
                version: 1,
                updated: false,
            });
        }
        Some(old) => {
            m.referral_code = old.referral_code.clone();
            m.version = old.version + 1;
            m.imported = Some(crate::member::ImportMark {
                job: job.into(),
                line: number,
                digest: line.digest.clone(),
                version: m.version,
                updated: true,
            });
        }
    }
    m
}

/// What to do with an accepted line given the member the store holds under its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Create,
    /// A correction of an imported member untouched since: rewrite it.
    Correct,
    /// Nothing to write; this is the outcome.
    Done(super::Outcome),
}

pub fn decide(
    line: &ImportedMember,
    job: &str,
    number: u64,
    existing: Option<&Member>,
) -> Decision {
    use super::Outcome;
    let Some(m) = existing else { return Decision::Create };
    let Some(mark) = &m.imported else {
        return Decision::Done(Outcome::Rejected(
            RejectCode::MemberExists,
            "a member with this id joined the program here; it is not overwritten".into(),
        ));
    };
    if mark.job == job {
        // This import wrote it: this very line on an earlier delivery of its chunk (counted as
        // what it did then), or another line with the same id.
        return if mark.line == number {
            Decision::Done(if mark.updated { Outcome::Updated } else { Outcome::Imported })
        } else {
            Decision::Done(Outcome::Rejected(
                RejectCode::DuplicateId,
                format!("id already imported from line {} of this file", mark.line),
            ))
        };
    }
    if mark.digest == line.digest {
        return Decision::Done(Outcome::Unchanged);
    }
    if m.version != mark.version {
        return Decision::Done(Outcome::Rejected(
            RejectCode::ChangedSinceImport,
            "the member has changed since it was imported (activity here); the corrected line is not applied".into(),
        ));
    }
    Decision::Correct
}
