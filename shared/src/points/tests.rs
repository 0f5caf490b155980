use super::*;
use crate::calendar::program_date;
use crate::campaign::MultiplierWindow;
use crate::ledger::LedgerEntry;
use crate::member::{ActivityDay, Member};
use crate::money::{Fen, Multiplier, Points};
use crate::rules::Rules;
use crate::tier::{self, TierCode};
use chrono::{DateTime, Duration, NaiveDate, Utc};

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
        tracking_code: None,
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
        experiment: None,
    };
    assert_eq!(
        purchase_campaign_multiplier(
            &r,
            std::slice::from_ref(&w),
            "m1",
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
            "m1",
            TierCode::Gold,
            at("2026-03-17T16:30:00Z")
        ),
        Multiplier(2000)
    );
    assert_eq!(
        purchase_campaign_multiplier(
            &r,
            &[small],
            "m1",
            TierCode::Gold,
            at("2026-03-10T00:00:00Z")
        ),
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
    let p = apply_purchase(&mut m, &r, &purchase("o1", 2_000_00, "2026-11-20T03:00:00Z"), &[], now);
    assert_eq!(p.points, 2000, "points at the tier before the upgrade");
    let change = p.tier_change.unwrap();
    assert_eq!((change.from, change.to), (TierCode::Regular, TierCode::Silver));
    assert_eq!(change.reason, "rolling spend 2000.00 CNY reached silver");
    assert_eq!((m.tier, m.tier_since, m.order_count), (TierCode::Silver, now, 1));
    let p2 = apply_purchase(&mut m, &r, &purchase("o2", 100_00, "2026-11-20T03:30:00Z"), &[], now);
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
    assert_eq!(apply_redemption(&mut m, &r, 150, "k", now).unwrap_err().code(), "invalid_points");
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
    fn balance_equals_the_ledger_and_expired_lots_are_never_spent(ops in proptest::collection::vec(op(), 1..60), start in 0usize..4) {
        let r = Rules::default();
        let mut now = at("2026-01-01T04:00:00Z");
        let mut m = member(now);
        // Any tier to start from, so that rebates (0% for regular) are earned from the first order.
        m.tier = TierCode::ALL[start];
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
                    let req = PurchaseRequest { order_id: format!("o{n}"), amount: Fen(fen), currency: "CNY".into(), channel: Channel::Store, occurred_at: now - Duration::hours(hours_ago), tracking_code: None };
                    let rate = r.tier(m.tier).rebate_basis_points;
                    let p = apply_purchase(&mut m, &r, &req, &[], now);
                    prop_assert_eq!(p.rebate, order_rebate(req.amount, rate));
                    let mut order = OrderRecord::purchase(&req, p.points, program_date(r.time_zone, req.occurred_at), String::new(), String::new());
                    order.rebate = p.rebate;
                    orders.push(order);
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
                    prop_assert!(orders[i].rebate_reversed <= orders[i].rebate);
                    if orders[i].refunded == orders[i].paid { prop_assert_eq!(orders[i].rebate_reversed, orders[i].rebate); }
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
            prop_assert_eq!(m.wallet.rebate, ledger.iter().map(|e| e.rebate).sum::<Fen>());
            prop_assert_eq!(m.wallet.pending_rebate(), ledger.iter().map(|e| e.rebate_pending).sum::<Fen>());
            // What is owed is exactly the rebates of the orders, net of what refunds took back.
            let owed: i64 = orders.iter().map(|o| o.rebate.0 - o.rebate_reversed.0).sum();
            prop_assert_eq!(m.wallet.rebate.0 + m.wallet.pending_rebate().0, owed);
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
                    let req = PurchaseRequest { order_id: format!("o{n}"), amount: Fen(fen), currency: "CNY".into(), channel: Channel::Store, occurred_at: now, tracking_code: None };
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
