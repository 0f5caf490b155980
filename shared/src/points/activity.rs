//! Activities (check-in, review, share) and their daily limits.

use crate::calendar::program_date;
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::{ActivityDay, Member};
use crate::money::{Fen, Points};
use crate::rules::Rules;
use chrono::{DateTime, NaiveDate, Utc};

use super::request::*;

/// Today's counters (a new day starts from zero).
pub fn activity_today(member: &Member, today: NaiveDate) -> ActivityDay {
    member.activity.filter(|a| a.day == today).unwrap_or(ActivityDay {
        day: today,
        points: 0,
        shares: 0,
    })
}

/// The points an activity earns today, or why it earns none. The once-per-day check-in and
/// once-per-order review are enforced by their receipt items; this checks the daily limits.
pub fn activity_points(
    rules: &Rules,
    kind: ActivityKind,
    counters: ActivityDay,
) -> Result<(i64, ActivityDay), PointsError> {
    let a = &rules.activities;
    let points = match kind {
        ActivityKind::Checkin => a.checkin,
        ActivityKind::Review => a.review,
        ActivityKind::Share => a.share,
    };
    let mut next = counters;
    if kind == ActivityKind::Share {
        if counters.shares >= a.shares_per_day {
            return Err(PointsError::ShareLimitReached(a.shares_per_day));
        }
        next.shares += 1;
    }
    // An activity that would go over the cap is refused whole (not cut down), so a review
    // refused today can still earn its full points another day.
    if counters.points + points > a.daily_cap {
        return Err(PointsError::DailyActivityCapReached(a.daily_cap));
    }
    next.points += points;
    Ok((points, next))
}

/// Earns an activity's points on the member; answers the ledger entry.
pub fn apply_activity(
    member: &mut Member,
    rules: &Rules,
    kind: ActivityKind,
    reference: &str,
    now: DateTime<Utc>,
) -> Result<LedgerEntry, PointsError> {
    let today = program_date(rules.time_zone, now);
    let (points, counters) = activity_points(rules, kind, activity_today(member, today))?;
    member.activity = Some(counters);
    member.wallet.earn(points, today);
    let what = match kind {
        ActivityKind::Checkin => "daily check-in",
        ActivityKind::Review => "review",
        ActivityKind::Share => "share",
    };
    Ok(LedgerEntry {
        kind: EntryKind::Activity,
        points: Points(points),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        rebate: Fen::ZERO,
        rebate_pending: Fen::ZERO,
        reason: what.into(),
        reference: Some(reference.to_string()),
        at: now,
    })
}
