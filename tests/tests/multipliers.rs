//! A campaign's points multiplier reaches purchases: the member-day function writes the
//! window, the purchase function reads it in its one read. Runs on its own table, because a
//! multiplier window is program-wide.

use chrono::{Duration, Utc};
use loyalty::app::Dependencies;
use loyalty::store::Store;
use loyalty_tests::*;
use serde_json::{json, Value};

struct Apps {
    signup: signup::App,
    points: purchase_points::App,
    campaigns: member_day::App,
    deps: Dependencies,
}

/// The three functions on a table of the test's own (a multiplier window is program-wide).
async fn apps(name: &str) -> Apps {
    let h = harness().await;
    let table = clone_table(&h, name).await;
    let deps =
        Dependencies { store: Store::new(h.deps.store.client.clone(), table), ..h.deps.clone() };
    Apps {
        signup: signup_on(&deps),
        points: points_on(&h, &deps),
        campaigns: campaigns_on(&h, &deps).await,
        deps: deps.clone(),
    }
}

async fn join(signup: &signup::App, prefix: &str) -> String {
    let id = unique(prefix);
    let body =
        json!({"email": format!("{}@example.com", id.to_lowercase()), "name": "M"}).to_string();
    let (s, b, _) = answer(
        signup::handle(signup, request("POST", "/members", Some(&body), As::Member(id.clone())))
            .await,
    );
    assert_eq!(s, 201, "{b}");
    id
}

async fn create(apps: &Apps, campaign: &Value) -> Value {
    let (s, b, _) = answer(
        member_day::handle(
            &apps.campaigns,
            request("POST", "/campaigns", Some(&campaign.to_string()), As::Operator),
        )
        .await,
    );
    assert_eq!(s, 201, "{b}");
    b
}

async fn buy(apps: &Apps, id: &str, order: &str, at: chrono::DateTime<Utc>) -> Value {
    let body = json!({"orderId": order, "amount": 10_000, "currency": "CNY", "channel": "online", "occurredAt": at}).to_string();
    let path = format!("/internal/members/{id}/purchases");
    let (s, b, _) = answer(
        purchase_points::handle(&apps.points, request("POST", &path, Some(&body), As::OrderSystem))
            .await,
    );
    assert_eq!(s, 201, "{b}");
    b
}

/// Whether `at` is on the rules' member day (the 18th, 2× for every tier by default).
fn on_member_day(apps: &Apps, at: chrono::DateTime<Utc>) -> bool {
    loyalty::calendar::program_date(apps.deps.rules.time_zone, at).format("%d").to_string() == "18"
}

#[tokio::test]
async fn a_campaign_window_multiplies_purchases_inside_it_and_only_there() {
    let apps = apps("multipliers").await;
    let id = join(&apps.signup, "mult").await;
    let now = Utc::now();
    let (from, until) = (now - Duration::minutes(30), now + Duration::minutes(30));
    create(&apps, &json!({
        "name": "Triple hour", "segment": {"tiers": ["regular", "silver", "gold", "diamond"]},
        "coupon": {"title": "5 off", "offer": {"kind": "amount_off", "value": 500, "minSpend": 0}, "validDays": 1},
        "multiplier": {"multiplier": 3.0, "window": {"kind": "fixed", "from": from, "until": until}},
        "schedule": {"kind": "once", "at": until + Duration::days(1)}
    }))
    .await;
    let inside = buy(&apps, &id, "in", now).await;
    assert_eq!(inside["pointsEarned"], 300, "100 CNY × 1.0 (regular) × 3 (campaign)");
    // Outside the window only the rules' own member day (the 18th, 2×) could multiply it.
    let before = from - Duration::minutes(1);
    let outside = buy(&apps, &id, "out", before).await;
    assert_eq!(outside["pointsEarned"], if on_member_day(&apps, before) { 200 } else { 100 });
}

/// An experiment whose variants differ by their multiplier: each member's purchase inside the
/// window earns the multiplier of the arm the coupon worker would put them in, and a holdout
/// member earns no campaign multiplier at all (only what the rules give everyone).
#[tokio::test]
async fn each_arm_earns_its_own_multiplier_and_the_holdout_none() {
    let apps = apps("multiplier-arms").await;
    let now = Utc::now();
    let (from, until) = (now - Duration::minutes(30), now + Duration::minutes(30));
    let variants = json!([
        {"name": "triple", "weight": 1, "multiplier": 3.0},
        {"name": "campaign-rate", "weight": 1}
    ]);
    let created = create(&apps, &json!({
        "name": "Which multiplier sells", "segment": {"tiers": ["regular", "silver", "gold", "diamond"]},
        "coupon": {"title": "5 off", "offer": {"kind": "amount_off", "value": 500, "minSpend": 0}, "validDays": 1},
        "multiplier": {"multiplier": 2.0, "window": {"kind": "fixed", "from": from, "until": until}},
        "schedule": {"kind": "once", "at": until + Duration::days(1)},
        "variants": variants, "holdout": 0.3
    }))
    .await;
    let campaign_id = created["campaignId"].as_str().unwrap().to_string();
    let defined: Vec<loyalty::campaign::experiment::Variant> =
        serde_json::from_value(variants).unwrap();
    let experiment = loyalty::campaign::experiment::Experiment::of(
        &campaign_id,
        &defined,
        loyalty::campaign::experiment::Share(3000),
    )
    .unwrap();
    let member_day = on_member_day(&apps, now);
    let mut arms = std::collections::BTreeMap::new();
    for n in 0..24 {
        let id = join(&apps.signup, "arm").await;
        let arm = experiment.assign(&id).name().to_string();
        let campaign = match arm.as_str() {
            "triple" => 300,
            "campaign-rate" => 200,
            "holdout" => 100,
            other => panic!("unexpected arm {other}"),
        };
        let want = if member_day { campaign.max(200) } else { campaign };
        let got = buy(&apps, &id, &format!("o{n}"), now).await;
        assert_eq!(got["pointsEarned"], want, "{id} in arm {arm}");
        *arms.entry(arm).or_insert(0) += 1;
    }
    assert_eq!(arms.len(), 3, "24 members fall in all three arms: {arms:?}");
}
