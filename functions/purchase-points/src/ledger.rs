//! `GET /members/{id}/ledger`: the member's ledger, a page at a time (opaque cursors); the
//! same pages for support at `GET /support/members/{id}/ledger` (operators, IAM).

use crate::{member_param, App};
use lambda_http::Request;
use loyalty::http;
use loyalty::ledger::LedgerEntry;
use loyalty::store::ledger::LedgerCursor;
use loyalty::ApiError;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerView {
    pub entries: Vec<LedgerEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

pub(crate) async fn ledger(
    app: &App,
    req: &Request,
    id: &str,
    support: bool,
) -> Result<LedgerView, ApiError> {
    let id = member_param(id)?;
    match support {
        true => app.deps.caller(req).require_operator()?,
        false => app.deps.caller(req).require_member(&id)?,
    }
    let limit = match http::query_param(req, "limit") {
        None => DEFAULT_PAGE,
        Some(l) => {
            l.parse::<i32>().ok().filter(|l| (1..=MAX_PAGE).contains(l)).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                )
            })?
        }
    };
    let after = http::query_param(req, "cursor").map(|c| decode_cursor(&c)).transpose()?;
    let page = app.deps.store.ledger_page(id.as_str(), after.as_ref(), limit).await?;
    // Every member's ledger starts with the welcome entry: an empty first page means no member,
    // and saying so costs no second read.
    if after.is_none() && page.entries.is_empty() {
        return Err(ApiError::not_found("member_not_found", "no such member"));
    }
    Ok(LedgerView { entries: page.entries, next_cursor: page.next.as_ref().map(encode_cursor) })
}

/// The cursor is where the page ended (a sort key, and how far into that item), hex-encoded:
/// opaque to clients, checked on return.
pub fn encode_cursor(c: &LedgerCursor) -> String {
    c.encode().bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_cursor(c: &str) -> Result<LedgerCursor, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "cursor is not one this API handed out; start again without it",
        )
    };
    if c.is_empty() || c.len() > 1024 || !c.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..c.len())
        .step_by(2)
        .map(|i| c.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).ok().and_then(|s| LedgerCursor::parse(&s)).ok_or_else(bad)
}
