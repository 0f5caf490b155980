//! The nightly tier rules: boundaries as unit tests, and generated dated purchase histories
//! checked against a plain day-by-day reference computation.

use super::*;
use crate::calendar::start_of_day;
use crate::member::{Member, MemberId, NewMember, SpendDay};
use chrono::{NaiveDate, TimeZone};
use proptest::prelude::*;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn rules() -> Rules {
    Rules::default()
}

/// Noon, program time, on `day`.
fn noon(day: NaiveDate) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .from_local_datetime(&day.and_hms_opt(12, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// The nightly run's instant on `day`: 00:30 program time.
fn night(day: NaiveDate) -> DateTime<Utc> {
    start_of_day(chrono_tz::Asia::Shanghai, day) + Duration::minutes(30)
}

fn member(tier: TierCode, since: DateTime<Utc>, spend: &[(&str, i64)]) -> Member {
    let nm = NewMember {
        email: Some("a@b.cn".into()),
        phone: None,
        name: "A".into(),
        birthday: None,
        referral_code: None,
        marketing_consent: false,
    };
    let mut m = Member::join(MemberId::parse("m1").unwrap(), &nm, "ABCD2345".into(), None, since);
    m.tier = tier;
    m.tier_since = since;
    m.spend_days = spend
        .iter()
        .map(|(day, cny)| SpendDay { day: d(day), amount: Fen::from_cny(*cny) })
        .collect();
    m
}

fn tier_on(m: &Member, day: &str) -> Option<TierCode> {
    evaluate(m, &rules(), night(d(day))).and_then(|e| e.change).map(|c| c.to)
}

#[test]
fn protection_covers_day_365_and_ends_on_day_366() {
    // Gold reached on 2025-03-10 (late in the evening), no spend since.
    let m = member(TierCode::Gold, noon(d("2025-03-10")) + Duration::hours(11), &[]);
    assert_eq!(first_downgrade_date(&m, &rules()), d("2026-03-11"));
    assert_eq!(tier_on(&m, "2026-03-10"), None, "day 365 is still protected");
    assert_eq!(tier_on(&m, "2026-03-11"), Some(TierCode::Silver), "day 366: one level down");
    assert_eq!(
        protected_until(&m, &rules()),
        "2026-03-10T16:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[test]
fn exactly_on_the_threshold_keeps_the_tier_and_one_fen_less_steps_down() {
    let since = noon(d("2024-01-01"));
    let at = member(TierCode::Silver, since, &[("2025-06-01", 2_000)]);
    assert_eq!(tier_on(&at, "2025-06-02"), None);
    let mut below = at.clone();
    below.spend_days[0].amount = Fen::from_cny(2_000) - Fen(1);
    assert_eq!(tier_on(&below, "2025-06-02"), Some(TierCode::Regular));
}

#[test]
fn a_member_gone_quiet_for_two_years_steps_down_one_level_per_night() {
    let mut m = member(TierCode::Diamond, noon(d("2024-01-10")), &[("2024-01-10", 50_000)]);
    let mut seen = Vec::new();
    let mut day = d("2024-01-11");
    while day <= d("2026-01-10") {
        if let Some(e) = evaluate(&m, &rules(), night(day)) {
            if let Some(c) = &e.change {
                seen.push((day, c.from, c.to, c.reason.clone()));
            }
            m = e.member;
        }
        day += Duration::days(1);
    }
    let step = ChangeReason::StepDown.as_str().to_string();
    // 2024 is a leap year: day 366 after 2024-01-10 is 2025-01-10.
    assert_eq!(
        seen,
        vec![
            (d("2025-01-10"), TierCode::Diamond, TierCode::Gold, step.clone()),
            (d("2025-01-11"), TierCode::Gold, TierCode::Silver, step.clone()),
            (d("2025-01-12"), TierCode::Silver, TierCode::Regular, step),
        ]
    );
    assert!(m.spend_days.is_empty(), "spend outside the window is trimmed");
    assert_eq!(protection(&m, &rules()), None);
}

#[test]
fn never_below_the_earned_tier_and_stepping_down_brings_no_new_protection() {
    // Diamond, but only gold spend in the window: down to gold and no further.
    let m = member(TierCode::Diamond, noon(d("2024-05-01")), &[("2025-04-01", 12_000)]);
    let e = evaluate(&m, &rules(), night(d("2025-05-02"))).unwrap();
    assert_eq!(e.member.tier, TierCode::Gold);
    assert_eq!(e.member.tier_since, night(d("2025-05-02")));
    assert_eq!(e.member.stepped_down_at, Some(night(d("2025-05-02"))));
    assert_eq!(tier_on(&e.member, "2025-05-03"), None, "gold is earned");
    // When the gold spend leaves the window, gold is not protected: silver the next night.
    assert_eq!(review_date(&e.member, &rules()), Some(d("2026-04-01")));
    assert_eq!(tier_on(&e.member, "2026-04-01"), Some(TierCode::Silver));
}

#[test]
fn a_second_evaluation_on_the_same_date_changes_nothing() {
    let m = member(TierCode::Diamond, noon(d("2024-01-10")), &[]);
    let first = evaluate(&m, &rules(), night(d("2025-06-01"))).unwrap();
    assert_eq!(first.member.tier, TierCode::Gold);
    assert_eq!(
        evaluate(&first.member, &rules(), night(d("2025-06-01")) + Duration::hours(3)),
        None
    );
    assert_eq!(
        evaluate(&first.member, &rules(), night(d("2025-05-30"))),
        None,
        "an older night is not replayed over a newer state"
    );
    assert!(review_date(&first.member, &rules()).unwrap() > d("2025-06-01"));
}

#[test]
fn leap_years_count_days_not_calendar_dates() {
    // A purchase on 2020-02-29 leaves the 365-day window on 2021-02-28.
    let m = member(TierCode::Silver, noon(d("2019-01-01")), &[("2020-02-29", 2_000)]);
    assert_eq!(m.rolling_spend(d("2021-02-27"), 365), Fen::from_cny(2_000));
    assert_eq!(m.rolling_spend(d("2021-02-28"), 365), Fen::ZERO);
    assert_eq!(review_date(&m, &rules()), Some(d("2021-02-28")));
    assert_eq!(tier_on(&m, "2021-02-27"), None);
    assert_eq!(tier_on(&m, "2021-02-28"), Some(TierCode::Regular));
    // Protection from 2020-02-29: day 365 is 2021-02-28, so the first lowering is on 2021-03-01.
    let p = member(TierCode::Silver, noon(d("2020-02-29")), &[]);
    assert_eq!(first_downgrade_date(&p, &rules()), d("2021-03-01"));
    assert_eq!(tier_on(&p, "2021-02-28"), None);
    assert_eq!(tier_on(&p, "2021-03-01"), Some(TierCode::Regular));
}

#[test]
fn a_refund_that_drops_spend_below_the_threshold_lowers_after_protection() {
    let mut m = member(TierCode::Gold, noon(d("2024-01-01")), &[("2025-03-01", 10_000)]);
    assert_eq!(tier_on(&m, "2025-03-02"), None);
    m.spend_days[0].amount -= Fen::from_cny(1); // refund of 1 CNY on the purchase's date
    assert_eq!(review_date(&m, &rules()), Some(d("2025-03-01")));
    assert_eq!(tier_on(&m, "2025-03-02"), Some(TierCode::Silver));
}

#[test]
fn a_rules_change_raises_at_once_but_lowers_nobody_before_protection_ends() {
    let lower = Rules::from_overrides(r#"{"tiers":[{"code":"regular","name":"R","threshold":0,"multiplier":1.0,"discountPercent":0,"birthdayCoupon":{"title":"b","offer":{"kind":"amount_off","value":1000,"minSpend":5000},"validDays":30}},
        {"code":"silver","name":"S","threshold":100000,"multiplier":1.2,"discountPercent":10,"birthdayCoupon":{"title":"b","offer":{"kind":"amount_off","value":3000,"minSpend":10000},"validDays":30}},
        {"code":"gold","name":"G","threshold":2000000,"multiplier":1.5,"discountPercent":20,"birthdayCoupon":{"title":"b","offer":{"kind":"amount_off","value":8000,"minSpend":20000},"validDays":30}},
        {"code":"diamond","name":"D","threshold":9000000,"multiplier":2.0,"discountPercent":30,"birthdayCoupon":{"title":"b","offer":{"kind":"amount_off","value":20000,"minSpend":40000},"validDays":30}}]}"#)
    .unwrap();
    // 1,500 CNY: regular under the defaults, silver under the new rules.
    let r = member(TierCode::Regular, noon(d("2025-01-01")), &[("2025-05-01", 1_500)]);
    let e = evaluate(&r, &lower, night(d("2025-05-02"))).unwrap();
    assert_eq!(
        (e.change.as_ref().unwrap().to, e.change.as_ref().unwrap().reason.as_str()),
        (TierCode::Silver, "nightly_upgrade")
    );
    assert!(is_protected(&e.member, &lower, d("2026-05-02")));
    // 12,000 CNY: gold under the defaults, only silver under the new rules: protected, then one step.
    let g = member(TierCode::Gold, noon(d("2025-01-01")), &[("2025-05-01", 12_000)]);
    assert_eq!(decide(&g, &lower, d("2026-01-01")), None);
    assert_eq!(
        decide(&g, &lower, d("2026-01-02")),
        Some(Decision { to: TierCode::Silver, reason: ChangeReason::StepDown })
    );
}

#[test]
fn an_older_night_is_not_replayed_over_newer_spend() {
    let m = member(TierCode::Gold, noon(d("2024-01-01")), &[("2025-06-01", 100)]);
    assert_eq!(evaluate(&m, &rules(), night(d("2025-05-31"))), None);
    assert!(evaluate(&m, &rules(), night(d("2025-06-02"))).is_some());
}

#[test]
fn the_rules_fingerprint_follows_thresholds_window_and_protection_only() {
    let r = rules();
    let mut other = rules();
    other.points.expiry_days = 30;
    assert_eq!(rules_fingerprint(&r), rules_fingerprint(&other));
    other.tiers[1].threshold = Fen::from_cny(1_000);
    assert_ne!(rules_fingerprint(&r), rules_fingerprint(&other));
    let mut p = rules();
    p.tier_protection_days = 180;
    assert_ne!(rules_fingerprint(&r), rules_fingerprint(&p));
}

#[test]
fn the_profile_shows_protection_and_the_spend_to_keep_the_tier() {
    let m = member(
        TierCode::Gold,
        noon(d("2025-06-01")),
        &[("2025-06-01", 10_000), ("2025-12-01", 3_000)],
    );
    // Protection ends 2026-06-02; by then the June purchase has rolled off (2026-06-01).
    assert_eq!(spend_to_keep(&m, &rules(), d("2025-12-02")), Fen::from_cny(7_000));
    let r = rules();
    let p = crate::views::ProfileView::of(&m, &[], &r, noon(d("2025-12-02")));
    assert_eq!(p.rolling_spend, Fen::from_cny(13_000));
    assert_eq!(p.tier_protected_until, Some("2026-06-01T16:00:00Z".parse().unwrap()));
    assert_eq!(p.spend_to_keep_tier, Fen::from_cny(7_000));
    assert_eq!(
        p.next_tier.as_ref().map(|n| (n.tier, n.spend_needed)),
        Some((TierCode::Diamond, Fen::from_cny(37_000)))
    );
    assert_eq!(p.benefits.member_discount_percent, 20);
    assert_eq!(serde_json::to_value(&p.benefits.birthday_coupon.offer).unwrap()["value"], 8000);
}

// ---- generated histories against a plain reference -------------------------------------

/// One dated order: day offset from the start, amount in fen, and an optional refund (days
/// later, fen refunded).
#[derive(Debug, Clone)]
struct Order {
    day: i64,
    amount: i64,
    refund: Option<(i64, i64)>,
}

fn amounts() -> impl Strategy<Value = i64> {
    prop_oneof![
        // Exactly on, just under and just over the thresholds.
        prop::sample::select(vec![
            200_000, 199_999, 200_001, 1_000_000, 999_999, 5_000_000, 4_999_999, 800_000, 4_000_000
        ]),
        1i64..3_000_000,
    ]
}

fn orders() -> impl Strategy<Value = Vec<Order>> {
    prop::collection::vec(
        (0i64..1_100, amounts(), prop::option::weighted(0.3, (1i64..60, 1i64..=100))).prop_map(
            |(day, amount, r)| Order {
                day,
                amount,
                refund: r.map(|(later, pct)| (day + later, amount * pct / 100)),
            },
        ),
        0..25,
    )
}

/// The plain reference: integer day numbers, loops, nothing shared with the code under test
/// but the thresholds. Returns the tier after each night, evaluating every night.
fn reference(start: NaiveDate, orders: &[Order], days: i64, thresholds: [i64; 4]) -> Vec<usize> {
    let earned = |spend: i64| (0..4).rev().find(|t| spend >= thresholds[*t]).unwrap_or(0);
    let mut spend: Vec<(i64, i64)> = Vec::new(); // (day, fen)
    let (mut tier, mut since, mut protected) = (0usize, 0i64, true);
    let mut out = Vec::new();
    let rolling = |spend: &Vec<(i64, i64)>, today: i64| {
        spend.iter().filter(|(d, _)| *d > today - 365 && *d <= today).map(|(_, a)| a).sum::<i64>()
    };
    for today in 0..days {
        // 00:30: the nightly evaluation.
        let e = earned(rolling(&spend, today));
        if e > tier {
            (tier, since, protected) = (e, today, true);
        } else if e < tier && (!protected || today >= since + 366) {
            (tier, since, protected) = (tier - 1, today, false);
        }
        out.push(tier);
        // During the day: purchases (instant upgrade), then refunds on the purchase's date.
        for o in orders.iter().filter(|o| o.day == today) {
            spend.push((o.day, o.amount));
            let e = earned(rolling(&spend, today));
            if e > tier {
                (tier, since, protected) = (e, today, true);
            }
        }
        for o in orders.iter().filter(|o| o.refund.is_some_and(|(d, _)| d == today)) {
            spend.push((o.day, -o.refund.unwrap().1));
        }
    }
    let _ = start;
    let _ = since;
    out
}

/// The same history through the code under test: purchases and refunds as the purchase side
/// writes them, the nightly evaluation at 00:30 either for every member (`scan`) or only for
/// members the review index would list (`review_date <= today`).
fn simulate(start: NaiveDate, orders: &[Order], days: i64, scan: bool) -> (Vec<usize>, Member) {
    let r = rules();
    let mut m = member(TierCode::Regular, night(start) - Duration::hours(1), &[]);
    let mut out = Vec::new();
    for n in 0..days {
        let today = start + Duration::days(n);
        if scan || review_date(&m, &r).is_some_and(|rd| rd <= today) {
            if let Some(e) = evaluate(&m, &r, night(today)) {
                // What the worker writes; evaluating again the same night is a no-op.
                assert_eq!(evaluate(&e.member, &r, night(today)), None);
                if let Some(c) = &e.change {
                    assert!(c.from != c.to);
                    if c.to < c.from {
                        assert_eq!(c.to.rank() + 1, c.from.rank(), "one level per evaluation");
                    }
                }
                m = e.member;
            }
        }
        out.push(m.tier.rank());
        for o in orders.iter().filter(|o| o.day == n) {
            add_spend(&mut m, today, o.amount);
            let new = upgrade_on_purchase(&r, m.tier, m.rolling_spend(today, r.tier_window_days));
            if new > m.tier {
                m.tier = new;
                m.tier_since = noon(today);
            }
        }
        for o in orders.iter().filter(|o| o.refund.is_some_and(|(d, _)| d == n)) {
            add_spend(&mut m, start + Duration::days(o.day), -o.refund.unwrap().1);
        }
    }
    (out, m)
}

fn add_spend(m: &mut Member, day: NaiveDate, fen: i64) {
    match m.spend_days.iter_mut().find(|s| s.day == day) {
        Some(s) => s.amount += Fen(fen),
        None => {
            m.spend_days.push(SpendDay { day, amount: Fen(fen) });
            m.spend_days.sort_by_key(|s| s.day);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn nightly_tiers_match_the_reference_and_the_review_index_misses_nothing(orders in orders(), leap in any::<bool>()) {
        // Histories of three years, starting before a Feb 29 or not.
        let start = if leap { d("2019-06-01") } else { d("2021-06-01") };
        let days = 1_160;
        let thresholds = [0, 200_000, 1_000_000, 5_000_000];
        let want = reference(start, &orders, days, thresholds);
        let (scan, _) = simulate(start, &orders, days, true);
        prop_assert_eq!(&scan, &want, "evaluating every night");
        let (indexed, m) = simulate(start, &orders, days, false);
        prop_assert_eq!(&indexed, &want, "evaluating only members the review index lists");
        // Spend days are only trimmed when the member is evaluated; what is kept is exact.
        let last = start + Duration::days(days - 1);
        prop_assert_eq!(m.rolling_spend(last, 365), Fen(orders.iter().filter(|o| o.day > days - 1 - 365).map(|o| o.amount - o.refund.filter(|(rd, _)| *rd < days).map_or(0, |r| r.1)).sum()));
    }

    #[test]
    fn the_review_date_is_the_first_night_a_step_down_is_due(orders in orders()) {
        // Any reachable state: before its review date no night lowers the tier, and on it one does.
        let start = d("2023-01-01");
        let (_, m) = simulate(start, &orders, 500, false);
        let r = rules();
        if let Some(rd) = review_date(&m, &r) {
            let first = m.last_tier_evaluation.map_or(start, |l| l + Duration::days(1));
            let mut day = first.max(start + Duration::days(500));
            while day < rd {
                prop_assert_eq!(decide(&m, &r, day), None, "{} before review date {}", day, rd);
                day += Duration::days(1);
            }
            prop_assert_eq!(decide(&m, &r, rd).map(|x| x.reason), Some(ChangeReason::StepDown));
        } else {
            prop_assert_eq!(m.tier, TierCode::Regular);
        }
    }
}

mod basics {
    use super::*;

    #[test]
    fn earned_tier_is_inclusive_at_the_threshold() {
        let r = Rules::default();
        assert_eq!(earned_tier(&r, Fen::from_cny(1_999) + Fen(99)), TierCode::Regular);
        assert_eq!(earned_tier(&r, Fen::from_cny(2_000)), TierCode::Silver);
        assert_eq!(earned_tier(&r, Fen::from_cny(10_000)), TierCode::Gold);
        assert_eq!(earned_tier(&r, Fen::from_cny(50_000)), TierCode::Diamond);
    }

    #[test]
    fn purchase_never_lowers_a_tier() {
        let r = Rules::default();
        assert_eq!(upgrade_on_purchase(&r, TierCode::Gold, Fen::ZERO), TierCode::Gold);
        assert_eq!(
            upgrade_on_purchase(&r, TierCode::Regular, Fen::from_cny(12_000)),
            TierCode::Gold
        );
    }

    #[test]
    fn next_tier_counts_the_missing_spend() {
        let r = Rules::default();
        let n = next_tier(&r, TierCode::Regular, Fen::from_cny(500)).unwrap();
        assert_eq!((n.tier, n.spend_needed), (TierCode::Silver, Fen::from_cny(1_500)));
        assert!(next_tier(&r, TierCode::Diamond, Fen::ZERO).is_none());
    }
}
