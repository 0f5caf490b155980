//! Members: who they are (validated at the edge), their standing (tier, points, spend)
//! and the signup rules.

use crate::birthday::{BirthdayChange, BirthdayChangeRecord, BirthdayFacts};
use crate::contact::{PriorGifts, Verification};
use crate::ledger::Wallet;
use crate::money::Fen;
use crate::tier_code::TierCode;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

mod parts;
mod signup;
pub use parts::*;
pub use signup::*;

/// A member id is the `sub` of the member's identity token (JWT).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(String);

impl MemberId {
    pub fn parse(s: &str) -> Option<MemberId> {
        let ok = (1..=128).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
        ok.then(|| MemberId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member's whole record: identity, consent, tier standing, points wallet and spend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub member_id: MemberId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<NaiveDate>,
    /// Whether the identity provider verified the email / phone (the token's claims at
    /// signup). Only a verified contact holds a uniqueness item and leaves a tombstone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub phone_verified: bool,
    /// When the birthday was recorded (signup, or the last support change): birthday coupons
    /// need it known `birthday.minDaysKnown` days ahead. Absent on records from before it was
    /// kept, whose birthday could only come from signup (`birthday_recorded_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday_set_at: Option<DateTime<Utc>>,
    /// Support's changes of the birthday, newest last (at most `birthday::CHANGES_KEPT`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub birthday_changes: Vec<BirthdayChangeRecord>,
    /// What erased memberships of this member's contacts had already received (their
    /// tombstones, read at signup); passed on to this member's own tombstones when erased.
    #[serde(default, skip_serializing_if = "PriorGifts::is_none")]
    pub prior_gifts: PriorGifts,
    pub referral_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_by: Option<MemberId>,
    pub marketing_consent: bool,
    pub consent_at: DateTime<Utc>,
    pub joined_at: DateTime<Utc>,
    pub tier: TierCode,
    pub tier_since: DateTime<Utc>,
    #[serde(default)]
    pub wallet: Wallet,
    /// Qualifying spend net of refunds, per program-calendar day, oldest first; only days
    /// inside the tier window are kept, so the rolling spend is a sum over this list.
    /// Stored packed (`compact`).
    #[serde(default, with = "crate::compact::dated", skip_serializing_if = "Vec::is_empty")]
    pub spend_days: Vec<SpendDay>,
    #[serde(default)]
    pub lifetime_spend: Fen,
    #[serde(default)]
    pub order_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_purchase_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<DateTime<Utc>>,
    /// Today's activity counters (check-ins, reviews, shares) for the daily limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<ActivityDay>,
    /// This minute's write count for the per-member limit (`limits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_window: Option<crate::limits::WriteWindow>,
    /// Optimistic-concurrency version: every write is conditional on the version it read.
    #[serde(default)]
    pub version: u64,
    /// The program date of the last nightly tier evaluation that wrote this member: a second
    /// evaluation on the same (or an earlier) date changes nothing (`tier::evaluate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tier_evaluation: Option<NaiveDate>,
    /// When the nightly evaluation last lowered the tier. A tier entered by stepping down
    /// (`tier_since == stepped_down_at`) carries no protection (`tier::first_downgrade_date`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stepped_down_at: Option<DateTime<Utc>>,
    /// Coupons and points held by open checkouts (`Hold`); dead ones are dropped
    /// on the next write and ignored until then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
    /// When each tier above regular was last reached by the rolling spend, and with how much
    /// of it that has not been refunded since (`tier::Reach`): refunds re-decide the tier from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reached: Vec<crate::tier_code::Reach>,
    /// Set by a migration import (`migration`): which file line made this record, so that the
    /// same line again changes nothing and a corrected one is applied only while the member is
    /// as the import left it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<ImportMark>,
}

impl Member {
    /// A brand-new member of the lowest tier, before welcome points.
    pub fn join(
        id: MemberId,
        m: &NewMember,
        referral_code: String,
        referred_by: Option<MemberId>,
        now: DateTime<Utc>,
    ) -> Member {
        Member {
            member_id: id,
            email: m.email.clone(),
            phone: m.phone.clone(),
            name: Some(m.name.clone()),
            birthday: m.birthday,
            email_verified: false,
            phone_verified: false,
            birthday_set_at: m.birthday.map(|_| now),
            birthday_changes: Vec::new(),
            prior_gifts: PriorGifts::default(),
            referral_code,
            referred_by,
            marketing_consent: m.marketing_consent,
            consent_at: now,
            joined_at: now,
            tier: TierCode::Regular,
            tier_since: now,
            wallet: Wallet::default(),
            spend_days: Vec::new(),
            lifetime_spend: Fen::ZERO,
            order_count: 0,
            last_purchase_at: None,
            erased_at: None,
            activity: None,
            write_window: None,
            version: 0,
            last_tier_evaluation: None,
            stepped_down_at: None,
            holds: Vec::new(),
            reached: Vec::new(),
            imported: None,
        }
    }

    pub fn is_erased(&self) -> bool {
        self.erased_at.is_some()
    }

    /// Erasure: personal data goes; the ledger, points (a debt included) and standing stay
    /// (anonymized).
    pub fn erase(&mut self, now: DateTime<Utc>) {
        self.email = None;
        self.phone = None;
        self.email_verified = false;
        self.phone_verified = false;
        self.name = None;
        self.birthday = None;
        self.birthday_set_at = None;
        self.birthday_changes.clear();
        self.marketing_consent = false;
        self.consent_at = now;
        self.erased_at.get_or_insert(now);
    }

    /// A brand-new member from a signup: `join`, with which contacts the identity verified
    /// and what erased memberships of its contacts already received.
    pub fn sign_up(
        id: MemberId,
        m: &NewMember,
        verification: Verification,
        prior: PriorGifts,
        referral_code: String,
        referred_by: Option<MemberId>,
        now: DateTime<Utc>,
    ) -> Member {
        let mut member = Member::join(id, m, referral_code, referred_by, now);
        member.email_verified = verification.email && member.email.is_some();
        member.phone_verified = verification.phone && member.phone.is_some();
        member.prior_gifts = prior;
        member
    }

    /// When the program learnt the birthday (records from before `birthdaySetAt` was kept
    /// could only have it from signup).
    pub fn birthday_recorded_at(&self) -> DateTime<Utc> {
        self.birthday_set_at.unwrap_or(self.joined_at)
    }

    /// What the birthday rule needs to know about this member (`birthday::gift_allowed`).
    pub fn birthday_facts(&self, tz: chrono_tz::Tz) -> BirthdayFacts {
        BirthdayFacts {
            birthday: self.birthday,
            recorded_on: crate::calendar::program_date(tz, self.birthday_recorded_at()),
            prior_gift_year: self.prior_gifts.birthday_year,
        }
    }

    /// Support sets or changes the birthday: it counts as recorded now (a birthday gift needs
    /// it known ahead again), and who changed it and why is kept. Setting the birthday it
    /// already has changes nothing (answers false), so a retried request is harmless.
    pub fn change_birthday(
        &mut self,
        change: BirthdayChange,
        by: &str,
        now: DateTime<Utc>,
    ) -> bool {
        if self.birthday == Some(change.birthday) {
            return false;
        }
        self.birthday = Some(change.birthday);
        self.birthday_set_at = Some(now);
        self.birthday_changes.push(BirthdayChangeRecord {
            at: now,
            by: by.to_string(),
            reason: change.reason,
        });
        let excess = self.birthday_changes.len().saturating_sub(crate::birthday::CHANGES_KEPT);
        self.birthday_changes.drain(..excess);
        true
    }

    /// What this membership's contacts have received, for the tombstones its erasure leaves:
    /// the welcome gift (every membership had it, or had it withheld because an earlier one
    /// did), a referral link if this or an earlier membership had one, and the last year a
    /// birthday coupon went to this or an earlier membership (`birthday_gift_year`: this year
    /// if this member holds this year's birthday coupon).
    pub fn gifts_received(&self, birthday_gift_year: Option<i32>) -> PriorGifts {
        PriorGifts {
            welcome: true,
            referral: self.referred_by.is_some(),
            birthday_year: birthday_gift_year,
        }
        .merge(self.prior_gifts)
    }

    /// Qualifying spend over the tier window ending on `today` (inclusive).
    pub fn rolling_spend(&self, today: NaiveDate, window_days: u32) -> Fen {
        let from = today - chrono::Duration::days(window_days as i64 - 1);
        self.spend_days.iter().filter(|s| s.day >= from && s.day <= today).map(|s| s.amount).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::VerifiedContacts;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
    }

    fn req(
        email: Option<&str>,
        phone: Option<&str>,
        name: &str,
        birthday: Option<&str>,
    ) -> SignupRequest {
        SignupRequest {
            email: email.map(Into::into),
            phone: phone.map(Into::into),
            name: name.into(),
            birthday: birthday.map(Into::into),
            referral_code: None,
            marketing_consent: false,
        }
    }

    #[test]
    fn signup_normalizes_contact_details() {
        let m =
            req(Some(" Li.Wei@Example.COM "), Some("+8613800138000"), " 李伟 ", Some("1990-02-28"))
                .validate(today())
                .unwrap();
        assert_eq!(m.email.as_deref(), Some("li.wei@example.com"));
        assert_eq!(m.name, "李伟");
        assert_eq!(m.birthday, NaiveDate::from_ymd_opt(1990, 2, 28));
    }

    #[test]
    fn signup_rejections_name_their_rule() {
        let cases = [
            (req(None, None, "A", None), SignupError::ContactRequired),
            (req(Some("nope"), None, "A", None), SignupError::InvalidEmail),
            (req(Some("a@b"), None, "A", None), SignupError::InvalidEmail),
            (req(Some("a b@c.com"), None, "A", None), SignupError::InvalidEmail),
            (req(Some("a@-c.com"), None, "A", None), SignupError::InvalidEmail),
            (req(None, Some("13800138000"), "A", None), SignupError::InvalidPhone),
            (req(None, Some("+0123456789"), "A", None), SignupError::InvalidPhone),
            (req(None, Some("+86 138 0013 8000"), "A", None), SignupError::InvalidPhone),
            (req(None, Some("+1234567"), "A", None), SignupError::InvalidPhone),
            (req(None, Some("+86138001380001234"), "A", None), SignupError::InvalidPhone),
            (req(Some("a@b.cn"), None, "  ", None), SignupError::InvalidName),
            (req(Some("a@b.cn"), None, &"x".repeat(65), None), SignupError::InvalidName),
            (req(Some("a@b.cn"), None, "A", Some("1990-02-30")), SignupError::InvalidBirthday),
            (req(Some("a@b.cn"), None, "A", Some("2030-01-01")), SignupError::InvalidBirthday),
            (req(Some("a@b.cn"), None, "A", Some("1990-2-3")), SignupError::InvalidBirthday),
            (req(Some("a@b.cn"), None, "A", Some("2026-11-27")), SignupError::InvalidBirthday),
        ];
        for (r, want) in cases {
            assert_eq!(r.clone().validate(today()), Err(want), "{r:?}");
        }
        assert!(req(Some("a@b.cn"), None, &"名".repeat(64), None).validate(today()).is_ok());
    }

    #[test]
    fn verified_contacts_fill_the_signup_and_other_contacts_are_refused() {
        let verified = VerifiedContacts {
            email: Some("li.wei@example.com".into()),
            phone: Some("+8613800138000".into()),
        };
        // Left out of the body: taken from the token, verified.
        let (m, v) = req(None, None, "A", None).validate_with(today(), &verified).unwrap();
        assert_eq!(
            (m.email.as_deref(), m.phone.as_deref()),
            (Some("li.wei@example.com"), Some("+8613800138000"))
        );
        assert_eq!(v, Verification { email: true, phone: true });
        // The same in any case: verified.
        let (_, v) = req(Some("LI.WEI@example.com"), None, "A", None)
            .validate_with(today(), &verified)
            .unwrap();
        assert!(v.email);
        // Another one: refused, naming which.
        assert_eq!(
            req(Some("other@example.com"), None, "A", None)
                .validate_with(today(), &verified)
                .unwrap_err(),
            SignupError::EmailMismatch
        );
        assert_eq!(
            req(None, Some("+8613900139000"), "A", None)
                .validate_with(today(), &verified)
                .unwrap_err(),
            SignupError::PhoneMismatch
        );
        assert_eq!(SignupError::PhoneMismatch.code(), "contact_mismatch");
        // A malformed body contact is still its own error, first.
        assert_eq!(
            req(Some("nope"), None, "A", None).validate_with(today(), &verified).unwrap_err(),
            SignupError::InvalidEmail
        );
        // Without verified claims, the body's contacts are kept unverified.
        let (m, v) = req(Some("a@b.cn"), Some("+8613800138000"), "A", None)
            .validate_with(today(), &VerifiedContacts::default())
            .unwrap();
        assert_eq!((m.email.as_deref(), v), (Some("a@b.cn"), Verification::default()));
        // Only a verified email, and the body a phone: email verified, phone not.
        let only_email = VerifiedContacts { email: Some("li.wei@example.com".into()), phone: None };
        let (m, v) = req(None, Some("+8613800138000"), "A", None)
            .validate_with(today(), &only_email)
            .unwrap();
        assert_eq!((m.email.is_some(), v), (true, Verification { email: true, phone: false }));
    }

    #[test]
    fn a_signup_carries_its_verification_prior_gifts_and_when_the_birthday_was_recorded() {
        let now: DateTime<Utc> = "2026-11-27T10:00:00Z".parse().unwrap();
        let nm = req(Some("a@b.cn"), None, "A", Some("1990-05-18")).validate(today()).unwrap();
        let prior = PriorGifts { welcome: true, referral: true, birthday_year: Some(2026) };
        let m = Member::sign_up(
            MemberId::parse("m1").unwrap(),
            &nm,
            Verification { email: true, phone: true },
            prior,
            "ABCD2345".into(),
            None,
            now,
        );
        assert!(m.email_verified && !m.phone_verified, "no phone, nothing verified about it");
        assert_eq!((m.birthday_set_at, m.prior_gifts), (Some(now), prior));
        assert_eq!(m.birthday_facts(chrono_tz::Asia::Shanghai).prior_gift_year, Some(2026));
        // Its tombstones pass on what it and its predecessors received.
        assert_eq!(
            m.gifts_received(None),
            PriorGifts { welcome: true, referral: true, birthday_year: Some(2026) }
        );
        let fresh = Member::sign_up(
            MemberId::parse("m2").unwrap(),
            &nm,
            Verification::default(),
            PriorGifts::default(),
            "ABCD2346".into(),
            Some(MemberId::parse("r").unwrap()),
            now,
        );
        assert_eq!(
            fresh.gifts_received(Some(2027)),
            PriorGifts { welcome: true, referral: true, birthday_year: Some(2027) }
        );
        assert_eq!(
            fresh.gifts_received(None),
            PriorGifts { welcome: true, referral: true, birthday_year: None }
        );
    }

    #[test]
    fn support_changes_restart_the_birthday_clock_and_erasure_drops_them() {
        let joined: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let nm = req(Some("a@b.cn"), None, "A", None).validate(today()).unwrap();
        let mut m =
            Member::join(MemberId::parse("m1").unwrap(), &nm, "ABCD2345".into(), None, joined);
        assert_eq!(m.birthday_set_at, None);
        let change = |d: &str, r: &str| crate::birthday::BirthdayChange {
            birthday: d.parse().unwrap(),
            reason: r.into(),
        };
        let at1: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
        assert!(m.change_birthday(change("1990-05-18", "ticket 1"), "arn:ops", at1));
        assert_eq!((m.birthday_set_at, m.birthday_changes.len()), (Some(at1), 1));
        assert!(
            !m.change_birthday(
                change("1990-05-18", "again"),
                "arn:ops",
                at1 + chrono::Duration::days(1)
            ),
            "the same birthday changes nothing"
        );
        assert_eq!((m.birthday_set_at, m.birthday_changes.len()), (Some(at1), 1));
        for i in 0..20 {
            m.change_birthday(
                change(&format!("1990-06-{:02}", i + 1), &format!("ticket {i}")),
                "arn:ops",
                at1,
            );
        }
        assert_eq!(m.birthday_changes.len(), crate::birthday::CHANGES_KEPT);
        assert_eq!(m.birthday_changes.last().unwrap().reason, "ticket 19");
        m.erase(at1);
        assert!(
            m.birthday.is_none() && m.birthday_set_at.is_none() && m.birthday_changes.is_empty()
        );
        // A record from before birthdaySetAt was kept: the birthday came with the signup.
        let mut legacy = Member::join(
            MemberId::parse("m3").unwrap(),
            &req(Some("a@b.cn"), None, "A", Some("1990-05-18")).validate(today()).unwrap(),
            "ABCD2347".into(),
            None,
            joined,
        );
        legacy.birthday_set_at = None;
        assert_eq!(legacy.birthday_recorded_at(), joined);
    }

    #[test]
    fn referral_codes_are_normalized_and_checked() {
        assert_eq!(normalize_referral_code(" abcd2345 ").as_deref(), Some("ABCD2345"));
        assert_eq!(normalize_referral_code("ABCDEFGI"), None, "I is not in the alphabet");
        let c = new_referral_code();
        assert_eq!(normalize_referral_code(&c), Some(c));
    }

    #[test]
    fn rolling_spend_covers_exactly_the_window() {
        let id = MemberId::parse("m1").unwrap();
        let nm = req(Some("a@b.cn"), None, "A", None).validate(today()).unwrap();
        let mut m = Member::join(id, &nm, "ABCD2345".into(), None, Utc::now());
        let t = today();
        m.spend_days = vec![
            SpendDay { day: t - chrono::Duration::days(365), amount: Fen(7) },
            SpendDay { day: t - chrono::Duration::days(364), amount: Fen(5) },
            SpendDay { day: t, amount: Fen(1) },
        ];
        assert_eq!(m.rolling_spend(t, 365), Fen(6));
    }
}
