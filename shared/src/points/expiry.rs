//! Time passing: lots expire, expiry notices, pending points released after the return
//! window (`settle`, applied before every change of a member).

use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::Member;
use crate::money::{Fen, Points};
use crate::rules::Rules;
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Applies the expiry due on `today`; answers the ledger entry when points expired. The
/// entry is dated a microsecond before `now` so it sorts before the operation it precedes.
pub fn expire(
    member: &mut Member,
    rules: &Rules,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Option<LedgerEntry> {
    let expired = member.wallet.expire(today, rules.points.expiry_days);
    (expired > 0).then(|| LedgerEntry {
        kind: EntryKind::Expiry,
        points: Points(-expired),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        rebate: Fen::ZERO,
        rebate_pending: Fen::ZERO,
        reason: format!(
            "points earned on or before {} expired",
            today - Duration::days(rules.points.expiry_days as i64)
        ),
        reference: Some(format!("expiry-{today}")),
        at: now - Duration::microseconds(1),
    })
}

/// The lots whose expiry the member is to be told today: those expiring after `today` and on
/// or before `today + expiryNoticeDays`, except the lot days in `noticed` (told already).
/// Run after `settle`, so a lot due today has expired rather than being announced.
pub fn expiry_notices(
    member: &Member,
    rules: &Rules,
    today: NaiveDate,
    noticed: &[NaiveDate],
) -> Vec<crate::ledger::ExpiryNotice> {
    let (life, ahead) =
        (Duration::days(rules.points.expiry_days as i64), rules.points.expiry_notice_days as i64);
    if ahead == 0 || member.is_erased() {
        return Vec::new();
    }
    member
        .wallet
        .lots
        .iter()
        .map(|l| crate::ledger::ExpiryNotice {
            points: l.points,
            earned_on: l.earned_on,
            expires_on: l.earned_on + life,
        })
        .filter(|n| {
            n.expires_on > today
                && n.expires_on <= today + Duration::days(ahead)
                && !noticed.contains(&n.earned_on)
        })
        .collect()
}

/// Makes the pending points whose return window has ended available; answers the ledger
/// entry. Dated two microseconds before `now`: it sorts before the expiry and the operation.
pub fn release(member: &mut Member, today: NaiveDate, now: DateTime<Utc>) -> Option<LedgerEntry> {
    let (released, rebate) = member.wallet.release(today);
    (released > 0 || rebate.0 > 0).then(|| LedgerEntry {
        kind: EntryKind::Release,
        points: Points(released),
        balance_after: member.wallet.balance,
        pending: Points(-released),
        rebate,
        rebate_pending: -rebate,
        reason: "the return window ended: pending points and rebates are available".into(),
        reference: Some(format!("release-{today}")),
        at: now - Duration::microseconds(2),
    })
}

/// What every change of a member does first: release what the return window no longer holds,
/// then expire what is due, so no rule ever sees a stale wallet.
pub fn settle(
    member: &mut Member,
    rules: &Rules,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<LedgerEntry> {
    release(member, today, now).into_iter().chain(expire(member, rules, today, now)).collect()
}

/// The day points earned on `day` become available.
pub fn release_day(rules: &Rules, day: NaiveDate) -> NaiveDate {
    day + Duration::days(rules.return_window_days as i64)
}
