use super::*;
use crate::coupon::{self, Coupon, Offer};
use crate::coupon::{CodeKey, CouponStatus, CouponTemplate, Redemption};
use crate::ledger::EntryKind;
use crate::member::{MemberId, NewMember};
use crate::points::RefundRequest;
use crate::points::{self, Channel, OrderRecord};
use crate::tier::TierCode;
use chrono::NaiveDate;
use proptest::prelude::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn now() -> DateTime<Utc> {
    at("2026-11-20T04:00:00Z")
}

fn member(points: i64) -> Member {
    let nm = NewMember {
        email: None,
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
        now() - Duration::days(30),
    );
    m.wallet.earn(points, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
    m
}

fn ask(coupons: &[Coupon], points: i64) -> Asked<'_> {
    Asked { coupons, points, rebate: Fen::ZERO }
}

fn coupon(grant: &str, offer: Offer, stackable: bool) -> Coupon {
    let t = CouponTemplate {
        title: grant.into(),
        offer,
        valid_days: Some(30),
        valid_from: None,
        valid_until: None,
        tiers: vec![],
        per_member_limit: 1,
        stackable,
    };
    coupon::issue(&CodeKey::new(&[1u8; 32]).unwrap(), &t, "m1", grant, 0, now() - Duration::days(1))
}

fn off(value: i64, min: i64) -> Offer {
    Offer::AmountOff { value: Fen(value), min_spend: Fen(min) }
}

#[test]
fn discounts_apply_member_price_then_coupon_then_points_capped_at_half() {
    let r = Rules::default();
    let mut m = member(10_000);
    m.tier = TierCode::Silver;
    let c = coupon("c", off(2_000, 10_000), false);
    // 200.00 CNY: 10% member price → 180.00; 20.00 off → 160.00; points at most 80.00.
    let q = quote(&r, &m, Some("o1"), Fen(20_000), ask(std::slice::from_ref(&c), 5_000), now())
        .unwrap();
    assert_eq!(
        (q.member_discount, q.coupon_discount, q.points_discount, q.payable),
        (Fen(2_000), Fen(2_000), Fen(5_000), Fen(11_000))
    );
    assert_eq!(q.max_points, 8_000);
    let err = quote(&r, &m, Some("o1"), Fen(20_000), ask(&[c], 8_100), now()).unwrap_err();
    assert_eq!(err, CheckoutError::PointsOverCap { max: 8_000, asked: 8_100 });
}

#[test]
fn minimum_spend_is_checked_after_the_member_discount() {
    let r = Rules::default();
    let mut m = member(0);
    m.tier = TierCode::Gold;
    let c = coupon("c", off(2_000, 10_000), false);
    // 120.00 at 8折 is 96.00: below the 100.00 minimum.
    let err = quote(&r, &m, None, Fen(12_000), ask(&[c], 0), now()).unwrap_err();
    assert_eq!(err.code(), "below_minimum_spend");
}

#[test]
fn the_order_of_steps_is_rules_data() {
    let r = Rules::from_overrides(
        r#"{"checkout":{"applyOrder":["coupons","member_discount","points"]}}"#,
    )
    .unwrap();
    let mut m = member(0);
    m.tier = TierCode::Silver;
    let q = quote(&r, &m, None, Fen(20_000), ask(&[coupon("c", off(2_000, 0), false)], 0), now())
        .unwrap();
    // 200 − 20 = 180, then 10% → 162.
    assert_eq!(
        (q.coupon_discount, q.member_discount, q.payable),
        (Fen(2_000), Fen(1_800), Fen(16_200))
    );
    assert!(Rules::from_overrides(r#"{"checkout":{"applyOrder":["coupons","coupons","points"]}}"#)
        .is_err());
}

#[test]
fn two_coupons_need_both_to_be_stackable() {
    let r = Rules::default();
    let m = member(0);
    let (a, b) = (coupon("a", off(1_000, 0), true), coupon("b", off(500, 0), false));
    assert_eq!(
        quote(&r, &m, None, Fen(20_000), ask(&[a.clone(), b], 0), now()).unwrap_err(),
        CheckoutError::NotStackable
    );
    let c = coupon("c", off(500, 0), true);
    let q = quote(&r, &m, None, Fen(20_000), ask(&[a, c], 0), now()).unwrap();
    assert_eq!((q.coupon_discount, q.coupons.len()), (Fen(1_500), 2));
    assert_eq!(validate_codes(&r, &["X".into(), "X".into()]), Err(CheckoutError::DuplicateCoupon));
}

#[test]
fn each_unusable_coupon_says_why() {
    let r = Rules::default();
    let m = member(0);
    let mut used = coupon("u", off(1_000, 0), false);
    used.status = CouponStatus::Redeemed;
    used.redemption = Some(Redemption {
        order_id: "x".into(),
        order_amount: Fen(1),
        discount: Fen(1),
        at: now(),
    });
    let mut expired = coupon("e", off(1_000, 0), false);
    expired.valid_until = now() - Duration::seconds(1);
    let mut gold = coupon("g", off(1_000, 0), false);
    gold.tiers = vec![TierCode::Gold];
    for (c, code, status) in [
        (used, "coupon_already_used", 409),
        (expired, "coupon_expired", 422),
        (gold, "tier_not_eligible", 422),
    ] {
        let err = quote(&r, &m, None, Fen(20_000), ask(&[c], 0), now()).unwrap_err();
        assert_eq!((err.code(), err.status()), (code, status));
    }
}

#[test]
fn a_hold_keeps_its_coupon_and_points_from_other_orders_until_it_expires() {
    let r = Rules::default();
    let mut m = member(5_000);
    let c = coupon("c", off(1_000, 0), false);
    let q = quote(&r, &m, Some("o1"), Fen(20_000), ask(std::slice::from_ref(&c), 3_000), now())
        .unwrap();
    let until = hold(&mut m, &r, "o1", &q, now()).unwrap();
    assert_eq!(until, now() + Duration::minutes(15));
    assert_eq!(m.available_points(now(), None), 2_000);
    assert_eq!(
        quote(&r, &m, Some("o2"), Fen(20_000), ask(std::slice::from_ref(&c), 0), now())
            .unwrap_err()
            .code(),
        "coupon_on_hold"
    );
    assert_eq!(
        quote(&r, &m, Some("o2"), Fen(20_000), ask(&[], 3_000), now()).unwrap_err().code(),
        "insufficient_points"
    );
    // Re-quoting the same order replaces its hold instead of adding one.
    let q1 = quote(&r, &m, Some("o1"), Fen(20_000), ask(&[], 5_000), now()).unwrap();
    hold(&mut m, &r, "o1", &q1, now()).unwrap();
    assert_eq!((m.holds.len(), m.available_points(now(), None)), (1, 0));
    // Past `until` the hold holds nothing, without any call.
    assert_eq!(m.available_points(until, None), 5_000);
    assert!(quote(&r, &m, Some("o2"), Fen(20_000), ask(&[c], 3_000), until).is_ok());
}

#[test]
fn confirm_spends_the_held_points_and_earns_on_what_was_paid() {
    let r = Rules::from_overrides(r#"{"returnWindowDays":0}"#).unwrap();
    let mut m = member(5_000);
    let c = coupon("c", off(1_000, 0), false);
    let q = quote(&r, &m, Some("o1"), Fen(20_000), ask(std::slice::from_ref(&c), 3_000), now())
        .unwrap();
    hold(&mut m, &r, "o1", &q, now()).unwrap();
    let quoted = Quoted {
        order_id: "o1".into(),
        amount: Fen(20_000),
        currency: "CNY".into(),
        channel: Channel::Online,
        coupons: vec![c],
        points: 3_000,
        rebate: Fen::ZERO,
        quote: q,
    };
    let done = confirm(&mut m, &r, &quoted, &[], now(), now()).unwrap();
    // 200 − 10 − 30 = 160 CNY paid → 160 points; 5,000 − 3,000 + 160.
    assert_eq!(
        (done.order.paid, done.purchased.points, m.wallet.balance.0),
        (Fen(16_000), 160, 2_160)
    );
    assert_eq!(done.entries.iter().map(|e| e.points.0).sum::<i64>(), -3_000 + 160);
    assert!(m.holds.is_empty());
    assert_eq!((done.order.points_spent, done.order.coupons.len()), (3_000, 1));
}

#[test]
fn an_expired_hold_is_priced_again_at_confirm() {
    let r = Rules::default();
    let mut m = member(5_000);
    let q = quote(&r, &m, Some("o1"), Fen(20_000), ask(&[], 3_000), now()).unwrap();
    hold(&mut m, &r, "o1", &q, now()).unwrap();
    let quoted = Quoted {
        order_id: "o1".into(),
        amount: Fen(20_000),
        currency: "CNY".into(),
        channel: Channel::Online,
        coupons: vec![],
        points: 3_000,
        rebate: Fen::ZERO,
        quote: q,
    };
    let later = now() + Duration::minutes(20);
    // Another order took the points meanwhile: the confirm says exactly that.
    let q2 = quote(&r, &m, Some("o2"), Fen(20_000), ask(&[], 3_000), later).unwrap();
    let mut other = m.clone();
    hold(&mut other, &r, "o2", &q2, later).unwrap();
    assert_eq!(
        confirm(&mut other.clone(), &r, &quoted, &[], later, later).unwrap_err().code(),
        "insufficient_points"
    );
    // The member became Silver meanwhile: the price changed.
    let mut silver = m.clone();
    silver.tier = TierCode::Silver;
    assert_eq!(
        confirm(&mut silver, &r, &quoted, &[], later, later).unwrap_err(),
        CheckoutError::QuoteChanged
    );
    // Nothing changed: the expired hold confirms.
    assert!(confirm(&mut m, &r, &quoted, &[], later, later).is_ok());
}

#[test]
fn refunds_give_back_spent_points_in_proportion_and_coupons_on_a_full_refund() {
    let r = Rules::default();
    let mut m = member(5_000);
    let c = coupon("c", off(1_000, 0), false);
    let q = quote(&r, &m, Some("o1"), Fen(20_000), ask(std::slice::from_ref(&c), 3_000), now())
        .unwrap();
    let quoted = Quoted {
        order_id: "o1".into(),
        amount: Fen(20_000),
        currency: "CNY".into(),
        channel: Channel::Online,
        coupons: vec![c.clone()],
        points: 3_000,
        rebate: Fen::ZERO,
        quote: q,
    };
    hold(&mut m, &r, "o1", &quoted.quote, now()).unwrap();
    let mut order = confirm(&mut m, &r, &quoted, &[], now(), now()).unwrap().order;
    let refund = |id: &str, fen: i64| RefundRequest {
        order_id: "o1".into(),
        refund_id: id.into(),
        amount: Fen(fen),
    };
    let half = points::apply_refund(&mut m, &r, &mut order, &refund("r1", 8_000), now()).unwrap();
    assert_eq!(
        (half.clawed_back, half.points_returned, half.coupons_returned.len()),
        (80, 1_500, 0)
    );
    let rest = points::apply_refund(&mut m, &r, &mut order, &refund("r2", 8_000), now()).unwrap();
    assert_eq!((rest.points_returned, rest.coupons_returned), (1_500, vec![c.code]));
    assert_eq!(m.wallet.balance.0, 5_000);
}

#[derive(Debug, Clone)]
enum Op {
    Quote(usize, bool, i64),
    Confirm(usize),
    Cancel(usize),
    Refund(usize, i64),
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..4, any::<bool>(), 0i64..40).prop_map(|(o, c, p)| Op::Quote(o, c, p * 100)),
        (0usize..4).prop_map(Op::Confirm),
        (0usize..4).prop_map(Op::Cancel),
        (0usize..4, 1i64..30_000).prop_map(|(o, f)| Op::Refund(o, f)),
        (1i64..30).prop_map(Op::Wait),
    ]
}

proptest! {
    #[test]
    fn holds_never_spend_twice_and_the_ledger_always_adds_up(ops in proptest::collection::vec(op(), 1..50)) {
        let r = Rules::default();
        let mut m = member(3_000);
        let mut ledger: i64 = 3_000;
        let mut c = coupon("c", off(1_000, 0), false);
        let mut t = now();
        let mut quoted: Vec<Option<Quoted>> = vec![None; 4];
        let mut orders: Vec<Option<OrderRecord>> = vec![None; 4];
        for (n, o) in ops.into_iter().enumerate() {
            match o {
                Op::Quote(i, with_coupon, p) => if orders[i].is_none() {
                    let coupons: Vec<Coupon> = if with_coupon { vec![c.clone()] } else { vec![] };
                    let id = format!("o{i}");
                    if let Ok(q) = quote(&r, &m, Some(&id), Fen(20_000), ask(&coupons, p), t) {
                        if hold(&mut m, &r, &id, &q, t).is_ok() {
                            // A new hold never promises points the balance does not have.
                            prop_assert!(m.points_on_hold(t, None) <= m.wallet.balance.0);
                            quoted[i] = Some(Quoted { order_id: id, amount: Fen(20_000), currency: "CNY".into(), channel: Channel::Online, coupons, points: p, rebate: Fen::ZERO, quote: q });
                        }
                    }
                },
                Op::Confirm(i) => if let (Some(q), None) = (quoted[i].clone(), &orders[i]) {
                    let before = m.clone();
                    let was_live = m.live_holds(t).any(|h| h.order_id == q.order_id);
                    match confirm(&mut m, &r, &q, &[], t, t) {
                        // The store's write condition refuses a coupon used meanwhile, which
                        // only an order confirmed after this hold expired can have done.
                        Ok(_) if !q.coupons.is_empty() && c.redemption.is_some() => {
                            prop_assert!(!was_live, "the coupon of a live hold was used by another order");
                            m = before;
                        }
                        Ok(done) => {
                            ledger += done.entries.iter().map(|e| e.points.0).sum::<i64>();
                            if !q.coupons.is_empty() {
                                c.redemption = Some(Redemption { order_id: q.order_id.clone(), order_amount: q.amount, discount: Fen(1), at: t });
                                c.status = CouponStatus::Redeemed;
                            }
                            orders[i] = Some(done.order);
                        }
                        Err(_) => m = before,
                    }
                },
                Op::Cancel(i) => if orders[i].is_none() { release(&mut m, &format!("o{i}"), t); quoted[i] = None; },
                Op::Refund(i, fen) => if let Some(order) = orders[i].as_mut() {
                    let req = RefundRequest { order_id: order.order_id.clone(), refund_id: format!("r{n}"), amount: Fen(fen) };
                    if let Ok(done) = points::apply_refund(&mut m, &r, order, &req, t) {
                        ledger += done.entries.iter().map(|e| e.points.0).sum::<i64>();
                        if !done.coupons_returned.is_empty() { c.redemption = None; c.status = CouponStatus::Active; }
                        prop_assert!(order.points_returned <= order.points_spent);
                    }
                },
                Op::Wait(minutes) => t += Duration::minutes(minutes),
            }
            prop_assert_eq!(m.wallet.balance.0, ledger);
            prop_assert!(m.wallet.is_consistent());
            let held_codes: Vec<&String> = m.live_holds(t).flat_map(|h| h.coupons.iter()).collect();
            prop_assert!(held_codes.len() <= 1, "a coupon held by two orders: {:?}", m.holds);
        }
    }
}

#[test]
fn rebate_pays_last_capped_by_the_rules_and_by_what_is_available_and_not_held() {
    let r = Rules::from_overrides(r#"{"returnWindowDays":0}"#).unwrap();
    let mut m = member(5_000);
    m.tier = TierCode::Gold;
    m.wallet.rebate = Fen(6_000);
    let asked = |points, rebate| Asked { coupons: &[], points, rebate: Fen(rebate) };
    // 200 CNY, gold 20% off → 160; points 3,000 → 30 CNY off → 130 left; rebate ≤ 50% = 65 CNY.
    let q = quote(&r, &m, Some("o1"), Fen(20_000), asked(3_000, 6_000), now()).unwrap();
    assert_eq!((q.rebate_used, q.payable, q.max_rebate), (Fen(6_000), Fen(7_000), Fen(6_000)));
    let over = quote(&r, &m, Some("o1"), Fen(20_000), asked(3_000, 6_600), now()).unwrap_err();
    assert_eq!(over, CheckoutError::RebateOverCap { max: Fen(6_500), asked: Fen(6_600) });
    assert_eq!(
        quote(&r, &m, None, Fen(20_000), asked(0, -1), now()).unwrap_err(),
        CheckoutError::InvalidRebate
    );
    hold(&mut m, &r, "o1", &q, now()).unwrap();
    // Another order finds the held rebate taken.
    let err = quote(&r, &m, Some("o2"), Fen(20_000), asked(0, 100), now()).unwrap_err();
    assert_eq!(err, CheckoutError::InsufficientRebate { available: Fen(0), asked: Fen(100) });
    let quoted = Quoted {
        order_id: "o1".into(),
        amount: Fen(20_000),
        currency: "CNY".into(),
        channel: Channel::Online,
        coupons: vec![],
        points: 3_000,
        rebate: Fen(6_000),
        quote: q,
    };
    let done = confirm(&mut m, &r, &quoted, &[], now(), now()).unwrap();
    // Paid 70 CNY: 2% gold rebate = 140 fen, available at once (window 0).
    assert_eq!(
        (done.order.paid, done.order.rebate_spent, done.order.rebate),
        (Fen(7_000), Fen(6_000), Fen(140))
    );
    assert_eq!(m.wallet.rebate, Fen(140));
    let spent = done.entries.iter().find(|e| e.kind == EntryKind::Rebate).unwrap();
    assert_eq!(spent.rebate, Fen(-6_000));
    assert_eq!(done.entries.iter().map(|e| e.rebate).sum::<Fen>(), Fen(140 - 6_000));
    // A full refund gives the spent rebate back and takes the order's own rebate.
    let mut order = done.order.clone();
    let req = RefundRequest { order_id: "o1".into(), refund_id: "r1".into(), amount: Fen(7_000) };
    let back = crate::points::apply_refund(&mut m, &r, &mut order, &req, now()).unwrap();
    assert_eq!((back.rebate_returned, back.rebate_reversed), (Fen(6_000), Fen(140)));
    assert_eq!(m.wallet.rebate, Fen(6_000));
}

#[test]
fn a_held_rebate_gone_by_confirm_is_refused_not_overdrawn() {
    let r = Rules::default();
    let mut m = member(0);
    m.wallet.rebate = Fen(1_000);
    let asked = Asked { coupons: &[], points: 0, rebate: Fen(1_000) };
    let q = quote(&r, &m, Some("o1"), Fen(20_000), asked, now()).unwrap();
    hold(&mut m, &r, "o1", &q, now()).unwrap();
    // A refund's reversal took the balance meanwhile.
    m.wallet.rebate = Fen(400);
    let quoted = Quoted {
        order_id: "o1".into(),
        amount: Fen(20_000),
        currency: "CNY".into(),
        channel: Channel::Online,
        coupons: vec![],
        points: 0,
        rebate: Fen(1_000),
        quote: q,
    };
    let err = confirm(&mut m, &r, &quoted, &[], now(), now()).unwrap_err();
    assert_eq!(err.code(), "insufficient_rebate");
}
