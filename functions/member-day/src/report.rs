//! `GET /reports/kpis?from=&to=`: the program's KPIs over at most a year of program days
//! (operators only; default: the 30 days to today), from the counters events-out keeps (`loyalty::store::kpi`): one Query of
//! the days from the first of `from`'s month on (with the running totals, which sort after
//! every day) and one of the campaign grants. Never a scan, and nothing written.

use crate::App;
use lambda_http::{Body, Request, Response};
use loyalty::http;
use loyalty::kpi;
use loyalty::ApiError;

pub async fn kpis(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let rules = &app.deps.rules;
    let today = loyalty::calendar::program_date(rules.time_zone, app.deps.clock.now());
    let (from, to) = kpi::parse_range(
        http::query_param(req, "from").as_deref(),
        http::query_param(req, "to").as_deref(),
        today,
    )
    .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let store = &app.deps.store;
    let ((days, total), grants) =
        tokio::try_join!(store.kpi_days(kpi::read_from(from)), store.kpi_grants())?;
    let report = kpi::report(from, to, rules, &days, &total, grants);
    Ok(http::json(200, &report))
}
