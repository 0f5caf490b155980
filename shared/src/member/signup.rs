//! Joining: the signup body as sent, its validation against the identity's verified contacts,
//! and referral codes.

use crate::birthday::parse_birthday;
use crate::contact::{normalize_email, normalize_phone, Verification, VerifiedContacts};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The body of `POST /members`, as sent. Unknown fields are refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupRequest {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    pub name: String,
    #[serde(default)]
    pub birthday: Option<String>,
    #[serde(default)]
    pub referral_code: Option<String>,
    #[serde(default)]
    pub marketing_consent: bool,
}

/// A signup that passed validation: normalized contact details and typed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: String,
    pub birthday: Option<NaiveDate>,
    pub referral_code: Option<String>,
    pub marketing_consent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignupError {
    #[error("give an email, a phone number, or both")]
    ContactRequired,
    #[error("email is not a valid address")]
    InvalidEmail,
    #[error("phone must be in E.164 form, e.g. +8613800138000")]
    InvalidPhone,
    #[error("name must be 1 to 64 characters")]
    InvalidName,
    #[error("birthday must be a real past date in YYYY-MM-DD form")]
    InvalidBirthday,
    #[error("referralCode is not a valid referral code")]
    InvalidReferralCode,
    #[error(
        "email differs from the verified email of your sign-in: leave it out or send that one"
    )]
    EmailMismatch,
    #[error("phone differs from the verified phone number of your sign-in: leave it out or send that one")]
    PhoneMismatch,
}

impl SignupError {
    pub fn code(self) -> &'static str {
        match self {
            SignupError::ContactRequired => "contact_required",
            SignupError::InvalidEmail => "invalid_email",
            SignupError::InvalidPhone => "invalid_phone",
            SignupError::InvalidName => "invalid_name",
            SignupError::InvalidBirthday => "invalid_birthday",
            SignupError::InvalidReferralCode => "invalid_referral_code",
            SignupError::EmailMismatch | SignupError::PhoneMismatch => "contact_mismatch",
        }
    }
}

impl SignupRequest {
    /// Validation without an identity that vouches for any contact.
    pub fn validate(self, today: NaiveDate) -> Result<NewMember, SignupError> {
        self.validate_with(today, &VerifiedContacts::default()).map(|(m, _)| m)
    }

    /// Validation against the contacts the member's identity verified: a verified contact is
    /// used when the body leaves it out, and a body naming another one is refused (nobody
    /// signs up with someone else's address while holding a token for their own). A contact
    /// only the body names is kept, unverified.
    pub fn validate_with(
        self,
        today: NaiveDate,
        verified: &VerifiedContacts,
    ) -> Result<(NewMember, Verification), SignupError> {
        let email =
            self.email.map(|e| normalize_email(&e).ok_or(SignupError::InvalidEmail)).transpose()?;
        let phone =
            self.phone.map(|p| normalize_phone(&p).ok_or(SignupError::InvalidPhone)).transpose()?;
        let (email, email_verified) =
            reconcile(email, verified.email.as_deref(), SignupError::EmailMismatch)?;
        let (phone, phone_verified) =
            reconcile(phone, verified.phone.as_deref(), SignupError::PhoneMismatch)?;
        if email.is_none() && phone.is_none() {
            return Err(SignupError::ContactRequired);
        }
        let name = self.name.trim().to_string();
        let len = name.chars().count();
        if !(1..=64).contains(&len) || name.chars().any(char::is_control) {
            return Err(SignupError::InvalidName);
        }
        let birthday = self
            .birthday
            .map(|b| parse_birthday(&b, today).ok_or(SignupError::InvalidBirthday))
            .transpose()?;
        let referral_code = self
            .referral_code
            .map(|c| normalize_referral_code(&c).ok_or(SignupError::InvalidReferralCode))
            .transpose()?;
        let new = NewMember {
            email,
            phone,
            name,
            birthday,
            referral_code,
            marketing_consent: self.marketing_consent,
        };
        Ok((new, Verification { email: email_verified, phone: phone_verified }))
    }
}

/// A body's contact against the identity's verified one: (the contact to keep, verified?).
fn reconcile(
    body: Option<String>,
    verified: Option<&str>,
    mismatch: SignupError,
) -> Result<(Option<String>, bool), SignupError> {
    match (body, verified) {
        (Some(b), Some(v)) if b != v => Err(mismatch),
        (_, Some(v)) => Ok((Some(v.to_string()), true)),
        (b, None) => Ok((b, false)),
    }
}

pub const REFERRAL_CODE_LEN: usize = 8;
const REFERRAL_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Referral codes are 8 Crockford base32 characters; accepted case-insensitively.
pub fn normalize_referral_code(s: &str) -> Option<String> {
    let c = s.trim().to_ascii_uppercase();
    (c.len() == REFERRAL_CODE_LEN && c.bytes().all(|b| REFERRAL_ALPHABET.contains(&b))).then_some(c)
}

/// A fresh random referral code (40 bits; uniqueness is enforced by a conditional write).
pub fn new_referral_code() -> String {
    let mut bytes = [0u8; REFERRAL_CODE_LEN];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| REFERRAL_ALPHABET[(*b & 31) as usize] as char).collect()
}
