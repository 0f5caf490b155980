//! Contact details as the program keys them: never in the clear. A contact (normalized email
//! or phone) is keyed by a keyed HMAC-SHA256 under a server-side secret (`CONTACT_KEY`), so
//! neither the uniqueness items of live members nor the tombstones of erased ones can be
//! turned back into the address: a bare SHA-256 of a phone number is reversed by trying the
//! few billion numbers of a country; an HMAC cannot be without the key.
//!
//! Also here, as pure rules: which contacts the identity provider vouches for (the token's
//! verified claims), how a signup's contacts are reconciled with them, and what earlier,
//! erased memberships of the same contacts already received (`PriorGifts`).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The secret behind contact digests. Changing it orphans every uniqueness item and
/// tombstone, so it is as stable as the table.
#[derive(Clone)]
pub struct ContactKey(Vec<u8>);

impl std::fmt::Debug for ContactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContactKey(..)")
    }
}

/// Shortest accepted secret: 256 bits, the HMAC-SHA256 block's worth of strength.
pub const MIN_KEY_BYTES: usize = 32;

impl ContactKey {
    pub fn new(secret: &[u8]) -> Result<ContactKey, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!("CONTACT_KEY must be at least {MIN_KEY_BYTES} bytes"));
        }
        Ok(ContactKey(secret.to_vec()))
    }

    /// The deployment's key, `CONTACT_KEY` (the Secrets Manager secret `ContactKeySecret`, or
    /// a local stand-in: `secrets::load`), read once at init.
    pub async fn from_env() -> Result<ContactKey, String> {
        ContactKey::new(crate::secrets::load("CONTACT_KEY").await?.expose())
    }

    /// The digest of a normalized email.
    pub fn email(&self, email: &str) -> ContactDigest {
        self.digest(ContactKind::Email, email)
    }

    /// The digest of a normalized (E.164) phone number.
    pub fn phone(&self, phone: &str) -> ContactDigest {
        self.digest(ContactKind::Phone, phone)
    }

    /// HMAC-SHA256 over the kind and the value, so that an email and a phone number never
    /// share a digest.
    pub fn digest(&self, kind: ContactKind, value: &str) -> ContactDigest {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in [kind.as_str().as_bytes(), b"\0", value.as_bytes()] {
            mac.update(part);
        }
        ContactDigest(mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactKind {
    Email,
    Phone,
}

impl ContactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactKind::Email => "email",
            ContactKind::Phone => "phone",
        }
    }
}

/// A contact's keyed digest (64 hex characters): what table keys carry instead of the contact.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactDigest(String);

impl ContactDigest {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The contacts the identity provider verified, from the member's token (`email` with
/// `email_verified`, `phone_number` with `phone_number_verified`), normalized like a signup's.
/// A claim that is present but not verified is not here: it proves nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifiedContacts {
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl VerifiedContacts {
    /// From the token's claims as API Gateway passes them (every value a string, booleans as
    /// `"true"`). A verified claim our validation refuses is dropped: it cannot be stored, and
    /// a body naming a valid contact is then judged on its own.
    pub fn from_claims<'a>(claim: impl Fn(&str) -> Option<&'a str>) -> VerifiedContacts {
        let verified = |flag: &str| claim(flag).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let email = claim("email").filter(|_| verified("email_verified")).and_then(normalize_email);
        let phone = claim("phone_number")
            .filter(|_| verified("phone_number_verified"))
            .and_then(normalize_phone);
        VerifiedContacts { email, phone }
    }
}

/// Which of a member's contacts the identity provider verified. Only a verified contact
/// reserves its uniqueness slot and leaves a tombstone when erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verification {
    pub email: bool,
    pub phone: bool,
}

/// What erased memberships of a signup's contacts already received, from their tombstones
/// (and carried on the new member, so that its own erasure passes it on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriorGifts {
    /// The welcome points and coupon.
    #[serde(default)]
    pub welcome: bool,
    /// A referral link (its referrer was or will be rewarded for bringing this contact).
    #[serde(default)]
    pub referral: bool,
    /// The last year a birthday coupon went to a membership of this contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday_year: Option<i32>,
}

impl PriorGifts {
    /// Nothing received: the record of a contact never seen before.
    pub fn is_none(&self) -> bool {
        *self == PriorGifts::default()
    }

    /// Two contacts' records together: a gift given to either was given.
    pub fn merge(self, other: PriorGifts) -> PriorGifts {
        PriorGifts {
            welcome: self.welcome || other.welcome,
            referral: self.referral || other.referral,
            birthday_year: self.birthday_year.max(other.birthday_year),
        }
    }
}

/// A gift a signup does not get, and why (shown in the 201 answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Withheld {
    pub gift: &'static str,
    pub code: &'static str,
    pub detail: &'static str,
}

/// What a signup gets, given what its contacts' erased memberships received: the welcome gift
/// once per contact, a referral link once per contact (a rejoin is not a new customer its
/// referrer brought in twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gifts {
    pub welcome: bool,
    pub referral_link: bool,
    pub withheld: Vec<Withheld>,
}

pub const WELCOME_WITHHELD: Withheld = Withheld {
    gift: "welcome",
    code: "contact_already_gifted",
    detail: "this email or phone number already received the welcome gift in an earlier membership that was erased",
};

pub const REFERRAL_WITHHELD: Withheld = Withheld {
    gift: "referral",
    code: "contact_already_referred",
    detail: "this email or phone number was already referred in an earlier membership that was erased; the referral code is not linked",
};

pub fn gifts(prior: &PriorGifts, referral_code_given: bool) -> Gifts {
    let welcome = !prior.welcome;
    let referral_link = referral_code_given && !prior.referral;
    let mut withheld = Vec::new();
    if !welcome {
        withheld.push(WELCOME_WITHHELD);
    }
    if referral_code_given && !referral_link {
        withheld.push(REFERRAL_WITHHELD);
    }
    Gifts { welcome, referral_link, withheld }
}

/// Lower-cased address with one `@`, a dotted domain, no spaces; at most 254 characters.
pub fn normalize_email(s: &str) -> Option<String> {
    let e = s.trim().to_ascii_lowercase();
    let (local, domain) = e.split_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
    (e.len() <= 254 && local_ok && domain_ok).then_some(e)
}

/// E.164: `+`, a non-zero country digit, 8 to 15 digits in all. Spaces and dashes are not accepted.
pub fn normalize_phone(s: &str) -> Option<String> {
    let p = s.trim();
    let digits = p.strip_prefix('+')?;
    let ok = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then(|| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ContactKey {
        ContactKey::new(&[9u8; 32]).unwrap()
    }

    #[test]
    fn digests_are_keyed_and_kind_separated() {
        let k = key();
        let d = k.email("li.wei@example.com");
        assert_eq!(d, k.email("li.wei@example.com"));
        assert_eq!(d.as_str().len(), 64);
        assert_ne!(
            d,
            ContactKey::new(&[8u8; 32]).unwrap().email("li.wei@example.com"),
            "another key, another digest"
        );
        assert_ne!(
            k.email("+8613800138000"),
            k.phone("+8613800138000"),
            "an email and a phone never share a digest"
        );
        // Not the bare SHA-256 of the contact (which anyone could compute).
        use sha2::Digest;
        let bare: String =
            Sha256::digest(b"li.wei@example.com").iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(d.as_str(), bare);
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(ContactKey::new(&[1u8; 31]).unwrap_err().contains("at least 32 bytes"));
        assert!(ContactKey::new(&[1u8; 32]).is_ok());
    }

    #[test]
    fn only_verified_claims_count_and_they_are_normalized() {
        let claims = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
        };
        let v = VerifiedContacts::from_claims(claims(&[
            ("email", "Li.Wei@Example.COM"),
            ("email_verified", "true"),
            ("phone_number", "+8613800138000"),
            ("phone_number_verified", "false"),
        ]));
        assert_eq!(v, VerifiedContacts { email: Some("li.wei@example.com".into()), phone: None });
        let v = VerifiedContacts::from_claims(claims(&[
            ("phone_number", "+8613800138000"),
            ("phone_number_verified", "true"),
            ("email", "x@example.com"),
        ]));
        assert_eq!(
            v,
            VerifiedContacts { email: None, phone: Some("+8613800138000".into()) },
            "an email without email_verified is not verified"
        );
        let v = VerifiedContacts::from_claims(claims(&[
            ("email", "not an email"),
            ("email_verified", "true"),
        ]));
        assert_eq!(v, VerifiedContacts::default(), "a verified claim our rules refuse is dropped");
    }

    #[test]
    fn welcome_and_referral_go_once_per_contact() {
        let fresh = gifts(&PriorGifts::default(), true);
        assert_eq!(fresh, Gifts { welcome: true, referral_link: true, withheld: vec![] });
        let rejoin =
            gifts(&PriorGifts { welcome: true, referral: false, birthday_year: None }, true);
        assert_eq!(
            rejoin,
            Gifts { welcome: false, referral_link: true, withheld: vec![WELCOME_WITHHELD] },
            "a contact never referred may be referred once"
        );
        let referred =
            gifts(&PriorGifts { welcome: true, referral: true, birthday_year: None }, true);
        assert_eq!(
            referred,
            Gifts {
                welcome: false,
                referral_link: false,
                withheld: vec![WELCOME_WITHHELD, REFERRAL_WITHHELD]
            }
        );
        let no_code =
            gifts(&PriorGifts { welcome: true, referral: true, birthday_year: None }, false);
        assert_eq!(no_code.withheld, vec![WELCOME_WITHHELD], "no code given, no referral withheld");
    }

    #[test]
    fn prior_gifts_merge_as_either_contact_received() {
        let a = PriorGifts { welcome: true, referral: false, birthday_year: Some(2025) };
        let b = PriorGifts { welcome: true, referral: true, birthday_year: Some(2026) };
        assert_eq!(
            a.merge(b),
            PriorGifts { welcome: true, referral: true, birthday_year: Some(2026) }
        );
        assert_eq!(PriorGifts::default().merge(a), a);
    }
}
