//! Rewards (积分兑换): the catalog and its claims.
//!
//! - Operators (IAM): `POST /rewards` (with an optional `Idempotency-Key`), `GET /rewards`,
//!   `PATCH /rewards/{id}`, `POST /rewards/{id}/deactivate`.
//! - The member (JWT): `GET /members/{id}/rewards` (what they can claim now),
//!   `POST /members/{id}/reward-claims` (with an `Idempotency-Key`), `GET /members/{id}/reward-claims`.
//! - The order system or an operator (IAM):
//!   `POST /internal/members/{id}/reward-claims/{claimId}/fulfilment` (a gift shipped or cancelled).
//!
//! It lives in purchase-points because a claim is a points change like a checkout's confirm:
//! the same one read (a BatchGetItem of the member, the claim's receipt, the member's limit
//! counters and the reward), the same settle-then-spend rules and the same one versioned
//! transaction, now with the reward's stock counter, the claim and, for a coupon reward, the
//! coupon in it. A member may spend only their own available points on the catalog: no route
//! here creates points.
//!
//! The member's catalog is the one read-only call that reads twice: the catalog (one Query of
//! its partition) and then the member with the counters of the rewards it lists (one
//! BatchGetItem), as the second depends on the first.

use crate::{live_member, member_param, replay, still_contended, Answer, App};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::calendar::program_date;
use loyalty::coupon;
use loyalty::http::{self, json_body};
use loyalty::ledger::LedgerEntry;
use loyalty::member::MemberId;
use loyalty::points;
use loyalty::reward::{
    self, Claim, ClaimError, ClaimRequest, ClaimStatus, FulfilmentRequest, Reward, RewardError,
    RewardKind, RewardPatch, RewardRequest, Step,
};
use loyalty::store::change::{Attempt, Failed, Judge};
use loyalty::store::keys;
use loyalty::store::receipt::Receipt;
use loyalty::store::reward::RewardItem;
use loyalty::store::{backoff, Cond, TxFailure, MAX_ATTEMPTS};
use loyalty::ApiError;
use serde::Serialize;

mod catalog;
mod claims;
mod fulfilment;
use catalog::*;
use claims::*;
use fulfilment::*;

/// Whether the path is one of the rewards routes.
pub fn owns(p: &[&str]) -> bool {
    matches!(
        p,
        ["rewards", ..]
            | ["members", _, "rewards" | "reward-claims"]
            | ["internal", "members", _, "reward-claims", ..]
            | ["support", "members", _, "reward-claims"]
    )
}

pub async fn handle(
    app: &App,
    req: &Request,
    method: Method,
    p: &[&str],
) -> Result<Response<Body>, ApiError> {
    let not_allowed = || Err(ApiError::MethodNotAllowed(method.to_string()));
    match (method.clone(), p) {
        (Method::POST, ["rewards"]) => create(app, req).await,
        (Method::GET, ["rewards"]) => list(app, req).await,
        (_, ["rewards"]) => not_allowed(),
        (Method::PATCH, ["rewards", id]) => update(app, req, id).await,
        (_, ["rewards", _]) => not_allowed(),
        (Method::POST, ["rewards", id, "deactivate"]) => deactivate(app, req, id).await,
        (_, ["rewards", _, "deactivate"]) => not_allowed(),
        (Method::GET, ["members", id, "rewards"]) => catalog(app, req, id).await,
        (_, ["members", _, "rewards"]) => not_allowed(),
        (Method::POST, ["members", id, "reward-claims"]) => {
            claim(app, req, id).await.map(Answer::into_response)
        }
        (Method::GET, ["members", id, "reward-claims"]) => claims(app, req, id, false).await,
        // Support sees the same list, to ship or cancel a member's gift from the console.
        (Method::GET, ["support", "members", id, "reward-claims"]) => {
            claims(app, req, id, true).await
        }
        (_, ["support", "members", _, "reward-claims"]) => not_allowed(),
        (_, ["members", _, "reward-claims"]) => not_allowed(),
        (Method::POST, ["internal", "members", id, "reward-claims", claim_id, "fulfilment"]) => {
            fulfil(app, req, id, claim_id).await
        }
        (_, ["internal", "members", _, "reward-claims", _, "fulfilment"]) => not_allowed(),
        _ => Err(http::not_found(req)),
    }
}

fn refused_reward(e: RewardError) -> ApiError {
    match e.status() {
        409 => ApiError::conflict(e.code(), e.to_string()),
        _ => ApiError::unprocessable(e.code(), e.to_string()),
    }
}

fn refused_claim(e: ClaimError) -> ApiError {
    match e.status() {
        409 => ApiError::conflict(e.code(), e.to_string()),
        _ => ApiError::unprocessable(e.code(), e.to_string()),
    }
}

fn reward_param(id: &str) -> Result<&str, ApiError> {
    http::id_param(id, "the reward id", "invalid_reward_id")
}

fn reward_not_found() -> ApiError {
    ApiError::not_found("reward_not_found", "no such reward")
}
