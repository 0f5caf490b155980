use super::*;
use crate::coupon::Offer;
use crate::points::{member_day_multiplier, purchase_campaign_multiplier};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn template() -> CouponTemplate {
    CouponTemplate {
        title: "15 off".into(),
        offer: Offer::AmountOff { value: Fen(1500), min_spend: Fen(9900) },
        valid_days: Some(1),
        valid_from: None,
        valid_until: None,
        tiers: vec![],
        per_member_limit: 1,
        stackable: false,
    }
}

fn request() -> CampaignRequest {
    CampaignRequest {
        name: "Gold day".into(),
        segment: Segment {
            tiers: vec![TierCode::Gold, TierCode::Silver],
            dormant_days: None,
            birthday_month: None,
            min_rolling_spend: None,
            churn_risk: vec![],
        },
        coupon: template(),
        multiplier: Some(MultiplierSpec {
            multiplier: Multiplier(3000),
            window: WindowSpec::RunDay,
        }),
        schedule: Schedule::MonthlyMemberDay,
        budget: Some(1000),
        variants: vec![],
        holdout: Share::ZERO,
    }
}

#[test]
fn validation_refuses_each_bad_definition_with_its_code() {
    let now = t("2026-11-27T00:00:00Z");
    type Change = Box<dyn Fn(&mut CampaignRequest)>;
    let cases: Vec<(&str, Change)> = vec![
        ("invalid_name", Box::new(|r| r.name = "  ".into())),
        ("empty_segment", Box::new(|r| r.segment.tiers.clear())),
        ("invalid_segment", Box::new(|r| r.segment.birthday_month = Some(13))),
        ("invalid_segment", Box::new(|r| r.segment.dormant_days = Some(0))),
        ("invalid_segment", Box::new(|r| r.segment.min_rolling_spend = Some(Fen(-1)))),
        (
            "invalid_segment",
            Box::new(|r| r.segment.churn_risk = vec![Band::High, Band::Low, Band::High]),
        ),
        ("invalid_coupon", Box::new(|r| r.coupon.valid_days = None)),
        (
            "invalid_multiplier",
            Box::new(|r| r.multiplier.as_mut().unwrap().multiplier = Multiplier(999)),
        ),
        (
            "invalid_multiplier",
            Box::new(|r| r.multiplier.as_mut().unwrap().multiplier = Multiplier(10_001)),
        ),
        (
            "invalid_window",
            Box::new(|r| {
                r.multiplier.as_mut().unwrap().window = WindowSpec::Fixed {
                    from: t("2026-12-02T00:00:00Z"),
                    until: t("2026-12-01T00:00:00Z"),
                }
            }),
        ),
        (
            "invalid_window",
            Box::new(|r| {
                r.multiplier.as_mut().unwrap().window = WindowSpec::Fixed {
                    from: t("2026-12-01T00:00:00Z"),
                    until: t("2026-12-01T00:00:00Z"),
                }
            }),
        ),
        (
            "schedule_in_past",
            Box::new(|r| r.schedule = Schedule::Once { at: t("2026-11-26T00:00:00Z") }),
        ),
        ("invalid_budget", Box::new(|r| r.budget = Some(0))),
    ];
    for (code, change) in cases {
        let mut r = request();
        change(&mut r);
        assert_eq!(r.validate("c1".into(), now).map_err(|e| e.code()).unwrap_err(), code);
    }
    let ok = request().validate("c1".into(), now).unwrap();
    assert_eq!(
        ok.segment.tiers,
        vec![TierCode::Silver, TierCode::Gold],
        "tiers are normalized to rank order"
    );
}

#[test]
fn monthly_grant_is_the_program_month_so_reruns_reuse_it() {
    let rules = Rules::default();
    let c = request().validate("c1".into(), t("2026-01-01T00:00:00Z")).unwrap();
    // 16:00 UTC on the 17th is 00:00 on the 18th in Shanghai; 31 Oct 16:30 UTC is 1 Nov there.
    assert_eq!(c.plan(&rules, t("2026-11-17T16:00:00Z")).grant, "campaign:c1:2026-11");
    assert_eq!(c.plan(&rules, t("2026-11-29T10:00:00Z")).grant, "campaign:c1:2026-11");
    assert_eq!(c.plan(&rules, t("2026-10-31T16:30:00Z")).grant, "campaign:c1:2026-11");
    assert_eq!(c.plan(&rules, t("2026-10-31T15:59:59Z")).grant, "campaign:c1:2026-10");
    let mut once = request();
    once.schedule = Schedule::Once { at: t("2026-12-01T00:00:00Z") };
    assert_eq!(
        once.validate("c2".into(), t("2026-11-01T00:00:00Z"))
            .unwrap()
            .plan(&rules, t("2026-12-01T00:00:00Z"))
            .grant,
        "campaign:c2:once"
    );
}

#[test]
fn winback_grant_is_one_per_cooldown_period_and_runs_are_daily() {
    let rules = Rules::default();
    let c = Campaign::win_back(&rules, t("2026-01-01T00:00:00Z"));
    let a = c.plan(&rules, t("2026-06-01T02:00:00Z"));
    let b = c.plan(&rules, t("2026-06-02T02:00:00Z"));
    assert_ne!(a.label, b.label);
    assert_eq!(a.grant, b.grant);
    let start = cooldown_period_start("2026-06-01".parse().unwrap(), 180);
    assert_eq!((start - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() % 180, 0);
    assert!(
        start <= "2026-06-01".parse().unwrap()
            && "2026-06-01".parse::<NaiveDate>().unwrap() < start + Duration::days(180)
    );
    assert_ne!(
        c.plan(&rules, (start + Duration::days(180)).and_hms_opt(4, 0, 0).unwrap().and_utc()).grant,
        a.grant
    );
}

#[test]
fn segment_filter_uses_only_the_projection() {
    let now = t("2026-11-18T00:00:00Z");
    let m = |tier, last: Option<&str>, spend: Option<i64>, bm: Option<u32>| SegmentMember {
        member_id: "m".into(),
        tier,
        last_purchase_at: last.map(t),
        rolling_spend: spend.map(Fen),
        birth_month: bm,
    };
    let s = Segment {
        tiers: vec![TierCode::Gold],
        dormant_days: Some(90),
        birthday_month: Some(11),
        min_rolling_spend: Some(Fen(100_000)),
        churn_risk: vec![],
    };
    assert!(
        s.matches(&m(TierCode::Gold, Some("2026-08-01T00:00:00Z"), Some(100_000), Some(11)), now)
    );
    assert!(
        s.matches(&m(TierCode::Gold, None, Some(200_000), Some(11)), now),
        "never purchased counts as dormant"
    );
    assert!(!s.matches(&m(TierCode::Silver, None, Some(200_000), Some(11)), now), "tier");
    assert!(
        !s.matches(&m(TierCode::Gold, Some("2026-10-01T00:00:00Z"), Some(200_000), Some(11)), now),
        "recent purchase"
    );
    assert!(!s.matches(&m(TierCode::Gold, None, Some(99_999), Some(11)), now), "spend");
    assert!(!s.matches(&m(TierCode::Gold, None, None, Some(11)), now), "no spend projected");
    assert!(!s.matches(&m(TierCode::Gold, None, Some(200_000), None), now), "no birthday");
    let all = Segment {
        tiers: TierCode::ALL.to_vec(),
        dormant_days: None,
        birthday_month: None,
        min_rolling_spend: None,
        churn_risk: vec![],
    };
    assert!(all.matches(&m(TierCode::Regular, None, None, None), now));
}

#[test]
fn member_day_doubles_points_on_the_18th_in_program_time_only() {
    let r = Rules::default();
    let mult = |at: &str| member_day_multiplier(&r, TierCode::Silver, t(at));
    // Around midnight Shanghai (16:00 UTC) and midnight UTC (08:00 Shanghai).
    assert_eq!(mult("2026-11-17T15:59:59Z"), Multiplier::ONE, "23:59:59 on the 17th in Shanghai");
    assert_eq!(mult("2026-11-17T16:00:00Z"), Multiplier(2000), "00:00 on the 18th in Shanghai");
    assert_eq!(mult("2026-11-18T00:00:00Z"), Multiplier(2000), "midnight UTC, 08:00 on the 18th");
    assert_eq!(mult("2026-11-18T15:59:59Z"), Multiplier(2000));
    assert_eq!(mult("2026-11-18T16:00:00Z"), Multiplier::ONE, "00:00 on the 19th in Shanghai");
    assert_eq!(
        mult("2026-11-18T23:59:59Z"),
        Multiplier::ONE,
        "still the 18th in UTC, already the 19th in Shanghai"
    );
}

#[test]
fn campaign_windows_take_the_largest_and_never_stack() {
    let r = Rules::default();
    let c = request().validate("c1".into(), t("2026-11-01T00:00:00Z")).unwrap();
    let at = t("2026-11-17T17:00:00Z");
    let w = c.multiplier_window(r.time_zone, at).unwrap();
    assert_eq!((w.from, w.until), (t("2026-11-17T16:00:00Z"), t("2026-11-18T16:00:00Z")));
    assert_eq!(w.tiers, vec![TierCode::Silver, TierCode::Gold]);
    let windows = [w.clone()];
    let purchase = |tier, at| purchase_campaign_multiplier(&r, &windows, "m1", tier, at);
    assert_eq!(
        purchase(TierCode::Gold, at),
        Multiplier(3000),
        "the largest: the 3x, not 3x on top of the member day's 2x"
    );
    assert_eq!(
        purchase(TierCode::Regular, at),
        Multiplier(2000),
        "the 3x is for silver and gold only"
    );
    assert_eq!(purchase(TierCode::Gold, t("2026-11-18T16:00:00Z")), Multiplier::ONE, "both end");
}

#[test]
fn merge_prunes_expired_and_replaces_a_rerun() {
    let w = |id: &str, from: &str, until: &str| MultiplierWindow {
        campaign_id: id.into(),
        multiplier: Multiplier(2000),
        from: t(from),
        until: t(until),
        tiers: vec![],
        experiment: None,
    };
    let old = w("a", "2026-10-17T16:00:00Z", "2026-10-18T16:00:00Z");
    let cur = w("b", "2026-11-17T16:00:00Z", "2026-11-18T16:00:00Z");
    let now = t("2026-11-17T16:00:00Z");
    let merged = merge_windows(vec![old, cur.clone()], Some(cur.clone()), now);
    assert_eq!(merged, vec![cur.clone()]);
    let later = w("c", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z");
    assert_eq!(merge_windows(merged, Some(later.clone()), now), vec![cur, later]);
}

#[test]
fn progress_is_drained_only_when_dispatched_and_accounted() {
    let mut p = Progress { targeted: 10, issued: 7, skipped: 2, failed: 0, ..Default::default() };
    assert_eq!(p.state(true, false), RunState::Running);
    assert_eq!(p.state(true, true), RunState::Failed);
    p.failed = 1;
    assert_eq!(p.state(false, false), RunState::Running);
    assert_eq!(p.state(true, false), RunState::Drained);
    assert_eq!(p.state(true, true), RunState::Drained);
}

#[test]
fn packs_respect_count_and_size_and_keep_every_id() {
    let ids: Vec<String> = (0..1234).map(|i| format!("member-{i:08}")).collect();
    let packs = pack_ids(ids.clone(), 400);
    assert_eq!(packs.iter().map(Vec::len).collect::<Vec<_>>(), vec![500, 500, 234]);
    assert_eq!(packs.concat(), ids);
    let long: Vec<String> = (0..1000).map(|i| format!("{i:0>128}")).collect();
    let packs = pack_ids(long.clone(), 400);
    assert!(packs
        .iter()
        .all(|p| 400 + p.iter().map(|i| i.len() + 3).sum::<usize>() <= MAX_MESSAGE_BYTES));
    assert_eq!(packs.concat(), long);
}

#[test]
fn a_full_message_fits_the_budget_when_serialized() {
    // Measured: the real JSON of the largest message (500 ids of 36 characters, a uuid-sized id,
    // or fewer 128-character ids) stays under MAX_MESSAGE_BYTES, and 10 of them under 256 KiB.
    // The largest experiment too: ten variants, each with a coupon of its own.
    let mut t = template();
    t.title = "x".repeat(80);
    let variants: Vec<Variant> = (0..experiment::MAX_VARIANTS)
        .map(|i| Variant {
            name: format!("{i:x>32}"),
            weight: experiment::MAX_WEIGHT,
            coupon: Some(t.clone()),
            multiplier: Some(MAX_CAMPAIGN_MULTIPLIER),
        })
        .collect();
    let experiment = Experiment::of(&"c".repeat(40), &variants, experiment::MAX_HOLDOUT);
    let batch = |ids: Vec<String>| IssueBatch {
        batch_id: "2026-11.a001-063-000123-09".into(),
        grant: format!("campaign:{}:2026-11", "c".repeat(40)),
        template: Some(t.clone()),
        points: None,
        budget: Some(u64::MAX),
        run: Some(RunRef { campaign_id: "c".repeat(40), run_id: "2026-11.a001".into() }),
        experiment: experiment.clone(),
        member_ids: ids,
    };
    let overhead = serde_json::to_vec(&batch(vec![])).unwrap().len();
    for len in [36, 128] {
        let ids: Vec<String> = (0..2000).map(|i| format!("{i:0>len$}")).collect();
        for p in pack_ids(ids, overhead) {
            let size = serde_json::to_vec(&batch(p)).unwrap().len();
            assert!(size <= MAX_MESSAGE_BYTES, "{size}");
        }
    }
    const { assert!(10 * MAX_MESSAGE_BYTES <= 256 * 1024) };
}
