//! Earning: purchase validation, the multipliers, the points of a purchase, spend for the
//! tier, and the referral reward.

use crate::calendar::program_date;
use crate::campaign::{campaign_multiplier, MultiplierWindow};
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::{Member, SpendDay};
use crate::money::{Fen, Multiplier, Points};
use crate::rules::Rules;
use crate::tier::{self, TierChange, TierCode};
use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::expiry::*;
use super::request::*;

/// Checks a purchase against the rules at `now`.
pub fn validate_purchase(
    req: &PurchaseRequest,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<(), PointsError> {
    let p = &rules.points;
    if req.amount.0 <= 0 {
        return Err(PointsError::InvalidAmount);
    }
    if req.amount > p.max_order_amount {
        return Err(PointsError::AmountTooLarge(p.max_order_amount));
    }
    if req.currency != rules.currency {
        return Err(PointsError::UnsupportedCurrency(req.currency.chars().take(8).collect()));
    }
    validate_occurred_at(rules, req.occurred_at, now)
}

/// When an order was paid: not in the future (beyond the clock skew), not so long ago that
/// its points would already have expired.
pub fn validate_occurred_at(
    rules: &Rules,
    occurred_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), PointsError> {
    let p = &rules.points;
    if occurred_at > now + Duration::seconds(p.clock_skew_seconds) {
        return Err(PointsError::OccurredInFuture);
    }
    let today = program_date(rules.time_zone, now);
    if program_date(rules.time_zone, occurred_at) <= today - Duration::days(p.expiry_days as i64) {
        return Err(PointsError::OccurredTooLongAgo(p.expiry_days));
    }
    Ok(())
}

/// The member-day multiplier when `at` falls on the member day (program time zone) and the
/// tier takes part; 1× otherwise.
pub fn member_day_multiplier(rules: &Rules, tier: TierCode, at: DateTime<Utc>) -> Multiplier {
    let md = &rules.member_day;
    let on_day = crate::calendar::is_day_of_month(rules.time_zone, at, md.day_of_month);
    if on_day && md.tiers.contains(&tier) {
        md.multiplier
    } else {
        Multiplier::ONE
    }
}

/// The campaign multiplier of a purchase: the largest of the active windows and the member
/// day (they don't stack), at least 1×.
pub fn purchase_campaign_multiplier(
    rules: &Rules,
    windows: &[MultiplierWindow],
    member_id: &str,
    tier: TierCode,
    at: DateTime<Utc>,
) -> Multiplier {
    campaign_multiplier(windows, member_id, tier, at).max(member_day_multiplier(rules, tier, at))
}

/// floor(whole CNY × points per CNY × tier multiplier × campaign multiplier), computed in
/// integer thousandths and rounded down once, at the end.
pub fn purchase_points(
    amount: Fen,
    per_cny: i64,
    tier_multiplier: Multiplier,
    campaign: Multiplier,
) -> i64 {
    let base = amount.whole_cny().max(0) as i128 * per_cny.max(0) as i128;
    let p = base * tier_multiplier.0 as i128 * campaign.0 as i128 / 1_000_000;
    p.min(i64::MAX as i128) as i64
}

/// What an order or a referral earns: points and an order rebate (fen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Earned {
    points: i64,
    rebate: i64,
}

/// Earns `e` from `source` earned on `day`: pending until the return window ends, or at once
/// when it already has (a late order event, a window of 0 days). Answers the entry's changes:
/// (points available, points pending, rebate available, rebate pending).
fn earn_kept(
    member: &mut Member,
    rules: &Rules,
    source: &str,
    e: Earned,
    day: NaiveDate,
    today: NaiveDate,
) -> (Points, Points, Fen, Fen) {
    let release_on = release_day(rules, day);
    if release_on <= today {
        let before = member.wallet.balance;
        member.wallet.earn(e.points, release_on);
        member.wallet.rebate += Fen(e.rebate.max(0));
        (member.wallet.balance - before, Points::ZERO, Fen(e.rebate.max(0)), Fen::ZERO)
    } else {
        member.wallet.add_pending(source, e.points, e.rebate, release_on);
        (Points::ZERO, Points(e.points.max(0)), Fen::ZERO, Fen(e.rebate.max(0)))
    }
}

/// The order rebate of `paid` at a tier's rate (basis points), rounded down to the fen.
pub fn order_rebate(paid: Fen, basis_points: u16) -> Fen {
    Fen((paid.0.max(0) as i128 * basis_points as i128 / 10_000) as i64)
}

/// Adds (or, negative, removes) qualifying spend on `day`, keeping only the days inside the
/// tier window that ends `today`.
pub fn record_spend(
    member: &mut Member,
    day: NaiveDate,
    amount: Fen,
    today: NaiveDate,
    window_days: u32,
) {
    let from = today - Duration::days(window_days as i64 - 1);
    member.spend_days.retain(|s| s.day >= from);
    if day < from || day > today {
        return;
    }
    let at = member.spend_days.partition_point(|s| s.day < day);
    match member.spend_days.get_mut(at) {
        Some(s) if s.day == day => s.amount = Fen((s.amount.0 + amount.0).max(0)),
        _ if amount.0 > 0 => member.spend_days.insert(at, SpendDay { day, amount }),
        _ => {}
    }
    member.spend_days.retain(|s| s.amount.0 > 0);
}

/// What a purchase did to the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchased {
    pub points: i64,
    /// The order rebate credited (fen), at the tier the member had when ordering.
    pub rebate: Fen,
    pub entry: LedgerEntry,
    pub tier_change: Option<TierChange>,
    /// The member's first recorded purchase (the referral reward's trigger).
    pub first_purchase: bool,
    /// When the purchase's points leave the return window (and a referral reward with them).
    pub release_on: NaiveDate,
}

/// Earns the purchase's points (pending through the return window, then a lot dated by its
/// release day), adds the spend, and upgrades the tier at once when the new rolling spend
/// reaches a threshold.
pub fn apply_purchase(
    member: &mut Member,
    rules: &Rules,
    req: &PurchaseRequest,
    windows: &[MultiplierWindow],
    now: DateTime<Utc>,
) -> Purchased {
    let tz = rules.time_zone;
    let (today, day) =
        (program_date(tz, now), program_date(tz, req.occurred_at).min(program_date(tz, now)));
    let campaign = purchase_campaign_multiplier(
        rules,
        windows,
        member.member_id.as_str(),
        member.tier,
        req.occurred_at,
    );
    let points = purchase_points(
        req.amount,
        rules.points.per_cny,
        rules.tier(member.tier).multiplier,
        campaign,
    );
    let rebate = order_rebate(req.amount, rules.tier(member.tier).rebate_basis_points);
    let earned = Earned { points, rebate: rebate.0 };
    let (available, pending, rebate_now, rebate_pending) =
        earn_kept(member, rules, &req.order_id, earned, day, today);
    record_spend(member, day, req.amount, today, rules.tier_window_days);
    member.lifetime_spend += req.amount;
    let first_purchase = member.order_count == 0;
    member.order_count += 1;
    member.last_purchase_at =
        Some(member.last_purchase_at.map_or(req.occurred_at, |t| t.max(req.occurred_at)));
    let rolling = member.rolling_spend(today, rules.tier_window_days);
    tier::record_reach(member, rules, rolling, now);
    let upgraded = tier::upgrade_on_purchase(rules, member.tier, rolling);
    let tier_change = (upgraded != member.tier).then(|| {
        let change = TierChange {
            from: member.tier,
            to: upgraded,
            reason: format!("rolling spend {rolling} reached {upgraded}"),
            at: now,
        };
        member.tier = upgraded;
        member.tier_since = now;
        change
    });
    let reason = if campaign > Multiplier::ONE {
        format!("purchase {} ({}× campaign)", req.amount, campaign.as_f64())
    } else {
        format!("purchase {}", req.amount)
    };
    let entry = LedgerEntry {
        kind: EntryKind::Purchase,
        points: available,
        balance_after: member.wallet.balance,
        pending,
        rebate: rebate_now,
        rebate_pending,
        reason,
        reference: Some(req.order_id.clone()),
        at: now,
    };
    Purchased {
        points,
        rebate,
        entry,
        tier_change,
        first_purchase,
        release_on: release_day(rules, day),
    }
}

/// The pending-lot source of the referral reward for `new_member`.
pub fn referral_source(new_member: &str) -> String {
    format!("referral:{new_member}")
}

/// The referrer's reward for a referred member's first purchase: pending until that
/// purchase's return window ends (on `release_on`), cancelled if it is refunded in full.
pub fn apply_referral(
    referrer: &mut Member,
    rules: &Rules,
    new_member: &str,
    release_on: NaiveDate,
    now: DateTime<Utc>,
) -> LedgerEntry {
    let points = rules.referral.referrer_points;
    let today = program_date(rules.time_zone, now);
    let day = release_on - Duration::days(rules.return_window_days as i64);
    let earned = Earned { points, rebate: 0 };
    let (available, pending, _, _) =
        earn_kept(referrer, rules, &referral_source(new_member), earned, day, today);
    LedgerEntry {
        kind: EntryKind::Referral,
        points: available,
        balance_after: referrer.wallet.balance,
        pending,
        rebate: Fen::ZERO,
        rebate_pending: Fen::ZERO,
        reason: "a member you referred made their first purchase".into(),
        reference: Some(new_member.to_string()),
        at: now,
    }
}

/// Cancels the referrer's pending reward for `new_member` (their first order was refunded in
/// full inside its return window); none once the reward is available.
pub fn cancel_referral(
    referrer: &mut Member,
    new_member: &str,
    now: DateTime<Utc>,
) -> Option<LedgerEntry> {
    let cancelled = referrer.wallet.cancel_pending(&referral_source(new_member), i64::MAX);
    (cancelled > 0).then(|| LedgerEntry {
        kind: EntryKind::Referral,
        points: Points::ZERO,
        balance_after: referrer.wallet.balance,
        pending: Points(-cancelled),
        rebate: Fen::ZERO,
        rebate_pending: Fen::ZERO,
        reason: "the referred member's first order was returned: the reward is cancelled".into(),
        // Not the reward's own reference: an entry's key is (time, kind, reference).
        reference: Some(format!("{new_member}:returned")),
        at: now,
    })
}
