//! What an order earns its partner, and what a refund takes back.

use super::{PartnerStatus, Terms};
use crate::money::Fen;
use crate::points::Channel;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// What the tracking code sent with an order resolved to: the partner's terms as its code
/// item held them, or none for a code nobody has. A quoted checkout keeps it until its confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Referral {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<Terms>,
}

/// Why an order with a code earns nothing. The order itself is recorded as usual: a bad code
/// must never lose a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCommission {
    UnknownCode,
    PartnerInactive,
    /// The partner is linked to the member who ordered.
    SelfReferral,
}

impl NoCommission {
    pub fn code(self) -> &'static str {
        match self {
            NoCommission::UnknownCode => "unknown_code",
            NoCommission::PartnerInactive => "partner_inactive",
            NoCommission::SelfReferral => "self_referral",
        }
    }
}

/// A commission an order earns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accrual {
    pub partner_id: String,
    pub rate_basis_points: u32,
    pub commission: Fen,
}

/// floor(paid × rate / 10,000), in fen.
pub fn commission(paid: Fen, rate_basis_points: u32) -> Fen {
    Fen((paid.0.max(0) as i128 * rate_basis_points as i128 / 10_000) as i64)
}

/// The rate of an order of `channel`: the channel's own, else the partner's.
pub fn rate_for(terms: &Terms, channel: Channel) -> u32 {
    let own = match channel {
        Channel::Online => terms.channel_rates.online,
        Channel::Store => terms.channel_rates.store,
    };
    own.unwrap_or(terms.rate_basis_points)
}

/// What an order of `member_id` paying `paid` earns through `referral`: nothing for an unknown
/// code, an inactive partner or the partner's own member.
pub fn decide(
    referral: &Referral,
    member_id: &str,
    channel: Channel,
    paid: Fen,
) -> Result<Accrual, NoCommission> {
    let terms = referral.terms.as_ref().ok_or(NoCommission::UnknownCode)?;
    if terms.status != PartnerStatus::Active {
        return Err(NoCommission::PartnerInactive);
    }
    if terms.member_id.as_deref() == Some(member_id) {
        return Err(NoCommission::SelfReferral);
    }
    let rate = rate_for(terms, channel);
    Ok(Accrual {
        partner_id: terms.partner_id.clone(),
        rate_basis_points: rate,
        commission: commission(paid, rate),
    })
}

/// What the order item keeps of its commission, so that a refund knows what to reverse and
/// where: the partner, the month the commission was booked in, and what is reversed so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribution {
    pub partner_id: String,
    pub month: String,
    pub commission: Fen,
    #[serde(default)]
    pub reversed: Fen,
}

/// The commission reversed once `refunded` of `paid` is refunded: cumulative, like the points
/// clawback, floor(commission × refunded / paid), so partial refunds add up exactly and a
/// full refund reverses all of it.
pub fn reversed_total(commission: Fen, paid: Fen, refunded: Fen) -> Fen {
    if paid.0 <= 0 {
        return Fen::ZERO;
    }
    let r = refunded.0.clamp(0, paid.0);
    Fen((commission.0.max(0) as i128 * r as i128 / paid.0 as i128) as i64)
}

/// The `affiliate` part of an order's answer: what its tracking code earned, or why nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AffiliateView {
    pub tracking_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_basis_points: Option<u32>,
    pub commission: Fen,
    /// When the commission leaves the return window and becomes payable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_until: Option<NaiveDate>,
    /// Why the order earns nothing (`unknown_code`, `partner_inactive`, `self_referral`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl AffiliateView {
    pub fn of(
        referral: &Referral,
        decided: &Result<Accrual, NoCommission>,
        release_on: NaiveDate,
    ) -> AffiliateView {
        let partner_id = referral.terms.as_ref().map(|t| t.partner_id.clone());
        match decided {
            Ok(a) => AffiliateView {
                tracking_code: referral.code.clone(),
                partner_id,
                rate_basis_points: Some(a.rate_basis_points),
                commission: a.commission,
                pending_until: Some(release_on),
                reason: None,
            },
            Err(why) => AffiliateView {
                tracking_code: referral.code.clone(),
                partner_id,
                rate_basis_points: None,
                commission: Fen::ZERO,
                pending_until: None,
                reason: Some(why.code()),
            },
        }
    }
}
