//! `POST /members`: a join, with its welcome gifts once per contact, answered again the same
//! on a retry.

use crate::App;
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use loyalty::contact::{self, ContactDigest};
use loyalty::coupon::{self};
use loyalty::http::{self, json_body};
use loyalty::ledger::{EntryKind, LedgerEntry};
use loyalty::member::{new_referral_code, Member, MemberId, SignupRequest};
use loyalty::store::receipt::Receipt;
use loyalty::store::signup::{NewMemberWrite, SignupConflict};
use loyalty::{auth, ApiError, Points};
use serde::Serialize;

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

pub(crate) async fn join(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    let id = app.deps.caller(req).member_id()?.clone();
    let body: SignupRequest = json_body(req)?;
    let fingerprint = http::fingerprint(&body);
    let (rules, store, now) = (&app.deps.rules, &app.deps.store, app.deps.clock.now());
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
    match app.deps.store.receipt(id.as_str(), "signup", "-").await? {
        Some(r) if r.fingerprint == fingerprint => {
            Ok(http::raw_json(r.status, r.body.into_bytes()))
        }
        _ => Err(ApiError::conflict(
            "already_member",
            "this identity has already joined the program",
        )),
    }
}
