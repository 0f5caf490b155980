//! Churn risk: a rule a marketer can read, over recency, frequency and monetary value (RFM),
//! with every threshold in the rules data (`churn`). No model is trained and nothing is
//! learned from the population: each member's band follows from their own record and the day.
//!
//! Each of R, F and M scores 1..5 against four ascending thresholds:
//! - R (recency): program days since the last purchase (or, never having bought, since joining):
//!   at most `recencyDays[0]` → 5, ..., at most `recencyDays[3]` → 2, more → 1;
//! - F (frequency): orders so far: at least `frequencyOrders[3]` → 5, ..., at least
//!   `frequencyOrders[0]` → 2, fewer → 1;
//! - M (monetary): lifetime spend net of refunds (fen), as F with `monetaryFen`.
//!
//! The band: **high** when R = 1 (gone longer than the last recency threshold, however good a
//! customer before) or R + F + M ≤ `highAtMost`; **medium** when R = 2 or the sum is at most
//! `mediumAtMost`; **low** otherwise. Only R moves with time alone, on known days, so a
//! member's band is recomputed on every write of the member and the nightly job visits the
//! member on the day R next drops (`next_change`).

use crate::money::Fen;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

/// The thresholds (`churn` in the rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChurnRules {
    pub recency_days: [u32; 4],
    pub frequency_orders: [u32; 4],
    pub monetary_fen: [i64; 4],
    pub high_at_most: u8,
    pub medium_at_most: u8,
}

impl Default for ChurnRules {
    fn default() -> Self {
        ChurnRules {
            recency_days: [30, 60, 90, 180],
            frequency_orders: [1, 2, 4, 8],
            monetary_fen: [10_000, 50_000, 200_000, 1_000_000],
            high_at_most: 6,
            medium_at_most: 9,
        }
    }
}

impl ChurnRules {
    pub fn validate(&self) -> Result<(), String> {
        let ascending = |v: &[i64]| v.windows(2).all(|w| w[0] < w[1]);
        if self.recency_days[0] == 0 || !ascending(&self.recency_days.map(i64::from)) {
            return Err("churn.recencyDays must be 4 positive days, ascending".into());
        }
        if !ascending(&self.frequency_orders.map(i64::from)) || self.frequency_orders[0] == 0 {
            return Err("churn.frequencyOrders must be 4 positive counts, ascending".into());
        }
        if !ascending(&self.monetary_fen) || self.monetary_fen[0] <= 0 {
            return Err("churn.monetaryFen must be 4 positive amounts, ascending".into());
        }
        if !(3..self.medium_at_most).contains(&self.high_at_most) || self.medium_at_most > 14 {
            return Err("churn: 3 <= highAtMost < mediumAtMost <= 14".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Low,
    Medium,
    High,
}

impl Band {
    pub const ALL: [Band; 3] = [Band::Low, Band::Medium, Band::High];
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Low => "low",
            Band::Medium => "medium",
            Band::High => "high",
        }
    }
    /// One letter: the stored mark's first and the tier index's sort-key prefix.
    pub fn letter(self) -> char {
        match self {
            Band::Low => 'l',
            Band::Medium => 'm',
            Band::High => 'h',
        }
    }
    pub fn of_letter(c: char) -> Option<Band> {
        Band::ALL.into_iter().find(|b| b.letter() == c)
    }
}

/// A member's scores on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    pub recency: u8,
    pub frequency: u8,
    pub monetary: u8,
    pub band: Band,
    /// The first day R drops if nothing happens (none once R is 1).
    pub next_change: Option<NaiveDate>,
}

impl Assessment {
    pub fn score(&self) -> u8 {
        self.recency + self.frequency + self.monetary
    }

    /// What the member item keeps (`churn`): the band's letter and the score, e.g. `h5`
    /// (three bytes: the member item is rewritten by every purchase, and its size is its price).
    pub fn mark(&self) -> String {
        format!("{}{}", self.band.letter(), self.score())
    }
}

/// The band a stored mark names.
pub fn band_of_mark(mark: &str) -> Option<Band> {
    mark.chars().next().and_then(Band::of_letter)
}

/// 5 when `value` is at most the first threshold, down to 1 above the last.
fn score_at_most(value: i64, thresholds: &[i64; 4]) -> u8 {
    5 - thresholds.iter().filter(|t| value > **t).count() as u8
}

/// 1 below the first threshold, up to 5 at or above the last.
fn score_at_least(value: i64, thresholds: &[i64; 4]) -> u8 {
    1 + thresholds.iter().filter(|t| value >= **t).count() as u8
}

/// The member's band on `today`: last seen on `seen` (its last purchase, or its join day),
/// with `orders` orders and `spend` spent.
pub fn assess(
    rules: &ChurnRules,
    seen: NaiveDate,
    today: NaiveDate,
    orders: u32,
    spend: Fen,
) -> Assessment {
    let recency_days = rules.recency_days.map(i64::from);
    let days = (today - seen).num_days().max(0);
    let recency = score_at_most(days, &recency_days);
    let frequency = score_at_least(i64::from(orders), &rules.frequency_orders.map(i64::from));
    let monetary = score_at_least(spend.0, &rules.monetary_fen);
    let sum = recency + frequency + monetary;
    let band = if recency == 1 || sum <= rules.high_at_most {
        Band::High
    } else if recency == 2 || sum <= rules.medium_at_most {
        Band::Medium
    } else {
        Band::Low
    };
    let next_change =
        recency_days.iter().find(|t| days <= **t).map(|t| seen + Duration::days(t + 1));
    Assessment { recency, frequency, monetary, band, next_change }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// A member seen on 2026-01-01, assessed `days` later.
    fn after(days: i64, orders: u32, spend: i64) -> Assessment {
        let seen = d("2026-01-01");
        assess(&ChurnRules::default(), seen, seen + Duration::days(days), orders, Fen(spend))
    }

    #[test]
    fn recency_scores_drop_the_day_after_each_threshold() {
        let r = |days| after(days, 0, 0).recency;
        assert_eq!(
            [r(0), r(30), r(31), r(60), r(61), r(90), r(91), r(180), r(181)],
            [5, 5, 4, 4, 3, 3, 2, 2, 1]
        );
        assert_eq!(after(-3, 0, 0).recency, 5, "a purchase dated after today counts as today");
        assert_eq!(after(0, 0, 0).next_change, Some(d("2026-02-01")), "day 31");
        assert_eq!(after(31, 0, 0).next_change, Some(d("2026-03-03")), "day 61");
        assert_eq!(after(180, 0, 0).next_change, Some(d("2026-07-01")), "day 181");
        assert_eq!(after(181, 0, 0).next_change, None, "R is 1: time changes nothing more");
    }

    #[test]
    fn frequency_and_monetary_score_at_their_thresholds() {
        let f = |orders| after(0, orders, 0).frequency;
        assert_eq!([f(0), f(1), f(2), f(3), f(4), f(7), f(8), f(100)], [1, 2, 3, 3, 4, 4, 5, 5]);
        let m = |spend| after(0, 0, spend).monetary;
        assert_eq!(
            [m(0), m(9_999), m(10_000), m(49_999), m(50_000), m(200_000), m(999_999), m(1_000_000)],
            [1, 1, 2, 2, 3, 4, 4, 5]
        );
        assert_eq!(m(-500), 1, "refunds beyond spend");
    }

    #[test]
    fn bands_at_their_boundaries() {
        // New, never bought: R5 F1 M1 = 7, medium; 31 days on R4 = 6, high.
        assert_eq!((after(0, 0, 0).score(), after(0, 0, 0).band), (7, Band::Medium));
        assert_eq!((after(31, 0, 0).score(), after(31, 0, 0).band), (6, Band::High));
        // The medium line is 9: R4 F3 M2 = 9 is medium, R4 F4 M2 = 10 and R5 F3 M2 = 10 low.
        assert_eq!(after(40, 1, 10_000).band, Band::Medium, "R4 F2 M2 = 8");
        assert_eq!(after(40, 2, 10_000).band, Band::Medium, "R4 F3 M2 = 9");
        assert_eq!(after(40, 4, 10_000).band, Band::Low, "R4 F4 M2 = 10");
        assert_eq!(after(10, 2, 10_000).band, Band::Low, "R5 F3 M2 = 10");
    }

    #[test]
    fn a_best_customer_gone_long_is_high_and_gone_a_while_medium() {
        assert_eq!(
            (after(60, 20, 5_000_000).band, after(60, 20, 5_000_000).score()),
            (Band::Low, 14)
        );
        assert_eq!(after(91, 20, 5_000_000).band, Band::Medium, "R = 2 is at least medium");
        assert_eq!(after(181, 20, 5_000_000).band, Band::High, "R = 1 is high");
    }

    #[test]
    fn the_mark_is_the_band_letter_and_the_score() {
        let a = after(181, 0, 0);
        assert_eq!(a.mark(), "h3");
        assert_eq!(band_of_mark(&a.mark()), Some(Band::High));
        assert_eq!(band_of_mark("m12"), Some(Band::Medium));
        assert_eq!(band_of_mark(""), None);
    }

    #[test]
    fn the_thresholds_must_ascend() {
        assert_eq!(ChurnRules::default().validate(), Ok(()));
        let bad = |f: &dyn Fn(&mut ChurnRules)| {
            let mut r = ChurnRules::default();
            f(&mut r);
            r.validate().is_err()
        };
        assert!(bad(&|r| r.recency_days = [30, 30, 90, 180]));
        assert!(bad(&|r| r.recency_days[0] = 0));
        assert!(bad(&|r| r.frequency_orders = [2, 1, 4, 8]));
        assert!(bad(&|r| r.monetary_fen[0] = 0));
        assert!(bad(&|r| r.high_at_most = 9));
        assert!(bad(&|r| r.medium_at_most = 15));
    }
}
