use super::load::DEFAULTS;
use super::*;
use serde_json::Value;

#[test]
fn defaults_are_valid_and_match_the_design_table() {
    let r = Rules::default();
    assert_eq!(r.time_zone, chrono_tz::Asia::Shanghai);
    let t: Vec<_> = r
        .tiers
        .iter()
        .map(|t| (t.code, t.threshold.0, t.multiplier.0, t.discount_percent))
        .collect();
    assert_eq!(
        t,
        vec![
            (TierCode::Regular, 0, 1000, 0),
            (TierCode::Silver, 200_000, 1200, 10),
            (TierCode::Gold, 1_000_000, 1500, 20),
            (TierCode::Diamond, 5_000_000, 2000, 30)
        ]
    );
    assert_eq!(r.signup.welcome_points, 100);
    assert_eq!(r.birthday.min_days_known, 30);
    assert_eq!(r.member_day.day_of_month, 18);
}

#[test]
fn overrides_merge_over_defaults() {
    let r =
        Rules::from_overrides(r#"{"points":{"expiryDays":180},"referral":{"referrerPoints":300}}"#)
            .unwrap();
    assert_eq!(r.points.expiry_days, 180);
    assert_eq!(r.points.redemption_step, 100);
    assert_eq!(r.referral.referrer_points, 300);
}

#[test]
fn thresholds_must_ascend() {
    let mut doc: Value = serde_json::from_str(DEFAULTS).unwrap();
    doc["tiers"][2]["threshold"] = 100.into();
    let err = Rules::from_overrides(&doc.to_string()).unwrap_err();
    assert!(matches!(err, RulesError::Invalid(ref m) if m.contains("ascend")), "{err}");
}

#[test]
fn birthday_min_days_known_is_bounded() {
    assert_eq!(
        Rules::from_overrides(r#"{"birthday":{"minDaysKnown":0}}"#)
            .unwrap()
            .birthday
            .min_days_known,
        0
    );
    let err = Rules::from_overrides(r#"{"birthday":{"minDaysKnown":400}}"#).unwrap_err();
    assert!(
        matches!(err, RulesError::Invalid(ref m) if m.contains("birthday.minDaysKnown")),
        "{err}"
    );
    assert!(matches!(
        Rules::from_overrides(r#"{"birthday":{"minDaysKnown":-1}}"#),
        Err(RulesError::Schema(_))
    ));
}

#[test]
fn multiplier_below_one_is_refused() {
    let err = Rules::from_overrides(r#"{"memberDay":{"multiplier":0.5}}"#).unwrap_err();
    assert!(
        matches!(err, RulesError::Invalid(ref m) if m.contains("memberDay.multiplier")),
        "{err}"
    );
}

#[test]
fn coupon_templates_have_defaults_and_are_validated() {
    let r = Rules::default();
    assert!(matches!(
        r.coupon_templates["percent-15"].offer,
        crate::coupon::Offer::PercentOff { percent: 15, .. }
    ));
    assert!(matches!(
        r.coupon_templates["free-shipping"].offer,
        crate::coupon::Offer::FreeShipping { .. }
    ));
    let err = Rules::from_overrides(r#"{"couponTemplates":{"x":{"title":"X","offer":{"kind":"percent_off","percent":0,"cap":100},"validDays":3}}}"#).unwrap_err();
    assert!(matches!(err, RulesError::Invalid(ref m) if m.contains("coupon template x")), "{err}");
    let err = Rules::from_overrides(r#"{"couponTemplates":{"Bad Name":{"title":"X","offer":{"kind":"free_shipping"},"validDays":3}}}"#).unwrap_err();
    assert!(matches!(err, RulesError::Invalid(ref m) if m.contains("Bad Name")), "{err}");
}

#[test]
fn the_member_write_limit_has_a_default_and_is_validated() {
    assert_eq!(Rules::default().limits.member_writes_per_minute, 30);
    assert_eq!(
        Rules::from_overrides(r#"{"limits":{"memberWritesPerMinute":5}}"#)
            .unwrap()
            .limits
            .member_writes_per_minute,
        5
    );
    for bad in ["0", "1001"] {
        let err =
            Rules::from_overrides(&format!(r#"{{"limits":{{"memberWritesPerMinute":{bad}}}}}"#))
                .unwrap_err();
        assert!(
            matches!(err, RulesError::Invalid(ref m) if m.contains("memberWritesPerMinute")),
            "{err}"
        );
    }
    assert!(matches!(
        Rules::from_overrides(r#"{"limits":{"perMinute":5}}"#),
        Err(RulesError::Schema(_))
    ));
}

#[test]
fn unknown_keys_and_bad_json_are_refused_clearly() {
    assert!(matches!(Rules::from_overrides(r#"{"tierz":[]}"#), Err(RulesError::Schema(_))));
    assert!(matches!(Rules::from_overrides("{"), Err(RulesError::Json(_))));
    assert!(matches!(Rules::from_overrides("[1]"), Err(RulesError::Json(_))));
    assert!(matches!(
        Rules::from_overrides(r#"{"timeZone":"Mars/Olympus"}"#),
        Err(RulesError::Invalid(m)) if m.contains("CHRONO_TZ_TIMEZONE_FILTER")
    ));
    // The zones of the default build filter (.cargo/config.toml).
    for zone in ["Asia/Shanghai", "Asia/Tokyo", "Asia/Singapore", "UTC"] {
        let doc = format!(r#"{{"timeZone":"{zone}"}}"#);
        assert_eq!(Rules::from_overrides(&doc).unwrap().time_zone.name(), zone);
    }
}
