//! signup: `POST /members` (join), `GET /members/{id}` (profile), `DELETE /members/{id}`
//! (erase), and support's `PUT /members/{id}/birthday`, `POST /support/members/search` and
//! `DELETE /support/members/{id}` (operators, IAM; `support.rs`).

use chrono::Datelike;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::app::Dependencies;
use loyalty::birthday::{self};
use loyalty::contact::ContactKey;
use loyalty::coupon::CodeKey;
use loyalty::http::{self};
use loyalty::member::MemberId;
use loyalty::runtime::{Outcome, Trigger};
use loyalty::ApiError;

mod birthday_change;
mod join;
pub mod support;

use birthday_change::set_birthday;
use join::join;

pub struct App {
    pub deps: Dependencies,
    pub codes: CodeKey,
    /// Keys contact details (uniqueness items, tombstones) by keyed digest.
    pub contacts: ContactKey,
}

impl App {
    pub async fn from_env() -> Result<App, String> {
        Ok(App {
            deps: Dependencies::from_env().await?,
            codes: CodeKey::from_env().await?,
            contacts: ContactKey::from_env().await?,
        })
    }
}

/// Every trigger of the function: only its HTTP routes.
pub async fn handle_trigger(app: &App, trigger: Trigger) -> Result<Outcome, lambda_runtime::Error> {
    match trigger {
        Trigger::Http(req) => Ok(Outcome::Http(handle(app, req).await)),
        _ => Err("signup is reached only through its HTTP routes".into()),
    }
}

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let result = match http::route(&req) {
        (Method::POST, p) if p == ["members"] => join(app, &req).await,
        (Method::POST, p) if p == ["support", "members", "search"] => {
            support::search(app, &req).await
        }
        (Method::DELETE, p) if p.len() == 3 && p[0] == "support" && p[1] == "members" => {
            support::erase(app, &req, p[2]).await
        }
        (m, p) if p.first() == Some(&"support") && p.len() == 3 => {
            Err(ApiError::MethodNotAllowed(m.to_string()))
        }
        (Method::GET, p) if p.len() == 2 && p[0] == "members" => profile(app, &req, p[1]).await,
        (Method::DELETE, p) if p.len() == 2 && p[0] == "members" => erase(app, &req, p[1]).await,
        (Method::PUT, p) if p.len() == 3 && p[0] == "members" && p[2] == "birthday" => {
            set_birthday(app, &req, p[1]).await
        }
        (m, p)
            if p.first() == Some(&"members")
                && (p.len() <= 2 || (p.len() == 3 && p[2] == "birthday")) =>
        {
            Err(ApiError::MethodNotAllowed(m.to_string()))
        }
        _ => Err(http::not_found(&req)),
    };
    http::respond(&req, result)
}

pub(crate) fn member_param(id: &str) -> Result<MemberId, ApiError> {
    MemberId::parse(id).ok_or_else(|| {
        ApiError::bad_request("invalid_member_id", "the member id in the path is not valid")
    })
}

async fn profile(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    app.deps.caller(req).require_member(&id)?;
    let (mut member, coupons) = match app.deps.store.member_with_coupons(id.as_str()).await? {
        Some((m, c)) if !m.is_erased() => (m, c),
        _ => return Err(ApiError::not_found("member_not_found", "no such member")),
    };
    // Shown as the next write will find it: pending points past their window are available,
    // due lots are gone (the write itself happens on the member's next change or the sweep).
    let now = app.deps.clock.now();
    loyalty::points::settle(
        &mut member,
        &app.deps.rules,
        loyalty::calendar::program_date(app.deps.rules.time_zone, now),
        now,
    );
    Ok(http::json(200, &loyalty::views::ProfileView::of(&member, &coupons, &app.deps.rules, now)))
}

async fn erase(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    app.deps.caller(req).require_member(&id)?;
    erase_member(app, &id).await?;
    tracing::info!(member_id = %id, "personal data erased");
    Ok(Response::builder().status(204).body(Body::Empty).expect("static response"))
}

/// The erasure itself, whoever asked for it: the member or support.
pub(crate) async fn erase_member(app: &App, id: &MemberId) -> Result<(), ApiError> {
    let (rules, now) = (&app.deps.rules, app.deps.clock.now());
    // This year's birthday coupon, if the member holds it, goes into the tombstones: a new
    // account with the same contact gets no second one this year.
    let year = loyalty::calendar::program_date(rules.time_zone, now).year();
    let birthday_coupon = app.codes.code(id.as_str(), &birthday::grant(year), 0);
    if !app
        .deps
        .store
        .erase_member(id.as_str(), &app.contacts, &birthday_coupon, rules, now)
        .await?
    {
        return Err(ApiError::not_found("member_not_found", "no such member"));
    }
    Ok(())
}
