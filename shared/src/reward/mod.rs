//! Rewards (积分兑换): a catalog of coupons and gifts that members buy with their available
//! points. Pure rules over the reward as read, the member as read and the clock;
//! `purchase-points` persists what they decide, every claim in one transaction.
//!
//! - Operators define rewards (`RewardRequest`), change them (`RewardPatch`: every change
//!   makes a new `version`) and deactivate them. A claim is charged the price the member was
//!   shown: it names that price, and a reward whose price changed since refuses it
//!   (`price_changed`) rather than charge another.
//! - A member claims with their *available* points: the balance less what open checkouts
//!   hold; pending points (the return window) are not in the balance at all. Points are spent
//!   oldest lot first, with a `reward` ledger entry naming the claim.
//! - A coupon reward issues its coupon in the claim's transaction; a gift reward records a
//!   claim the shop fulfils: `pending` until the order system or an operator marks it
//!   `shipped` or `cancelled`. Cancelling gives the points back (a `reward` entry of the
//!   price, dated like the lot they were spent from), the unit back to the stock and the
//!   claim back to the member's limit.

mod catalog;
mod claim;
mod definition;
mod fulfilment;
mod offer;

pub use catalog::*;
pub use claim::*;
pub use definition::*;
pub use fulfilment::*;
pub use offer::*;

#[cfg(test)]
mod tests;
