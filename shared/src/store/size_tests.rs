//! The member item has an upper bound for the default rules, and a loyal member's item stays
//! small: every write of a member rewrites the whole item, so its size prices every purchase
//! (2 write units per started KB inside a transaction).
//!
//! What can grow, and what bounds it (default rules):
//! - points lots: one per earning day, for `points.expiryDays` (365) days;
//! - spend days: one per buying day, for `tierWindowDays` (365) days;
//! - holds: at most `checkout.maxOpenCheckouts` (10), each at most `maxCouponsPerOrder` codes;
//! - tier reaches: one per tier; birthday changes: `birthday::CHANGES_KEPT` (10);
//! - pending lots: one per order still inside the return window. This is the one list the
//!   rules do not bound (orders are money facts from the order system and are never refused
//!   for being many); its cost per order is asserted instead.

use super::item_size;
use super::member::MemberItem;
use crate::birthday::BirthdayChangeRecord;
use crate::ledger::{Lot, PendingLot, Wallet};
use crate::member::Hold;
use crate::member::{Member, MemberId, NewMember, SpendDay};
use crate::money::{Fen, Points};
use crate::rules::Rules;
use crate::tier::{Reach, TierCode};
use chrono::{DateTime, Duration, NaiveDate, Utc};

fn now() -> DateTime<Utc> {
    "2026-11-27T15:59:59.123456789Z".parse().unwrap()
}

fn size(member: &Member, rules: &Rules) -> usize {
    item_size(&super::to_item(&MemberItem::new(member, rules, now())).unwrap())
}

/// A member as long-lived and as large as the default rules allow.
fn largest(rules: &Rules) -> Member {
    let today = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    let id = "m".repeat(128);
    let new = NewMember {
        email: Some(format!("{}@{}.example", "e".repeat(64), "d".repeat(176))),
        phone: Some("+861380013800012".into()),
        // 64 characters of four bytes each.
        name: "😀".repeat(64),
        birthday: NaiveDate::from_ymd_opt(1990, 2, 28),
        referral_code: None,
        marketing_consent: true,
    };
    let mut m = Member::join(
        MemberId::parse(&id).unwrap(),
        &new,
        "ABCDEFGH".into(),
        MemberId::parse(&"r".repeat(128)),
        now(),
    );
    m.email_verified = true;
    m.phone_verified = true;
    // Amounts as large as can be summed over a window without overflow: a day with any
    // number of orders.
    let huge = i64::MAX / 1024;
    let lot_days = rules.points.expiry_days as i64 + 1;
    m.wallet = Wallet {
        balance: Points(huge),
        lots: (0..lot_days)
            .map(|n| Lot { earned_on: today - Duration::days(lot_days - 1 - n), points: huge })
            .collect(),
        pending: Vec::new(),
        rebate: Fen(huge),
    };
    let spend_days = rules.tier_window_days as i64 + 1;
    m.spend_days = (0..spend_days)
        .map(|n| SpendDay { day: today - Duration::days(spend_days - 1 - n), amount: Fen(huge) })
        .collect();
    m.lifetime_spend = Fen(i64::MAX / 2);
    m.order_count = u32::MAX;
    m.last_purchase_at = Some(now());
    m.tier = TierCode::Diamond;
    m.reached = TierCode::ALL
        .into_iter()
        .skip(1)
        .map(|tier| Reach { tier, at: now(), kept: Fen(i64::MAX) })
        .collect();
    m.holds = (0..rules.checkout.max_open_checkouts)
        .map(|i| Hold {
            order_id: format!("{i:0>128}"),
            points: i64::MAX,
            rebate: i64::MAX,
            coupons: vec!["C".repeat(16); rules.checkout.max_coupons_per_order as usize],
            until: now(),
        })
        .collect();
    m.birthday_changes = (0..crate::birthday::CHANGES_KEPT)
        .map(|_| BirthdayChangeRecord {
            at: now(),
            // An IAM principal ARN: role path and session name at their limits.
            by: format!(
                "arn:aws:sts::123456789012:assumed-role/{}/{}",
                "p".repeat(512),
                "s".repeat(64)
            ),
            reason: "理".repeat(200),
        })
        .collect();
    m.birthday_set_at = Some(now());
    m.stepped_down_at = Some(now());
    m.last_tier_evaluation = Some(today);
    m.version = u64::MAX;
    m
}

#[test]
fn the_member_item_has_an_upper_bound_for_the_default_rules() {
    let rules = Rules::default();
    let m = largest(&rules);
    let bytes = size(&m, &rules);
    // Far from DynamoDB's 400 KB item limit, whatever the member's history; the lists of
    // days take 366 × 8 bytes each, the support trail of birthday changes most of the rest.
    eprintln!("worst-case member item: {bytes} bytes");
    assert!(bytes <= 24 * 1024, "worst-case member item: {bytes} bytes");
    // And the bound is about the rules, not the history: more days fall out of the windows.
    let mut longer = m.clone();
    crate::points::settle(
        &mut longer,
        &rules,
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
        now() + Duration::days(1),
    );
    assert!(size(&longer, &rules) <= bytes);
}

#[test]
fn a_year_of_daily_purchases_fits_in_three_kilobytes() {
    // The bench's loyal member: a purchase and a check-in on each day of a year, so a lot and
    // a spend day per day, a week of pending orders and three tiers reached.
    let rules = Rules::default();
    let today = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    let new = NewMember {
        email: Some("xiaoming.wang@example.com".into()),
        phone: Some("+8613800138000".into()),
        name: "王小明".into(),
        birthday: NaiveDate::from_ymd_opt(1990, 2, 28),
        referral_code: None,
        marketing_consent: true,
    };
    let id = MemberId::parse("8f14e45f-ceea-467f-a8f5-2c1b0e0d2c3a").unwrap();
    let joined = now() - Duration::days(366);
    let mut m = Member::join(id, &new, "ABCDEFGH".into(), None, joined);
    m.email_verified = true;
    m.tier = TierCode::Gold;
    m.tier_since = now() - Duration::days(200);
    m.reached = [TierCode::Silver, TierCode::Gold]
        .into_iter()
        .map(|tier| Reach { tier, at: now() - Duration::days(200), kept: Fen(5_500_000) })
        .collect();
    m.last_purchase_at = Some(now());
    m.last_tier_evaluation = Some(today);
    m.wallet.lots = (0..365)
        .map(|n| Lot { earned_on: today - Duration::days(365 - n), points: 305 + n % 200 })
        .collect();
    m.wallet.balance = Points(m.wallet.lots.iter().map(|l| l.points).sum());
    m.wallet.pending = (0..7)
        .map(|n| PendingLot {
            source: format!("2026112700{n:04}"),
            points: 300,
            // The tier's rebate: 2% of a 150 CNY order.
            rebate: 300,
            release_on: today + Duration::days(n + 1),
        })
        .collect();
    m.spend_days = (0..365)
        .map(|n| SpendDay { day: today - Duration::days(364 - n), amount: Fen(15_000 + 97 * n) })
        .collect();
    m.lifetime_spend = Fen(m.spend_days.iter().map(|s| s.amount.0).sum());
    m.order_count = 365;
    m.version = 730;
    let bytes = size(&m, &rules);
    eprintln!("a year-long member's item: {bytes} bytes");
    assert!(bytes <= 3 * 1024, "a year-long member's item: {bytes} bytes");
}

#[test]
fn each_pending_order_costs_its_id_and_a_few_bytes() {
    let rules = Rules::default();
    let mut m = largest(&rules);
    m.wallet.pending.clear();
    let before = size(&m, &rules);
    let today = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    for n in 0..100 {
        m.wallet.add_pending(&format!("{n:0>64}"), 1_000_000, 300_000, today + Duration::days(7));
    }
    let per_order = (size(&m, &rules) - before) as f64 / 100.0;
    // The id, its length, the points, the rebate and (for a new release day) the step.
    assert!(per_order <= 64.0 + 11.0, "{per_order} bytes per pending order");
}
