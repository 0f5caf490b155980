//! A line's fields validated into the member it describes: contacts as signup checks them,
//! dates not in the future, lots still alive by the rules' expiry.

use super::line::{reject, ImportLine, ImportedMember, LineResult, RejectCode};
use crate::birthday::parse_birthday;
use crate::calendar;
use crate::contact::{normalize_email, normalize_phone};
use crate::ledger::Wallet;
use crate::member::{Member, MemberId, SpendDay};
use crate::money::Fen;
use crate::rules::Rules;
use crate::tier_code::{Reach, TierCode};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sha2::{Digest, Sha256};

/// A date (`YYYY-MM-DD`, midnight program time) or an instant (RFC 3339).
fn instant(rules: &Rules, s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Some(t.with_timezone(&Utc));
    }
    strict_date(s).map(|d| calendar::start_of_day(rules.time_zone, d))
}

fn strict_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    (s.len() == 10).then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()).flatten()
}

impl ImportLine {
    /// Validates the line as of `now`: contacts as signup does, dates not in the future, lots
    /// still alive by the rules' expiry, the tier one of the program's with when it was
    /// reached. The member gets a placeholder referral code (the store gives a fresh one).
    pub fn validate(self, rules: &Rules, now: DateTime<Utc>) -> LineResult<ImportedMember> {
        let tz = rules.time_zone;
        let today = calendar::program_date(tz, now);
        let digest = line_digest(&self);
        let id = match self.id.as_deref().map(str::trim) {
            None | Some("") => return reject(RejectCode::MissingId, "id is required"),
            Some(s) => MemberId::parse(s).ok_or((
                RejectCode::InvalidId,
                "id must be 1 to 128 letters, digits or -_.:@".to_string(),
            ))?,
        };
        let name = self.name.as_deref().unwrap_or_default().trim().to_string();
        let len = name.chars().count();
        if !(1..=64).contains(&len) || name.chars().any(char::is_control) {
            return reject(RejectCode::InvalidName, "name must be 1 to 64 characters");
        }
        let email =
            match self.email.as_deref().filter(|e| !e.trim().is_empty()) {
                None => None,
                Some(e) => Some(normalize_email(e).ok_or((
                    RejectCode::InvalidEmail,
                    "email is not a valid address".to_string(),
                ))?),
            };
        let phone = match self.phone.as_deref().filter(|p| !p.trim().is_empty()) {
            None => None,
            Some(p) => Some(normalize_phone(p).ok_or((
                RejectCode::InvalidPhone,
                "phone must be in E.164 form, e.g. +8613800138000".to_string(),
            ))?),
        };
        if email.is_none() && phone.is_none() {
            return reject(RejectCode::ContactRequired, "give an email, a phone number, or both");
        }
        let birthday = match self.birthday.as_deref().filter(|b| !b.trim().is_empty()) {
            None => None,
            Some(b) => Some(parse_birthday(b, today).ok_or((
                RejectCode::InvalidBirthday,
                "birthday must be a real past date in YYYY-MM-DD form".to_string(),
            ))?),
        };
        let joined_at = self.joined_at.as_deref().and_then(|s| instant(rules, s)).ok_or((
            RejectCode::InvalidJoinedAt,
            "joinedAt is required: YYYY-MM-DD or an RFC 3339 instant".to_string(),
        ))?;
        if joined_at > now {
            return reject(RejectCode::JoinedInFuture, "joinedAt is in the future");
        }
        let tier_name = self.tier.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let tier = match tier_name {
            None => TierCode::Regular,
            Some(t) => TierCode::parse(&t.to_ascii_lowercase()).ok_or((
                RejectCode::UnknownTier,
                format!("tier {t:?} is not one of regular, silver, gold, diamond"),
            ))?,
        };
        let tier_since = match self.tier_reached_at.as_deref().filter(|s| !s.trim().is_empty()) {
            None if tier == TierCode::Regular => joined_at,
            None => return reject(
                RejectCode::InvalidTierDate,
                "tierReachedAt is required for a tier above regular (its protection runs from it)",
            ),
            Some(s) => instant(rules, s).ok_or((
                RejectCode::InvalidTierDate,
                "tierReachedAt must be YYYY-MM-DD or an RFC 3339 instant".to_string(),
            ))?,
        };
        if tier_since > now {
            return reject(RejectCode::TierDateInFuture, "tierReachedAt is in the future");
        }
        if calendar::program_date(tz, tier_since) < calendar::program_date(tz, joined_at) {
            return reject(RejectCode::TierDateBeforeJoin, "tierReachedAt is before joinedAt");
        }
        if self.lots.len() > super::MAX_LOTS {
            return reject(
                RejectCode::TooManyLots,
                format!(
                    "{} lots; at most {} (merge lots of one day)",
                    self.lots.len(),
                    super::MAX_LOTS
                ),
            );
        }
        let expiry = Duration::days(rules.points.expiry_days as i64);
        let mut lots = Vec::with_capacity(self.lots.len());
        for (n, lot) in self.lots.iter().enumerate() {
            if lot.points <= 0 {
                return reject(
                    RejectCode::InvalidPoints,
                    format!("lots[{n}].points must be a positive whole number, not {}", lot.points),
                );
            }
            let on = strict_date(&lot.earned_on).ok_or((
                RejectCode::InvalidLotDate,
                format!("lots[{n}].earnedOn must be YYYY-MM-DD"),
            ))?;
            if on > today {
                return reject(
                    RejectCode::LotInFuture,
                    format!("lots[{n}] is dated in the future ({on})"),
                );
            }
            if on + expiry <= today {
                return reject(
                    RejectCode::LotExpired,
                    format!(
                        "lots[{n}] earned {on} expired on {} by the program's rules",
                        on + expiry
                    ),
                );
            }
            lots.push((on, lot.points));
        }
        let lifetime = self.lifetime_spend.unwrap_or(0);
        if lifetime < 0 {
            return reject(RejectCode::InvalidSpend, "lifetimeSpend must not be negative");
        }
        let window_start = today - Duration::days(rules.tier_window_days as i64 - 1);
        let mut spend_days: Vec<SpendDay> = Vec::new();
        for (n, s) in self.spend.iter().enumerate() {
            let on = strict_date(&s.on)
                .ok_or((RejectCode::InvalidSpend, format!("spend[{n}].on must be YYYY-MM-DD")))?;
            if s.amount < 0 {
                return reject(
                    RejectCode::InvalidSpend,
                    format!("spend[{n}].amount must not be negative"),
                );
            }
            if on > today {
                return reject(
                    RejectCode::SpendInFuture,
                    format!("spend[{n}] is dated in the future ({on})"),
                );
            }
            if on < window_start || s.amount == 0 {
                continue;
            }
            match spend_days.iter_mut().find(|d| d.day == on) {
                Some(d) => d.amount += Fen(s.amount),
                None => spend_days.push(SpendDay { day: on, amount: Fen(s.amount) }),
            }
        }
        spend_days.sort_by_key(|d| d.day);
        let consent_at = match self.consent_at.as_deref().filter(|s| !s.trim().is_empty()) {
            None => joined_at,
            Some(s) => match instant(rules, s) {
                Some(t) if t <= now => t,
                _ => {
                    return reject(
                        RejectCode::InvalidConsentDate,
                        "consentAt must be a past YYYY-MM-DD or RFC 3339 instant",
                    )
                }
            },
        };
        let last_purchase_at =
            match self.last_purchase_at.as_deref().filter(|s| !s.trim().is_empty()) {
                None => None,
                Some(s) => match instant(rules, s) {
                    Some(t) if t <= now => Some(t),
                    _ => {
                        return reject(
                            RejectCode::InvalidLastPurchase,
                            "lastPurchaseAt must be a past YYYY-MM-DD or RFC 3339 instant",
                        )
                    }
                },
            };
        let mut wallet = Wallet::default();
        for (on, points) in &lots {
            wallet.earn(*points, *on);
        }
        // The tier as given, reached when given: a refund's re-decision and the nightly's
        // protection both start from this reach, as if the member had bought it here.
        let reached = (tier != TierCode::Regular)
            .then(|| Reach { tier, at: tier_since, kept: rules.tier(tier).threshold })
            .into_iter()
            .collect();
        let member = Member {
            member_id: id,
            email_verified: email.is_some(),
            phone_verified: phone.is_some(),
            email,
            phone,
            name: Some(name),
            birthday,
            // The old program knew the birthday since the member joined it.
            birthday_set_at: birthday.map(|_| joined_at),
            birthday_changes: Vec::new(),
            prior_gifts: Default::default(),
            referral_code: String::new(),
            referred_by: None,
            marketing_consent: self.marketing_consent.unwrap_or(false),
            consent_at,
            joined_at,
            tier,
            tier_since,
            wallet,
            spend_days,
            lifetime_spend: Fen(lifetime),
            order_count: self.order_count.unwrap_or(0),
            last_purchase_at,
            erased_at: None,
            activity: None,
            write_window: None,
            version: 0,
            last_tier_evaluation: None,
            stepped_down_at: None,
            holds: Vec::new(),
            reached,
            imported: None,
        };
        Ok(ImportedMember { member, lots, digest })
    }
}

/// SHA-256 over the line's fields as parsed (not its bytes, nor what they mean today): equal
/// for the same member sent again in any spacing, field order or as a CSV row, different for
/// any corrected field, and the same on any later day.
fn line_digest(line: &ImportLine) -> String {
    let bytes = serde_json::to_vec(line).unwrap_or_default();
    Sha256::digest(&bytes).iter().take(16).map(|b| format!("{b:02x}")).collect()
}
