//! CSV rows in the JSON line's shape: a header naming the same fields (any order, a subset),
//! RFC 4180 quoting, an empty cell for an absent field; `lots` as `points@YYYY-MM-DD` and
//! `spend` as `amount@YYYY-MM-DD`, several separated by `;`.

use super::line::{ImportLine, LineResult, LotLine, RejectCode, SpendLine};

pub const COLUMNS: [&str; 15] = [
    "id",
    "email",
    "phone",
    "name",
    "birthday",
    "joinedAt",
    "tier",
    "tierReachedAt",
    "lots",
    "lifetimeSpend",
    "spend",
    "orderCount",
    "lastPurchaseAt",
    "marketingConsent",
    "consentAt",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("the header names {0:?}, which is not a column (columns: {cols})", cols = COLUMNS.join(","))]
    UnknownColumn(String),
    #[error("the header names {0:?} twice")]
    DuplicateColumn(String),
    #[error("the header has no id column")]
    NoIdColumn,
}

/// The header's columns, checked against the line's fields.
pub fn parse_header(text: &[u8]) -> Result<Vec<String>, CsvError> {
    let cells = split_row(text).map_err(|_| CsvError::NoIdColumn)?;
    let mut out: Vec<String> = Vec::new();
    for c in cells {
        let c = c.trim().trim_start_matches('\u{feff}').to_string();
        if !COLUMNS.contains(&c.as_str()) {
            return Err(CsvError::UnknownColumn(c));
        }
        if out.contains(&c) {
            return Err(CsvError::DuplicateColumn(c));
        }
        out.push(c);
    }
    if !out.iter().any(|c| c == "id") {
        return Err(CsvError::NoIdColumn);
    }
    Ok(out)
}

/// Splits one row into its cells (quoted cells may hold commas and doubled quotes; a row does
/// not span lines).
fn split_row(text: &[u8]) -> Result<Vec<String>, String> {
    let s = std::str::from_utf8(text).map_err(|_| "the row is not UTF-8".to_string())?;
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                cells.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            (false, '"') => return Err("a quote inside an unquoted cell".into()),
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("a quoted cell is not closed".into());
    }
    cells.push(cur);
    Ok(cells)
}

fn dated_pairs(cell: &str, column: &str) -> LineResult<Vec<(i64, String)>> {
    cell.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, d) = p.split_once('@').ok_or((
                RejectCode::InvalidField,
                format!("{column}: {p:?} is not <number>@YYYY-MM-DD"),
            ))?;
            let n = n.trim().parse::<i64>().map_err(|_| {
                (RejectCode::InvalidField, format!("{column}: {n:?} is not a whole number"))
            })?;
            Ok((n, d.trim().to_string()))
        })
        .collect()
}

/// A data row read under `columns` into the line's fields.
pub fn parse_csv_line(text: &[u8], columns: &[String]) -> LineResult<ImportLine> {
    if text.len() > super::MAX_LINE_BYTES {
        return Err((
            RejectCode::OversizeLine,
            format!("the line is {} bytes; at most {} are read", text.len(), super::MAX_LINE_BYTES),
        ));
    }
    let cells =
        split_row(text).map_err(|e| (RejectCode::BrokenJson, format!("not a CSV row: {e}")))?;
    if cells.len() != columns.len() {
        return Err((
            RejectCode::ColumnCount,
            format!("{} cells; the header has {} columns", cells.len(), columns.len()),
        ));
    }
    let mut line = ImportLine::default();
    for (column, cell) in columns.iter().zip(cells) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        let some = || Some(cell.to_string());
        let number = |c: &str| {
            cell.parse::<i64>().map_err(|_| {
                (RejectCode::InvalidField, format!("{c}: {cell:?} is not a whole number"))
            })
        };
        match column.as_str() {
            "id" => line.id = some(),
            "email" => line.email = some(),
            "phone" => line.phone = some(),
            "name" => line.name = some(),
            "birthday" => line.birthday = some(),
            "joinedAt" => line.joined_at = some(),
            "tier" => line.tier = some(),
            "tierReachedAt" => line.tier_reached_at = some(),
            "lots" => {
                line.lots = dated_pairs(cell, "lots")?
                    .into_iter()
                    .map(|(points, earned_on)| LotLine { points, earned_on })
                    .collect()
            }
            "lifetimeSpend" => line.lifetime_spend = Some(number("lifetimeSpend")?),
            "spend" => {
                line.spend = dated_pairs(cell, "spend")?
                    .into_iter()
                    .map(|(amount, on)| SpendLine { on, amount })
                    .collect()
            }
            "orderCount" => {
                line.order_count = Some(u32::try_from(number("orderCount")?).map_err(|_| {
                    (RejectCode::InvalidField, "orderCount must not be negative".to_string())
                })?)
            }
            "lastPurchaseAt" => line.last_purchase_at = some(),
            "marketingConsent" => {
                line.marketing_consent = Some(match cell.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "1" => true,
                    "false" | "no" | "0" => false,
                    _ => {
                        return Err((
                            RejectCode::InvalidField,
                            format!("marketingConsent: {cell:?} is not true or false"),
                        ))
                    }
                })
            }
            "consentAt" => line.consent_at = some(),
            _ => {}
        }
    }
    if line.id.is_none() {
        return Err((RejectCode::MissingId, "id is required".into()));
    }
    Ok(line)
}
