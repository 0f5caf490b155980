//! The parts of a member record besides its wallet: spend days (the tier window), checkout
//! holds, today's activity counters and the mark an import left. Their attribute names are one
//! letter because every member write rewrites them (the item's size is its price).

use crate::money::Fen;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// What an import left on the member it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportMark {
    /// The import (one upload of a file) and the line of it that wrote the member.
    #[serde(rename = "j")]
    pub job: String,
    #[serde(rename = "l")]
    pub line: u64,
    /// Digest of the line's meaning (`migration::ImportLine::digest`), not of its bytes.
    #[serde(rename = "h")]
    pub digest: String,
    /// The member's version the import wrote: any later write (a purchase, a check-in, a
    /// coupon's use...) moves the version on, which is how "no activity since" is told.
    #[serde(rename = "v")]
    pub version: u64,
    /// The line corrected a member an earlier import wrote (counted `updated`, not `imported`).
    #[serde(rename = "u", default, skip_serializing_if = "std::ops::Not::not")]
    pub updated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendDay {
    #[serde(rename = "d")]
    pub day: NaiveDate,
    #[serde(rename = "a")]
    pub amount: Fen,
}

/// Coupons and points held for one order until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    #[serde(rename = "o")]
    pub order_id: String,
    #[serde(rename = "p", default)]
    pub points: i64,
    /// Rebate balance held, in fen.
    #[serde(rename = "r", default, skip_serializing_if = "crate::money::is_zero")]
    pub rebate: i64,
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub coupons: Vec<String>,
    #[serde(rename = "u")]
    pub until: DateTime<Utc>,
}

impl Hold {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.until
    }
}

/// Today's activity counters, kept on the member record so the daily limits are checked
/// by a pure function (and enforced by the member's version condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActivityDay {
    #[serde(rename = "d")]
    pub day: NaiveDate,
    #[serde(rename = "p")]
    pub points: i64,
    #[serde(rename = "s")]
    pub shares: u32,
}

impl crate::compact::Dated for SpendDay {
    fn day(&self) -> NaiveDate {
        self.day
    }
    fn amount(&self) -> i64 {
        self.amount.0
    }
    fn from_parts(day: NaiveDate, amount: i64) -> SpendDay {
        SpendDay { day, amount: Fen(amount) }
    }
}
