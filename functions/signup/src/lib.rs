//! signup: `POST /members` (join), `GET /members/{id}` (profile), `DELETE /members/{id}` (erase).

use chrono::{DateTime, Utc};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::app::Env;
use loyalty::coupon::{self, CodeKey};
use loyalty::http::{self, json_body};
use loyalty::ledger::{EntryKind, LedgerEntry};
use loyalty::member::{new_referral_code, Member, MemberId, SignupRequest};
use loyalty::store::member::{NewMemberWrite, Receipt, SignupConflict};
use loyalty::{ApiError, Points};
use serde::Serialize;

pub struct App {
    pub env: Env,
    pub codes: CodeKey,
}

impl App {
    pub async fn from_env() -> Result<App, String> {
        Ok(App { env: Env::from_env().await?, codes: CodeKey::from_env().await? })
    }
}

pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let result = match http::route(&req) {
        (Method::POST, p) if p == ["members"] => join(app, &req).await,
        (Method::GET, p) if p.len() == 2 && p[0] == "members" => profile(app, &req, p[1]).await,
        (Method::DELETE, p) if p.len() == 2 && p[0] == "members" => erase(app, &req, p[1]).await,
        (m, p) if p.first() == Some(&"members") && p.len() <= 2 => Err(ApiError::MethodNotAllowed(m.to_string())),
        _ => Err(http::not_found(&req)),
    };
    http::respond(&req, result)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Joined<'a> {
    member_id: &'a str,
    tier: loyalty::TierCode,
    points: i64,
    referral_code: &'a str,
    welcome_coupon: coupon::CouponView<'a>,
}

/// How often a freshly generated referral code may collide before we give up (40 random bits).
const REFERRAL_CODE_TRIES: usize = 5;

async fn join(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = app.env.caller(req).member_id()?.clone();
    let body: SignupRequest = json_body(req)?;
    let fingerprint = http::fingerprint(&body);
    let (rules, store, now) = (&app.env.rules, &app.env.store, app.env.clock.now());
    let today = loyalty::calendar::program_date(rules.time_zone, now);
    let new = body.validate(today).map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    let referrer = match &new.referral_code {
        Some(code) => Some(store.referrer(code).await?.and_then(|m| MemberId::parse(&m)).ok_or_else(unknown_referral)?),
        None => None,
    };
    tracing::info!(member_id = %id, referred = referrer.is_some(), "joining");
    for _ in 0..REFERRAL_CODE_TRIES {
        let mut member = Member::join(id.clone(), &new, new_referral_code(), referrer.clone(), now);
        let welcome = welcome_entry(&mut member, rules.signup.welcome_points, today, now);
        let coupon = coupon::issue(&app.codes, &rules.signup.welcome_coupon, id.as_str(), "welcome", 0, now);
        let answer = serde_json::to_string(&Joined {
            member_id: id.as_str(),
            tier: member.tier,
            points: member.wallet.balance.0,
            referral_code: &member.referral_code,
            welcome_coupon: coupon.view(now),
        })
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        let receipt = Receipt::new(id.as_str(), "signup", "-", fingerprint.clone(), 201, answer.clone(), now);
        let write = NewMemberWrite { member: &member, welcome, coupon, receipt, referral_code_used: new.referral_code.as_deref() };
        return match store.create_member(write, rules, now).await? {
            Ok(()) => Ok(http::raw_json(201, answer.into_bytes())),
            Err(SignupConflict::ReferralCodeTaken) => continue,
            Err(SignupConflict::AlreadyMember) => replay_or_conflict(app, &id, &fingerprint).await,
            Err(SignupConflict::EmailTaken) => Err(ApiError::conflict("email_taken", "a member with this email already exists")),
            Err(SignupConflict::PhoneTaken) => Err(ApiError::conflict("phone_taken", "a member with this phone number already exists")),
            Err(SignupConflict::UnknownReferralCode) => Err(unknown_referral()),
        };
    }
    Err(ApiError::Unavailable("could not allocate a unique referral code; retry".into()))
}

fn unknown_referral() -> ApiError {
    ApiError::unprocessable("unknown_referral_code", "no member has this referral code")
}

fn welcome_entry(member: &mut Member, points: i64, today: chrono::NaiveDate, now: DateTime<Utc>) -> LedgerEntry {
    member.wallet.earn(points, today);
    LedgerEntry {
        kind: EntryKind::Welcome,
        points: Points(points),
        balance_after: member.wallet.balance,
        reason: "welcome points for joining".into(),
        reference: None,
        at: now,
    }
}

/// The same signup again (a client retry) gets the first answer; a different one is a 409.
async fn replay_or_conflict(app: &App, id: &MemberId, fingerprint: &str) -> Result<Response<Body>, ApiError> {
    match app.env.store.receipt(id.as_str(), "signup", "-").await? {
        Some(r) if r.fingerprint == fingerprint => Ok(http::raw_json(r.status, r.body.into_bytes())),
        _ => Err(ApiError::conflict("already_member", "this identity has already joined the program")),
    }
}

fn member_param(id: &str) -> Result<MemberId, ApiError> {
    MemberId::parse(id).ok_or_else(|| ApiError::bad_request("invalid_member_id", "the member id in the path is not valid"))
}

async fn profile(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    app.env.caller(req).require_member(&id)?;
    let (member, coupons) = match app.env.store.member_with_coupons(id.as_str()).await? {
        Some((m, c)) if !m.is_erased() => (m, c),
        _ => return Err(ApiError::not_found("member_not_found", "no such member")),
    };
    Ok(http::json(200, &member.profile(&coupons, &app.env.rules, app.env.clock.now())))
}

async fn erase(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    app.env.caller(req).require_member(&id)?;
    if !app.env.store.erase_member(id.as_str(), &app.env.rules, app.env.clock.now()).await? {
        return Err(ApiError::not_found("member_not_found", "no such member"));
    }
    tracing::info!(member_id = %id, "personal data erased");
    Ok(Response::builder().status(204).body(Body::Empty).expect("static response"))
}
