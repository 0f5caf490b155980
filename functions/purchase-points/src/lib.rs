//! purchase-points: the points ledger and checkout.
//!
//! HTTP, order system (IAM): `POST /internal/members/{id}/purchases|refunds|checkouts`,
//! `POST /internal/members/{id}/checkouts/{orderId}/confirm|cancel`.
//! HTTP, the member (JWT): `POST /members/{id}/activities|checkout-preview`,
//! `GET /members/{id}/ledger`. No member route creates a money fact.
//! HTTP, support (operators, IAM): `GET /support/members/{id}/ledger`, and
//! `POST /support/members/{id}/adjustments`, a manual correction (`adjustment.rs`).
//! HTTP, the rewards catalog (`rewards.rs`): operators define it (`/rewards`), members claim
//! with their available points (`/members/{id}/rewards`, `/members/{id}/reward-claims`), the
//! order system or an operator fulfils gifts (`/internal/members/{id}/reward-claims/…`).
//! HTTP, affiliate partners (`partners/`, operators): partners, tracking codes, monthly
//! statements; an order's tracking code earns its partner a commission (`attribution.rs`).
//! SQS: order events (`purchase`, `refund`, `confirm`, `cancel`) from the order system, with
//! partial batch failures; an event that names an order not recorded yet waits (back-off).
//! Schedule: the daily expiry sweep (`{"job": "expiry-sweep"}`): releases and expires what
//! is due, and tells each lot's expiry `expiryNoticeDays` ahead, once (a notice item whose
//! stream record the `events-out` function publishes as `PointsExpiringSoon`).
//!
//! Every points change is: ONE BatchGetItem (member + the order or receipt item that makes
//! the request idempotent + the campaign multipliers), the pure rules of `loyalty::points`,
//! then ONE TransactWriteItems (the member, version-checked; its ledger entries; the order or
//! receipt item, which must not exist yet). A lost race re-reads and redoes; a retry of the
//! same request finds its order/receipt item and gets the first answer again.
//!
//! The one exception to "one read": a referred member's first purchase also reads the
//! referrer's record (a second GetItem), to credit the referral reward in the same
//! transaction. It happens at most once per member lifetime.

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::app::Dependencies;
use loyalty::http::{self, json_body};
use loyalty::member::{Member, MemberId};
use loyalty::points::PointsError;
use loyalty::store::StoreError;
use loyalty::ApiError;
use serde::Serialize;
use std::time::SystemTime;

mod adjustment;
mod attribution;
pub mod checkout;
mod commands;
mod expiry;
mod ledger;
mod order_events;
pub mod partners;
pub mod rewards;
pub(crate) use commands::purchase_side_writes;
pub use commands::{activity, purchase, refund};
pub use expiry::{expire_member, expiry_sweep, handle_schedule, SweepReport, Swept, SWEEP_MARGIN};
pub use ledger::{decode_cursor, encode_cursor, LedgerView, DEFAULT_PAGE, MAX_PAGE};
pub use order_events::{handle_sqs, order_event, retry_delay};

pub struct App {
    pub deps: Dependencies,
    /// For the order-events queue's back-off (ChangeMessageVisibility).
    pub sqs: aws_sdk_sqs::Client,
    /// Coupon codes of the coupons that coupon rewards issue (`COUPON_CODE_SECRET`).
    pub codes: loyalty::coupon::CodeKey,
}

impl App {
    pub async fn from_env() -> Result<App, String> {
        let deps = Dependencies::from_env().await?;
        let sqs = aws_sdk_sqs::Client::new(&loyalty::aws::sdk_config().await);
        let codes = loyalty::coupon::CodeKey::from_env().await?;
        Ok(App { deps, sqs, codes })
    }
}

/// An answer to a points command: the status and the JSON body (kept for replays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub(crate) fn created<T: Serialize>(body: &T) -> Result<Answer, ApiError> {
        Answer::with(201, body)
    }
    fn with<T: Serialize>(status: u16, body: &T) -> Result<Answer, ApiError> {
        Ok(Answer {
            status,
            body: serde_json::to_string(body).map_err(|e| ApiError::Internal(e.to_string()))?,
        })
    }
    fn into_response(self) -> Response<Body> {
        http::raw_json(self.status, self.body.into_bytes())
    }
}

/// Every trigger of the function.
pub async fn handle_trigger(
    app: &App,
    trigger: loyalty::runtime::Trigger,
    deadline: SystemTime,
) -> Result<loyalty::runtime::Outcome, lambda_runtime::Error> {
    use loyalty::runtime::{Outcome, Trigger};
    Ok(match trigger {
        Trigger::Http(req) => Outcome::Http(handle(app, req).await),
        Trigger::Sqs(event) => Outcome::Sqs(handle_sqs(app, event).await),
        Trigger::Schedule(event) => Outcome::Done(handle_schedule(app, event, deadline).await?),
        Trigger::Stream(_) => return Err("purchase-points reads no stream".into()),
    })
}

// ---------------------------------------------------------------------------------------
// HTTP

/// The member's routes (JWT) under `/members/{id}/…` and the order system's (IAM) under
/// `/internal/members/{id}/…`: which family a path belongs to decides who may call it.
const MEMBER_ROUTES: [&str; 3] = ["activities", "checkout-preview", "ledger"];
const ORDER_SYSTEM_ROUTES: [&str; 3] = ["purchases", "refunds", "checkouts"];

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let result = match http::route(&req) {
        (method, p) if rewards::owns(&p) => rewards::handle(app, &req, method, &p).await,
        (method, p) if partners::owns(&p) => partners::handle(app, &req, method, &p).await,
        (method, p)
            if p.len() >= 4
                && p[0] == "internal"
                && p[1] == "members"
                && ORDER_SYSTEM_ROUTES.contains(&p[3]) =>
        {
            order_system(app, &req, method, &p[2..]).await
        }
        (Method::POST, p) if p.len() == 3 && p[0] == "members" && p[2] == "activities" => {
            member_post(app, &req, p[1], true).await
        }
        (Method::POST, p) if p.len() == 3 && p[0] == "members" && p[2] == "checkout-preview" => {
            member_post(app, &req, p[1], false).await
        }
        (Method::GET, p) if p.len() == 3 && p[0] == "members" && p[2] == "ledger" => {
            ledger::ledger(app, &req, p[1], false).await.map(|v| http::json(200, &v))
        }
        (Method::GET, p)
            if p.len() == 4 && p[..2] == ["support", "members"] && p[3] == "ledger" =>
        {
            ledger::ledger(app, &req, p[2], true).await.map(|v| http::json(200, &v))
        }
        (Method::POST, p)
            if p.len() == 4 && p[..2] == ["support", "members"] && p[3] == "adjustments" =>
        {
            adjustment::adjust(app, &req, p[2]).await.map(Answer::into_response)
        }
        (m, p)
            if p.len() == 4
                && p[..2] == ["support", "members"]
                && ["ledger", "adjustments"].contains(&p[3]) =>
        {
            Err(ApiError::MethodNotAllowed(m.to_string()))
        }
        (m, p) if p.len() == 3 && p[0] == "members" && MEMBER_ROUTES.contains(&p[2]) => {
            Err(ApiError::MethodNotAllowed(m.to_string()))
        }
        _ => Err(http::not_found(&req)),
    };
    http::respond(&req, result)
}

/// `p` is the path after `/internal/members`: `{id}/purchases`, `{id}/checkouts/{orderId}/confirm`...
async fn order_system(
    app: &App,
    req: &Request,
    method: Method,
    p: &[&str],
) -> Result<Response<Body>, ApiError> {
    let known = matches!(
        p,
        [_, "purchases" | "refunds" | "checkouts"] | [_, "checkouts", _, "confirm" | "cancel"]
    );
    if !known {
        return Err(http::not_found(req));
    }
    if method != Method::POST {
        return Err(ApiError::MethodNotAllowed(method.to_string()));
    }
    app.deps.caller(req).require_order_system()?;
    let id = member_param(p[0])?;
    let answer = match p {
        [_, "purchases"] => purchase(app, &id, json_body(req)?).await?,
        [_, "refunds"] => refund(app, &id, json_body(req)?).await?,
        [_, "checkouts"] => checkout::quote(app, &id, json_body(req)?).await?,
        [_, "checkouts", order, "confirm"] => {
            checkout::confirm(app, &id, order, optional_body(req)?).await?
        }
        [_, "checkouts", order, _] => checkout::cancel(app, &id, order).await?,
        _ => return Err(http::not_found(req)),
    };
    Ok(answer.into_response())
}

async fn member_post(
    app: &App,
    req: &Request,
    id: &str,
    activities: bool,
) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    app.deps.caller(req).require_member(&id)?;
    let answer = if activities {
        let key = http::idempotency_key(req)?;
        activity(app, &id, json_body(req)?, key).await?
    } else {
        checkout::preview(app, &id, json_body(req)?).await?
    };
    Ok(answer.into_response())
}

/// A JSON body that may be left out (`{}` is assumed).
fn optional_body<T: serde::de::DeserializeOwned + Default>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_body(req)
}

pub(crate) fn member_param(id: &str) -> Result<MemberId, ApiError> {
    MemberId::parse(id).ok_or_else(|| {
        ApiError::bad_request("invalid_member_id", "the member id in the path is not valid")
    })
}

pub(crate) fn points_refusal(e: PointsError) -> ApiError {
    ApiError::unprocessable(e.code(), e.to_string())
}

fn no_member() -> ApiError {
    ApiError::not_found("member_not_found", "no such member")
}

/// The member as read, unless missing or erased.
pub(crate) fn live_member(member: Option<Member>) -> Result<Member, ApiError> {
    member.filter(|m| !m.is_erased()).ok_or_else(no_member)
}

/// The same request again gets the first answer; another request under the same key is a 409.
pub(crate) fn replay(
    stored_fingerprint: &str,
    fingerprint: &str,
    answer: Answer,
    code: &'static str,
    what: &str,
) -> Result<Answer, ApiError> {
    if stored_fingerprint == fingerprint {
        Ok(answer)
    } else {
        Err(ApiError::conflict(code, format!("{what} was already recorded with a different body")))
    }
}

pub(crate) fn still_contended() -> ApiError {
    StoreError::Contended.into()
}
