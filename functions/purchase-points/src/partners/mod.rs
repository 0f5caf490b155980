//! Affiliate partners, operators only (IAM):
//!
//! - `POST /partners` (optional `Idempotency-Key`): a partner with its first tracking code;
//! - `GET /partners/{id}`, `PATCH /partners/{id}` (name, rates, status `active|inactive`);
//! - `POST /partners/{id}/codes`: one more tracking code;
//! - `GET /partners/{id}/statements/{month}`: the month's orders, commission pending,
//!   payable, reversed and paid;
//! - `POST /partners/{id}/statements/{month}/paid`: marks the month paid, once.
//!
//! Partners have no API access of their own. Orders earn commissions in the order routes
//! (`attribution.rs`); nothing here touches a member.

use crate::{still_contended, App};
use aws_sdk_dynamodb::types::TransactWriteItem;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::affiliate::{self, Partner, PartnerError, PartnerPatch, PartnerRequest};
use loyalty::http::{self, json_body};
use loyalty::store::partner::PartnerItem;
use loyalty::store::{backoff, TxFailure, MAX_ATTEMPTS};
use loyalty::ApiError;
use serde::Serialize;
use statements::{mark_paid, month_param, statement};

mod statements;

/// Whether the path is one of the partner routes.
pub fn owns(p: &[&str]) -> bool {
    matches!(p, ["partners", ..])
}

pub async fn handle(
    app: &App,
    req: &Request,
    method: Method,
    p: &[&str],
) -> Result<Response<Body>, ApiError> {
    let known = matches!(
        p,
        ["partners"]
            | ["partners", _]
            | ["partners", _, "codes"]
            | ["partners", _, "statements", _]
            | ["partners", _, "statements", _, "paid"]
    );
    if !known {
        return Err(http::not_found(req));
    }
    app.deps.caller(req).require_operator()?;
    match (method.clone(), p) {
        (Method::POST, ["partners"]) => create(app, req).await,
        (Method::GET, ["partners", id]) => show(app, partner_param(id)?).await,
        (Method::PATCH, ["partners", id]) => update(app, partner_param(id)?, json_body(req)?).await,
        (Method::POST, ["partners", id, "codes"]) => add_code(app, partner_param(id)?).await,
        (Method::GET, ["partners", id, "statements", month]) => {
            let month = month_param(month)?;
            statement(app, partner_param(id)?, &month).await
        }
        (Method::POST, ["partners", id, "statements", month, "paid"]) => {
            let month = month_param(month)?;
            mark_paid(app, partner_param(id)?, &month).await
        }
        _ => Err(ApiError::MethodNotAllowed(method.to_string())),
    }
}

fn partner_param(id: &str) -> Result<&str, ApiError> {
    http::id_param(id, "the partner id", "invalid_partner_id")
}

fn refused(e: PartnerError) -> ApiError {
    ApiError::unprocessable(e.code(), e.to_string())
}

pub(super) fn partner_not_found() -> ApiError {
    ApiError::not_found("partner_not_found", "no such partner")
}

/// A partner as operators see it; with `trackingCode` when the call made a new code.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PartnerView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tracking_code: Option<&'a str>,
    #[serde(flatten)]
    partner: &'a Partner,
}

fn view(status: u16, partner: &Partner, new_code: Option<&str>) -> Response<Body> {
    http::json(status, &PartnerView { tracking_code: new_code, partner })
}

/// Commits one partner transaction; a failed condition or a conflict means "try again" (a
/// clashing new code or another operator's change: the next attempt reads or draws anew).
pub(super) async fn try_commit(
    app: &App,
    writes: Vec<TransactWriteItem>,
    attempt: u32,
) -> Result<Option<Vec<usize>>, ApiError> {
    match app.deps.store.transact(writes).await {
        Ok(()) => Ok(None),
        Err(TxFailure::Conditions(failed)) => Ok(Some(failed)),
        Err(TxFailure::Conflict) => {
            backoff(attempt).await;
            Ok(Some(Vec::new()))
        }
        Err(TxFailure::Store(e)) => Err(e.into()),
    }
}

/// Registers a partner with its first code. With an `Idempotency-Key` its id derives from the
/// key: the same definition again answers the partner as it is, another one is a 409.
async fn create(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: PartnerRequest = json_body(req)?;
    let key = http::idempotency_key(req)?;
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    let fingerprint = http::fingerprint(&body);
    let id = affiliate::new_partner_id(key.as_deref());
    for attempt in 0..MAX_ATTEMPTS {
        // Under a key the first code derives from it (a retry asks for the same); a clash with
        // another partner's code draws a random one.
        let code = match (&key, attempt) {
            (Some(k), 0) => affiliate::code_for_key(rules, k),
            _ => affiliate::new_code(rules),
        };
        let partner = body
            .clone()
            .validate(id.clone(), code.clone(), rules, app.deps.clock.now())
            .map_err(refused)?;
        let item = PartnerItem::new(partner, fingerprint.clone());
        match try_commit(app, store.new_partner_writes(&item)?, attempt).await? {
            None => {
                tracing::info!(partner_id = %id, "partner registered");
                return Ok(view(201, &item.partner, Some(&code)));
            }
            // Only an Idempotency-Key retry can name an existing partner id.
            Some(failed) if failed.contains(&0) => {
                let existing = store.partner(&id).await?.ok_or_else(partner_not_found)?;
                return match existing.fingerprint == fingerprint {
                    true => Ok(view(
                        201,
                        &existing.partner,
                        existing.partner.codes.first().map(String::as_str),
                    )),
                    false => Err(ApiError::conflict(
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for another partner",
                    )),
                };
            }
            Some(_) => {}
        }
    }
    Err(still_contended())
}

async fn show(app: &App, id: &str) -> Result<Response<Body>, ApiError> {
    let item = app.deps.store.partner(id).await?.ok_or_else(partner_not_found)?;
    Ok(view(200, &item.partner, None))
}

/// Changes a partner: the next version under the version read, with every code item
/// rewritten in the same transaction, so orders see the new terms at once.
async fn update(app: &App, id: &str, patch: PartnerPatch) -> Result<Response<Body>, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    for attempt in 0..MAX_ATTEMPTS {
        let item = store.partner(id).await?.ok_or_else(partner_not_found)?;
        let next =
            item.partner.patched(patch.clone(), rules, app.deps.clock.now()).map_err(refused)?;
        let next = PartnerItem { partner: next, ..item.clone() };
        let writes = store.partner_change_writes(&next, item.partner.version, None)?;
        match try_commit(app, writes, attempt).await? {
            None => {
                tracing::info!(partner_id = %id, version = next.partner.version, "partner changed");
                return Ok(view(200, &next.partner, None));
            }
            Some(_) => backoff(attempt).await,
        }
    }
    Err(still_contended())
}

/// One more tracking code (each call makes a new one; a partner has at most
/// `affiliates.maxCodesPerPartner`).
async fn add_code(app: &App, id: &str) -> Result<Response<Body>, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    for attempt in 0..MAX_ATTEMPTS {
        let item = store.partner(id).await?.ok_or_else(partner_not_found)?;
        let code = affiliate::new_code(rules);
        let next =
            item.partner.with_code(code.clone(), rules, app.deps.clock.now()).map_err(refused)?;
        let next = PartnerItem { partner: next, ..item.clone() };
        let writes = store.partner_change_writes(&next, item.partner.version, Some(&code))?;
        match try_commit(app, writes, attempt).await? {
            None => {
                tracing::info!(partner_id = %id, "tracking code added");
                return Ok(view(201, &next.partner, Some(&code)));
            }
            Some(_) => backoff(attempt).await,
        }
    }
    Err(still_contended())
}
