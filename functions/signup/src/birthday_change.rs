//! `PUT /members/{id}/birthday`: the member's own change, or support's correction.

use crate::{member_param, App};
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use loyalty::birthday::{self, BirthdayChangeRequest};
use loyalty::http::{self, json_body};
use loyalty::store::member::BirthdayChanged;
use loyalty::ApiError;
use serde::Serialize;

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
pub(crate) async fn set_birthday(
    app: &App,
    req: &Request,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let id = member_param(id)?;
    let caller = app.deps.caller(req);
    caller.require_operator()?;
    let body: BirthdayChangeRequest = json_body(req)?;
    let (rules, now) = (&app.deps.rules, app.deps.clock.now());
    let change = body
        .validate(loyalty::calendar::program_date(rules.time_zone, now))
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    let by = caller.iam_principal().unwrap_or("operator");
    match app.deps.store.change_birthday(id.as_str(), &change, by, rules, now).await? {
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
