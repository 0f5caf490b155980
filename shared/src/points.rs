//! Points rules: purchases, refunds (proportional clawback), redemptions, activities and
//! expiry. Pure functions over the member record, the rules and the clock; the
//! `purchase-points` function persists what they decide in one transaction.

use crate::calendar::program_date;
use crate::campaign::{campaign_multiplier, MultiplierWindow};
use crate::ledger::{EntryKind, LedgerEntry};
use crate::member::{Member, SpendDay};
use crate::money::{Fen, Multiplier, Points};
use crate::rules::Rules;
use crate::tier::{self, TierChange, TierCode};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Most refunds one order may carry (each is kept on the order item).
pub const MAX_REFUNDS_PER_ORDER: usize = 100;

/// Why a points request is refused although it is well-formed (422, with a stable code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointsError {
    #[error("amount must be a positive number of fen")]
    InvalidAmount,
    #[error("amount is larger than the largest order accepted ({0})")]
    AmountTooLarge(Fen),
    #[error("currency must be CNY, got {0}")]
    UnsupportedCurrency(String),
    #[error("occurredAt is in the future")]
    OccurredInFuture,
    #[error("occurredAt is older than {0} days: its points would already have expired")]
    OccurredTooLongAgo(u32),
    #[error("refunds would total {asked}, more than the {paid} paid for the order")]
    RefundExceedsPaid { paid: Fen, asked: Fen },
    #[error("the order already has {MAX_REFUNDS_PER_ORDER} refunds")]
    TooManyRefunds,
    #[error("points must be a positive multiple of {0}")]
    InvalidRedemptionPoints(i64),
    #[error("the balance ({balance} points) is below the {asked} points asked")]
    InsufficientPoints { balance: i64, asked: i64 },
    #[error("already checked in today")]
    AlreadyCheckedIn,
    #[error("this order has already been reviewed")]
    AlreadyReviewed,
    #[error("at most {0} shares earn points per day")]
    ShareLimitReached(u32),
    #[error("at most {0} activity points per day; today's are used up")]
    DailyActivityCapReached(i64),
}

impl PointsError {
    pub fn code(&self) -> &'static str {
        match self {
            PointsError::InvalidAmount => "invalid_amount",
            PointsError::AmountTooLarge(_) => "amount_too_large",
            PointsError::UnsupportedCurrency(_) => "unsupported_currency",
            PointsError::OccurredInFuture => "occurred_at_in_future",
            PointsError::OccurredTooLongAgo(_) => "occurred_at_too_old",
            PointsError::RefundExceedsPaid { .. } => "refund_exceeds_paid",
            PointsError::TooManyRefunds => "too_many_refunds",
            PointsError::InvalidRedemptionPoints(_) => "invalid_points",
            PointsError::InsufficientPoints { .. } => "insufficient_points",
            PointsError::AlreadyCheckedIn => "already_checked_in",
            PointsError::AlreadyReviewed => "already_reviewed",
            PointsError::ShareLimitReached(_) => "share_limit_reached",
            PointsError::DailyActivityCapReached(_) => "daily_activity_cap_reached",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Online,
    Store,
}

/// `POST /members/{id}/purchases` (and the `purchase` order event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseRequest {
    pub order_id: String,
    pub amount: Fen,
    pub currency: String,
    pub channel: Channel,
    pub occurred_at: DateTime<Utc>,
}

/// `POST /members/{id}/refunds` (and the `refund` order event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefundRequest {
    pub order_id: String,
    pub refund_id: String,
    pub amount: Fen,
}

/// `POST /members/{id}/redemptions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedemptionRequest {
    pub points: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityKind {
    Checkin,
    Review,
    Share,
}

/// `POST /members/{id}/activities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivityRequest {
    #[serde(rename = "type")]
    pub kind: ActivityKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_id: Option<String>,
}

/// Today's activity counters, kept on the member record so the daily limits are checked
/// by a pure function (and enforced by the member's version condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActivityDay {
    #[serde(rename = "d")]
    pub day: NaiveDate,
    #[serde(rename = "p")]
    pub points: i64,
    #[serde(rename = "s")]
    pub shares: u32,
}

/// A purchase as kept on its order item: what was paid and earned, and the refunds so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRecord {
    pub order_id: String,
    pub paid: Fen,
    pub earned: i64,
    /// The program-calendar day of the purchase (its lot and its spend day).
    pub day: NaiveDate,
    pub occurred_at: DateTime<Utc>,
    pub refunded: Fen,
    pub clawed_back: i64,
    #[serde(default)]
    pub refunds: Vec<RefundRecord>,
    /// The purchase request's fingerprint and first answer (replayed to a retry).
    pub fingerprint: String,
    pub answer: String,
    /// Points the order spent at checkout, and how many of them refunds gave back.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub points_spent: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub points_returned: i64,
    /// The earning day of the oldest lot the order spent: given-back points keep it, so a
    /// refund never lengthens a point's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_from: Option<NaiveDate>,
    /// Coupons the order redeemed at checkout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coupons: Vec<UsedCoupon>,
    /// Whether a full refund gave the coupons back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub coupons_returned: bool,
    /// When the order was recorded (it counts toward tiers reached from then on); orders
    /// recorded before this field existed use `occurred_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<DateTime<Utc>>,
    /// The member this order's referral reward went to (a first purchase of a referred
    /// member): a full refund inside the window cancels that reward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_to: Option<String>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsedCoupon {
    pub code: String,
    pub valid_until: DateTime<Utc>,
}

impl OrderRecord {
    /// A plain purchase (no checkout) as first recorded.
    pub fn purchase(
        req: &PurchaseRequest,
        earned: i64,
        day: NaiveDate,
        fingerprint: String,
        answer: String,
    ) -> OrderRecord {
        OrderRecord {
            order_id: req.order_id.clone(),
            paid: req.amount,
            earned,
            day,
            occurred_at: req.occurred_at,
            refunded: Fen::ZERO,
            clawed_back: 0,
            refunds: Vec::new(),
            fingerprint,
            answer,
            points_spent: 0,
            points_returned: 0,
            spent_from: None,
            coupons: Vec::new(),
            coupons_returned: false,
            recorded_at: None,
            referral_to: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRecord {
    pub refund_id: String,
    pub amount: Fen,
    pub clawed_back: i64,
    pub fingerprint: String,
    pub answer: String,
    /// When it was recorded (the KPIs count it on that day); refunds recorded before this
    /// field existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

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
    let on_day = program_date(rules.time_zone, at).day() == md.day_of_month;
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
    tier: TierCode,
    at: DateTime<Utc>,
) -> Multiplier {
    campaign_multiplier(windows, tier, at).max(member_day_multiplier(rules, tier, at))
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

/// The points a refund takes back. Cumulative: after all refunds so far the order has lost
/// floor(earned × refunded / paid), so partial refunds add up exactly and the total never
/// exceeds what the order earned. Answers (clawback, refunded total after).
pub fn clawback(
    earned: i64,
    paid: Fen,
    refunded_before: Fen,
    amount: Fen,
) -> Result<(i64, Fen), PointsError> {
    if amount.0 <= 0 {
        return Err(PointsError::InvalidAmount);
    }
    let after = refunded_before.0.checked_add(amount.0).filter(|a| *a <= paid.0).ok_or(
        PointsError::RefundExceedsPaid {
            paid,
            asked: Fen(refunded_before.0.saturating_add(amount.0)),
        },
    )?;
    if paid.0 <= 0 {
        return Ok((0, Fen(after)));
    }
    let clawed = |r: i64| (earned.max(0) as i128 * r as i128 / paid.0 as i128) as i64;
    Ok((clawed(after) - clawed(refunded_before.0), Fen(after)))
}

/// Applies the expiry due on `today`; answers the ledger entry when points expired. The
/// entry is dated a microsecond before `now` so it sorts before the operation it precedes.
pub fn expire(
    member: &mut Member,
    rules: &Rules,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Option<LedgerEntry> {
    let expired = member.wallet.expire(today, rules.points.expiry_days);
    (expired > 0).then(|| LedgerEntry {
        kind: EntryKind::Expiry,
        points: Points(-expired),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        reason: format!(
            "points earned on or before {} expired",
            today - Duration::days(rules.points.expiry_days as i64)
        ),
        reference: Some(format!("expiry-{today}")),
        at: now - Duration::microseconds(1),
    })
}

/// The lots whose expiry the member is to be told today: those expiring after `today` and on
/// or before `today + expiryNoticeDays`, except the lot days in `noticed` (told already).
/// Run after `settle`, so a lot due today has expired rather than being announced.
pub fn expiry_notices(
    member: &Member,
    rules: &Rules,
    today: NaiveDate,
    noticed: &[NaiveDate],
) -> Vec<crate::events::ExpiryNotice> {
    let (life, ahead) =
        (Duration::days(rules.points.expiry_days as i64), rules.points.expiry_notice_days as i64);
    if ahead == 0 || member.is_erased() {
        return Vec::new();
    }
    member
        .wallet
        .lots
        .iter()
        .map(|l| crate::events::ExpiryNotice {
            points: l.points,
            earned_on: l.earned_on,
            expires_on: l.earned_on + life,
        })
        .filter(|n| {
            n.expires_on > today
                && n.expires_on <= today + Duration::days(ahead)
                && !noticed.contains(&n.earned_on)
        })
        .collect()
}

/// Makes the pending points whose return window has ended available; answers the ledger
/// entry. Dated two microseconds before `now`: it sorts before the expiry and the operation.
pub fn release(member: &mut Member, today: NaiveDate, now: DateTime<Utc>) -> Option<LedgerEntry> {
    let released = member.wallet.release(today);
    (released > 0).then(|| LedgerEntry {
        kind: EntryKind::Release,
        points: Points(released),
        balance_after: member.wallet.balance,
        pending: Points(-released),
        reason: "the return window ended: pending points are available".into(),
        reference: Some(format!("release-{today}")),
        at: now - Duration::microseconds(2),
    })
}

/// What every change of a member does first: release what the return window no longer holds,
/// then expire what is due, so no rule ever sees a stale wallet.
pub fn settle(
    member: &mut Member,
    rules: &Rules,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<LedgerEntry> {
    release(member, today, now).into_iter().chain(expire(member, rules, today, now)).collect()
}

/// The day points earned on `day` become available.
pub fn release_day(rules: &Rules, day: NaiveDate) -> NaiveDate {
    day + Duration::days(rules.return_window_days as i64)
}

/// Earns `points` from `source` earned on `day`: pending until the return window ends, or at
/// once when it already has (a late order event, a window of 0 days). Answers the entry's
/// (available, pending) changes.
fn earn_kept(
    member: &mut Member,
    rules: &Rules,
    source: &str,
    points: i64,
    day: NaiveDate,
    today: NaiveDate,
) -> (Points, Points) {
    let release_on = release_day(rules, day);
    if release_on <= today {
        let before = member.wallet.balance;
        member.wallet.earn(points, release_on);
        (member.wallet.balance - before, Points::ZERO)
    } else {
        member.wallet.add_pending(source, points, release_on);
        (Points::ZERO, Points(points.max(0)))
    }
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
    let campaign = purchase_campaign_multiplier(rules, windows, member.tier, req.occurred_at);
    let points = purchase_points(
        req.amount,
        rules.points.per_cny,
        rules.tier(member.tier).multiplier,
        campaign,
    );
    let (available, pending) = earn_kept(member, rules, &req.order_id, points, day, today);
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
        reason,
        reference: Some(req.order_id.clone()),
        at: now,
    };
    Purchased { points, entry, tier_change, first_purchase, release_on: release_day(rules, day) }
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
    let (available, pending) =
        earn_kept(referrer, rules, &referral_source(new_member), points, day, today);
    LedgerEntry {
        kind: EntryKind::Referral,
        points: available,
        balance_after: referrer.wallet.balance,
        pending,
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
        reason: "the referred member's first order was returned: the reward is cancelled".into(),
        // Not the reward's own reference: an entry's key is (time, kind, reference).
        reference: Some(format!("{new_member}:returned")),
        at: now,
    })
}

/// What a refund did: points taken back, spent points given back, coupons given back, and
/// the ledger entries (none for a part that moves no points, e.g. a few fen of a large order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Refunded {
    /// Points the refund took back: cancelled while pending, clawed back once available.
    pub clawed_back: i64,
    /// Of those, how many were still pending (cancelled, never a debt).
    pub pending_cancelled: i64,
    pub points_returned: i64,
    pub coupons_returned: Vec<String>,
    pub entries: Vec<LedgerEntry>,
    /// The tier the refund re-decided (spend that reached it was refunded).
    pub tier_change: Option<TierChange>,
    /// The order is now refunded in full.
    pub full: bool,
}

/// Takes back a refund's points and spend, and gives back the points the order spent in
/// proportion to the refunded share (cumulative, like the clawback). A full refund gives the
/// order's coupons back while they are still valid; a partial one keeps them used.
pub fn apply_refund(
    member: &mut Member,
    rules: &Rules,
    order: &mut OrderRecord,
    req: &RefundRequest,
    now: DateTime<Utc>,
) -> Result<Refunded, PointsError> {
    if order.refunds.len() >= MAX_REFUNDS_PER_ORDER {
        return Err(PointsError::TooManyRefunds);
    }
    let before = order.refunded;
    let (claw, refunded) = clawback(order.earned, order.paid, before, req.amount)?;
    order.refunded = refunded;
    order.clawed_back += claw;
    // Inside the return window the points are still pending: cancel them (no debt possible);
    // after it, take them back from the balance as before.
    let cancelled = member.wallet.cancel_pending(&order.order_id, claw);
    member.wallet.claw_back(claw - cancelled);
    let today = program_date(rules.time_zone, now);
    record_spend(member, order.day, -req.amount, today, rules.tier_window_days);
    member.lifetime_spend = Fen((member.lifetime_spend.0 - req.amount.0).max(0));
    let recorded_at = order.recorded_at.unwrap_or(order.occurred_at);
    let tier_change =
        tier::redecide_after_refund(member, rules, order.day, recorded_at, req.amount, now);
    let mut out = Refunded {
        clawed_back: claw,
        pending_cancelled: cancelled,
        tier_change,
        full: order.refunded == order.paid,
        ..Default::default()
    };
    if claw > 0 {
        out.entries.push(LedgerEntry {
            kind: EntryKind::Refund,
            points: Points(-(claw - cancelled)),
            balance_after: member.wallet.balance,
            pending: Points(-cancelled),
            reason: format!("refund {} of order {}", req.amount, req.order_id),
            reference: Some(req.refund_id.clone()),
            at: now,
        });
    }
    // The same cumulative share as the clawback: parts add up to exactly what was spent.
    let (returned, _) = clawback(order.points_spent, order.paid, before, req.amount)?;
    if returned > 0 {
        order.points_returned += returned;
        member.wallet.earn(returned, order.spent_from.unwrap_or(order.day));
        out.points_returned = returned;
        out.entries.push(LedgerEntry {
            kind: EntryKind::Returned,
            points: Points(returned),
            balance_after: member.wallet.balance,
            pending: Points::ZERO,
            reason: format!(
                "points spent on order {} given back by refund {}",
                req.order_id, req.amount
            ),
            reference: Some(req.refund_id.clone()),
            at: now,
        });
    }
    if order.refunded == order.paid && !order.coupons_returned {
        order.coupons_returned = true;
        out.coupons_returned =
            order.coupons.iter().filter(|c| now < c.valid_until).map(|c| c.code.clone()).collect();
    }
    Ok(out)
}

/// The amount off a redemption gives, in fen.
pub fn redemption_value(rules: &Rules, points: i64) -> Fen {
    Fen((points as i128 * 100 / rules.points.redemption_points_per_cny.max(1) as i128) as i64)
}

/// Spends `points` from the oldest lots (after expiry has been applied by the caller).
pub fn apply_redemption(
    member: &mut Member,
    rules: &Rules,
    points: i64,
    reference: &str,
    now: DateTime<Utc>,
) -> Result<LedgerEntry, PointsError> {
    let step = rules.points.redemption_step.max(1);
    if points <= 0 || points % step != 0 {
        return Err(PointsError::InvalidRedemptionPoints(step));
    }
    member.wallet.spend(points).map_err(|_| PointsError::InsufficientPoints {
        balance: member.wallet.balance.0,
        asked: points,
    })?;
    Ok(LedgerEntry {
        kind: EntryKind::Redemption,
        points: Points(-points),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        reason: format!("redeemed for {} off", redemption_value(rules, points)),
        reference: Some(reference.to_string()),
        at: now,
    })
}

/// Today's counters (a new day starts from zero).
pub fn activity_today(member: &Member, today: NaiveDate) -> ActivityDay {
    member.activity.filter(|a| a.day == today).unwrap_or(ActivityDay {
        day: today,
        points: 0,
        shares: 0,
    })
}

/// The points an activity earns today, or why it earns none. The once-per-day check-in and
/// once-per-order review are enforced by their receipt items; this checks the daily limits.
pub fn activity_points(
    rules: &Rules,
    kind: ActivityKind,
    counters: ActivityDay,
) -> Result<(i64, ActivityDay), PointsError> {
    let a = &rules.activities;
    let points = match kind {
        ActivityKind::Checkin => a.checkin,
        ActivityKind::Review => a.review,
        ActivityKind::Share => a.share,
    };
    let mut next = counters;
    if kind == ActivityKind::Share {
        if counters.shares >= a.shares_per_day {
            return Err(PointsError::ShareLimitReached(a.shares_per_day));
        }
        next.shares += 1;
    }
    // An activity that would go over the cap is refused whole (not cut down), so a review
    // refused today can still earn its full points another day.
    if counters.points + points > a.daily_cap {
        return Err(PointsError::DailyActivityCapReached(a.daily_cap));
    }
    next.points += points;
    Ok((points, next))
}

/// Earns an activity's points on the member; answers the ledger entry.
pub fn apply_activity(
    member: &mut Member,
    rules: &Rules,
    kind: ActivityKind,
    reference: &str,
    now: DateTime<Utc>,
) -> Result<LedgerEntry, PointsError> {
    let today = program_date(rules.time_zone, now);
    let (points, counters) = activity_points(rules, kind, activity_today(member, today))?;
    member.activity = Some(counters);
    member.wallet.earn(points, today);
    let what = match kind {
        ActivityKind::Checkin => "daily check-in",
        ActivityKind::Review => "review",
        ActivityKind::Share => "share",
    };
    Ok(LedgerEntry {
        kind: EntryKind::Activity,
        points: Points(points),
        balance_after: member.wallet.balance,
        pending: Points::ZERO,
        reason: what.into(),
        reference: Some(reference.to_string()),
        at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{MemberId, NewMember};
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn member(now: DateTime<Utc>) -> Member {
        let nm = NewMember {
            email: Some("a@b.cn".into()),
            phone: None,
            name: "A".into(),
            birthday: None,
            referral_code: None,
            marketing_consent: false,
        };
        Member::join(MemberId::parse("m1").unwrap(), &nm, "ABCD2345".into(), None, now)
    }

    fn purchase(order: &str, fen: i64, when: &str) -> PurchaseRequest {
        PurchaseRequest {
            order_id: order.into(),
            amount: Fen(fen),
            currency: "CNY".into(),
            channel: Channel::Online,
            occurred_at: at(when),
        }
    }

    #[test]
    fn expiry_is_told_once_per_lot_within_the_notice_days() {
        let r = Rules::default();
        assert_eq!(r.points.expiry_notice_days, 7);
        let mut m = member(at("2025-01-01T00:00:00Z"));
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        // Lots earned 2025-11-10, -11-14 and -11-20 expire 2026-11-10, -11-14 and -11-20.
        for d in ["2025-11-10", "2025-11-14", "2025-11-20"] {
            m.wallet.earn(10, day(d));
        }
        let today = day("2026-11-07");
        let told: Vec<_> = expiry_notices(&m, &r, today, &[])
            .iter()
            .map(|n| (n.earned_on.to_string(), n.expires_on.to_string(), n.points))
            .collect();
        assert_eq!(
            told,
            [
                ("2025-11-10".to_string(), "2026-11-10".to_string(), 10),
                ("2025-11-14".into(), "2026-11-14".into(), 10)
            ],
            "within 7 days, the 7th included"
        );
        assert_eq!(
            expiry_notices(&m, &r, today, &[day("2025-11-10"), day("2025-11-14")]),
            vec![],
            "each lot once"
        );
        assert!(
            expiry_notices(&m, &r, day("2026-11-10"), &[])
                .iter()
                .all(|n| n.expires_on > day("2026-11-10")),
            "a lot due today expires, it is not announced"
        );
        m.erase(at("2026-11-01T00:00:00Z"));
        assert_eq!(expiry_notices(&m, &r, today, &[]), vec![], "nobody to tell");
    }

    #[test]
    fn points_are_whole_cny_times_multipliers_rounded_down_once() {
        assert_eq!(purchase_points(Fen(12_399), 1, Multiplier::ONE, Multiplier::ONE), 123);
        // 123 × 1.2 × 1.5 = 221.4 → 221 (not 147 × 1.5 = 220 from rounding twice).
        assert_eq!(purchase_points(Fen(12_399), 1, Multiplier(1200), Multiplier(1500)), 221);
        assert_eq!(purchase_points(Fen(99), 1, Multiplier(2000), Multiplier(2000)), 0);
        assert_eq!(
            purchase_points(Fen(100_000_000), 1, Multiplier(100_000), Multiplier(100_000)),
            10_000_000_000
        );
    }

    #[test]
    fn member_day_doubles_in_the_program_time_zone_and_campaigns_do_not_stack() {
        let r = Rules::default();
        // 16:30 UTC on the 17th is the 18th in Shanghai.
        assert_eq!(
            member_day_multiplier(&r, TierCode::Regular, at("2026-03-17T16:30:00Z")),
            Multiplier(2000)
        );
        assert_eq!(
            member_day_multiplier(&r, TierCode::Regular, at("2026-03-18T16:30:00Z")),
            Multiplier::ONE
        );
        let w = MultiplierWindow {
            campaign_id: "c".into(),
            multiplier: Multiplier(3000),
            from: at("2026-03-01T00:00:00Z"),
            until: at("2026-04-01T00:00:00Z"),
            tiers: vec![],
        };
        assert_eq!(
            purchase_campaign_multiplier(
                &r,
                std::slice::from_ref(&w),
                TierCode::Gold,
                at("2026-03-17T16:30:00Z")
            ),
            Multiplier(3000)
        );
        let small = MultiplierWindow { multiplier: Multiplier(1500), ..w };
        assert_eq!(
            purchase_campaign_multiplier(
                &r,
                std::slice::from_ref(&small),
                TierCode::Gold,
                at("2026-03-17T16:30:00Z")
            ),
            Multiplier(2000)
        );
        assert_eq!(
            purchase_campaign_multiplier(&r, &[small], TierCode::Gold, at("2026-03-10T00:00:00Z")),
            Multiplier(1500)
        );
    }

    #[test]
    fn purchase_validation_names_each_rule() {
        let r = Rules::default();
        let now = at("2026-11-27T00:00:00Z");
        let ok = purchase("o", 100, "2026-11-27T00:04:59Z");
        assert_eq!(validate_purchase(&ok, &r, now), Ok(()));
        let cases = [
            (PurchaseRequest { amount: Fen(0), ..ok.clone() }, "invalid_amount"),
            (PurchaseRequest { amount: Fen(-5), ..ok.clone() }, "invalid_amount"),
            (PurchaseRequest { amount: Fen(100_000_001), ..ok.clone() }, "amount_too_large"),
            (PurchaseRequest { currency: "USD".into(), ..ok.clone() }, "unsupported_currency"),
            (
                PurchaseRequest { occurred_at: at("2026-11-27T00:05:01Z"), ..ok.clone() },
                "occurred_at_in_future",
            ),
            (
                PurchaseRequest { occurred_at: at("2025-11-26T00:00:00Z"), ..ok.clone() },
                "occurred_at_too_old",
            ),
        ];
        for (req, code) in cases {
            assert_eq!(validate_purchase(&req, &r, now).unwrap_err().code(), code, "{req:?}");
        }
    }

    #[test]
    fn a_purchase_crossing_silver_upgrades_at_once_with_its_reason() {
        let r = Rules::default();
        let now = at("2026-11-20T04:00:00Z");
        let mut m = member(now);
        let p =
            apply_purchase(&mut m, &r, &purchase("o1", 2_000_00, "2026-11-20T03:00:00Z"), &[], now);
        assert_eq!(p.points, 2000, "points at the tier before the upgrade");
        let change = p.tier_change.unwrap();
        assert_eq!((change.from, change.to), (TierCode::Regular, TierCode::Silver));
        assert_eq!(change.reason, "rolling spend 2000.00 CNY reached silver");
        assert_eq!((m.tier, m.tier_since, m.order_count), (TierCode::Silver, now, 1));
        let p2 =
            apply_purchase(&mut m, &r, &purchase("o2", 100_00, "2026-11-20T03:30:00Z"), &[], now);
        assert_eq!((p2.points, p2.first_purchase, p2.tier_change), (120, false, None));
    }

    #[test]
    fn partial_refunds_add_up_to_the_whole_clawback() {
        // 333 points on 10.00 CNY, refunded in three parts of 3.33, 3.33 and 3.34.
        let (a, r1) = clawback(333, Fen(1000), Fen(0), Fen(333)).unwrap();
        let (b, r2) = clawback(333, Fen(1000), r1, Fen(333)).unwrap();
        let (c, r3) = clawback(333, Fen(1000), r2, Fen(334)).unwrap();
        assert_eq!((a + b + c, r3), (333, Fen(1000)));
        assert_eq!(
            clawback(333, Fen(1000), r3, Fen(1)),
            Err(PointsError::RefundExceedsPaid { paid: Fen(1000), asked: Fen(1001) })
        );
    }

    #[test]
    fn refund_lowers_rolling_spend_on_the_purchase_day() {
        let r = Rules::from_overrides(r#"{"returnWindowDays":0}"#).unwrap();
        let now = at("2026-11-20T04:00:00Z");
        let mut m = member(now);
        let req = purchase("o1", 500_00, "2026-11-20T03:00:00Z");
        let p = apply_purchase(&mut m, &r, &req, &[], now);
        let mut order = OrderRecord::purchase(
            &req,
            p.points,
            NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            String::new(),
            String::new(),
        );
        let refunded = apply_refund(
            &mut m,
            &r,
            &mut order,
            &RefundRequest { order_id: "o1".into(), refund_id: "r1".into(), amount: Fen(200_00) },
            now,
        )
        .unwrap();
        assert_eq!(
            (refunded.clawed_back, refunded.entries[0].points, refunded.points_returned),
            (200, Points(-200), 0)
        );
        assert_eq!(m.rolling_spend(order.day, 365), Fen(300_00));
        assert_eq!((m.wallet.balance, m.lifetime_spend), (Points(300), Fen(300_00)));
    }

    #[test]
    fn redemptions_come_in_steps_and_never_exceed_the_balance() {
        let r = Rules::default();
        let now = at("2026-11-20T04:00:00Z");
        let mut m = member(now);
        m.wallet.earn(250, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!(
            apply_redemption(&mut m, &r, 150, "k", now).unwrap_err().code(),
            "invalid_points"
        );
        assert_eq!(apply_redemption(&mut m, &r, 0, "k", now).unwrap_err().code(), "invalid_points");
        assert_eq!(
            apply_redemption(&mut m, &r, 300, "k", now).unwrap_err().code(),
            "insufficient_points"
        );
        assert_eq!(apply_redemption(&mut m, &r, 200, "k", now).unwrap().balance_after, Points(50));
        assert_eq!(redemption_value(&r, 200), Fen(200));
    }

    #[test]
    fn activity_limits_per_day() {
        let r = Rules::default();
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let mut c = ActivityDay { day, points: 0, shares: 0 };
        for _ in 0..3 {
            c = activity_points(&r, ActivityKind::Share, c).unwrap().1;
        }
        assert_eq!(
            activity_points(&r, ActivityKind::Share, c).unwrap_err().code(),
            "share_limit_reached"
        );
        let c = ActivityDay { day, points: 45, shares: 0 };
        assert_eq!(
            activity_points(&r, ActivityKind::Review, c).unwrap_err().code(),
            "daily_activity_cap_reached"
        );
        assert_eq!(
            activity_points(&r, ActivityKind::Checkin, c).unwrap(),
            (5, ActivityDay { day, points: 50, shares: 0 })
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Buy(i64, i64),
        Refund(usize, i64),
        Redeem(i64),
        Activity(u8),
        Tick(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1i64..2_000_000, 0i64..3).prop_map(|(f, h)| Op::Buy(f, h)),
            (0usize..10, 1i64..500_000).prop_map(|(i, f)| Op::Refund(i, f)),
            (1i64..40).prop_map(|n| Op::Redeem(n * 100)),
            (0u8..3).prop_map(Op::Activity),
            (1i64..200).prop_map(Op::Tick),
        ]
    }

    proptest! {
        #[test]
        fn purchase_points_are_never_fractional_nor_above_the_exact_product(fen in 0i64..100_000_000, tm in 1000u32..5000, cm in 1000u32..5000) {
            let p = purchase_points(Fen(fen), 1, Multiplier(tm), Multiplier(cm));
            let exact = (fen / 100) as i128 * tm as i128 * cm as i128; // in millionths
            prop_assert!((p as i128) * 1_000_000 <= exact && exact < (p as i128 + 1) * 1_000_000);
        }

        #[test]
        fn clawback_never_exceeds_earnings(earned in 0i64..1_000_000, paid in 1i64..100_000_000, parts in proptest::collection::vec(1i64..50_000_000, 1..12)) {
            let (mut refunded, mut total) = (Fen(0), 0i64);
            for part in parts {
                match clawback(earned, Fen(paid), refunded, Fen(part)) {
                    Ok((c, after)) => { prop_assert!(c >= 0); total += c; refunded = after; }
                    Err(_) => prop_assert!(refunded.0 + part > paid),
                }
                prop_assert!(total <= earned);
            }
            if refunded.0 == paid { prop_assert_eq!(total, earned); }
        }

        #[test]
        fn balance_equals_the_ledger_and_expired_lots_are_never_spent(ops in proptest::collection::vec(op(), 1..60)) {
            let r = Rules::default();
            let mut now = at("2026-01-01T04:00:00Z");
            let mut m = member(now);
            let mut ledger: Vec<LedgerEntry> = Vec::new();
            let mut orders: Vec<OrderRecord> = Vec::new();
            for (n, o) in ops.into_iter().enumerate() {
                let today = program_date(r.time_zone, now);
                // Every operation releases what the return window no longer holds and expires what is due, first.
                ledger.extend(settle(&mut m, &r, today, now));
                prop_assert!(m.wallet.pending.iter().all(|p| p.release_on > today), "nothing past its window stays pending");
                prop_assert!(m.wallet.lots.iter().all(|l| l.earned_on > today - Duration::days(365)));
                match o {
                    Op::Buy(fen, hours_ago) => {
                        let req = PurchaseRequest { order_id: format!("o{n}"), amount: Fen(fen), currency: "CNY".into(), channel: Channel::Store, occurred_at: now - Duration::hours(hours_ago) };
                        let p = apply_purchase(&mut m, &r, &req, &[], now);
                        orders.push(OrderRecord::purchase(&req, p.points, program_date(r.time_zone, req.occurred_at), String::new(), String::new()));
                        ledger.push(p.entry);
                    }
                    Op::Refund(i, fen) => if !orders.is_empty() {
                        let i = i % orders.len();
                        let req = RefundRequest { order_id: orders[i].order_id.clone(), refund_id: format!("r{n}"), amount: Fen(fen) };
                        let before = m.wallet.balance;
                        let in_window = m.wallet.pending.iter().any(|p| p.source == orders[i].order_id);
                        if let Ok(done) = apply_refund(&mut m, &r, &mut orders[i], &req, now) {
                            // Inside the window a refund cancels pending points: it never makes a debt.
                            if in_window && before.0 >= 0 { prop_assert!(m.wallet.balance.0 >= 0); }
                            ledger.extend(done.entries);
                        }
                        prop_assert!(orders[i].clawed_back <= orders[i].earned);
                    },
                    Op::Redeem(p) => if let Ok(e) = apply_redemption(&mut m, &r, p, "k", now) { ledger.push(e); },
                    Op::Activity(k) => {
                        let kind = [ActivityKind::Checkin, ActivityKind::Review, ActivityKind::Share][k as usize];
                        if let Ok(e) = apply_activity(&mut m, &r, kind, "ref", now) { ledger.push(e); }
                        prop_assert!(activity_today(&m, today).points <= r.activities.daily_cap);
                    }
                    Op::Tick(days) => now += Duration::days(days),
                }
                prop_assert!(m.wallet.is_consistent(), "{:?}", m.wallet);
                prop_assert_eq!(m.wallet.balance.0, ledger.iter().map(|e| e.points.0).sum::<i64>());
                prop_assert_eq!(m.wallet.pending_total(), ledger.iter().map(|e| e.pending.0).sum::<i64>());
                if let Some(e) = ledger.last() { prop_assert_eq!(e.balance_after, m.wallet.balance); }
            }
        }
    }

    #[derive(Debug, Clone)]
    enum TierOp {
        Buy(i64),
        Refund(usize, i64),
        Wait(i64),
    }

    fn tier_op() -> impl Strategy<Value = TierOp> {
        prop_oneof![
            (1i64..3_000_000).prop_map(TierOp::Buy),
            (0usize..8, 1i64..3_000_000).prop_map(|(i, f)| TierOp::Refund(i, f)),
            (0i64..25).prop_map(TierOp::Wait),
        ]
    }

    proptest! {
        /// Within a year (every order inside every window, every reach protected), the tier
        /// after any purchases and refunds is exactly the reference: the highest of what the
        /// kept spend earns now and what kept spend reached at any purchase; and the nightly
        /// evaluation of that day agrees (changes nothing).
        #[test]
        fn refunds_re_decide_the_tier_as_if_the_refunded_spend_never_counted(ops in proptest::collection::vec(tier_op(), 1..40)) {
            let r = Rules::default();
            let mut now = at("2026-01-01T04:00:00Z");
            let mut m = member(now);
            // (order, recorded in sequence) — kept amounts are paid minus refunded.
            let mut orders: Vec<OrderRecord> = Vec::new();
            let mut days = 0;
            for (n, o) in ops.into_iter().enumerate() {
                let today = program_date(r.time_zone, now);
                settle(&mut m, &r, today, now);
                match o {
                    TierOp::Buy(fen) => {
                        let req = PurchaseRequest { order_id: format!("o{n}"), amount: Fen(fen), currency: "CNY".into(), channel: Channel::Store, occurred_at: now };
                        let p = apply_purchase(&mut m, &r, &req, &[], now);
                        let mut order = OrderRecord::purchase(&req, p.points, today, String::new(), String::new());
                        order.recorded_at = Some(now);
                        orders.push(order);
                    }
                    TierOp::Refund(i, fen) => if !orders.is_empty() {
                        let i = i % orders.len();
                        let req = RefundRequest { order_id: orders[i].order_id.clone(), refund_id: format!("r{n}"), amount: Fen(fen) };
                        let before = m.tier;
                        if let Ok(done) = apply_refund(&mut m, &r, &mut orders[i], &req, now) {
                            prop_assert!(m.tier <= before, "a refund never raises a tier");
                            prop_assert_eq!(done.tier_change.is_some(), m.tier < before);
                            if let Some(c) = done.tier_change { prop_assert_eq!(c.reason, "refund"); }
                        }
                    },
                    TierOp::Wait(d) => if days + d < 300 { days += d; now += Duration::days(d); },
                }
                now += Duration::minutes(1);
                // The reference: kept spend up to each purchase, and now.
                let kept = |o: &OrderRecord| o.paid.0 - o.refunded.0;
                let mut reached = TierCode::Regular;
                let mut running = 0;
                for o in &orders {
                    running += kept(o);
                    reached = reached.max(tier::earned_tier(&r, Fen(running)));
                }
                let earned_now = tier::earned_tier(&r, Fen(orders.iter().map(kept).sum()));
                prop_assert_eq!(m.tier, reached.max(earned_now), "orders {:?}", orders.iter().map(|o| (o.paid.0, o.refunded.0)).collect::<Vec<_>>());
                prop_assert!(tier::evaluate(&m, &r, now).is_none_or(|e| e.member.tier == m.tier), "the nightly evaluation disagrees");
            }
        }
    }
}
