//! Affiliate partners (网络会员制营销): operators register partners with a payout rate and
//! tracking codes; an order that carries a partner's code earns the partner a commission on
//! what was paid, pending through the order's return window, reversed by refunds, then
//! payable on the partner's monthly statement. Pure rules: what a partner may be, what a code
//! looks like, what an order earns (`commission.rs`) and what a month owes (`statement.rs`);
//! `store::partner` keeps the items and `purchase-points` wires them into the order routes.

mod commission;
mod statement;

pub use commission::*;
pub use statement::*;

use crate::member::MemberId;
use crate::rules::Rules;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartnerStatus {
    Active,
    Inactive,
}

/// Rates by sales channel, in basis points; a channel left out pays the partner's rate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelRates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<u32>,
}

impl ChannelRates {
    fn is_empty(&self) -> bool {
        self.online.is_none() && self.store.is_none()
    }
}

/// A partner as operators define it, with its tracking codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Partner {
    pub partner_id: String,
    pub name: String,
    pub rate_basis_points: u32,
    #[serde(default, skip_serializing_if = "ChannelRates::is_empty")]
    pub channel_rates: ChannelRates,
    /// The member the partner is (an influencer who is also a member): their own orders
    /// earn the partner nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    pub status: PartnerStatus,
    #[serde(default)]
    pub codes: Vec<String>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /partners`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartnerRequest {
    pub name: String,
    pub rate_basis_points: u32,
    #[serde(default)]
    pub channel_rates: Option<ChannelRates>,
    #[serde(default)]
    pub member_id: Option<String>,
}

/// `PATCH /partners/{id}`: what is sent changes, the rest stays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartnerPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub rate_basis_points: Option<u32>,
    /// Replaces the channel rates (`{}` removes them).
    #[serde(default)]
    pub channel_rates: Option<ChannelRates>,
    #[serde(default)]
    pub status: Option<PartnerStatus>,
}

/// Why an operator's partner request is refused (422, each with a stable code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartnerError {
    #[error("name must be 1 to 100 characters")]
    InvalidName,
    #[error("a rate of {0} basis points is above the program's cap of {1}")]
    RateAboveCap(u32, u32),
    #[error("memberId is not a valid member id")]
    InvalidMemberId,
    #[error("a partner has at most {0} tracking codes")]
    TooManyCodes(u8),
    #[error("the patch changes nothing; send at least one field")]
    EmptyPatch,
}

impl PartnerError {
    pub fn code(&self) -> &'static str {
        match self {
            PartnerError::InvalidName => "invalid_name",
            PartnerError::RateAboveCap(..) => "rate_above_cap",
            PartnerError::InvalidMemberId => "invalid_member_id",
            PartnerError::TooManyCodes(_) => "too_many_codes",
            PartnerError::EmptyPatch => "empty_patch",
        }
    }
}

fn check_rates(rules: &Rules, rate: u32, channels: &ChannelRates) -> Result<(), PartnerError> {
    let cap = rules.affiliates.max_rate_basis_points;
    match [Some(rate), channels.online, channels.store].into_iter().flatten().find(|r| *r > cap) {
        Some(r) => Err(PartnerError::RateAboveCap(r, cap)),
        None => Ok(()),
    }
}

fn check_name(name: &str) -> Result<String, PartnerError> {
    let name = name.trim();
    match (1..=100).contains(&name.chars().count()) {
        true => Ok(name.to_string()),
        false => Err(PartnerError::InvalidName),
    }
}

impl PartnerRequest {
    /// The new partner, active, with its first tracking code.
    pub fn validate(
        self,
        partner_id: String,
        code: String,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Partner, PartnerError> {
        let channel_rates = self.channel_rates.unwrap_or_default();
        check_rates(rules, self.rate_basis_points, &channel_rates)?;
        if let Some(m) = &self.member_id {
            MemberId::parse(m).ok_or(PartnerError::InvalidMemberId)?;
        }
        Ok(Partner {
            partner_id,
            name: check_name(&self.name)?,
            rate_basis_points: self.rate_basis_points,
            channel_rates,
            member_id: self.member_id,
            status: PartnerStatus::Active,
            codes: vec![code],
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }
}

impl Partner {
    /// The next version with the patch applied.
    pub fn patched(
        &self,
        patch: PartnerPatch,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Partner, PartnerError> {
        if patch == PartnerPatch::default() {
            return Err(PartnerError::EmptyPatch);
        }
        let mut next = self.clone();
        if let Some(n) = &patch.name {
            next.name = check_name(n)?;
        }
        next.rate_basis_points = patch.rate_basis_points.unwrap_or(next.rate_basis_points);
        next.channel_rates = patch.channel_rates.unwrap_or(next.channel_rates);
        next.status = patch.status.unwrap_or(next.status);
        check_rates(rules, next.rate_basis_points, &next.channel_rates)?;
        next.version += 1;
        next.updated_at = now;
        Ok(next)
    }

    /// The next version with one more code.
    pub fn with_code(
        &self,
        code: String,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Partner, PartnerError> {
        let most = rules.affiliates.max_codes_per_partner;
        if self.codes.len() >= most as usize {
            return Err(PartnerError::TooManyCodes(most));
        }
        let mut next = self.clone();
        next.codes.push(code);
        next.version += 1;
        next.updated_at = now;
        Ok(next)
    }

    /// What each of its code items carries, so that an order reads the terms with its code.
    pub fn terms(&self) -> Terms {
        Terms {
            partner_id: self.partner_id.clone(),
            rate_basis_points: self.rate_basis_points,
            channel_rates: self.channel_rates.clone(),
            member_id: self.member_id.clone(),
            status: self.status,
            partner_version: self.version,
        }
    }
}

/// A partner's terms as an order meets them: copied onto every code item (rewritten with
/// the partner in one transaction), so the order's one read of its code finds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terms {
    pub partner_id: String,
    pub rate_basis_points: u32,
    #[serde(default, skip_serializing_if = "ChannelRates::is_empty")]
    pub channel_rates: ChannelRates,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    pub status: PartnerStatus,
    pub partner_version: u64,
}

/// A partner id: from the Idempotency-Key when given (a retry finds the same partner), else
/// random.
pub fn new_partner_id(idempotency_key: Option<&str>) -> String {
    let bytes: Vec<u8> = match idempotency_key {
        Some(k) => Sha256::digest(format!("partner-idempotency\0{k}").as_bytes())[..8].to_vec(),
        None => random_bytes::<8>().to_vec(),
    };
    format!("p-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let _ = getrandom::fill(&mut b);
    b
}

/// Crockford's base32: no I, L, O, U, so a code read aloud or typed is not mistaken.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new random tracking code of `rules.affiliates.codeLength` characters (40 bits and more:
/// guessing a live code is hopeless, and a clash is refused by the code item's condition).
pub fn new_code(rules: &Rules) -> String {
    random_bytes::<16>()
        .iter()
        .take(rules.affiliates.code_length as usize)
        .map(|b| ALPHABET[(*b & 31) as usize] as char)
        .collect()
}

/// The first code of a partner defined under an Idempotency-Key: derived from the key, so a
/// retry asks for the same code (tracking codes are public in links anyway; only their
/// uniqueness matters, which the code item's condition keeps).
pub fn code_for_key(rules: &Rules, idempotency_key: &str) -> String {
    Sha256::digest(format!("partner-code\0{idempotency_key}").as_bytes())
        .iter()
        .take(rules.affiliates.code_length as usize)
        .map(|b| ALPHABET[(*b & 31) as usize] as char)
        .collect()
}

/// Whether `code` can be a tracking code at all (any length a program may have generated):
/// a request naming anything else is refused before a read, with 422 `invalid_tracking_code`.
pub fn looks_like_code(code: &str) -> bool {
    (6..=16).contains(&code.len()) && code.bytes().all(|b| ALPHABET.contains(&b))
}

/// A program-calendar month, `YYYY-MM`.
pub fn month_of(day: NaiveDate) -> String {
    format!("{:04}-{:02}", day.year(), day.month())
}

/// The first and last day of a `YYYY-MM` month, if it is one.
pub fn parse_month(month: &str) -> Option<(NaiveDate, NaiveDate)> {
    let (y, m) = month.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let first = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    Some((first, next.pred_opt()?))
}

#[cfg(test)]
mod tests;
