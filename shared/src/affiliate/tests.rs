use super::*;
use crate::money::Fen;
use crate::points::Channel;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn partner(rules: &Rules) -> Partner {
    PartnerRequest {
        name: " Panda Deals ".into(),
        rate_basis_points: 800,
        channel_rates: Some(ChannelRates { online: Some(1000), store: None }),
        member_id: Some("m-influencer".into()),
    }
    .validate("p-1".into(), "ABCD2345".into(), rules, at("2026-11-01T00:00:00Z"))
    .unwrap()
}

fn referral(p: &Partner) -> Referral {
    Referral { code: p.codes[0].clone(), terms: Some(p.terms()) }
}

#[test]
fn a_partner_is_validated_against_the_rules_cap() {
    let rules = Rules::default();
    let p = partner(&rules);
    assert_eq!(p.name, "Panda Deals");
    assert_eq!(p.status, PartnerStatus::Active);
    assert_eq!((p.version, p.codes.len()), (1, 1));
    let over = PartnerRequest {
        name: "x".into(),
        rate_basis_points: 1501,
        channel_rates: None,
        member_id: None,
    };
    let e = over.validate("p".into(), "C".into(), &rules, at("2026-11-01T00:00:00Z")).unwrap_err();
    assert_eq!(e, PartnerError::RateAboveCap(1501, 1500));
    assert_eq!(e.code(), "rate_above_cap");
    let channel_over = PartnerPatch {
        channel_rates: Some(ChannelRates { online: None, store: Some(2000) }),
        ..Default::default()
    };
    assert_eq!(
        p.patched(channel_over, &rules, at("2026-11-02T00:00:00Z")).unwrap_err().code(),
        "rate_above_cap"
    );
    let lifted = Rules::from_overrides(r#"{"affiliates":{"maxRateBasisPoints":2500}}"#).unwrap();
    assert_eq!(
        p.patched(
            PartnerPatch { rate_basis_points: Some(2000), ..Default::default() },
            &lifted,
            at("2026-11-02T00:00:00Z")
        )
        .unwrap()
        .rate_basis_points,
        2000
    );
    assert!(Rules::from_overrides(r#"{"affiliates":{"maxRateBasisPoints":10001}}"#).is_err());
    assert!(Rules::from_overrides(r#"{"affiliates":{"codeLength":4}}"#).is_err());
    let bad_member = PartnerRequest {
        name: "x".into(),
        rate_basis_points: 10,
        channel_rates: None,
        member_id: Some("no spaces".into()),
    };
    assert_eq!(
        bad_member.validate("p".into(), "C".into(), &rules, at("2026-11-01T00:00:00Z")),
        Err(PartnerError::InvalidMemberId)
    );
}

#[test]
fn a_patch_makes_the_next_version_and_an_empty_one_is_refused() {
    let rules = Rules::default();
    let p = partner(&rules);
    let now = at("2026-11-03T00:00:00Z");
    let off = p
        .patched(
            PartnerPatch { status: Some(PartnerStatus::Inactive), ..Default::default() },
            &rules,
            now,
        )
        .unwrap();
    assert_eq!((off.status, off.version, off.rate_basis_points), (PartnerStatus::Inactive, 2, 800));
    assert_eq!(off.terms().partner_version, 2);
    assert_eq!(p.patched(PartnerPatch::default(), &rules, now), Err(PartnerError::EmptyPatch));
    let mut full = p.clone();
    full.codes = (0..20).map(|i| format!("CODE{i:04}")).collect();
    assert_eq!(full.with_code("X".into(), &rules, now), Err(PartnerError::TooManyCodes(20)));
    assert_eq!(p.with_code("NEWCODE2".into(), &rules, now).unwrap().codes.len(), 2);
}

#[test]
fn codes_are_crockford_base32_of_the_rules_length() {
    let rules = Rules::default();
    let codes: Vec<String> = (0..200).map(|_| new_code(&rules)).collect();
    assert!(codes.iter().all(|c| c.len() == 8 && looks_like_code(c)), "{codes:?}");
    let distinct: std::collections::BTreeSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), codes.len());
    for bad in ["", "abcd2345", "ABCD-234", "ABCDE", "ABCDEFGHJKMNPQRST", "ILOU1234"] {
        assert!(!looks_like_code(bad), "{bad}");
    }
    assert_eq!(new_partner_id(Some("k-1")), new_partner_id(Some("k-1")));
    assert_eq!(code_for_key(&rules, "k-1"), code_for_key(&rules, "k-1"));
    assert!(looks_like_code(&code_for_key(&rules, "k-1")));
    assert_ne!(code_for_key(&rules, "k-1"), code_for_key(&rules, "k-2"));
    assert_ne!(new_partner_id(None), new_partner_id(None));
}

#[test]
fn months_are_program_calendar_months() {
    assert_eq!(month_of(day("2026-02-28")), "2026-02");
    assert_eq!(parse_month("2026-02"), Some((day("2026-02-01"), day("2026-02-28"))));
    assert_eq!(parse_month("2028-02").unwrap().1, day("2028-02-29"));
    assert_eq!(parse_month("2026-12").unwrap().1, day("2026-12-31"));
    for bad in ["2026-13", "2026-1", "26-01", "2026/01", "2026-00", "x"] {
        assert_eq!(parse_month(bad), None, "{bad}");
    }
}

#[test]
fn commission_is_the_channel_rate_of_the_paid_amount_rounded_down() {
    let rules = Rules::default();
    let p = partner(&rules);
    let r = referral(&p);
    let store = decide(&r, "m-1", Channel::Store, Fen(12_345)).unwrap();
    assert_eq!((store.rate_basis_points, store.commission), (800, Fen(987)));
    let online = decide(&r, "m-1", Channel::Online, Fen(12_345)).unwrap();
    assert_eq!((online.rate_basis_points, online.commission), (1000, Fen(1234)));
    assert_eq!(commission(Fen(1), 1500), Fen(0));
    assert_eq!(commission(Fen(1_000_000_000_000), 1500), Fen(150_000_000_000));
}

#[test]
fn no_commission_for_unknown_codes_inactive_partners_and_the_partner_s_own_member() {
    let rules = Rules::default();
    let p = partner(&rules);
    let unknown = Referral { code: "ZZZZZZZZ".into(), terms: None };
    assert_eq!(decide(&unknown, "m-1", Channel::Store, Fen(100)), Err(NoCommission::UnknownCode));
    assert_eq!(
        decide(&referral(&p), "m-influencer", Channel::Online, Fen(100_000)),
        Err(NoCommission::SelfReferral)
    );
    let mut off = p.clone();
    off.status = PartnerStatus::Inactive;
    let decided = decide(&referral(&off), "m-1", Channel::Store, Fen(100));
    assert_eq!(decided, Err(NoCommission::PartnerInactive));
    let view = AffiliateView::of(&referral(&off), &decided, day("2026-11-10"));
    assert_eq!((view.commission, view.reason), (Fen::ZERO, Some("partner_inactive")));
    assert_eq!(view.partner_id.as_deref(), Some("p-1"));
}

#[test]
fn partial_reversals_add_up_to_the_whole_commission() {
    let (commission, paid) = (Fen(997), Fen(9_973));
    let mut refunded = Fen::ZERO;
    let mut reversed = Fen::ZERO;
    for part in [Fen(1), Fen(3_000), Fen(333), Fen(6_639)] {
        refunded += part;
        let total = reversed_total(commission, paid, refunded);
        assert!(total >= reversed, "a reversal never gives back");
        reversed = total;
    }
    assert_eq!(refunded, paid);
    assert_eq!(reversed, commission);
    assert_eq!(reversed_total(Fen(10), Fen(0), Fen(0)), Fen::ZERO);
}

fn line(paid: i64, refunded: i64, rate: u32, release: &str) -> OrderLine {
    let c = commission(Fen(paid), rate);
    OrderLine {
        paid: Fen(paid),
        refunded: Fen(refunded),
        commission: c,
        reversed: reversed_total(c, Fen(paid), Fen(refunded)),
        release_on: day(release),
    }
}

#[test]
fn a_statement_splits_pending_from_payable_and_nets_reversals_and_adjustments() {
    let lines = [
        line(10_000, 0, 1000, "2026-11-08"),
        line(20_000, 5_000, 1000, "2026-11-08"),
        line(30_000, 30_000, 1000, "2026-11-08"),
        line(40_000, 0, 500, "2026-12-05"),
    ];
    let f = figures(&lines, &[Fen(150)], day("2026-11-30"));
    assert_eq!(f.orders, 4);
    assert_eq!(f.paid_amount, Fen(100_000));
    assert_eq!(f.refunded, Fen(35_000));
    assert_eq!(f.commission_accrued, Fen(1000 + 2000 + 3000 + 2000));
    assert_eq!(f.commission_reversed, Fen(500 + 3000));
    assert_eq!(f.adjustments, Fen(150));
    assert_eq!(f.pending, Fen(2000));
    assert_eq!(f.payable, Fen(1000 + 1500 - 150));
    assert_eq!(
        f.commission_accrued - f.commission_reversed - f.adjustments,
        f.pending + f.payable + f.paid
    );
    let paid = figures(&lines, &[Fen(150)], day("2026-12-06")).paid_out();
    assert_eq!((paid.pending, paid.payable, paid.paid), (Fen::ZERO, Fen::ZERO, Fen(4350)));
}

#[test]
fn a_month_is_paid_only_once_it_is_over_and_every_order_is_released() {
    let lines = [line(10_000, 0, 1000, "2026-12-05"), line(10_000, 0, 1000, "2026-12-07")];
    let last = day("2026-11-30");
    let e = can_close("2026-11", last, &lines, day("2026-11-30")).unwrap_err();
    assert_eq!(e.code(), "month_not_over");
    assert_eq!(
        can_close("2026-11", last, &lines, day("2026-12-06")),
        Err(CloseError::Pending(1, day("2026-12-07")))
    );
    assert_eq!(can_close("2026-11", last, &lines, day("2026-12-07")), Ok(()));
    assert_eq!(can_close("2026-11", last, &[], day("2026-12-01")), Ok(()));
}
