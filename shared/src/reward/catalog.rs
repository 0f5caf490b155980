//! The catalog's rules: reward ids, validation of definitions and changes, limit periods.

use crate::calendar::{self};
use crate::coupon::CouponTemplate;
use crate::rules::Rules;
use crate::tier_code::TierCode;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use super::definition::*;

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

pub(super) fn hex(bytes: &[u8]) -> String {
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
