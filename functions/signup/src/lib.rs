//! signup: `POST /members` (join), `GET /members/{id}` (profile), `DELETE /members/{id}`
//! (erase), and support's `PUT /members/{id}/birthday`, `POST /support/members/search` and
//! `DELETE /support/members/{id}` (operators, IAM; `support.rs`).

use chrono::{DateTime, Datelike, Utc};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use loyalty::app::Env;
use loyalty::birthday::{self, BirthdayChangeRequest};
use loyalty::contact::{self, ContactDigest, ContactKey};
use loyalty::coupon::{self, CodeKey};
use loyalty::http::{self, json_body};
use loyalty::ledger::{EntryKind, LedgerEntry};
use loyalty::member::{new_referral_code, Member, MemberId, SignupRequest};
use loyalty::runtime::{Outcome, Trigger};
use loyalty::store::member::BirthdayChanged;
use loyalty::store::receipt::Receipt;
use loyalty::store::signup::{NewMemberWrite, SignupConflict};
use loyalty::{auth, ApiError, Points};
use serde::Serialize;

pub mod support;

pub struct App {
    pub env: Env,
    pub codes: CodeKey,
    /// Keys contact details (uniqueness items, tombstones) by keyed digest.
    pub contacts: ContactKey,
}

impl App {
    pub async fn from_env() -> Result<App, String> {
        Ok(App {
            env: Env::from_env().await?,
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Joined<'a> {
    member_id: &'a str,
    tier: loyalty::TierCode,
    points: i64,
    referral_code: &'a str,
    /// Whether this signup got the welcome points and coupon (once per contact).
    welcome_gift: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    welcome_coupon: Option<loyalty::views::CouponView<'a>>,
    /// The gifts this signup did not get, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    withheld: Vec<contact::Withheld>,
}

/// How often a freshly generated referral code may collide before we give up (40 random bits).
const REFERRAL_CODE_TRIES: usize = 5;
/// How often an erasure of the same contact may land between signup's read and its write
/// before signup gives up (each time it reads the tombstones again).
const TOMBSTONE_RACES: usize = 5;

async fn join(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = app.env.caller(req).member_id()?.clone();
    let body: SignupRequest = json_body(req)?;
    let fingerprint = http::fingerprint(&body);
    let (rules, store, now) = (&app.env.rules, &app.env.store, app.env.clock.now());
    let today = loyalty::calendar::program_date(rules.time_zone, now);
    let (new, verification) = body
        .validate_with(today, &auth::verified_contacts(req))
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    // Every contact the signup names is checked against the tombstones (a rejoin does not get
    // a second gift by leaving its address unverified); only verified ones reserve uniqueness.
    let email = new.email.as_deref().map(|e| app.contacts.email(e));
    let phone = new.phone.as_deref().map(|p| app.contacts.phone(p));
    let named: Vec<ContactDigest> = email.iter().chain(phone.iter()).cloned().collect();
    let mut lookup = store.signup_lookup(&named, new.referral_code.as_deref()).await?;
    let (mut code_tries, mut races) = (0, 0);
    loop {
        let referrer = match &new.referral_code {
            Some(_) => Some(
                lookup
                    .referrer
                    .as_deref()
                    .and_then(MemberId::parse)
                    .ok_or_else(unknown_referral)?,
            ),
            None => None,
        };
        let prior = lookup.prior_gifts();
        let gifts = contact::gifts(&prior, referrer.is_some());
        let referred_by = referrer.filter(|_| gifts.referral_link);
        tracing::info!(member_id = %id, referred = referred_by.is_some(), welcome_gift = gifts.welcome, "joining");
        let mut member = Member::sign_up(
            id.clone(),
            &new,
            verification,
            prior,
            new_referral_code(),
            referred_by,
            now,
        );
        let welcome = gifts.welcome.then(|| {
            let entry = welcome_entry(&mut member, rules.signup.welcome_points, today, now);
            (
                entry,
                coupon::issue(
                    &app.codes,
                    &rules.signup.welcome_coupon,
                    id.as_str(),
                    "welcome",
                    0,
                    now,
                ),
            )
        });
        let answer = serde_json::to_string(&Joined {
            member_id: id.as_str(),
            tier: member.tier,
            points: member.wallet.balance.0,
            referral_code: &member.referral_code,
            welcome_gift: gifts.welcome,
            welcome_coupon: welcome.as_ref().map(|(_, c)| loyalty::views::CouponView::of(c, now)),
            withheld: gifts.withheld,
        })
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        let receipt =
            Receipt::new(id.as_str(), "signup", "-", fingerprint.clone(), 201, answer.clone(), now);
        let write = NewMemberWrite {
            member: &member,
            welcome,
            receipt,
            referral_code_used: new.referral_code.as_deref(),
            reserve_email: email.clone().filter(|_| member.email_verified),
            reserve_phone: phone.clone().filter(|_| member.phone_verified),
            tombstones_read: &lookup.tombstones,
        };
        return match store.create_member(write, rules, now).await? {
            Ok(()) => Ok(http::raw_json(201, answer.into_bytes())),
            Err(SignupConflict::ReferralCodeTaken) if code_tries + 1 < REFERRAL_CODE_TRIES => {
                code_tries += 1;
                continue;
            }
            Err(SignupConflict::ReferralCodeTaken) => Err(ApiError::Unavailable(
                "could not allocate a unique referral code; retry".into(),
            )),
            Err(SignupConflict::TombstoneChanged) if races + 1 < TOMBSTONE_RACES => {
                races += 1;
                lookup = store.signup_lookup(&named, new.referral_code.as_deref()).await?;
                continue;
            }
            Err(SignupConflict::TombstoneChanged) => Err(ApiError::conflict(
                "concurrent_update",
                "the member's contact details changed while joining; retry the request",
            )),
            Err(SignupConflict::AlreadyMember) => replay_or_conflict(app, &id, &fingerprint).await,
            Err(SignupConflict::EmailTaken) => {
                Err(ApiError::conflict("email_taken", "a member with this email already exists"))
            }
            Err(SignupConflict::PhoneTaken) => Err(ApiError::conflict(
                "phone_taken",
                "a member with this phone number already exists",
            )),
            Err(SignupConflict::UnknownReferralCode) => Err(unknown_referral()),
        };
    }
}

fn unknown_referral() -> ApiError {
    ApiError::unprocessable("unknown_referral_code", "no member has this referral code")
}

fn welcome_entry(
    member: &mut Member,
    points: i64,
    today: chrono::NaiveDate,
    now: DateTime<Utc>,
) -> LedgerEntry {
    member.wallet.earn(points, today);
    LedgerEntry {
        kind: EntryKind::Welcome,
        points: Points(points),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        rebate: loyalty::Fen::ZERO,
        rebate_pending: loyalty::Fen::ZERO,
        reason: "welcome points for joining".into(),
        reference: None,
        at: now,
    }
}

/// The same signup again (a client retry) gets the first answer; a different one is a 409.
async fn replay_or_conflict(
    app: &App,
    id: &MemberId,
    fingerprint: &str,
) -> Result<Response<Body>, ApiError> {
    match app.env.store.receipt(id.as_str(), "signup", "-").await? {
        Some(r) if r.fingerprint == fingerprint => {
            Ok(http::raw_json(r.status, r.body.into_bytes()))
        }
        _ => Err(ApiError::conflict(
            "already_member",
            "this identity has already joined the program",
        )),
    }
}

pub(crate) fn member_param(id: &str) -> Result<MemberId, ApiError> {
    MemberId::parse(id).ok_or_else(|| {
        ApiError::bad_request("invalid_member_id", "the member id in the path is not valid")
    })
}

async fn profile(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    app.env.caller(req).require_member(&id)?;
    let (mut member, coupons) = match app.env.store.member_with_coupons(id.as_str()).await? {
        Some((m, c)) if !m.is_erased() => (m, c),
        _ => return Err(ApiError::not_found("member_not_found", "no such member")),
    };
    // Shown as the next write will find it: pending points past their window are available,
    // due lots are gone (the write itself happens on the member's next change or the sweep).
    let now = app.env.clock.now();
    loyalty::points::settle(
        &mut member,
        &app.env.rules,
        loyalty::calendar::program_date(app.env.rules.time_zone, now),
        now,
    );
    Ok(http::json(200, &loyalty::views::ProfileView::of(&member, &coupons, &app.env.rules, now)))
}

async fn erase(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    app.env.caller(req).require_member(&id)?;
    erase_member(app, &id).await?;
    tracing::info!(member_id = %id, "personal data erased");
    Ok(Response::builder().status(204).body(Body::Empty).expect("static response"))
}

/// The erasure itself, whoever asked for it: the member or support.
pub(crate) async fn erase_member(app: &App, id: &MemberId) -> Result<(), ApiError> {
    let (rules, now) = (&app.env.rules, app.env.clock.now());
    // This year's birthday coupon, if the member holds it, goes into the tombstones: a new
    // account with the same contact gets no second one this year.
    let year = loyalty::calendar::program_date(rules.time_zone, now).year();
    let birthday_coupon = app.codes.code(id.as_str(), &birthday::grant(year), 0);
    if !app.env.store.erase_member(id.as_str(), &app.contacts, &birthday_coupon, rules, now).await?
    {
        return Err(ApiError::not_found("member_not_found", "no such member"));
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BirthdaySet<'a> {
    member_id: &'a str,
    birthday: chrono::NaiveDate,
    birthday_set_at: DateTime<Utc>,
    /// False when the member already had this birthday (nothing was written).
    changed: bool,
    /// The first birthday that can bring a coupon, given when the birthday was recorded.
    first_gift_on: chrono::NaiveDate,
}

/// Support sets or corrects a member's birthday, with a reason: the only way to change one
/// after signup. The birthday counts as recorded now, so a birthday coupon waits
/// `birthday.minDaysKnown` days again.
async fn set_birthday(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    let caller = app.env.caller(req);
    caller.require_operator()?;
    let body: BirthdayChangeRequest = json_body(req)?;
    let (rules, now) = (&app.env.rules, app.env.clock.now());
    let change = body
        .validate(loyalty::calendar::program_date(rules.time_zone, now))
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    let by = caller.iam_principal().unwrap_or("operator");
    match app.env.store.change_birthday(id.as_str(), &change, by, rules, now).await? {
        BirthdayChanged::NoSuchMember => {
            Err(ApiError::not_found("member_not_found", "no such member"))
        }
        BirthdayChanged::Done(m, changed) => {
            // Neither the date nor the reason is logged: both are personal data.
            tracing::info!(member_id = %id, operator = by, changed, "birthday set by support");
            let facts = m.birthday_facts(rules.time_zone);
            Ok(http::json(
                200,
                &BirthdaySet {
                    member_id: id.as_str(),
                    birthday: change.birthday,
                    birthday_set_at: m.birthday_recorded_at(),
                    changed,
                    first_gift_on: birthday::first_gift_on(
                        change.birthday,
                        facts.recorded_on,
                        rules.birthday.min_days_known,
                    ),
                },
            ))
        }
    }
}
