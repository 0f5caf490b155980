//! Bumps: the counters a stored change adds, under a marker that makes it count once, and
//! the facts (once per member and day, month or cohort window) it carries.

use super::*;

/// What a counter belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A program-calendar day.
    Day(NaiveDate),
    /// The running totals (liability, live members per tier) as of the last change.
    Total,
    /// A grant's results; the day is the one it was first counted (its run's day).
    Grant(String, NaiveDate),
    /// A member's campaign coupons (their issue days), read when the member buys.
    Touch(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub target: Target,
    pub counter: String,
    pub n: i64,
}

/// Counters added once per marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bump {
    /// What makes this bump once: a stream change's identity, or a fact's.
    pub marker: String,
    /// How long the marker must be kept (days from now): as long as a repeat can come.
    pub keep_days: i64,
    pub adds: Vec<Add>,
    /// Tried instead when the marker exists already (a fact's).
    pub otherwise: Option<Box<Bump>>,
    /// Facts the change brings, counted with it or not at all.
    pub facts: Vec<Bump>,
    /// An order of this member on this day, and what it paid: the store adds its conversion
    /// facts (and the arms' spend) from the member's campaign coupons.
    pub bought: Option<(String, NaiveDate, i64)>,
}

impl Bump {
    pub fn new(marker: String, keep_days: i64) -> Bump {
        Bump {
            marker,
            keep_days,
            adds: Vec::new(),
            otherwise: None,
            facts: Vec::new(),
            bought: None,
        }
    }

    pub fn add(mut self, target: Target, counter: &str, n: i64) -> Bump {
        if n != 0 {
            self.adds.push(Add { target, counter: counter.into(), n });
        }
        self
    }

    pub fn day(self, day: NaiveDate, counter: &str, n: i64) -> Bump {
        self.add(Target::Day(day), counter, n)
    }

    /// A change of a running figure: the day's delta and the total.
    pub fn running(self, day: NaiveDate, counter: &str, n: i64) -> Bump {
        self.add(Target::Day(day), counter, n).add(Target::Total, counter, n)
    }

    pub fn or_else(mut self, other: Bump) -> Bump {
        self.otherwise = Some(Box::new(other));
        self
    }

    pub fn bought(mut self, member: &str, day: NaiveDate, paid: Fen) -> Bump {
        self.bought = Some((member.to_string(), day, paid.0));
        self
    }

    /// A campaign coupon issued to `member` on `day` (or the member held out), in `arm`.
    pub fn touch(self, member: &str, grant: &str, arm: Option<&str>, day: NaiveDate) -> Bump {
        let n = i64::from(day.num_days_from_ce());
        self.add(Target::Touch(member.to_string()), &touch_of(grant, arm), n)
    }

    pub fn with_facts(mut self, facts: Vec<Bump>) -> Bump {
        self.facts.extend(facts);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.otherwise.is_none() && self.facts.is_empty()
    }
}

/// A record's stream change adds nothing again for this long: DynamoDB Streams keeps records
/// 24 hours and the mapping gives up on a record a day old.
pub const REDELIVERY_DAYS: i64 = 3;
/// Facts dated by a purchase's day stay counted once while a purchase of that day can still
/// be reported (a purchase older than the points' life is refused).
pub const FACT_DAYS: i64 = 400;

/// A member's first order, `gap` program days after joining: counted on the join day in each
/// window it falls in.
pub fn cohort_windows(gap: i64) -> Vec<&'static str> {
    [(30, COHORT_BOUGHT_30), (60, COHORT_BOUGHT_60), (90, COHORT_BOUGHT_90)]
        .into_iter()
        .filter(|(days, _)| (0..=*days).contains(&gap))
        .map(|(_, c)| c)
        .collect()
}

/// The buyer facts of an order: the member's first order of the day (a buyer), and the first
/// and second of the month (the month's buyers and repeat buyers).
pub fn buyer_facts(member: &str, day: NaiveDate) -> Vec<Bump> {
    let month = format!("{:04}-{:02}", day.year(), day.month());
    let buyer = Bump::new(format!("buyer#{member}#{day}"), FACT_DAYS).day(day, BUYERS, 1);
    let second =
        Bump::new(format!("month#{member}#{month}#2"), FACT_DAYS).day(day, MONTH_REPEAT_BUYERS, 1);
    let first = Bump::new(format!("month#{member}#{month}#1"), FACT_DAYS)
        .day(day, MONTH_BUYERS, 1)
        .or_else(second);
    vec![buyer, first]
}
