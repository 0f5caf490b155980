//! What the API shows of the domain: the member's profile and a coupon, as JSON answers.
//! Views borrow from the records and compute what depends on `now` (statuses, available
//! points); the records stay free of presentation.

use crate::coupon::{Coupon, CouponStatus, Offer, Redemption};
use crate::member::Member;
use crate::money::Fen;
use crate::tier::TierCode;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// `GET /members/{id}`: who the member is, their standing and what it is worth.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileView<'a> {
    pub member_id: &'a str,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub email_verified: bool,
    pub phone_verified: bool,
    pub birthday: Option<NaiveDate>,
    /// When the birthday was recorded; a birthday coupon needs it known ahead.
    pub birthday_set_at: Option<DateTime<Utc>>,
    pub marketing_consent: bool,
    pub consent_at: DateTime<Utc>,
    pub joined_at: DateTime<Utc>,
    pub referral_code: &'a str,
    pub tier: TierCode,
    pub tier_name: &'a str,
    pub tier_since: DateTime<Utc>,
    /// The end of the tier's protection (the nightly evaluation may lower it from then on);
    /// absent for the regular tier and for a tier entered by stepping down (not protected).
    pub tier_protected_until: Option<DateTime<Utc>>,
    pub points: i64,
    /// Points held by open checkouts; `pointsAvailable` is what the member may spend now.
    pub points_on_hold: i64,
    pub points_available: i64,
    /// Points still inside their order's return window, and when each becomes available.
    pub points_pending: i64,
    pub pending: Vec<PendingPoints>,
    pub expiring_soon: Vec<ExpiringPoints>,
    /// Order rebates (返利), in fen: the balance (negative: a debt refunds left), what open
    /// checkouts hold, what may pay an order now, and what is still in the return window.
    pub rebate: Fen,
    pub rebate_on_hold: Fen,
    pub rebate_available: Fen,
    pub rebate_pending: Fen,
    pub rolling_spend: Fen,
    pub lifetime_spend: Fen,
    pub order_count: u32,
    pub last_purchase_at: Option<DateTime<Utc>>,
    /// The next tier and the qualifying spend it still needs.
    pub next_tier: Option<crate::tier::NextTier>,
    /// Qualifying spend still needed, over the rolling window, to keep the current tier once
    /// its protection ends (0 when already earned).
    pub spend_to_keep_tier: Fen,
    pub benefits: crate::tier::Benefits<'a>,
    pub coupons: Vec<CouponView<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingPoints {
    pub points: i64,
    /// The rebate (fen) released the same day.
    pub rebate: Fen,
    pub available_on: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiringPoints {
    pub points: i64,
    pub expires_on: NaiveDate,
}

impl<'a> ProfileView<'a> {
    /// The profile as of `now`; lists the member's active coupons.
    pub fn of(
        member: &'a Member,
        coupons: &'a [crate::coupon::Coupon],
        rules: &'a crate::rules::Rules,
        now: DateTime<Utc>,
    ) -> ProfileView<'a> {
        use crate::coupon::CouponStatus;
        let today = crate::calendar::program_date(rules.time_zone, now);
        let rolling = member.rolling_spend(today, rules.tier_window_days);
        let tier_rule = rules.tier(member.tier);
        let p = &rules.points;
        ProfileView {
            member_id: member.member_id.as_str(),
            name: member.name.as_deref(),
            email: member.email.as_deref(),
            phone: member.phone.as_deref(),
            email_verified: member.email_verified,
            phone_verified: member.phone_verified,
            birthday: member.birthday,
            birthday_set_at: member.birthday.map(|_| member.birthday_recorded_at()),
            marketing_consent: member.marketing_consent,
            consent_at: member.consent_at,
            joined_at: member.joined_at,
            referral_code: &member.referral_code,
            tier: member.tier,
            tier_name: &tier_rule.name,
            tier_since: member.tier_since,
            tier_protected_until: crate::tier::protection(member, rules),
            points: member.wallet.balance.0,
            points_on_hold: member.points_on_hold(now, None),
            points_available: member.available_points(now, None),
            points_pending: member.wallet.pending_total(),
            pending: {
                let mut by_day: std::collections::BTreeMap<NaiveDate, (i64, i64)> =
                    Default::default();
                for p in &member.wallet.pending {
                    let day = by_day.entry(p.release_on).or_default();
                    *day = (day.0 + p.points, day.1 + p.rebate);
                }
                by_day
                    .into_iter()
                    .map(|(available_on, (points, rebate))| PendingPoints {
                        points,
                        rebate: Fen(rebate),
                        available_on,
                    })
                    .collect()
            },
            expiring_soon: member
                .wallet
                .expiring_within(today, p.expiry_days, p.expiring_soon_days)
                .into_iter()
                .map(|(expires_on, points)| ExpiringPoints { points, expires_on })
                .collect(),
            rebate: member.wallet.rebate,
            rebate_on_hold: Fen(
                member.wallet.rebate.0.max(0) - member.available_rebate(now, None).0
            ),
            rebate_available: member.available_rebate(now, None),
            rebate_pending: member.wallet.pending_rebate(),
            rolling_spend: rolling,
            lifetime_spend: member.lifetime_spend,
            order_count: member.order_count,
            last_purchase_at: member.last_purchase_at,
            next_tier: crate::tier::next_tier(rules, member.tier, rolling),
            spend_to_keep_tier: crate::tier::spend_to_keep(member, rules, today),
            benefits: crate::tier::benefits(tier_rule),
            coupons: coupons
                .iter()
                .filter(|c| c.status_at(now) == CouponStatus::Active)
                .map(|c| CouponView::of(c, now))
                .collect(),
        }
    }
}

/// A coupon as the API shows it: status as of now (an active coupon past its window shows
/// as expired), discount terms, window.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CouponView<'a> {
    pub code: &'a str,
    pub title: &'a str,
    pub status: CouponStatus,
    pub offer: &'a Offer,
    #[serde(skip_serializing_if = "<[TierCode]>::is_empty")]
    pub tiers: &'a [TierCode],
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    pub grant: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redemption: Option<&'a Redemption>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stackable: bool,
}

impl<'a> CouponView<'a> {
    pub fn of(c: &'a Coupon, now: DateTime<Utc>) -> CouponView<'a> {
        CouponView {
            code: &c.code,
            title: &c.title,
            status: c.status_at(now),
            offer: &c.offer,
            tiers: &c.tiers,
            valid_from: c.valid_from,
            valid_until: c.valid_until,
            issued_at: c.issued_at,
            grant: &c.grant,
            redemption: c.redemption.as_ref(),
            stackable: c.stackable,
        }
    }
}
