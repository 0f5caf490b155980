//! The loyalty engine's domain crate.
//!
//! Rules are pure functions (`rules`, `tier`, `ledger`, `coupon`, `calendar`, `member`,
//! `contact`, `birthday`, `limits`): no I/O, the clock and the program rules are inputs.
//! `store` is the DynamoDB adapter, `http` and `auth` are the thin edge shared by every
//! Lambda function, `app` builds what a function needs once, at init. `events` says what a
//! stored change means to the platforms around (the events published from the table's
//! stream, `store::stream`).

pub mod affiliate;
pub mod app;
pub mod auth;
pub mod aws;
pub mod birthday;
pub mod calendar;
pub mod campaign;
pub mod checkout;
pub mod churn;
pub mod compact;
pub mod contact;
pub mod coupon;
pub mod error;
pub mod events;
pub mod http;
pub mod kpi;
pub mod ledger;
pub mod limits;
pub mod member;
pub mod migration;
pub mod money;
pub mod points;
pub mod queue;
pub mod reward;
pub mod rules;
pub mod runtime;
pub mod secrets;
pub mod store;
pub mod tier;
pub mod tier_code;
pub mod views;

pub use error::ApiError;
pub use money::{Fen, Points};
pub use rules::Rules;
pub use tier::TierCode;
