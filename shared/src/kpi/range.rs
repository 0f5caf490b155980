//! The report's range: program days, at most a year.

use chrono::{Datelike, Duration, NaiveDate};

/// The most days one report covers.
pub const MAX_DAYS: i64 = 366;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{0} is not a date (YYYY-MM-DD)")]
    NotADate(&'static str),
    #[error("from is after to")]
    Reversed,
    #[error("at most {MAX_DAYS} days a report")]
    TooLong,
}

impl RangeError {
    pub fn code(&self) -> &'static str {
        match self {
            RangeError::NotADate(_) => "invalid_date",
            RangeError::Reversed => "invalid_range",
            RangeError::TooLong => "range_too_long",
        }
    }
}

/// Days a report covers when `from` is not given: `to` and the 29 days before it.
pub const DEFAULT_DAYS: i64 = 30;

/// The report's days, from the query's `from` and `to` (default: `today`, and the 30 days
/// ending on `to`).
pub fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), RangeError> {
    let date = |v: &str, name: &'static str| -> Result<NaiveDate, RangeError> {
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .ok()
            .filter(|_| v.len() == 10)
            .ok_or(RangeError::NotADate(name))
    };
    let to = to.map(|t| date(t, "to")).transpose()?.unwrap_or(today);
    let from = match from {
        Some(f) => date(f, "from")?,
        None => to - Duration::days(DEFAULT_DAYS - 1),
    };
    if from > to {
        return Err(RangeError::Reversed);
    }
    if (to - from).num_days() + 1 > MAX_DAYS {
        return Err(RangeError::TooLong);
    }
    Ok((from, to))
}

/// The first day the report reads: the first of `from`'s month, so that monthly figures and
/// cohorts are whole months.
pub fn read_from(from: NaiveDate) -> NaiveDate {
    from.with_day(1).unwrap_or(from)
}
