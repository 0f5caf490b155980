//! The loyalty engine's domain crate, free of the Lambda runtime and HTTP crates.
//!
//! Rules are pure functions (`rules`, `tier`, `ledger`, `coupon`, `calendar`, `member`,
//! `contact`, `birthday`, `limits`): no I/O, the clock and the program rules are inputs.
//! `store` is the DynamoDB adapter (it decodes the table's stream records, whose shape is
//! `aws_lambda_events`' only Lambda-related dependency here: data types, no runtime).
//! `events` says what a stored change means to the platforms around (the events published
//! from the table's stream, `store::stream`). The Lambda edge — HTTP, callers, the runtime
//! loops, what a function builds at init — is the `loyalty` crate (`edge/`), which
//! re-exports this one.

pub mod affiliate;
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
pub mod secrets;
pub mod store;
pub mod tier;
pub mod tier_code;
pub mod views;

pub use error::ApiError;
pub use money::{Fen, Points};
pub use rules::Rules;
pub use tier::TierCode;
