use super::*;
use crate::coupon::CouponTemplate;
use crate::coupon::Offer;
use crate::ledger::EntryKind;
use crate::member::Member;
use crate::member::{MemberId, NewMember};
use crate::money::Fen;
use crate::money::Points;
use crate::rules::Rules;
use crate::tier_code::TierCode;
use chrono::{DateTime, Duration, NaiveDate, Utc};

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
            RewardRequest { image_url: Some("http://cdn.example.com/a.jpg".into()), ..gift(500) },
            "invalid_image_url",
        ),
        (RewardRequest { image_url: Some("https://a b".into()), ..gift(500) }, "invalid_image_url"),
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
            RewardRequest { per_member_limit: None, limit_period: LimitPeriod::Month, ..gift(500) },
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
        v2.patched(RewardPatch { version: Some(1), ..Default::default() }, &r, 0, now).unwrap_err(),
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
    m.wallet.add_pending("o-1", 10_000, 0, NaiveDate::from_ymd_opt(2026, 12, 4).unwrap());
    m.holds.push(crate::member::Hold {
        order_id: "o-2".into(),
        points: 200,
        rebate: 0,
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
        (done.entry.kind, done.entry.points, done.entry.balance_after, m.wallet.pending_total()),
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
    let entries = cancel(&mut m, &mut c, Some("out of stock at the warehouse".into()), &rules, now);
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
    let reward =
        RewardRequest { per_member_limit: Some(2), limit_period: LimitPeriod::Month, ..gift(500) }
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
