//! Rewards (积分兑换): a catalog of coupons and gifts that members buy with their available
//! points. Pure rules over the reward as read, the member as read and the clock;
//! `purchase-points` persists what they decide, every claim in one transaction.
//!
//! - Operators define rewards (`RewardRequest`), change them (`RewardPatch`: every change
//!   makes a new `version`) and deactivate them. A claim is charged the price the member was
//!   shown: it names that price, and a reward whose price changed since refuses it
//!   (`price_changed`) rather than charge another.
//! - A member claims with their *available* points: the balance less what open checkouts
//!   hold; pending points (the return window) are not in the balance at all. Points are spent
//!   oldest lot first, with a `reward` ledger entry naming the claim.
//! - A coupon reward issues its coupon in the claim's transaction; a gift reward records a
//!   claim the shop fulfils: `pending` until the order system or an operator marks it
//!   `shipped` or `cancelled`. Cancelling gives the points back (a `reward` entry of the
//!   price, dated like the lot they were spent from), the unit back to the stock and the
//!   claim back to the member's limit.

use crate::calendar::{self, program_date};
use crate::coupon::CouponTemplate;
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::Member;
use crate::money::Points;
use crate::rules::Rules;
use crate::tier_code::TierCode;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

/// The dearest reward (a typo guard: 10,000,000 points are 100,000 CNY).
pub const MAX_PRICE: i64 = 10_000_000;
pub const MAX_STOCK: u64 = 10_000_000;
pub const MAX_LIMIT: u32 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// Issues a coupon (a named template of the rules or an inline one).
    Coupon,
    /// A physical or digital item the shop fulfils.
    Gift,
}

/// What a per-member limit counts: every claim ever, or the claims of one program month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitPeriod {
    #[default]
    Lifetime,
    Month,
}

/// A coupon reward's coupon: the name of a template of the rules' `couponTemplates`, or a
/// template given inline (as `POST /members/{id}/coupons` takes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TemplateRef {
    Named(String),
    Inline(Box<CouponTemplate>),
}

fn yes() -> bool {
    true
}

/// `POST /rewards` (operators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewardRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// In points.
    pub price: i64,
    pub kind: RewardKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<TemplateRef>,
    /// Units in all; none means as many as are claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_member_limit: Option<u32>,
    #[serde(default)]
    pub limit_period: LimitPeriod,
    /// Tiers that may claim it; empty means every tier.
    #[serde(default)]
    pub tiers: Vec<TierCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_until: Option<DateTime<Utc>>,
    #[serde(default = "yes")]
    pub active: bool,
}

/// A reward of the catalog. `version` grows with every change an operator makes; claims do
/// not change it (they count on the stored item's own counter), so claims of different
/// members never invalidate each other's read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reward {
    pub reward_id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    pub price: i64,
    pub kind: RewardKind,
    /// The rules' template a coupon reward was defined with, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_template: Option<String>,
    /// What a claim of a coupon reward issues: resolved when the reward is defined, so a claim
    /// gives what the member was shown even if the rules' template changes later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<CouponTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_member_limit: Option<u32>,
    #[serde(default)]
    pub limit_period: LimitPeriod,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_until: Option<DateTime<Utc>>,
    pub active: bool,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `Some(value)` for a value or `null`, `None` when the field is left out: a patch tells
/// "remove" (null) from "keep" (absent).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /rewards/{id}` (operators): the fields to change; `null` removes an optional one
/// (no stock limit, no per-member limit, no image, an open window). `version`, when sent,
/// must be the reward's current version (the one the operator edited).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewardPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub image_url: Option<Option<String>>,
    #[serde(default)]
    pub price: Option<i64>,
    #[serde(default)]
    pub coupon: Option<TemplateRef>,
    #[serde(default, deserialize_with = "present")]
    pub stock: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub per_member_limit: Option<Option<u32>>,
    #[serde(default)]
    pub limit_period: Option<LimitPeriod>,
    #[serde(default)]
    pub tiers: Option<Vec<TierCode>>,
    #[serde(default, deserialize_with = "present")]
    pub available_from: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    pub available_until: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub version: Option<u64>,
}

/// Why a reward definition or change is refused; each maps to a stable problem `code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewardError {
    #[error("name must be 1..100 characters")]
    InvalidName,
    #[error("description must be at most 2000 characters")]
    InvalidDescription,
    #[error("imageUrl must be an https URL of at most 1000 characters")]
    InvalidImageUrl,
    #[error("price must be 1..{MAX_PRICE} points")]
    InvalidPrice,
    #[error("a coupon reward names its coupon: a template of the rules or an inline one")]
    CouponRequired,
    #[error("coupon: {0}")]
    InvalidCoupon(String),
    #[error("no coupon template named {0:?}")]
    UnknownTemplate(String),
    #[error("{0}")]
    InvalidTiers(String),
    #[error("stock must be 0..{MAX_STOCK} units")]
    InvalidStock,
    #[error("{0}")]
    InvalidLimit(&'static str),
    #[error("{0}")]
    InvalidWindow(&'static str),
    #[error("{claimed} units are claimed already: the stock cannot be less")]
    StockBelowClaimed { claimed: u64 },
    #[error("the reward is at version {current}: read it again and apply the change to that")]
    VersionConflict { current: u64 },
}

impl RewardError {
    pub fn code(&self) -> &'static str {
        match self {
            RewardError::InvalidName => "invalid_name",
            RewardError::InvalidDescription => "invalid_description",
            RewardError::InvalidImageUrl => "invalid_image_url",
            RewardError::InvalidPrice => "invalid_price",
            RewardError::CouponRequired => "coupon_required",
            RewardError::InvalidCoupon(_) => "invalid_coupon",
            RewardError::UnknownTemplate(_) => "unknown_template",
            RewardError::InvalidTiers(_) => "invalid_tiers",
            RewardError::InvalidStock => "invalid_stock",
            RewardError::InvalidLimit(_) => "invalid_limit",
            RewardError::InvalidWindow(_) => "invalid_window",
            RewardError::StockBelowClaimed { .. } => "stock_below_claimed",
            RewardError::VersionConflict { .. } => "version_conflict",
        }
    }

    /// 409 where the reward's current state stands in the way, 422 for a bad definition.
    pub fn status(&self) -> u16 {
        match self {
            RewardError::StockBelowClaimed { .. } | RewardError::VersionConflict { .. } => 409,
            _ => 422,
        }
    }
}

/// A reward's id: from the Idempotency-Key when given (a retry finds the same reward), else
/// random.
pub fn new_reward_id(idempotency_key: Option<&str>) -> String {
    let bytes: Vec<u8> = match idempotency_key {
        Some(k) => Sha256::digest(format!("reward-idempotency\0{k}").as_bytes())[..8].to_vec(),
        None => {
            let mut b = [0u8; 8];
            let _ = getrandom::fill(&mut b);
            b.to_vec()
        }
    };
    format!("r-{}", hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tiers, each once, in rank order.
fn normalize_tiers(tiers: Vec<TierCode>) -> Vec<TierCode> {
    TierCode::ALL.into_iter().filter(|t| tiers.contains(t)).collect()
}

/// What a coupon reward's coupon resolves to: (the template's name, the template).
fn resolve_coupon(
    kind: RewardKind,
    coupon: Option<TemplateRef>,
    rules: &Rules,
) -> Result<(Option<String>, Option<CouponTemplate>), RewardError> {
    match (kind, coupon) {
        (RewardKind::Gift, None) => Ok((None, None)),
        (RewardKind::Gift, Some(_)) => Err(RewardError::InvalidCoupon(
            "a gift reward issues no coupon; leave coupon out".into(),
        )),
        (RewardKind::Coupon, None) => Err(RewardError::CouponRequired),
        (RewardKind::Coupon, Some(TemplateRef::Named(name))) => {
            match rules.coupon_templates.get(&name) {
                Some(t) => Ok((Some(name), Some(t.clone()))),
                None => Err(RewardError::UnknownTemplate(name)),
            }
        }
        (RewardKind::Coupon, Some(TemplateRef::Inline(t))) => {
            t.validate().map_err(RewardError::InvalidCoupon)?;
            Ok((None, Some(*t)))
        }
    }
}

fn valid_image_url(url: &str) -> bool {
    let host =
        url.strip_prefix("https://").and_then(|rest| rest.split('/').next()).unwrap_or_default();
    url.len() <= 1000 && !host.is_empty() && url.chars().all(|c| c.is_ascii_graphic())
}

/// The rules every reward obeys, whether new or changed.
fn check(r: &Reward) -> Result<(), RewardError> {
    let len = r.name.chars().count();
    if !(1..=100).contains(&len) || r.name.chars().any(char::is_control) {
        return Err(RewardError::InvalidName);
    }
    if r.description.chars().count() > 2000 {
        return Err(RewardError::InvalidDescription);
    }
    if r.image_url.as_deref().is_some_and(|u| !valid_image_url(u)) {
        return Err(RewardError::InvalidImageUrl);
    }
    if !(1..=MAX_PRICE).contains(&r.price) {
        return Err(RewardError::InvalidPrice);
    }
    if r.stock.is_some_and(|s| s > MAX_STOCK) {
        return Err(RewardError::InvalidStock);
    }
    match r.per_member_limit {
        Some(l) if !(1..=MAX_LIMIT).contains(&l) => {
            return Err(RewardError::InvalidLimit("perMemberLimit must be 1..1000 claims"))
        }
        None if r.limit_period != LimitPeriod::Lifetime => {
            return Err(RewardError::InvalidLimit("limitPeriod needs a perMemberLimit"))
        }
        _ => {}
    }
    if let (Some(from), Some(until)) = (r.available_from, r.available_until) {
        if until <= from {
            return Err(RewardError::InvalidWindow("availableUntil must be after availableFrom"));
        }
    }
    // A coupon only some tiers may use must not be sold to the others.
    if let Some(t) = r.coupon.as_ref().filter(|t| !t.tiers.is_empty()) {
        if r.tiers.is_empty() || !r.tiers.iter().all(|x| t.tiers.contains(x)) {
            let names: Vec<&str> = t.tiers.iter().map(|x| x.as_str()).collect();
            return Err(RewardError::InvalidTiers(format!(
                "the coupon may be used only by {}: the reward's tiers must be among them",
                names.join(", ")
            )));
        }
    }
    Ok(())
}

impl RewardRequest {
    /// Checks the request and makes it reward `id`, version 1, defined at `now`.
    pub fn validate(
        self,
        id: String,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<Reward, RewardError> {
        let (coupon_template, coupon) = resolve_coupon(self.kind, self.coupon, rules)?;
        let r = Reward {
            reward_id: id,
            name: self.name.trim().to_string(),
            description: self.description.trim().to_string(),
            image_url: self.image_url,
            price: self.price,
            kind: self.kind,
            coupon_template,
            coupon,
            stock: self.stock,
            per_member_limit: self.per_member_limit,
            limit_period: self.limit_period,
            tiers: normalize_tiers(self.tiers),
            available_from: self.available_from,
            available_until: self.available_until,
            active: self.active,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        check(&r)?;
        // A new reward whose window is over could never be claimed: surely a typo.
        if r.available_until.is_some_and(|u| u <= now) {
            return Err(RewardError::InvalidWindow("availableUntil must be in the future"));
        }
        Ok(r)
    }
}

impl Reward {
    /// The reward after `patch`, as its next version; `claimed` units are already taken, so
    /// the stock may not go below them.
    pub fn patched(
        &self,
        patch: RewardPatch,
        rules: &Rules,
        claimed: u64,
        now: DateTime<Utc>,
    ) -> Result<Reward, RewardError> {
        if patch.version.is_some_and(|v| v != self.version) {
            return Err(RewardError::VersionConflict { current: self.version });
        }
        let mut r = self.clone();
        if let Some(n) = patch.name {
            r.name = n.trim().to_string();
        }
        if let Some(d) = patch.description {
            r.description = d.trim().to_string();
        }
        if let Some(u) = patch.image_url {
            r.image_url = u;
        }
        if let Some(p) = patch.price {
            r.price = p;
        }
        if let Some(c) = patch.coupon {
            (r.coupon_template, r.coupon) = resolve_coupon(r.kind, Some(c), rules)?;
        }
        if let Some(s) = patch.stock {
            r.stock = s;
        }
        if let Some(l) = patch.per_member_limit {
            r.per_member_limit = l;
        }
        if let Some(p) = patch.limit_period {
            r.limit_period = p;
        }
        if let Some(t) = patch.tiers {
            r.tiers = normalize_tiers(t);
        }
        if let Some(f) = patch.available_from {
            r.available_from = f;
        }
        if let Some(u) = patch.available_until {
            r.available_until = u;
        }
        if let Some(a) = patch.active {
            r.active = a;
        }
        check(&r)?;
        if r.stock.is_some_and(|s| s < claimed) {
            return Err(RewardError::StockBelowClaimed { claimed });
        }
        r.version = self.version + 1;
        r.updated_at = now;
        Ok(r)
    }

    /// Units left, when the stock is limited.
    pub fn stock_left(&self, claimed: u64) -> Option<u64> {
        self.stock.map(|s| s.saturating_sub(claimed))
    }

    /// Whether `now` is inside the availability window.
    pub fn in_window(&self, now: DateTime<Utc>) -> bool {
        self.available_from.is_none_or(|f| f <= now) && self.available_until.is_none_or(|u| now < u)
    }

    pub fn tier_may_claim(&self, tier: TierCode) -> bool {
        self.tiers.is_empty() || self.tiers.contains(&tier)
    }
}

/// The limit counter a claim on `today` counts in: `all` for a lifetime limit, the program
/// month (`YYYY-MM`) for a monthly one; none when the reward has no per-member limit.
pub fn period(reward: &Reward, today: NaiveDate) -> Option<String> {
    reward.per_member_limit?;
    Some(match reward.limit_period {
        LimitPeriod::Lifetime => "all".into(),
        LimitPeriod::Month => today.format("%Y-%m").to_string(),
    })
}

/// Every counter a claim on `today` could count in, before the reward is read (so the one read
/// of a claim can fetch the right one whatever the reward's limit turns out to be).
pub fn periods(today: NaiveDate) -> [String; 2] {
    ["all".into(), today.format("%Y-%m").to_string()]
}

/// When a monthly counter may vanish: a month after its month ended (TTL). A lifetime counter
/// stays.
pub fn counter_expires_at(
    reward: &Reward,
    rules: &Rules,
    today: NaiveDate,
) -> Option<DateTime<Utc>> {
    (reward.limit_period == LimitPeriod::Month).then(|| {
        let (y, m) = (today.year(), today.month());
        let after_next = if m >= 11 {
            NaiveDate::from_ymd_opt(y + 1, m - 10, 1)
        } else {
            NaiveDate::from_ymd_opt(y, m + 2, 1)
        };
        calendar::start_of_day(rules.time_zone, after_next.unwrap_or(today + Duration::days(62)))
    })
}

// ---------------------------------------------------------------------------------------
// Claims

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// A coupon reward: the coupon was issued with the claim.
    Issued,
    /// A gift waiting to be fulfilled.
    Pending,
    Shipped,
    /// A gift that will not be fulfilled; its points were given back.
    Cancelled,
}

/// `POST /members/{id}/reward-claims` (the member, with an `Idempotency-Key`): the reward and
/// the price the member was shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRequest {
    pub reward_id: String,
    pub price: i64,
}

/// A member's claim of a reward, kept in their partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub claim_id: String,
    pub reward_id: String,
    /// The reward's name and version when it was claimed.
    pub name: String,
    pub reward_version: u64,
    pub kind: RewardKind,
    /// Points spent.
    pub price: i64,
    pub status: ClaimStatus,
    pub claimed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
    /// The limit counter it counts in, if the reward had a per-member limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// The earning day of the oldest lot it spent: points given back keep it, so a cancel
    /// never lengthens a point's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_from: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The fulfiller's note (a tracking number, why it was cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default)]
    pub points_returned: i64,
}

/// A claim's id: derived from the member and the Idempotency-Key, so a retry addresses the
/// same claim (and the same coupon grant).
pub fn claim_id(member_id: &str, idempotency_key: &str) -> String {
    format!(
        "rc-{}",
        hex(&Sha256::digest(format!("reward-claim\0{member_id}\0{idempotency_key}").as_bytes())
            [..8])
    )
}

/// The coupon grant of a coupon reward's claim: one coupon per claim.
pub fn grant(claim_id: &str) -> String {
    format!("reward:{claim_id}")
}

/// Why a claim or a fulfilment step is refused; each maps to one status and a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("this reward is not active")]
    Inactive,
    #[error("{0}")]
    NotAvailable(String),
    #[error("the member's tier may not claim this reward")]
    TierNotEligible,
    #[error("the price is now {now} points, not the {seen} shown; claim again at the new price")]
    PriceChanged { seen: i64, now: i64 },
    #[error("this reward is out of stock")]
    OutOfStock,
    #[error("at most {limit} claims of this reward per member{}", if *.monthly { " per month" } else { "" })]
    LimitReached { limit: u32, monthly: bool },
    #[error("{available} points are available (pending points and points held by open checkouts do not count), {asked} needed")]
    InsufficientPoints { available: i64, asked: i64 },
    #[error("this claim is a coupon, issued with the claim: there is nothing to fulfil")]
    NotAGift,
    #[error("this claim is shipped: it can no longer be cancelled")]
    AlreadyShipped,
    #[error("this claim is cancelled: it can no longer be shipped")]
    AlreadyCancelled,
}

impl ClaimError {
    pub fn code(&self) -> &'static str {
        match self {
            ClaimError::Inactive => "reward_inactive",
            ClaimError::NotAvailable(_) => "reward_not_available",
            ClaimError::TierNotEligible => "tier_not_eligible",
            ClaimError::PriceChanged { .. } => "price_changed",
            ClaimError::OutOfStock => "out_of_stock",
            ClaimError::LimitReached { .. } => "claim_limit_reached",
            ClaimError::InsufficientPoints { .. } => "insufficient_points",
            ClaimError::NotAGift => "not_a_gift",
            ClaimError::AlreadyShipped => "claim_shipped",
            ClaimError::AlreadyCancelled => "claim_cancelled",
        }
    }

    /// 422 where the member cannot claim (tier, points; as at checkout), 409 where the
    /// reward's or the claim's state stands in the way.
    pub fn status(&self) -> u16 {
        match self {
            ClaimError::TierNotEligible | ClaimError::InsufficientPoints { .. } => 422,
            _ => 409,
        }
    }
}

/// Whether `member` may claim `reward` now at the price they saw: the reward is active, in its
/// window, for their tier, at that price, in stock (`claimed` units taken), under their limit
/// (`claims_in_period` so far) and within their available points. Checked in that order, so
/// the answer names what the reward says before what the member lacks.
pub fn check_claim(
    reward: &Reward,
    claimed: u64,
    member: &Member,
    claims_in_period: u32,
    price_seen: i64,
    now: DateTime<Utc>,
) -> Result<(), ClaimError> {
    if !reward.active {
        return Err(ClaimError::Inactive);
    }
    if let Some(from) = reward.available_from.filter(|f| now < *f) {
        return Err(ClaimError::NotAvailable(format!(
            "this reward can be claimed from {}",
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    if let Some(until) = reward.available_until.filter(|u| now >= *u) {
        return Err(ClaimError::NotAvailable(format!(
            "this reward could be claimed until {}",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    if !reward.tier_may_claim(member.tier) {
        return Err(ClaimError::TierNotEligible);
    }
    if price_seen != reward.price {
        return Err(ClaimError::PriceChanged { seen: price_seen, now: reward.price });
    }
    if reward.stock_left(claimed) == Some(0) {
        return Err(ClaimError::OutOfStock);
    }
    if let Some(limit) = reward.per_member_limit.filter(|l| claims_in_period >= *l) {
        return Err(ClaimError::LimitReached {
            limit,
            monthly: reward.limit_period == LimitPeriod::Month,
        });
    }
    let available = member.available_points(now, None);
    if available < reward.price {
        return Err(ClaimError::InsufficientPoints { available, asked: reward.price });
    }
    Ok(())
}

/// What a claim did to the member: the claim and its ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub claim: Claim,
    pub entry: LedgerEntry,
}

/// Claims `reward` for `member` (whose wallet the caller has settled): checks it, spends the
/// price from the oldest lots and answers the claim (without its coupon code, which the caller
/// issues) and its `reward` ledger entry.
#[allow(clippy::too_many_arguments)]
pub fn claim(
    member: &mut Member,
    reward: &Reward,
    claimed: u64,
    claims_in_period: u32,
    price_seen: i64,
    claim_id: &str,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Claimed, ClaimError> {
    check_claim(reward, claimed, member, claims_in_period, price_seen, now)?;
    let spent_from = member.wallet.lots.first().map(|l| l.earned_on);
    member.wallet.spend(reward.price).map_err(|_| ClaimError::InsufficientPoints {
        available: member.available_points(now, None),
        asked: reward.price,
    })?;
    let entry = LedgerEntry {
        kind: EntryKind::Reward,
        points: Points(-reward.price),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        reason: format!("reward {}: {}", reward.reward_id, reward.name),
        reference: Some(claim_id.to_string()),
        at: now,
    };
    let claim = Claim {
        claim_id: claim_id.to_string(),
        reward_id: reward.reward_id.clone(),
        name: reward.name.clone(),
        reward_version: reward.version,
        kind: reward.kind,
        price: reward.price,
        status: match reward.kind {
            RewardKind::Coupon => ClaimStatus::Issued,
            RewardKind::Gift => ClaimStatus::Pending,
        },
        claimed_at: now,
        coupon_code: None,
        period: period(reward, program_date(rules.time_zone, now)),
        spent_from,
        shipped_at: None,
        cancelled_at: None,
        note: None,
        points_returned: 0,
    };
    Ok(Claimed { claim, entry })
}

/// `POST /internal/members/{id}/reward-claims/{claimId}/fulfilment`: where a gift goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fulfilment {
    Shipped,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FulfilmentRequest {
    pub status: Fulfilment,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a fulfilment request does to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The claim is there already: the same answer again, nothing written.
    Already,
    Ship,
    Cancel,
}

/// The step from the claim's status to `to`: pending moves once, to shipped or cancelled;
/// asking for where it is already is a no-op; the other way round is refused.
pub fn fulfil(claim: &Claim, to: Fulfilment) -> Result<Step, ClaimError> {
    match (claim.status, to) {
        (ClaimStatus::Issued, _) => Err(ClaimError::NotAGift),
        (ClaimStatus::Pending, Fulfilment::Shipped) => Ok(Step::Ship),
        (ClaimStatus::Pending, Fulfilment::Cancelled) => Ok(Step::Cancel),
        (ClaimStatus::Shipped, Fulfilment::Shipped)
        | (ClaimStatus::Cancelled, Fulfilment::Cancelled) => Ok(Step::Already),
        (ClaimStatus::Shipped, Fulfilment::Cancelled) => Err(ClaimError::AlreadyShipped),
        (ClaimStatus::Cancelled, Fulfilment::Shipped) => Err(ClaimError::AlreadyCancelled),
    }
}

pub fn ship(claim: &mut Claim, note: Option<String>, now: DateTime<Utc>) {
    claim.status = ClaimStatus::Shipped;
    claim.shipped_at = Some(now);
    claim.note = note;
}

/// Cancels a pending gift claim: its points come back to `member` (whose wallet the caller has
/// settled) as a `reward` entry, dated like the oldest lot they were spent from, so a point
/// whose life ended meanwhile expires at once (a second entry, after the return).
pub fn cancel(
    member: &mut Member,
    claim: &mut Claim,
    note: Option<String>,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Vec<LedgerEntry> {
    let today = program_date(rules.time_zone, now);
    member.wallet.earn(claim.price, claim.spent_from.unwrap_or(today));
    let mut entries = vec![LedgerEntry {
        kind: EntryKind::Reward,
        points: Points(claim.price),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        reason: format!("gift claim {} cancelled: its points are given back", claim.claim_id),
        reference: Some(format!("{}:cancelled", claim.claim_id)),
        at: now,
    }];
    let expired = member.wallet.expire(today, rules.points.expiry_days);
    if expired > 0 {
        // After the return (and with its own reference): the settle before it may have
        // written today's expiry entry already.
        entries.push(LedgerEntry {
            kind: EntryKind::Expiry,
            points: Points(-expired),
            balance_after: member.wallet.balance,
            pending: Points::ZERO,
            reason: "points given back had already reached the end of their life".into(),
            reference: Some(format!("expiry-{today}:{}", claim.claim_id)),
            at: now + Duration::microseconds(1),
        });
    }
    claim.status = ClaimStatus::Cancelled;
    claim.cancelled_at = Some(now);
    claim.note = note;
    claim.points_returned = claim.price;
    entries
}

// ---------------------------------------------------------------------------------------
// What a member sees

/// A reward in the member's catalog: what it costs them and whether they can claim it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Offered<'a> {
    pub reward_id: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<&'a str>,
    pub kind: RewardKind,
    pub price: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon: Option<&'a CouponTemplate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock_left: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_member_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_period: Option<LimitPeriod>,
    /// Claims the member has left under the limit (this month, for a monthly one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_until: Option<DateTime<Utc>>,
    pub enough_points: bool,
    /// Everything holds: a claim at this price now would go through.
    pub claimable: bool,
    /// Why not, when not (a claim's problem code: out_of_stock, claim_limit_reached, insufficient_points).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// `reward` as `member` sees it now, or none when it is not for them now (inactive, outside
/// its window, another tier's).
pub fn offer<'a>(
    reward: &'a Reward,
    claimed: u64,
    member: &Member,
    claims_in_period: u32,
    now: DateTime<Utc>,
) -> Option<Offered<'a>> {
    if !reward.active || !reward.in_window(now) || !reward.tier_may_claim(member.tier) {
        return None;
    }
    let verdict = check_claim(reward, claimed, member, claims_in_period, reward.price, now);
    Some(Offered {
        reward_id: &reward.reward_id,
        name: &reward.name,
        description: &reward.description,
        image_url: reward.image_url.as_deref(),
        kind: reward.kind,
        price: reward.price,
        coupon: reward.coupon.as_ref(),
        stock_left: reward.stock_left(claimed),
        per_member_limit: reward.per_member_limit,
        limit_period: reward.per_member_limit.map(|_| reward.limit_period),
        remaining: reward.per_member_limit.map(|l| l.saturating_sub(claims_in_period)),
        available_until: reward.available_until,
        enough_points: member.available_points(now, None) >= reward.price,
        claimable: verdict.is_ok(),
        reason: verdict.err().map(|e| e.code()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coupon::Offer;
    use crate::member::{MemberId, NewMember};
    use crate::money::Fen;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn member(points: i64, tier: TierCode) -> Member {
        let nm = NewMember {
            email: Some("a@b.cn".into()),
            phone: None,
            name: "A".into(),
            birthday: None,
            referral_code: None,
            marketing_consent: false,
        };
        let mut m = Member::join(
            MemberId::parse("m1").unwrap(),
            &nm,
            "ABCD2345".into(),
            None,
            at("2026-01-01T00:00:00Z"),
        );
        m.wallet.earn(points, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        m.tier = tier;
        m
    }

    fn gift(price: i64) -> RewardRequest {
        RewardRequest {
            name: "Tea set".into(),
            description: "Celadon, 6 cups".into(),
            image_url: Some("https://cdn.example.com/tea.jpg".into()),
            price,
            kind: RewardKind::Gift,
            coupon: None,
            stock: Some(100),
            per_member_limit: Some(1),
            limit_period: LimitPeriod::Lifetime,
            tiers: vec![],
            available_from: None,
            available_until: None,
            active: true,
        }
    }

    const NOW: &str = "2026-11-27T10:00:00Z";

    #[test]
    fn definitions_are_refused_with_the_rule_they_break() {
        let r = Rules::default();
        let now = at(NOW);
        let cases: Vec<(RewardRequest, &str)> = vec![
            (RewardRequest { name: " ".into(), ..gift(500) }, "invalid_name"),
            (RewardRequest { description: "x".repeat(2001), ..gift(500) }, "invalid_description"),
            (
                RewardRequest {
                    image_url: Some("http://cdn.example.com/a.jpg".into()),
                    ..gift(500)
                },
                "invalid_image_url",
            ),
            (
                RewardRequest { image_url: Some("https://a b".into()), ..gift(500) },
                "invalid_image_url",
            ),
            (gift(0), "invalid_price"),
            (gift(MAX_PRICE + 1), "invalid_price"),
            (RewardRequest { kind: RewardKind::Coupon, ..gift(500) }, "coupon_required"),
            (
                RewardRequest { coupon: Some(TemplateRef::Named("amount-20".into())), ..gift(500) },
                "invalid_coupon",
            ),
            (
                RewardRequest {
                    kind: RewardKind::Coupon,
                    coupon: Some(TemplateRef::Named("amount-99".into())),
                    ..gift(500)
                },
                "unknown_template",
            ),
            (RewardRequest { stock: Some(MAX_STOCK + 1), ..gift(500) }, "invalid_stock"),
            (RewardRequest { per_member_limit: Some(0), ..gift(500) }, "invalid_limit"),
            (
                RewardRequest {
                    per_member_limit: None,
                    limit_period: LimitPeriod::Month,
                    ..gift(500)
                },
                "invalid_limit",
            ),
            (
                RewardRequest {
                    available_from: Some(at("2027-01-02T00:00:00Z")),
                    available_until: Some(at("2027-01-01T00:00:00Z")),
                    ..gift(500)
                },
                "invalid_window",
            ),
            (
                RewardRequest { available_until: Some(at("2026-11-01T00:00:00Z")), ..gift(500) },
                "invalid_window",
            ),
        ];
        for (req, code) in cases {
            assert_eq!(
                req.clone().validate("r-1".into(), &r, now).unwrap_err().code(),
                code,
                "{req:?}"
            );
        }
        let diamond_coupon = CouponTemplate {
            title: "D".into(),
            offer: Offer::FreeShipping { min_spend: Fen(0) },
            valid_days: Some(7),
            valid_from: None,
            valid_until: None,
            tiers: vec![TierCode::Diamond],
            per_member_limit: 1,
            stackable: false,
        };
        let req = RewardRequest {
            kind: RewardKind::Coupon,
            coupon: Some(TemplateRef::Inline(Box::new(diamond_coupon))),
            ..gift(500)
        };
        assert_eq!(
            req.clone().validate("r-1".into(), &r, now).unwrap_err().code(),
            "invalid_tiers",
            "sold to tiers that may not use it"
        );
        let ok = RewardRequest { tiers: vec![TierCode::Diamond, TierCode::Diamond], ..req }
            .validate("r-1".into(), &r, now)
            .unwrap();
        assert_eq!((ok.tiers, ok.version), (vec![TierCode::Diamond], 1));
        let named = RewardRequest {
            kind: RewardKind::Coupon,
            coupon: Some(TemplateRef::Named("amount-20".into())),
            ..gift(500)
        }
        .validate("r-2".into(), &r, now)
        .unwrap();
        assert_eq!(
            (named.coupon_template.as_deref(), named.coupon.as_ref()),
            (Some("amount-20"), r.coupon_templates.get("amount-20"))
        );
    }

    #[test]
    fn every_change_is_a_new_version_and_the_stock_never_drops_below_what_is_claimed() {
        let r = Rules::default();
        let now = at(NOW);
        let v1 = gift(500).validate("r-1".into(), &r, now).unwrap();
        let v2 = v1
            .patched(
                RewardPatch { price: Some(600), stock: Some(None), ..Default::default() },
                &r,
                40,
                now,
            )
            .unwrap();
        assert_eq!((v2.version, v2.price, v2.stock, v2.name.as_str()), (2, 600, None, "Tea set"));
        assert_eq!(
            v2.patched(RewardPatch { stock: Some(Some(39)), ..Default::default() }, &r, 40, now)
                .unwrap_err(),
            RewardError::StockBelowClaimed { claimed: 40 }
        );
        assert_eq!(
            v2.patched(RewardPatch { stock: Some(Some(40)), ..Default::default() }, &r, 40, now)
                .unwrap()
                .stock_left(40),
            Some(0)
        );
        assert_eq!(
            v2.patched(RewardPatch { version: Some(1), ..Default::default() }, &r, 0, now)
                .unwrap_err(),
            RewardError::VersionConflict { current: 2 }
        );
        assert_eq!(
            v2.patched(RewardPatch { price: Some(0), ..Default::default() }, &r, 0, now)
                .unwrap_err()
                .code(),
            "invalid_price"
        );
        let patch: RewardPatch =
            serde_json::from_str(r#"{"imageUrl": null, "availableUntil": "2027-01-01T00:00:00Z"}"#)
                .unwrap();
        assert_eq!(
            (patch.image_url, patch.price, patch.available_until),
            (Some(None), None, Some(Some(at("2027-01-01T00:00:00Z"))))
        );
    }

    #[test]
    fn claim_refusals_name_their_rule_in_order() {
        let now = at(NOW);
        let rules = Rules::default();
        let base = gift(500).validate("r-1".into(), &rules, now).unwrap();
        let rich = member(1_000, TierCode::Gold);
        let cases: Vec<(Reward, u64, Member, u32, i64, &str)> = vec![
            (Reward { active: false, ..base.clone() }, 0, rich.clone(), 0, 500, "reward_inactive"),
            (
                Reward { available_from: Some(at("2026-12-01T00:00:00Z")), ..base.clone() },
                0,
                rich.clone(),
                0,
                500,
                "reward_not_available",
            ),
            (
                Reward { available_until: Some(now), ..base.clone() },
                0,
                rich.clone(),
                0,
                500,
                "reward_not_available",
            ),
            (
                Reward { tiers: vec![TierCode::Diamond], ..base.clone() },
                0,
                rich.clone(),
                0,
                500,
                "tier_not_eligible",
            ),
            (base.clone(), 0, rich.clone(), 0, 400, "price_changed"),
            (base.clone(), 100, rich.clone(), 0, 500, "out_of_stock"),
            (base.clone(), 0, rich.clone(), 1, 500, "claim_limit_reached"),
            (base.clone(), 0, member(499, TierCode::Gold), 0, 500, "insufficient_points"),
        ];
        for (reward, claimed, m, n, seen, code) in cases {
            let e = check_claim(&reward, claimed, &m, n, seen, now).unwrap_err();
            assert_eq!(e.code(), code, "{e}");
        }
        assert_eq!(check_claim(&base, 99, &rich, 0, 500, now), Ok(()));
    }

    #[test]
    fn points_held_by_a_checkout_or_pending_do_not_pay_for_a_reward() {
        let now = at(NOW);
        let rules = Rules::default();
        let reward = gift(500).validate("r-1".into(), &rules, now).unwrap();
        let mut m = member(600, TierCode::Regular);
        m.wallet.add_pending("o-1", 10_000, NaiveDate::from_ymd_opt(2026, 12, 4).unwrap());
        m.holds.push(crate::member::Hold {
            order_id: "o-2".into(),
            points: 200,
            coupons: vec![],
            until: now + Duration::minutes(10),
        });
        assert_eq!(
            check_claim(&reward, 0, &m, 0, 500, now),
            Err(ClaimError::InsufficientPoints { available: 400, asked: 500 })
        );
        // Once the hold lapses the 600 available points pay for it, oldest lot first.
        let later = now + Duration::minutes(11);
        let done = claim(&mut m, &reward, 0, 0, 500, "rc-1", &rules, later).unwrap();
        assert_eq!(
            (
                done.entry.kind,
                done.entry.points,
                done.entry.balance_after,
                m.wallet.pending_total()
            ),
            (EntryKind::Reward, Points(-500), Points(100), 10_000)
        );
        assert_eq!(
            (done.claim.status, done.claim.period.as_deref(), done.claim.spent_from),
            (ClaimStatus::Pending, Some("all"), NaiveDate::from_ymd_opt(2026, 11, 1))
        );
    }

    #[test]
    fn a_gift_moves_once_and_a_cancel_gives_its_points_back_once() {
        let now = at(NOW);
        let rules = Rules::default();
        let reward = gift(500).validate("r-1".into(), &rules, now).unwrap();
        let mut m = member(800, TierCode::Regular);
        let mut c = claim(&mut m, &reward, 0, 0, 500, "rc-1", &rules, now).unwrap().claim;
        assert_eq!(fulfil(&c, Fulfilment::Cancelled), Ok(Step::Cancel));
        let entries =
            cancel(&mut m, &mut c, Some("out of stock at the warehouse".into()), &rules, now);
        assert_eq!(
            (entries.len(), entries[0].points, m.wallet.balance, c.points_returned),
            (1, Points(500), Points(800), 500)
        );
        assert_eq!(fulfil(&c, Fulfilment::Cancelled), Ok(Step::Already));
        assert_eq!(fulfil(&c, Fulfilment::Shipped), Err(ClaimError::AlreadyCancelled));
        let mut shipped = Claim { status: ClaimStatus::Pending, ..c.clone() };
        ship(&mut shipped, None, now);
        assert_eq!(fulfil(&shipped, Fulfilment::Cancelled), Err(ClaimError::AlreadyShipped));
        assert_eq!(
            fulfil(&Claim { status: ClaimStatus::Issued, ..c }, Fulfilment::Shipped),
            Err(ClaimError::NotAGift)
        );
    }

    #[test]
    fn points_given_back_keep_their_first_day_and_expire_if_it_passed() {
        let rules = Rules::default();
        let now = at(NOW);
        let reward = gift(500).validate("r-1".into(), &rules, now).unwrap();
        let mut m = member(500, TierCode::Regular);
        let mut c = claim(&mut m, &reward, 0, 0, 500, "rc-1", &rules, now).unwrap().claim;
        // A year later the lot they came from (earned 2026-11-01) has ended its life.
        let later = at("2027-11-02T10:00:00Z");
        let entries = cancel(&mut m, &mut c, None, &rules, later);
        assert_eq!(
            entries.iter().map(|e| (e.kind, e.points.0)).collect::<Vec<_>>(),
            vec![(EntryKind::Reward, 500), (EntryKind::Expiry, -500)]
        );
        assert_eq!(m.wallet.balance, Points(0));
        assert!(m.wallet.is_consistent());
    }

    #[test]
    fn the_member_sees_what_they_could_claim_and_why_not() {
        let rules = Rules::default();
        let now = at(NOW);
        let reward = RewardRequest {
            per_member_limit: Some(2),
            limit_period: LimitPeriod::Month,
            ..gift(500)
        }
        .validate("r-1".into(), &rules, now)
        .unwrap();
        let m = member(700, TierCode::Silver);
        let o = offer(&reward, 98, &m, 1, now).unwrap();
        assert_eq!(
            (o.stock_left, o.remaining, o.enough_points, o.claimable, o.reason),
            (Some(2), Some(1), true, true, None)
        );
        let o = offer(&reward, 100, &m, 1, now).unwrap();
        assert_eq!((o.claimable, o.reason), (false, Some("out_of_stock")));
        assert!(
            offer(&Reward { tiers: vec![TierCode::Diamond], ..reward.clone() }, 0, &m, 0, now)
                .is_none(),
            "another tier's reward is not shown"
        );
        assert!(offer(&Reward { active: false, ..reward.clone() }, 0, &m, 0, now).is_none());
        let today = NaiveDate::from_ymd_opt(2026, 12, 15).unwrap();
        assert_eq!(period(&reward, today).as_deref(), Some("2026-12"));
        assert_eq!(counter_expires_at(&reward, &rules, today), Some(at("2027-01-31T16:00:00Z")));
    }

    #[test]
    fn ids_follow_the_idempotency_key() {
        assert_eq!(new_reward_id(Some("k")), new_reward_id(Some("k")));
        assert_ne!(new_reward_id(None), new_reward_id(None));
        assert_eq!(claim_id("m1", "k").len(), 19);
        assert_ne!(claim_id("m1", "k"), claim_id("m2", "k"));
    }
}
