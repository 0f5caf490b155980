//! Birthday gifts, as pure rules. A birthday coupon goes once per member per year (the grant
//! `birthday-<year>`), and only for a birthday the program knew in advance: recorded at least
//! `birthday.minDaysKnown` days (30 by default) before that year's birthday, so that nobody
//! can set "today" as their birthday to collect a coupon. The member gives a birthday once, at
//! signup; afterwards only support changes it (`PUT /members/{id}/birthday`, with a reason),
//! and a change restarts the clock. A membership whose contact already had this year's gift
//! (`PriorGifts::birthday_year`, from the tombstone of an erased membership) gets none that year.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The grant of year `year`'s birthday coupons: one coupon per member per grant.
pub fn grant(year: i32) -> String {
    format!("birthday-{year}")
}

/// The year of a birthday grant (`birthday-2027` → 2027); None for any other grant.
pub fn grant_year(grant: &str) -> Option<i32> {
    let y = grant.strip_prefix("birthday-")?;
    (y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit())).then(|| y.parse().ok()).flatten()
}

/// The day a birthday is celebrated in `year`: Feb 29 falls on Feb 28 in common years (as
/// `calendar::is_birthday` has it).
pub fn celebrated_in(birthday: NaiveDate, year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, birthday.month(), birthday.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, 2, 28))
        .expect("every month/day but Feb 29 exists in every year; Feb 28 always does")
}

/// Why a member gets no birthday coupon in a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoGift {
    #[error("no birthday recorded")]
    NoBirthday,
    #[error(
        "the birthday was recorded {known_days} days before it, fewer than the {min_days} required"
    )]
    RecordedTooLate { known_days: i64, min_days: u32 },
    #[error("an erased membership of the same contact already had this year's birthday gift")]
    AlreadyGiftedThisYear,
}

/// The facts the rule needs: the birthday, the program day it was recorded on, and the last
/// year this member's contact was given a birthday coupon in an earlier, erased membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthdayFacts {
    pub birthday: Option<NaiveDate>,
    pub recorded_on: NaiveDate,
    pub prior_gift_year: Option<i32>,
}

/// Whether year `year`'s birthday coupon may go to a member with these facts.
pub fn gift_allowed(f: &BirthdayFacts, year: i32, min_days_known: u32) -> Result<(), NoGift> {
    let birthday = f.birthday.ok_or(NoGift::NoBirthday)?;
    if f.prior_gift_year.is_some_and(|y| y >= year) {
        return Err(NoGift::AlreadyGiftedThisYear);
    }
    let known_days = (celebrated_in(birthday, year) - f.recorded_on).num_days();
    if known_days < min_days_known as i64 {
        return Err(NoGift::RecordedTooLate { known_days, min_days: min_days_known });
    }
    Ok(())
}

/// The first day a birthday recorded on `recorded_on` can bring a coupon: the first
/// celebration at least `min_days_known` days later.
pub fn first_gift_on(
    birthday: NaiveDate,
    recorded_on: NaiveDate,
    min_days_known: u32,
) -> NaiveDate {
    let earliest = recorded_on + chrono::Duration::days(min_days_known as i64);
    let this_year = celebrated_in(birthday, earliest.year());
    if this_year >= earliest {
        this_year
    } else {
        celebrated_in(birthday, earliest.year() + 1)
    }
}

/// `PUT /members/{id}/birthday` (support): the new birthday and why it changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BirthdayChangeRequest {
    pub birthday: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BirthdayChangeError {
    #[error("birthday must be a real past date in YYYY-MM-DD form")]
    InvalidBirthday,
    #[error("reason must be 1 to 200 characters, without control characters")]
    InvalidReason,
}

impl BirthdayChangeError {
    pub fn code(self) -> &'static str {
        match self {
            BirthdayChangeError::InvalidBirthday => "invalid_birthday",
            BirthdayChangeError::InvalidReason => "invalid_reason",
        }
    }
}

/// A support change that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirthdayChange {
    pub birthday: NaiveDate,
    pub reason: String,
}

impl BirthdayChangeRequest {
    pub fn validate(self, today: NaiveDate) -> Result<BirthdayChange, BirthdayChangeError> {
        let birthday =
            parse_birthday(&self.birthday, today).ok_or(BirthdayChangeError::InvalidBirthday)?;
        let reason = self.reason.trim().to_string();
        let len = reason.chars().count();
        if !(1..=200).contains(&len) || reason.chars().any(char::is_control) {
            return Err(BirthdayChangeError::InvalidReason);
        }
        Ok(BirthdayChange { birthday, reason })
    }
}

/// A support change as the member record keeps it: when, by whom, why. The dates themselves
/// are not kept (the current birthday is on the member); erasure drops these records, as a
/// reason is free text that may name the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BirthdayChangeRecord {
    pub at: DateTime<Utc>,
    /// The operator's IAM principal.
    pub by: String,
    pub reason: String,
}

/// How many support changes a member record keeps (the oldest are dropped).
pub const CHANGES_KEPT: usize = 10;

/// A real past date (1900 or later) in `YYYY-MM-DD` form.
pub fn parse_birthday(s: &str, today: NaiveDate) -> Option<NaiveDate> {
    if s.len() != 10 {
        return None;
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    (d < today && d.year() >= 1900).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn facts(birthday: &str, recorded_on: &str, prior: Option<i32>) -> BirthdayFacts {
        BirthdayFacts {
            birthday: Some(d(birthday)),
            recorded_on: d(recorded_on),
            prior_gift_year: prior,
        }
    }

    #[test]
    fn birthday_grants_name_their_year() {
        assert_eq!(grant(2027), "birthday-2027");
        assert_eq!(grant_year("birthday-2027"), Some(2027));
        for other in
            ["welcome", "birthday-27", "birthday-2027x", "campaign:c-1:2027-05", "birthday-"]
        {
            assert_eq!(grant_year(other), None, "{other}");
        }
    }

    #[test]
    fn a_birthday_must_be_known_min_days_before_it() {
        // Recorded 5 days before the birthday: no coupon that year, one the next.
        let f = facts("1990-05-18", "2026-05-13", None);
        assert_eq!(
            gift_allowed(&f, 2026, 30),
            Err(NoGift::RecordedTooLate { known_days: 5, min_days: 30 })
        );
        assert_eq!(gift_allowed(&f, 2027, 30), Ok(()));
        // Exactly 30 days is enough, 29 is not.
        assert_eq!(gift_allowed(&facts("1990-05-18", "2026-04-18", None), 2026, 30), Ok(()));
        assert!(gift_allowed(&facts("1990-05-18", "2026-04-19", None), 2026, 30).is_err());
        // Recorded after this year's birthday: this year's is in the past.
        assert!(matches!(
            gift_allowed(&facts("1990-01-02", "2026-03-01", None), 2026, 30),
            Err(NoGift::RecordedTooLate { known_days: -58, .. })
        ));
        // A rule of 0 days allows a birthday recorded on the day.
        assert_eq!(gift_allowed(&facts("1990-05-18", "2026-05-18", None), 2026, 0), Ok(()));
        assert_eq!(
            gift_allowed(
                &BirthdayFacts {
                    birthday: None,
                    recorded_on: d("2020-01-01"),
                    prior_gift_year: None
                },
                2026,
                30
            ),
            Err(NoGift::NoBirthday)
        );
    }

    #[test]
    fn a_contact_s_birthday_gift_goes_once_a_year_across_memberships() {
        let f = facts("1990-09-01", "2026-01-10", Some(2026));
        assert_eq!(gift_allowed(&f, 2026, 30), Err(NoGift::AlreadyGiftedThisYear));
        assert_eq!(gift_allowed(&f, 2027, 30), Ok(()));
    }

    #[test]
    fn leap_day_birthdays_are_counted_to_feb_28_in_common_years() {
        assert_eq!(celebrated_in(d("2000-02-29"), 2027), d("2027-02-28"));
        assert_eq!(celebrated_in(d("2000-02-29"), 2028), d("2028-02-29"));
        assert_eq!(gift_allowed(&facts("2000-02-29", "2027-01-29", None), 2027, 30), Ok(()));
        assert!(gift_allowed(&facts("2000-02-29", "2027-01-30", None), 2027, 30).is_err());
    }

    #[test]
    fn the_first_gift_is_the_first_birthday_far_enough_ahead() {
        assert_eq!(first_gift_on(d("1990-05-18"), d("2026-05-13"), 30), d("2027-05-18"));
        assert_eq!(first_gift_on(d("1990-05-18"), d("2026-04-18"), 30), d("2026-05-18"));
        assert_eq!(first_gift_on(d("1990-12-31"), d("2026-12-15"), 30), d("2027-12-31"));
        assert_eq!(first_gift_on(d("2000-02-29"), d("2026-12-01"), 30), d("2027-02-28"));
    }

    #[test]
    fn support_changes_are_validated() {
        let today = d("2026-11-27");
        let ok = BirthdayChangeRequest {
            birthday: "1990-05-18".into(),
            reason: "  typo at signup, ticket 4711 ".into(),
        }
        .validate(today)
        .unwrap();
        assert_eq!(
            ok,
            BirthdayChange {
                birthday: d("1990-05-18"),
                reason: "typo at signup, ticket 4711".into()
            }
        );
        let bad = |b: &str, r: &str| {
            BirthdayChangeRequest { birthday: b.into(), reason: r.into() }
                .validate(today)
                .unwrap_err()
        };
        assert_eq!(bad("2026-11-27", "r"), BirthdayChangeError::InvalidBirthday);
        assert_eq!(bad("1990-02-30", "r"), BirthdayChangeError::InvalidBirthday);
        assert_eq!(bad("18/05/1990", "r"), BirthdayChangeError::InvalidBirthday);
        assert_eq!(bad("1990-05-18", "   "), BirthdayChangeError::InvalidReason);
        assert_eq!(bad("1990-05-18", &"x".repeat(201)), BirthdayChangeError::InvalidReason);
        assert_eq!(bad("1990-05-18", "line\nbreak"), BirthdayChangeError::InvalidReason);
    }
}
