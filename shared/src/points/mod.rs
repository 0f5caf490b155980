//! Points rules: purchases, refunds (proportional clawback), redemptions, activities and
//! expiry. Pure functions over the member record, the rules and the clock; the
//! `purchase-points` function persists what they decide in one transaction.

mod activity;
pub mod award;
mod earn;
mod expiry;
mod refund;
mod request;

pub use activity::*;
pub use earn::*;
pub use expiry::*;
pub use refund::*;
pub use request::*;

#[cfg(test)]
mod tests;
