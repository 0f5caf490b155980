//! The member day on the program calendar: when it is, and the multiplier window it grants.

use super::{MultiplierWindow, MEMBER_DAY_ID};
use crate::calendar;
use crate::rules::Rules;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

/// The UTC instants a program-calendar day spans.
pub fn program_day_window(tz: Tz, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    (calendar::start_of_day(tz, day), calendar::start_of_day(tz, day + Duration::days(1)))
}

/// Whether `at` falls on the member day (program time zone).
pub fn is_member_day(rules: &Rules, at: DateTime<Utc>) -> bool {
    calendar::program_date(rules.time_zone, at).day() == rules.member_day.day_of_month
}

/// The start (00:00 program time) of the first member day at or after `at`'s program day.
pub fn next_member_day(rules: &Rules, at: DateTime<Utc>) -> DateTime<Utc> {
    let today = calendar::program_date(rules.time_zone, at);
    let day = rules.member_day.day_of_month;
    let this_month = today.with_day(day).expect("validated: day_of_month is 1..28");
    let target = if this_month >= today {
        this_month
    } else {
        let (y, m) = if today.month() == 12 {
            (today.year() + 1, 1)
        } else {
            (today.year(), today.month() + 1)
        };
        NaiveDate::from_ymd_opt(y, m, day).expect("validated: day_of_month is 1..28")
    };
    calendar::start_of_day(rules.time_zone, target)
}

/// The member-day multiplier the rules grant at `at` (1× outside the member day), for the
/// purchase function to combine with the stored campaign windows via `campaign_multiplier`.
pub fn member_day_window(rules: &Rules, at: DateTime<Utc>) -> Option<MultiplierWindow> {
    is_member_day(rules, at).then(|| {
        let (from, until) =
            program_day_window(rules.time_zone, calendar::program_date(rules.time_zone, at));
        MultiplierWindow {
            campaign_id: MEMBER_DAY_ID.into(),
            multiplier: rules.member_day.multiplier,
            from,
            until,
            tiers: rules.member_day.tiers.clone(),
        }
    })
}
