//! The Lambda edge every function shares, over the domain crate (`loyalty_domain`, all of it
//! re-exported here, so a function depends on `loyalty` alone):
//!
//! - `http`: requests and problem+json answers, bodies, paths, idempotency fingerprints;
//! - `auth`: who is calling (a member's token, the order system, an operator) and what they
//!   may do;
//! - `runtime`: the Lambda loops (HTTP, SQS with partial batch failures, streams, schedules);
//! - `app`: what a function builds once at init (logging, rules, store, clock, callers).

pub use loyalty_domain::*;

pub mod app;
pub mod auth;
pub mod http;
pub mod runtime;
