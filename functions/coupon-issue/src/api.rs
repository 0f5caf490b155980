//! The HTTP routes.
//!
//! - `POST /members/{id}/coupons` (admin, IAM): `{"template": "<name>" | {inline template},
//!   "grant": "<id>", "slot": n?, "budget": n?}` issues one coupon. The coupon is keyed by
//!   (member, grant, slot): the same request again answers the same coupon with 200 instead
//!   of 201. A template's `perMemberLimit` is how many slots a grant has (0..limit): an
//!   operator gives a member a second coupon of one grant by asking for `"slot": 1`.
//! - `GET /members/{id}/coupons?status=active|redeemed|expired` (the member): their coupons,
//!   newest first, status as of now.
//!
//! Coupons are redeemed only at checkout (purchase-points, order system): no member route
//! may mark a coupon used.

use crate::App;
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::coupon::{self, CouponStatus, CouponTemplate};
use loyalty::http::{self, json_body};
use loyalty::member::MemberId;
use loyalty::store::issue::IssueOutcome;
use loyalty::ApiError;
use serde::{Deserialize, Serialize};

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let result = match http::route(&req) {
        (Method::POST, p) if p.len() == 3 && p[0] == "members" && p[2] == "coupons" => {
            issue(app, &req, p[1]).await
        }
        (Method::GET, p) if p.len() == 3 && p[0] == "members" && p[2] == "coupons" => {
            list(app, &req, p[1]).await
        }
        (m, p) if p.len() == 3 && p[0] == "members" && p[2] == "coupons" => {
            Err(ApiError::MethodNotAllowed(m.to_string()))
        }
        _ => Err(http::not_found(&req)),
    };
    http::respond(&req, result)
}

fn member_param(id: &str) -> Result<MemberId, ApiError> {
    MemberId::parse(id)
        .ok_or_else(|| ApiError::bad_request("invalid_member_id", "the member id is not valid"))
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TemplateRef {
    Named(String),
    Inline(Box<CouponTemplate>),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IssueRequest {
    template: TemplateRef,
    grant: String,
    #[serde(default)]
    slot: u32,
    /// Most coupons this grant may issue in all (enforced atomically).
    #[serde(default)]
    budget: Option<u64>,
}

async fn issue(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let id = member_param(id)?;
    let body: IssueRequest = json_body(req)?;
    let grant = http::id_param(&body.grant, "grant", "invalid_grant")?;
    // The store's budget condition lets the first coupon of a grant through, so a budget of 0
    // would issue one: refuse it, as campaign definitions do.
    if body.budget == Some(0) {
        return Err(ApiError::unprocessable(
            "invalid_budget",
            "the budget must be at least 1 coupon",
        ));
    }
    let template = match body.template {
        TemplateRef::Named(name) => {
            app.deps.rules.coupon_templates.get(&name).cloned().ok_or_else(|| {
                ApiError::unprocessable(
                    "unknown_template",
                    format!("no coupon template named {name:?}"),
                )
            })?
        }
        TemplateRef::Inline(t) => {
            t.validate().map_err(|e| ApiError::unprocessable("invalid_template", e))?;
            *t
        }
    };
    if body.slot >= template.per_member_limit {
        return Err(ApiError::unprocessable(
            "slot_out_of_range",
            format!(
                "slot must be below the template's perMemberLimit ({})",
                template.per_member_limit
            ),
        ));
    }
    let store = &app.deps.store;
    let now = app.deps.clock.now();
    let member = match store.member(id.as_str()).await? {
        Some(m) if !m.is_erased() => m,
        _ => return Err(ApiError::not_found("member_not_found", "no such member")),
    };
    if !template.tiers.is_empty() && !template.tiers.contains(&member.tier) {
        return Err(ApiError::unprocessable(
            "tier_not_eligible",
            "the member's tier may not hold this coupon",
        ));
    }
    let c = coupon::issue(&app.codes, &template, id.as_str(), grant, body.slot, now);
    match store.issue_coupon(&c, None, body.budget).await? {
        IssueOutcome::Issued => {
            tracing::info!(member_id = %id, grant, slot = body.slot, "coupon issued");
            Ok(http::json(201, &loyalty::views::CouponView::of(&c, now)))
        }
        IssueOutcome::AlreadyHad(held) => {
            // The slot's coupon may carry a code made under an earlier secret: read it by the
            // code the slot names.
            let code = held.map(|h| h.code).unwrap_or(c.code);
            let old =
                store.coupon(id.as_str(), &code).await?.map(|i| i.coupon).ok_or_else(|| {
                    ApiError::Internal("the grant slot names a coupon that is not there".into())
                })?;
            Ok(http::json(200, &loyalty::views::CouponView::of(&old, now)))
        }
        IssueOutcome::BudgetSpent => {
            Err(ApiError::conflict("budget_spent", "this grant's budget is spent"))
        }
    }
}

#[derive(Serialize)]
struct CouponList<'a> {
    coupons: Vec<loyalty::views::CouponView<'a>>,
}

async fn list(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    app.deps.caller(req).require_member(&id)?;
    let status = match http::query_param(req, "status").as_deref() {
        None => None,
        Some("active") => Some(CouponStatus::Active),
        Some("redeemed") => Some(CouponStatus::Redeemed),
        Some("expired") => Some(CouponStatus::Expired),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_status",
                "status must be active, redeemed or expired",
            ))
        }
    };
    let now = app.deps.clock.now();
    let mut coupons = app.deps.store.coupons(id.as_str()).await?;
    coupons.sort_by(|a, b| b.issued_at.cmp(&a.issued_at).then_with(|| a.code.cmp(&b.code)));
    let coupons = coupons
        .iter()
        .filter(|c| status.is_none_or(|s| c.status_at(now) == s))
        .map(|c| loyalty::views::CouponView::of(c, now))
        .collect();
    Ok(http::json(200, &CouponList { coupons }))
}
