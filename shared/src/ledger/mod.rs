//! The points wallet and its ledger. Earned points form dated lots; redemptions spend the
//! oldest lots first; lots expire a fixed number of days after they were earned; a
//! clawback may leave a debt that later earnings pay off first.
//!
//! Points earned by an order are *pending* through the return window: they sit in `pending`
//! (one lot per source, with its release day), count for nothing, and become an ordinary lot
//! dated by their release day when it comes, so expiry counts from availability.
//!
//! The wallet also holds the member's order rebates (返利), in fen: credited pending on the
//! order's pending lot (same source, same release day), then added to `rebate`, which orders
//! may spend at checkout and refunds may take below zero (a debt later rebates pay first).
//! Rebates do not expire.
//!
//! Invariant (checked by `Wallet::is_consistent` and the property tests): a non-negative
//! balance equals the sum of its lots; a negative balance (a debt) has no lots; pending lots
//! hold no negative amount and something. The ledger keeps all four: Σ entry `points` =
//! balance, Σ entry `pending` = the pending total, Σ entry `rebate` = the rebate balance,
//! Σ entry `rebatePending` = the pending rebates.
use crate::money::{Fen, Points};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod wallet;
pub use wallet::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Welcome,
    Purchase,
    Refund,
    Redemption,
    Activity,
    Referral,
    Expiry,
    /// Points an order spent, given back by its refund.
    Returned,
    /// Pending points that became available at the end of the return window.
    Release,
    /// Points spent on a reward of the catalog (negative), or given back when a gift claim is
    /// cancelled (positive): their sum is what rewards cost.
    Reward,
    /// Rebate balance spent on an order at checkout (its `rebate` is negative). Rebates
    /// credited, released, reversed or given back ride on the order's own entry (purchase,
    /// release, refund, returned): one ledger item per event, whatever it moves.
    Rebate,
    /// A manual correction by support (positive or negative), with the operator's reason; who
    /// made it is kept in the adjustment's receipt, which the entry's reference names.
    Adjustment,
    /// Points brought from another program by a migration import: one entry per lot of the
    /// line, or one for the difference when a corrected line is applied.
    Import,
    /// Points given by an operator's bulk award, with its reason; the reference is the award's
    /// id (one entry per member per award: the grant slot `GRANT#award:<id>#0` guards it).
    Award,
}

/// One line of a member's points ledger. The balance is always the sum of the entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub kind: EntryKind,
    /// The change to the available balance.
    pub points: Points,
    pub balance_after: Points,
    /// The change to the pending points (earned, released or cancelled inside the window).
    #[serde(default, skip_serializing_if = "Points::is_zero")]
    pub pending: Points,
    /// The change to the available rebate balance, in fen.
    #[serde(default, skip_serializing_if = "Fen::is_zero")]
    pub rebate: Fen,
    /// The change to the pending rebates, in fen.
    #[serde(default, skip_serializing_if = "Fen::is_zero")]
    pub rebate_pending: Fen,
    pub reason: String,
    /// What caused it: an order id, refund id, activity ref... (never personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub at: DateTime<Utc>,
}
