//! Support's view of one member (operators, IAM): `POST /support/members/search` finds a
//! member by id or by a verified email or phone, and answers the profile with the tier
//! history; `DELETE /support/members/{id}` erases on a data-subject request made to support.
//!
//! The search takes its contact in the body, never in the path or query string: URLs end up
//! in access logs, browser history and proxies, bodies do not.

use crate::{member_param, App};
use lambda_http::{Body, Request, Response};
use loyalty::contact::{self, ContactKind};
use loyalty::http::{self, json_body};
use loyalty::member::MemberId;
use loyalty::ApiError;
use serde::{Deserialize, Serialize};

/// Exactly one of the three keys.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchRequest {
    #[serde(default)]
    member_id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Found<'a> {
    /// How the member was found: `memberId`, `email` or `phone`.
    matched_by: &'static str,
    profile: loyalty::views::ProfileView<'a>,
    /// Every tier change, oldest first.
    tier_history: Vec<loyalty::tier::TierChange>,
}

fn search_refused(code: &'static str, detail: &str) -> ApiError {
    ApiError::unprocessable(code, detail.to_string())
}

pub async fn search(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let body: SearchRequest = json_body(req)?;
    let store = &app.deps.store;
    let (id, matched_by) = match (&body.member_id, &body.email, &body.phone) {
        (Some(id), None, None) => (member_param(id)?, "memberId"),
        (None, Some(email), None) => {
            let email = contact::normalize_email(email).ok_or_else(|| {
                search_refused("invalid_email", "email is not a valid email address")
            })?;
            let digest = app.contacts.email(&email);
            (found(store.member_by_contact(&digest, ContactKind::Email).await?)?, "email")
        }
        (None, None, Some(phone)) => {
            let phone = contact::normalize_phone(phone).ok_or_else(|| {
                search_refused("invalid_phone", "phone must be in E.164 form, e.g. +8613800138000")
            })?;
            let digest = app.contacts.phone(&phone);
            (found(store.member_by_contact(&digest, ContactKind::Phone).await?)?, "phone")
        }
        _ => {
            return Err(search_refused(
                "one_search_key",
                "give exactly one of memberId, email or phone",
            ))
        }
    };
    // Support's page is read rarely and by people: the documented exception to one read per
    // call (contact item, then the member's partition, then its tier history).
    let Some((mut member, coupons)) =
        store.member_with_coupons(id.as_str()).await?.filter(|(m, _)| !m.is_erased())
    else {
        return Err(no_member());
    };
    let tier_history = store.tier_history(id.as_str()).await?;
    let (rules, now) = (&app.deps.rules, app.deps.clock.now());
    loyalty::points::settle(
        &mut member,
        rules,
        loyalty::calendar::program_date(rules.time_zone, now),
        now,
    );
    tracing::info!(member_id = %id, matched_by, "support opened a member");
    Ok(http::json(
        200,
        &Found {
            matched_by,
            profile: loyalty::views::ProfileView::of(&member, &coupons, rules, now),
            tier_history,
        },
    ))
}

fn no_member() -> ApiError {
    ApiError::not_found(
        "member_not_found",
        "no member matches; an email or phone finds a member only once verified",
    )
}

fn found(id: Option<String>) -> Result<MemberId, ApiError> {
    id.as_deref().and_then(MemberId::parse).ok_or_else(no_member)
}

/// Erasure asked of support rather than by the member in the app: the same erasure, and the
/// operator who did it is logged (the member id is pseudonymous; nothing personal is).
pub async fn erase(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let caller = app.deps.caller(req);
    caller.require_operator()?;
    let id = member_param(id)?;
    let by = caller.iam_principal().unwrap_or("operator").to_string();
    crate::erase_member(app, &id).await?;
    tracing::info!(member_id = %id, operator = %by, "personal data erased on a request to support");
    Ok(Response::builder().status(204).body(Body::Empty).expect("static response"))
}
