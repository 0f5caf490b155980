//! A bulk award's points for one member (pure): what `Store::credit_award` commits.

use crate::campaign::PointsCredit;
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::Member;
use crate::money::{Fen, Points};
use crate::rules::Rules;
use chrono::{DateTime, NaiveDate, Utc};

/// Settles the wallet (as every change does first), then adds the award's points to the lot of
/// its day, and answers the ledger entries: the settlement's, then one `award` entry naming the
/// award, so `points == Σ ledger` holds. A debt is paid first, as with any earning.
pub fn credit(
    member: &mut Member,
    award: &PointsCredit,
    rules: &Rules,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<LedgerEntry> {
    let mut entries = super::settle(member, rules, today, now);
    member.wallet.earn(award.amount, award.lot_day);
    entries.push(LedgerEntry {
        kind: EntryKind::Award,
        points: Points(award.amount),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        rebate: Fen::ZERO,
        rebate_pending: Fen::ZERO,
        reason: award.reason.clone(),
        reference: Some(award.award_id.clone()),
        at: now,
    });
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{MemberId, NewMember};
    use chrono::Duration;

    fn member(now: DateTime<Utc>) -> Member {
        let new = NewMember {
            email: None,
            phone: None,
            name: "A".into(),
            birthday: None,
            referral_code: None,
            marketing_consent: false,
        };
        Member::join(MemberId::parse("m-1").unwrap(), &new, "CODE".into(), None, now)
    }

    #[test]
    fn the_points_go_in_the_awards_lot_and_the_ledger_sums_to_the_balance() {
        let rules = Rules::default();
        let now = Utc::now();
        let today = crate::calendar::program_date(rules.time_zone, now);
        let mut m = member(now);
        let before = m.wallet.balance.0;
        let award = PointsCredit {
            award_id: "a-1".into(),
            amount: 300,
            lot_day: today - Duration::days(100),
            reason: "apology".into(),
        };
        let entries = credit(&mut m, &award, &rules, today, now);
        let last = entries.last().unwrap();
        assert_eq!(
            (last.kind, last.points.0, last.reference.as_deref()),
            (EntryKind::Award, 300, Some("a-1"))
        );
        assert_eq!(m.wallet.balance.0, before + entries.iter().map(|e| e.points.0).sum::<i64>());
        assert!(m.wallet.lots.iter().any(|l| l.earned_on == award.lot_day && l.points == 300));
        assert!(m.wallet.is_consistent());
        // The lot expires `expiry_days` after its day: the award's expiry.
        assert_eq!(
            m.wallet.next_expiry(rules.points.expiry_days),
            Some(award.lot_day + Duration::days(rules.points.expiry_days as i64))
        );
    }
}
