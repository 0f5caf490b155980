//! The tier vocabulary the member record and the rules are written in: the tier codes, in
//! rank order, and the record of when a tier was reached. No rule lives here (see `tier`), so
//! every other module can name a tier without depending on the tier rules.

use crate::money::Fen;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierCode {
    Regular,
    Silver,
    Gold,
    Diamond,
}

impl TierCode {
    pub const ALL: [TierCode; 4] =
        [TierCode::Regular, TierCode::Silver, TierCode::Gold, TierCode::Diamond];

    pub fn as_str(self) -> &'static str {
        match self {
            TierCode::Regular => "regular",
            TierCode::Silver => "silver",
            TierCode::Gold => "gold",
            TierCode::Diamond => "diamond",
        }
    }

    pub fn parse(s: &str) -> Option<TierCode> {
        TierCode::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn rank(self) -> usize {
        self as usize
    }

    pub fn below(self) -> Option<TierCode> {
        self.rank().checked_sub(1).map(|r| TierCode::ALL[r])
    }

    pub fn above(self) -> Option<TierCode> {
        TierCode::ALL.get(self.rank() + 1).copied()
    }
}

impl fmt::Display for TierCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last time a tier's threshold was met by the rolling spend (at a purchase), and the part
/// of that rolling spend that is still kept (refunds of orders it counted are taken off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    #[serde(rename = "t")]
    pub tier: TierCode,
    #[serde(rename = "at")]
    pub at: DateTime<Utc>,
    #[serde(rename = "k")]
    pub kept: Fen,
}
