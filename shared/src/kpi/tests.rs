use super::*;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[test]
fn ranges_are_dates_in_order_and_at_most_a_year() {
    let today = d("2026-11-20");
    let r = |f, t| parse_range(f, t, today);
    assert_eq!(r(Some("2026-01-01"), Some("2026-12-31")), Ok((d("2026-01-01"), d("2026-12-31"))));
    assert_eq!(
        r(Some("2024-01-01"), Some("2024-12-31")).map(|_| ()),
        Ok(()),
        "a leap year is 366 days"
    );
    assert_eq!(r(Some("2026-01-01"), Some("2027-01-02")), Err(RangeError::TooLong));
    assert_eq!(r(Some("2026-02-01"), Some("2026-01-31")), Err(RangeError::Reversed));
    assert_eq!(r(None, None), Ok((d("2026-10-22"), today)), "the last 30 days");
    assert_eq!(r(None, Some("2026-01-31")), Ok((d("2026-01-02"), d("2026-01-31"))));
    assert_eq!(r(Some("2026-11-01"), None), Ok((d("2026-11-01"), today)));
    assert_eq!(r(Some("2026-2-1"), Some("2026-03-01")), Err(RangeError::NotADate("from")));
    assert_eq!(r(Some("2026-02-30"), Some("2026-03-01")), Err(RangeError::NotADate("from")));
    assert_eq!(r(Some("2026-02-01"), Some("tomorrow")), Err(RangeError::NotADate("to")));
}

#[test]
fn a_first_order_counts_in_each_cohort_window_it_falls_in() {
    assert_eq!(cohort_windows(0), [COHORT_BOUGHT_30, COHORT_BOUGHT_60, COHORT_BOUGHT_90]);
    assert_eq!(cohort_windows(31), [COHORT_BOUGHT_60, COHORT_BOUGHT_90]);
    assert_eq!(cohort_windows(90), [COHORT_BOUGHT_90]);
    assert!(cohort_windows(91).is_empty());
}

#[test]
fn a_member_converts_for_runs_issued_at_most_the_window_before() {
    let t = |day: &str| Touch { day: d(day), arm: None };
    let touched: BTreeMap<String, Touch> = [
        ("campaign:a:once".to_string(), t("2026-11-10")),
        ("campaign:b:once".to_string(), t("2026-11-03")),
        ("campaign:c:once".to_string(), t("2026-11-18")),
    ]
    .into();
    let facts = conversion_facts("m", d("2026-11-17"), &touched, 7);
    assert_eq!(
        facts.iter().map(|f| f.marker.as_str()).collect::<Vec<_>>(),
        ["conv#campaign:a:once#m"],
        "b is 14 days old, c not issued yet"
    );
    assert_eq!(facts[0].adds[0].target, Target::Grant("campaign:a:once".into(), d("2026-11-10")));
    let c: Counters =
        [(touch_of("campaign:a:once", None), i64::from(d("2026-11-10").num_days_from_ce()))].into();
    assert_eq!(touches(&c)["campaign:a:once"], t("2026-11-10"));
    assert!(arm_spend(d("2026-11-17"), 500, &touched, 7).is_empty(), "no arms, no arm spend");
}

#[test]
fn an_arm_converts_and_spends_in_its_own_counters_and_the_holdout_not_in_the_runs() {
    let day = d("2026-11-12");
    let touched: BTreeMap<String, Touch> = [
        ("campaign:x:once".to_string(), Touch { day, arm: Some("b".into()) }),
        ("campaign:y:once".to_string(), Touch { day, arm: Some("holdout".into()) }),
    ]
    .into();
    let c: Counters = [
        (touch_of("campaign:x:once", Some("b")), i64::from(day.num_days_from_ce())),
        (touch_of("campaign:y:once", Some("holdout")), i64::from(day.num_days_from_ce())),
    ]
    .into();
    assert_eq!(touches(&c), touched, "the arm survives the touch item");
    let facts = conversion_facts("m", d("2026-11-19"), &touched, 7);
    let adds: Vec<(&str, &str)> = facts
        .iter()
        .flat_map(|f| &f.adds)
        .map(|a| match &a.target {
            Target::Grant(g, _) => (g.as_str(), a.counter.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        adds,
        [
            ("campaign:x:once", GRANT_CONVERTED),
            ("campaign:x:once", "converted@b"),
            ("campaign:y:once", "converted@holdout"),
        ]
    );
    let spend = arm_spend(d("2026-11-19"), 12_800, &touched, 7);
    assert_eq!(
        spend.iter().map(|a| (a.counter.as_str(), a.n)).collect::<Vec<_>>(),
        [("gmv@b", 12_800), ("gmv@holdout", 12_800)]
    );
    assert!(arm_spend(d("2026-11-20"), 12_800, &touched, 7).is_empty(), "8 days later");
    assert_eq!(
        parse_touch("t@campaign:x:once@b"),
        Some(("campaign:x:once".into(), Some("b".into())))
    );
}

#[test]
fn grant_families_bound_the_day_counters() {
    assert_eq!(grant_family("reward:cl-1"), "reward");
    assert_eq!(grant_family("birthday-2026"), "birthday");
    assert_eq!(grant_family("campaign:c-1:2026-11"), "campaign:c-1:2026-11");
    assert!(has_results("campaign:c-1:once") && has_results("winback:2026-07-01"));
    assert!(!has_results("welcome"));
}

#[test]
fn end_of_day_figures_are_the_totals_less_later_changes() {
    let mut days = BTreeMap::new();
    let c = |pairs: &[(&str, i64)]| -> Counters {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    days.insert(
        d("2026-11-01"),
        c(&[
            (LIABILITY, 100),
            ("tier@regular", 2),
            (PURCHASES, 2),
            (GMV, 301),
            (BUYERS, 1),
            (MONTH_BUYERS, 1),
            (MONTH_REPEAT_BUYERS, 1),
            (JOINED, 2),
        ]),
    );
    days.insert(
        d("2026-11-03"),
        c(&[
            (LIABILITY, -40),
            ("tier@regular", -1),
            ("tier@silver", 1),
            ("move@regular@silver", 1),
        ]),
    );
    days.insert(d("2026-12-01"), c(&[(LIABILITY, 7)]));
    let total = c(&[(LIABILITY, 67), ("tier@regular", 1), ("tier@silver", 1)]);
    let r =
        report(d("2026-11-01"), d("2026-11-03"), &crate::Rules::default(), &days, &total, vec![]);
    assert_eq!(r.days.len(), 3);
    assert_eq!(r.days.iter().map(|x| x.liability.points).collect::<Vec<_>>(), [100, 100, 60]);
    assert_eq!(r.days[2].liability.value, Fen(60));
    assert_eq!(r.days[0].tiers[&TierCode::Regular], 2);
    assert_eq!((r.days[2].tiers[&TierCode::Regular], r.days[2].tiers[&TierCode::Silver]), (1, 1));
    assert_eq!(r.totals.flows.average_order_value, Some(Fen(150)));
    assert_eq!(
        r.totals.flows.tier_moves,
        [TierMove { from: TierCode::Regular, to: TierCode::Silver, members: 1 }]
    );
    assert_eq!(
        (r.months[0].active_members, r.months[0].repurchase_rate, r.months[0].whole),
        (1, Some(1.0), false)
    );
    assert_eq!(r.cohorts[0].joined, 2);
}
