use super::experiment::*;
use super::uplift::*;
use super::*;
use crate::coupon::Offer;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn coupon(value: i64) -> CouponTemplate {
    CouponTemplate {
        title: format!("{} off", value / 100),
        offer: Offer::AmountOff { value: Fen(value), min_spend: Fen(9900) },
        valid_days: Some(7),
        valid_from: None,
        valid_until: None,
        tiers: vec![],
        per_member_limit: 1,
        stackable: false,
    }
}

fn variant(name: &str, weight: u32) -> Variant {
    Variant { name: name.into(), weight, coupon: Some(coupon(1000)), multiplier: None }
}

fn request() -> CampaignRequest {
    CampaignRequest {
        name: "A/B".into(),
        segment: Segment {
            tiers: vec![TierCode::Regular],
            dormant_days: None,
            birthday_month: None,
            min_rolling_spend: None,
            churn_risk: vec![],
        },
        coupon: coupon(1500),
        multiplier: None,
        schedule: Schedule::MonthlyMemberDay,
        budget: None,
        variants: vec![variant("a", 1), variant("b", 1)],
        holdout: Share(1000),
    }
}

/// SplitMix64: a seeded generator for synthetic populations (the same numbers on every run).
struct Seeded(u64);
impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[test]
fn each_bad_experiment_is_refused_naming_its_field() {
    let now = t("2026-11-27T00:00:00Z");
    type Change = Box<dyn Fn(&mut CampaignRequest)>;
    let cases: Vec<(&str, Change)> = vec![
        ("holdout", Box::new(|r| r.holdout = Share(5001))),
        ("holdout", Box::new(|r| r.holdout = Share(-1))),
        ("variants[1].weight", Box::new(|r| r.variants[1].weight = 0)),
        ("variants[0].weight", Box::new(|r| r.variants[0].weight = MAX_WEIGHT + 1)),
        ("variants[1].name", Box::new(|r| r.variants[1].name = "a".into())),
        ("variants[0].name", Box::new(|r| r.variants[0].name = "".into())),
        ("variants[0].name", Box::new(|r| r.variants[0].name = "Big A".into())),
        ("variants[1].name", Box::new(|r| r.variants[1].name = HOLDOUT_ARM.into())),
        (
            "variants[1].coupon",
            Box::new(|r| r.variants[1].coupon.as_mut().unwrap().valid_days = None),
        ),
        (
            "variants",
            Box::new(|r| r.variants = (0..11).map(|i| variant(&format!("v{i}"), 1)).collect()),
        ),
        (
            "variants",
            Box::new(|r| {
                r.variants.truncate(1);
                r.holdout = Share::ZERO
            }),
        ),
        ("variants[0].multiplier", Box::new(|r| r.variants[0].multiplier = Some(Multiplier(2000)))),
        (
            "variants[1].multiplier",
            Box::new(|r| {
                r.multiplier = Some(MultiplierSpec {
                    multiplier: Multiplier(2000),
                    window: WindowSpec::RunDay,
                });
                r.variants[1].multiplier = Some(Multiplier(500));
            }),
        ),
        (
            "variants[0].multiplier",
            Box::new(|r| {
                r.multiplier = Some(MultiplierSpec {
                    multiplier: Multiplier(2000),
                    window: WindowSpec::RunDay,
                });
                r.variants[0].multiplier = Some(Multiplier(99_000));
            }),
        ),
    ];
    for (field, change) in cases {
        let mut r = request();
        change(&mut r);
        let e = r.validate("c1".into(), now).unwrap_err();
        assert_eq!(e.code(), "invalid_experiment");
        assert!(e.to_string().starts_with(&format!("{field}: ")), "{field}: {e}");
    }
    let ok = request().validate("c1".into(), now).unwrap();
    assert_eq!(ok.experiment().unwrap().arms.len(), 2);
    let mut ten = request();
    ten.variants = (0..MAX_VARIANTS).map(|i| variant(&format!("v{i}"), 1)).collect();
    ten.holdout = MAX_HOLDOUT;
    assert!(ten.validate("c1".into(), now).is_ok(), "ten variants and half held out");
}

#[test]
fn a_campaign_without_variants_or_holdout_is_stored_and_run_as_before() {
    let mut r = request();
    r.variants.clear();
    r.holdout = Share::ZERO;
    let c = r.clone().validate("c1".into(), t("2026-11-27T00:00:00Z")).unwrap();
    assert_eq!(c.experiment(), None);
    let json = serde_json::to_value(&c).unwrap();
    assert!(json.get("variants").is_none() && json.get("holdout").is_none(), "{json}");
    // A definition stored before experiments existed reads back without one.
    let old: Campaign = serde_json::from_value(json).unwrap();
    assert_eq!(old.experiment(), None);
    // A holdout alone: one implicit arm with the campaign's coupon against the holdout.
    r.holdout = Share(2000);
    let e = r.validate("c2".into(), t("2026-11-27T00:00:00Z")).unwrap().experiment().unwrap();
    assert_eq!((e.arms.len(), e.arms[0].name.as_str(), &e.arms[0].coupon), (1, DEFAULT_ARM, &None));
}

#[test]
fn a_share_is_written_as_a_number_and_held_in_basis_points() {
    let s: Share = serde_json::from_str("0.1").unwrap();
    assert_eq!(s, Share(1000));
    assert_eq!(serde_json::to_string(&Share(250)).unwrap(), "0.025");
    assert_eq!(
        serde_json::from_str::<Share>("-0.2").unwrap(),
        Share(-2000),
        "refused by validation"
    );
    assert!(serde_json::from_str::<Share>("\"a\"").is_err());
}

#[test]
fn the_hash_is_fixed_across_builds_and_instances() {
    // Known answers: a change here would move every member of every running experiment.
    assert_eq!(bucket("c-1", "m-1"), bucket("c-1", "m-1"));
    assert_ne!(bucket("c-1", "m-1"), bucket("c-2", "m-1"));
    assert_ne!(bucket("c-1m", "-1"), bucket("c-1", "m-1"), "the separator keeps ids apart");
    let fixed = [bucket("c-0123456789abcdef", "member-1"), bucket("", "")];
    assert_eq!(fixed, [KNOWN_MEMBER_1, KNOWN_EMPTY], "{fixed:#x?}");
}

// Computed independently (a few lines of Python over the same definition).
const KNOWN_MEMBER_1: u64 = 0x06c5_dc7e_4272_e8c5;
const KNOWN_EMPTY: u64 = 0x25fc_6dd3_6ce0_4b20;

fn experiment(weights: &[u32], holdout: i32) -> Experiment {
    let variants: Vec<Variant> =
        weights.iter().enumerate().map(|(i, w)| variant(&format!("v{i}"), *w)).collect();
    Experiment::of("c-0123456789abcdef", &variants, Share(holdout)).unwrap()
}

/// Each arm's count against its expected share: within 5 standard deviations of the binomial
/// (a false alarm about once in 1.7 million arms).
fn assert_shares(e: &Experiment, n: usize, salt: u64) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..n {
        *counts.entry(e.assign(&format!("m-{salt}-{i}")).name().to_string()).or_default() += 1;
    }
    let holdout = e.holdout.as_f64();
    let total: f64 = e.arms.iter().map(|a| f64::from(a.weight)).sum();
    let expected = std::iter::once((HOLDOUT_ARM.to_string(), holdout)).chain(
        e.arms.iter().map(|a| (a.name.clone(), (1.0 - holdout) * f64::from(a.weight) / total)),
    );
    for (arm, p) in expected {
        let got = *counts.get(&arm).unwrap_or(&0) as f64;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!((got - n as f64 * p).abs() <= 5.0 * sd + 1e-9, "{arm}: {got} of {n}, p {p}");
    }
}

#[test]
fn shares_converge_to_the_holdout_and_the_weights() {
    assert_shares(&experiment(&[1, 2, 3], 1000), 100_000, 0);
    assert_shares(&experiment(&[1000, 1], 5000), 100_000, 1);
    assert_shares(&experiment(&[7], 0), 1_000, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_same_member_lands_in_the_same_arm_every_time(
        member in "[a-zA-Z0-9_-]{1,64}",
        campaign in "c-[0-9a-f]{16}",
        weights in proptest::collection::vec(1u32..=1000, 1..=10),
        holdout in 0i32..=5000,
    ) {
        let variants: Vec<Variant> =
            weights.iter().enumerate().map(|(i, w)| variant(&format!("v{i}"), *w)).collect();
        let e = Experiment::of(&campaign, &variants, Share(holdout)).unwrap();
        // Another instance: the experiment as the queue message carries it, read back.
        let other: Experiment = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        let arm = e.assign(&member).name().to_string();
        prop_assert_eq!(&arm, e.assign(&member).name());
        prop_assert_eq!(&arm, other.assign(&member).name());
        // A re-run of a later month rebuilds it from the definition: the same arm again.
        let rerun = Experiment::of(&campaign, &variants, Share(holdout)).unwrap();
        prop_assert_eq!(&arm, rerun.assign(&member).name());
    }

    #[test]
    fn any_weights_and_holdout_converge(
        weights in proptest::collection::vec(1u32..=1000, 1..=4),
        holdout in 0i32..=5000,
        salt in any::<u64>(),
    ) {
        assert_shares(&experiment(&weights, holdout), 20_000, salt);
    }
}

#[test]
fn the_uplift_of_a_known_table_matches_the_textbook() {
    // 120 of 1,000 against 80 of 1,000: a 4-point difference, SE 0.013387 (unpooled),
    // z 2.9814 (pooled SE 0.013416), p 0.0029.
    let u = conversion_uplift((120, 1000), (80, 1000)).unwrap();
    assert_eq!((u.difference, u.ci_low, u.ci_high), (0.04, 0.0138, 0.0662));
    assert_eq!((u.z, u.p_value, u.verdict), (2.9814, 0.0029, Verdict::Significant));
    let none = conversion_uplift((90, 1000), (80, 1000)).unwrap();
    assert!(none.ci_low < 0.0 && none.ci_high > 0.0);
    assert_eq!(none.verdict, Verdict::NotSignificant);
    assert_eq!(conversion_uplift((5, 40), (3, 40)).unwrap().verdict, Verdict::TooFewMembers);
    assert_eq!(conversion_uplift((1, 10), (0, 0)), None);
    assert!((normal_cdf(1.959_963_984_540_054) - 0.975).abs() < 1e-6);
    assert!((normal_cdf(-1.0) - 0.158_655_25).abs() < 1e-6);
}

/// A synthetic experiment: `n` members split by the real assignment, each converting with
/// its arm's true rate, drawn from a seeded generator.
fn simulate(rates: &[(&str, f64)], holdout_rate: f64, seed: u64) -> Vec<ArmResult> {
    let weights = vec![1; rates.len()];
    let variants: Vec<Variant> =
        rates.iter().zip(&weights).map(|((name, _), w)| variant(name, *w)).collect();
    let e = Experiment::of("c-synthetic", &variants, Share(2000)).unwrap();
    let mut rng = Seeded(seed);
    let mut figures: BTreeMap<String, ArmFigures> = BTreeMap::new();
    for i in 0..20_000 {
        let arm = e.assign(&format!("m-{i}")).name().to_string();
        let rate = rates.iter().find(|(n, _)| *n == arm).map_or(holdout_rate, |(_, r)| *r);
        let f = figures.entry(arm.clone()).or_insert(ArmFigures {
            arm,
            members: 0,
            converted: 0,
            gmv: 0,
        });
        f.members += 1;
        if rng.chance(rate) {
            f.converted += 1;
            f.gmv += 10_000;
        }
    }
    arm_results(figures.into_values().collect())
}

#[test]
fn a_variant_that_truly_converts_better_is_found_significant() {
    let arms = simulate(&[("better", 0.12), ("same", 0.08)], 0.08, 7);
    let names: Vec<&str> = arms.iter().map(|a| a.arm.as_str()).collect();
    assert_eq!(names, ["better", "same", HOLDOUT_ARM], "variants first, the holdout last");
    let better = arms[0].uplift.as_ref().unwrap();
    assert_eq!(better.verdict, Verdict::Significant, "{better:?}");
    assert!(better.ci_low > 0.0 && (better.ci_low..=better.ci_high).contains(&0.04), "{better:?}");
    assert_eq!(arms[1].uplift.as_ref().unwrap().verdict, Verdict::NotSignificant);
    assert!(arms[2].holdout && arms[2].uplift.is_none());
    assert_eq!(arms[0].gmv_per_member, Some(Fen(arms[0].gmv.0 / arms[0].members)));
}

fn verdicts(arms: &[ArmResult]) -> Vec<Verdict> {
    arms.iter().filter_map(|a| a.uplift.as_ref().map(|u| u.verdict)).collect()
}

#[test]
fn without_a_true_difference_no_uplift_is_significant() {
    let arms = simulate(&[("a", 0.1), ("b", 0.1)], 0.1, 1000);
    assert_eq!(verdicts(&arms), [Verdict::NotSignificant; 2], "{arms:?}");
    // And the interval is calibrated: over 50 seeded populations (100 comparisons) about 5
    // in 100 exclude 0 by chance; more than 12 would mean the interval is too narrow.
    let false_alarms = (0..50)
        .flat_map(|seed| verdicts(&simulate(&[("a", 0.1), ("b", 0.1)], 0.1, 2000 + seed)))
        .filter(|v| *v == Verdict::Significant)
        .count();
    assert!(false_alarms <= 12, "{false_alarms} of 100");
}

#[test]
fn a_purchase_gets_its_arms_multiplier_and_the_holdout_none() {
    use crate::points::purchase_campaign_multiplier;
    let now = t("2026-11-01T00:00:00Z");
    let mut r = request();
    r.multiplier = Some(MultiplierSpec {
        multiplier: Multiplier(2000),
        window: WindowSpec::Fixed {
            from: t("2026-11-10T00:00:00Z"),
            until: t("2026-11-11T00:00:00Z"),
        },
    });
    r.variants[0].multiplier = Some(Multiplier(3000)); // "a": 3×; "b": the campaign's 2×
    r.holdout = Share(2000);
    let c = r.validate("c1".into(), now).unwrap();
    let rules = crate::rules::Rules::default();
    let w = c.multiplier_window(rules.time_zone, now).unwrap();
    let e = c.experiment().unwrap();
    // The window carries the split, not the coupons (the purchase reads it on every order).
    assert!(w.experiment.as_ref().unwrap().arms.iter().all(|a| a.coupon.is_none()));
    let inside = t("2026-11-10T12:00:00Z");
    let mut seen = BTreeMap::new();
    for i in 0..2_000 {
        let member = format!("m-{i}");
        let got = purchase_campaign_multiplier(
            &rules,
            std::slice::from_ref(&w),
            &member,
            TierCode::Regular,
            inside,
        );
        // The arm the coupon worker records for this member decides the multiplier.
        let want = match e.assign(&member).name() {
            HOLDOUT_ARM => Multiplier::ONE,
            "a" => Multiplier(3000),
            "b" => Multiplier(2000),
            other => panic!("unexpected arm {other}"),
        };
        assert_eq!(got, want, "{member}");
        *seen.entry(want).or_insert(0) += 1;
        let after = t("2026-11-11T00:00:00Z");
        assert_eq!(
            purchase_campaign_multiplier(
                &rules,
                std::slice::from_ref(&w),
                &member,
                TierCode::Regular,
                after
            ),
            Multiplier::ONE
        );
    }
    assert_eq!(seen.len(), 3, "all three arms occur among 2,000 members: {seen:?}");
    // A stored window read back (another instance) gives the same multipliers.
    let back: crate::campaign::MultiplierWindow =
        serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
    assert_eq!(back, w);
}
