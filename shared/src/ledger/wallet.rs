//! The points wallet: dated lots (spent oldest first, expiring a fixed number of days after
//! they were earned), pending lots (an order's points and rebate through its return window),
//! the rebate balance and a clawback's debt. The ledger (`super`) records every change to it.

use crate::money::{Fen, Points};
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

/// Points earned on one program-calendar day, still unspent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// Program-calendar day the points were earned.
    #[serde(rename = "d")]
    pub earned_on: NaiveDate,
    #[serde(rename = "p")]
    pub points: i64,
}

/// Points of one order (or one referral) waiting for the return window to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLot {
    /// The order id, or `referral:<member id>` for a referral reward.
    #[serde(rename = "o")]
    pub source: String,
    #[serde(rename = "p")]
    pub points: i64,
    /// The order's rebate (fen), released with the points.
    #[serde(rename = "f", default, skip_serializing_if = "crate::money::is_zero")]
    pub rebate: i64,
    /// The program day the points become available.
    #[serde(rename = "r")]
    pub release_on: NaiveDate,
}

impl crate::compact::Dated for Lot {
    fn day(&self) -> NaiveDate {
        self.earned_on
    }
    fn amount(&self) -> i64 {
        self.points
    }
    fn from_parts(earned_on: NaiveDate, points: i64) -> Lot {
        Lot { earned_on, points }
    }
}

impl crate::compact::Sourced for PendingLot {
    fn parts(&self) -> (&str, NaiveDate, i64, i64) {
        (&self.source, self.release_on, self.points, self.rebate)
    }
    fn from_parts(source: String, release_on: NaiveDate, points: i64, rebate: i64) -> PendingLot {
        PendingLot { source, points, rebate, release_on }
    }
}

/// Stored packed (`compact`): a year of daily lots costs about a kilobyte, not eight.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Wallet {
    /// Available points (may be negative: a debt).
    pub balance: Points,
    /// Oldest first, at most one lot per day.
    #[serde(default, with = "crate::compact::dated", skip_serializing_if = "Vec::is_empty")]
    pub lots: Vec<Lot>,
    #[serde(default, with = "crate::compact::sourced", skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingLot>,
    /// Available order rebates, in fen (negative: a debt).
    #[serde(default, skip_serializing_if = "Fen::is_zero")]
    pub rebate: Fen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpendError {
    #[error("the balance ({balance} points) is below the {asked} points asked")]
    InsufficientPoints { balance: i64, asked: i64 },
}

impl Wallet {
    pub fn is_consistent(&self) -> bool {
        let lots: i64 = self.lots.iter().map(|l| l.points).sum();
        let ordered = self.lots.windows(2).all(|w| w[0].earned_on < w[1].earned_on);
        let positive = self.lots.iter().all(|l| l.points > 0)
            && self
                .pending
                .iter()
                .all(|p| p.points >= 0 && p.rebate >= 0 && p.points + p.rebate > 0);
        ordered
            && positive
            && if self.balance.0 >= 0 { lots == self.balance.0 } else { self.lots.is_empty() }
    }

    /// Adds earned points: a debt is paid first, the rest becomes (or joins) today's lot.
    pub fn earn(&mut self, points: i64, on: NaiveDate) {
        if points <= 0 {
            return;
        }
        let debt = (-self.balance.0).max(0);
        let into_lot = points - debt.min(points);
        self.balance.0 += points;
        if into_lot > 0 {
            match self.lots.last_mut() {
                Some(last) if last.earned_on == on => last.points += into_lot,
                Some(last) if last.earned_on > on => {
                    // Earned "in the past" (a late order event): keep lots ordered.
                    let at = self.lots.partition_point(|l| l.earned_on < on);
                    match self.lots.get_mut(at) {
                        Some(l) if l.earned_on == on => l.points += into_lot,
                        _ => self.lots.insert(at, Lot { earned_on: on, points: into_lot }),
                    }
                }
                _ => self.lots.push(Lot { earned_on: on, points: into_lot }),
            }
        }
    }

    pub fn pending_total(&self) -> i64 {
        self.pending.iter().map(|p| p.points).sum()
    }

    /// Pending rebates, in fen.
    pub fn pending_rebate(&self) -> Fen {
        Fen(self.pending.iter().map(|p| p.rebate).sum())
    }

    /// Adds points and a rebate (fen) that become available on `release_on`.
    pub fn add_pending(&mut self, source: &str, points: i64, rebate: i64, release_on: NaiveDate) {
        let (points, rebate) = (points.max(0), rebate.max(0));
        if points == 0 && rebate == 0 {
            return;
        }
        match self.pending.iter_mut().find(|p| p.source == source) {
            Some(p) => {
                p.points += points;
                p.rebate += rebate;
            }
            None => self.pending.push(PendingLot {
                source: source.to_string(),
                points,
                rebate,
                release_on,
            }),
        }
    }

    /// Makes the pending lots due on or before `today` available, the points each as a lot
    /// dated by its release day. Answers (the points, the rebate) released.
    pub fn release(&mut self, today: NaiveDate) -> (i64, Fen) {
        let (due, keep): (Vec<PendingLot>, Vec<PendingLot>) =
            std::mem::take(&mut self.pending).into_iter().partition(|p| p.release_on <= today);
        self.pending = keep;
        let mut released = (0, Fen::ZERO);
        for p in due {
            self.earn(p.points, p.release_on);
            self.rebate += Fen(p.rebate);
            released = (released.0 + p.points, released.1 + Fen(p.rebate));
        }
        released
    }

    /// Cancels up to `points` of `source`'s pending points; answers how many were cancelled.
    pub fn cancel_pending(&mut self, source: &str, points: i64) -> i64 {
        let Some(p) = self.pending.iter_mut().find(|p| p.source == source) else { return 0 };
        let cancelled = points.clamp(0, p.points);
        p.points -= cancelled;
        self.drop_empty_pending();
        cancelled
    }

    /// Takes back `rebate` of `source`'s: from its pending rebate first, the rest from the
    /// available balance (a debt if need be). Answers (cancelled while pending, taken back).
    pub fn reverse_rebate(&mut self, source: &str, rebate: Fen) -> (Fen, Fen) {
        let rebate = Fen(rebate.0.max(0));
        let cancelled = match self.pending.iter_mut().find(|p| p.source == source) {
            Some(p) => {
                let c = rebate.0.min(p.rebate);
                p.rebate -= c;
                Fen(c)
            }
            None => Fen::ZERO,
        };
        self.drop_empty_pending();
        self.rebate -= rebate - cancelled;
        (cancelled, rebate - cancelled)
    }

    fn drop_empty_pending(&mut self) {
        self.pending.retain(|p| p.points > 0 || p.rebate > 0);
    }

    /// The first day a pending lot is released, if any (the daily sweep's index key).
    pub fn next_release(&self) -> Option<NaiveDate> {
        self.pending.iter().map(|p| p.release_on).min()
    }

    /// Spends `points` from the oldest lots. Never spends more than the balance.
    pub fn spend(&mut self, points: i64) -> Result<(), SpendError> {
        if points > self.balance.0 {
            return Err(SpendError::InsufficientPoints { balance: self.balance.0, asked: points });
        }
        take_from(self.lots.iter_mut(), points);
        self.lots.retain(|l| l.points > 0);
        self.balance.0 -= points;
        Ok(())
    }

    /// Takes back `points` (a refund): newest lots first, as those are the refunded order's;
    /// what the lots can't cover becomes a debt.
    pub fn claw_back(&mut self, points: i64) {
        if points <= 0 {
            return;
        }
        take_from(self.lots.iter_mut().rev(), points);
        self.lots.retain(|l| l.points > 0);
        self.balance.0 -= points;
    }

    /// Removes the lots whose life ended on or before `today`; answers the points expired.
    pub fn expire(&mut self, today: NaiveDate, expiry_days: u32) -> i64 {
        let keep_from = today - Duration::days(expiry_days as i64);
        let expired: i64 =
            self.lots.iter().filter(|l| l.earned_on <= keep_from).map(|l| l.points).sum();
        self.lots.retain(|l| l.earned_on > keep_from);
        self.balance.0 -= expired;
        expired
    }

    /// The day the oldest lot expires, if any (the expiry sweep's index key).
    pub fn next_expiry(&self, expiry_days: u32) -> Option<NaiveDate> {
        self.lots.first().map(|l| l.earned_on + Duration::days(expiry_days as i64))
    }

    /// Points expiring in the next `within_days` days, grouped by the day they expire.
    pub fn expiring_within(
        &self,
        today: NaiveDate,
        expiry_days: u32,
        within_days: u32,
    ) -> Vec<(NaiveDate, i64)> {
        self.lots
            .iter()
            .map(|l| (l.earned_on + Duration::days(expiry_days as i64), l.points))
            .filter(|(exp, _)| *exp > today && *exp <= today + Duration::days(within_days as i64))
            .collect()
    }
}

/// A lot's points that expire soon: told once per lot (the daily sweep writes one notice item
/// per member and lot day, with a condition that it does not exist yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryNotice {
    pub points: i64,
    /// The lot's program day (the points were earned, or became available, that day).
    pub earned_on: NaiveDate,
    /// The program day they expire (they are gone from that day's first change or sweep).
    pub expires_on: NaiveDate,
}

/// Takes up to `points` from the lots in the order given (emptied lots are dropped by the caller).
fn take_from<'a>(lots: impl Iterator<Item = &'a mut Lot>, points: i64) {
    let mut left = points;
    for lot in lots {
        if left == 0 {
            break;
        }
        let take = left.min(lot.points);
        lot.points -= take;
        left -= take;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + Duration::days(n)
    }

    #[test]
    fn spending_takes_the_oldest_lots_first() {
        let mut w = Wallet::default();
        w.earn(100, day(0));
        w.earn(50, day(10));
        w.spend(120).unwrap();
        assert_eq!(w.lots, vec![Lot { earned_on: day(10), points: 30 }]);
        assert_eq!(w.balance, Points(30));
    }

    #[test]
    fn spending_more_than_the_balance_is_refused() {
        let mut w = Wallet::default();
        w.earn(99, day(0));
        assert_eq!(w.spend(100), Err(SpendError::InsufficientPoints { balance: 99, asked: 100 }));
        assert_eq!(w.balance, Points(99));
    }

    #[test]
    fn lots_expire_on_their_365th_day() {
        let mut w = Wallet::default();
        w.earn(10, day(0));
        w.earn(20, day(1));
        assert_eq!(w.expire(day(364), 365), 0);
        assert_eq!(w.expire(day(365), 365), 10);
        assert_eq!(w.balance, Points(20));
        assert_eq!(w.next_expiry(365), Some(day(366)));
    }

    #[test]
    fn a_clawback_beyond_the_lots_is_a_debt_paid_by_later_earnings() {
        let mut w = Wallet::default();
        w.earn(30, day(0));
        w.claw_back(50);
        assert_eq!((w.balance, w.lots.len()), (Points(-20), 0));
        w.earn(25, day(3));
        assert_eq!(w.balance, Points(5));
        assert_eq!(w.lots, vec![Lot { earned_on: day(3), points: 5 }]);
        assert!(w.is_consistent());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Earn(i64, i64),
        Spend(i64),
        Claw(i64),
        Expire(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1i64..5_000, 0i64..800).prop_map(|(p, d)| Op::Earn(p, d)),
            (1i64..5_000).prop_map(Op::Spend),
            (1i64..3_000).prop_map(Op::Claw),
            (0i64..800).prop_map(Op::Expire),
        ]
    }

    proptest! {
        #[test]
        fn balance_equals_the_sum_of_the_ledger_for_any_sequence(ops in proptest::collection::vec(op(), 0..60)) {
            let mut w = Wallet::default();
            let mut ledger = 0i64;
            for o in ops {
                match o {
                    Op::Earn(p, d) => { w.earn(p, day(d)); ledger += p; }
                    Op::Spend(p) => if w.spend(p).is_ok() { ledger -= p; },
                    Op::Claw(p) => { w.claw_back(p); ledger -= p; }
                    Op::Expire(d) => { ledger -= w.expire(day(d), 365); }
                }
                prop_assert!(w.is_consistent(), "{:?}", w);
                prop_assert_eq!(w.balance.0, ledger);
            }
        }

        #[test]
        fn spending_never_uses_an_expired_lot(lots in proptest::collection::vec((1i64..1000, 0i64..900), 1..20), spend in 1i64..5000, today in 0i64..900) {
            let mut w = Wallet::default();
            for (p, d) in lots { w.earn(p, day(d)); }
            // Every points-changing operation expires due lots first, then spends.
            w.expire(day(today), 365);
            let before = w.clone();
            if w.spend(spend).is_ok() {
                prop_assert!(before.lots.iter().all(|l| l.earned_on > day(today) - Duration::days(365)));
                prop_assert_eq!(before.balance.0 - spend, w.balance.0);
            } else {
                prop_assert!(spend > before.balance.0);
                prop_assert_eq!(&before, &w);
            }
        }
    }
}
