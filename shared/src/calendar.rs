//! Calendar rules run in the program time zone; timestamps are stored in UTC.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// The program-calendar day of an instant.
pub fn program_date(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// The instant a program-calendar day begins (first valid local time of that day).
pub fn start_of_day(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    match tz.from_local_datetime(&midnight) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        // A gap at midnight (DST): the day starts an hour later.
        chrono::LocalResult::None => tz
            .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&midnight)),
    }
}

/// The UTC instants a program-calendar day spans.
pub fn day_window(tz: Tz, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    (start_of_day(tz, day), start_of_day(tz, day + chrono::Duration::days(1)))
}

/// Whether `at` falls on day `day_of_month` of its program-calendar month (the member day).
pub fn is_day_of_month(tz: Tz, at: DateTime<Utc>, day_of_month: u32) -> bool {
    program_date(tz, at).day() == day_of_month
}

/// Whether `date` is the member's birthday: Feb 29 birthdays fall on Feb 28 in other years.
pub fn is_birthday(birthday: NaiveDate, date: NaiveDate) -> bool {
    if birthday.month() == 2 && birthday.day() == 29 && !is_leap(date.year()) {
        return date.month() == 2 && date.day() == 28;
    }
    birthday.month() == date.month() && birthday.day() == date.day()
}

/// The `MM-DD` birthday keys celebrated on `date` (the birthday index is keyed by them).
pub fn birthday_keys(date: NaiveDate) -> Vec<String> {
    let mut keys = vec![format!("{:02}-{:02}", date.month(), date.day())];
    if date.month() == 2 && date.day() == 28 && !is_leap(date.year()) {
        keys.push("02-29".into());
    }
    keys
}

pub fn is_leap(year: i32) -> bool {
    NaiveDate::from_ymd_opt(year, 2, 29).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn program_date_uses_the_program_time_zone() {
        // 16:30 UTC on the 17th is 00:30 on the 18th in Shanghai.
        let t: DateTime<Utc> = "2026-03-17T16:30:00Z".parse().unwrap();
        assert_eq!(program_date(Shanghai, t), d("2026-03-18"));
        assert_eq!(
            start_of_day(Shanghai, d("2026-03-18")),
            "2026-03-17T16:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn leap_day_birthdays_fall_on_feb_28_in_common_years() {
        let b = d("2000-02-29");
        assert!(is_birthday(b, d("2027-02-28")));
        assert!(!is_birthday(b, d("2028-02-28")));
        assert!(is_birthday(b, d("2028-02-29")));
        assert_eq!(birthday_keys(d("2027-02-28")), vec!["02-28", "02-29"]);
        assert_eq!(birthday_keys(d("2028-02-28")), vec!["02-28"]);
    }
}
