//! A partner's monthly statement: read as it stands, and marked paid once.

use super::{partner_not_found, try_commit};
use crate::{still_contended, App};
use chrono::{DateTime, NaiveDate, Utc};
use lambda_http::{Body, Response};
use loyalty::affiliate::{self, Figures};
use loyalty::calendar::program_date;
use loyalty::http;
use loyalty::store::partner::{Month, StatementItem};
use loyalty::store::MAX_ATTEMPTS;
use loyalty::{ApiError, Fen};
use serde::Serialize;

/// A month in the path: `YYYY-MM`, with its first and last day.
pub(super) struct MonthParam {
    name: String,
    last_day: NaiveDate,
}

pub(super) fn month_param(month: &str) -> Result<MonthParam, ApiError> {
    match affiliate::parse_month(month) {
        Some((_, last_day)) => Ok(MonthParam { name: month.to_string(), last_day }),
        None => Err(ApiError::bad_request("invalid_month", "the month must be YYYY-MM")),
    }
}

/// Where a month stands: not over, over with orders still in their return window, payable,
/// or paid.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Open,
    Pending,
    Payable,
    Paid,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatementView<'a> {
    partner_id: &'a str,
    month: &'a str,
    state: State,
    #[serde(flatten)]
    figures: Figures,
    #[serde(skip_serializing_if = "Option::is_none")]
    paid_at: Option<DateTime<Utc>>,
}

/// The statement of what was read of the month on `today`: as paid, or as it stands.
fn statement_of(id: &str, month: &MonthParam, read: &Month, today: NaiveDate) -> Response<Body> {
    let view = |state, figures, paid_at| {
        http::json(
            200,
            &StatementView { partner_id: id, month: &month.name, state, figures, paid_at },
        )
    };
    if let Some(StatementItem { paid_at: Some(at), statement: Some(f), .. }) = &read.statement {
        return view(State::Paid, f.clone(), Some(*at));
    }
    let lines: Vec<_> = read.orders.iter().map(|o| o.line()).collect();
    let adjustments: Vec<Fen> = read.adjustments.iter().map(|a| a.amount).collect();
    let state = match affiliate::can_close(&month.name, month.last_day, &lines, today) {
        Ok(()) => State::Payable,
        Err(affiliate::CloseError::MonthNotOver(_)) => State::Open,
        Err(_) => State::Pending,
    };
    view(state, affiliate::figures(&lines, &adjustments, today), None)
}

/// The month read, and whether the partner exists (asked only when the month is empty, so
/// a statement with orders stays one Query).
async fn read_month(app: &App, id: &str, month: &str) -> Result<Month, ApiError> {
    let read = app.deps.store.partner_month(id, month).await?;
    let empty = read.orders.is_empty() && read.adjustments.is_empty() && read.statement.is_none();
    if empty && app.deps.store.partner(id).await?.is_none() {
        return Err(partner_not_found());
    }
    Ok(read)
}

pub(super) async fn statement(
    app: &App,
    id: &str,
    month: &MonthParam,
) -> Result<Response<Body>, ApiError> {
    let today = program_date(app.deps.rules.time_zone, app.deps.clock.now());
    let read = read_month(app, id, &month.name).await?;
    Ok(statement_of(id, month, &read, today))
}

/// Marks the month paid, once: refused (409) until the month is over and every order of it
/// has left its return window; a second call answers the same statement and pays nothing.
/// The statement is written on condition that no reversal was booked in the month since it
/// was read (`store::partner`), so a paid statement is what the month holds.
pub(super) async fn mark_paid(
    app: &App,
    id: &str,
    month: &MonthParam,
) -> Result<Response<Body>, ApiError> {
    let store = &app.deps.store;
    for attempt in 0..MAX_ATTEMPTS {
        let now = app.deps.clock.now();
        let today = program_date(app.deps.rules.time_zone, now);
        let read = read_month(app, id, &month.name).await?;
        if read.statement.as_ref().is_some_and(|s| s.paid_at.is_some()) {
            return Ok(statement_of(id, month, &read, today));
        }
        let lines: Vec<_> = read.orders.iter().map(|o| o.line()).collect();
        affiliate::can_close(&month.name, month.last_day, &lines, today)
            .map_err(|e| ApiError::conflict(e.code(), e.to_string()))?;
        let adjustments: Vec<Fen> = read.adjustments.iter().map(|a| a.amount).collect();
        let figures = affiliate::figures(&lines, &adjustments, today).paid_out();
        let reversals = read.statement.as_ref().map_or(0, |s| s.reversals);
        let item = StatementItem::paid(id, &month.name, reversals, figures, now);
        // A failed condition: paid by another call, or a reversal came in: read again.
        if try_commit(app, vec![store.statement_paid_write(&item)?], attempt).await?.is_none() {
            let paid = item.statement.as_ref().map_or(Fen::ZERO, |f| f.paid);
            tracing::info!(partner_id = %id, month = %month.name, paid = %paid, "statement paid");
            let read = Month { statement: Some(item), ..Month::default() };
            return Ok(statement_of(id, month, &read, today));
        }
    }
    Err(still_contended())
}
