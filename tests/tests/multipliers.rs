//! A campaign's points multiplier reaches purchases: the member-day function writes the
//! window, the purchase function reads it in its one read. Runs on its own table, because a
//! multiplier window is program-wide.

use chrono::{Duration, Utc};
use loyalty::app::Env;
use loyalty::store::Store;
use loyalty_tests::*;
use serde_json::json;

#[tokio::test]
async fn a_campaign_window_multiplies_purchases_inside_it_and_only_there() {
    let h = harness().await;
    let table = clone_table(&h, "multipliers").await;
    let env = Env { store: Store::new(h.env.store.client.clone(), table), ..h.env.clone() };
    let signup = signup::App { env: env.clone(), codes: code_key(), contacts: contact_key() };
    let points = purchase_points::App {
        env: env.clone(),
        sqs: aws_sdk_sqs::Client::new(&h.sdk_config),
        codes: code_key(),
    };
    let sqs = aws_sdk_sqs::Client::new(&h.sdk_config);
    let q = |name: String| {
        let sqs = sqs.clone();
        async move { sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap() }
    };
    let campaigns = member_day::App {
        env: env.clone(),
        sqs: sqs.clone(),
        campaign_queue: q(unique("mq")).await,
        dispatch_queue: q(unique("mq")).await,
        budget: std::time::Duration::from_secs(30),
    };

    let id = unique("mult");
    let body =
        json!({"email": format!("{}@example.com", id.to_lowercase()), "name": "M"}).to_string();
    assert_eq!(
        answer(
            signup::handle(
                &signup,
                request("POST", "/members", Some(&body), As::Member(id.clone()))
            )
            .await
        )
        .0,
        201
    );

    let now = Utc::now();
    let (from, until) = (now - Duration::minutes(30), now + Duration::minutes(30));
    let campaign = json!({
        "name": "Triple hour", "segment": {"tiers": ["regular", "silver", "gold", "diamond"]},
        "coupon": {"title": "5 off", "offer": {"kind": "amount_off", "value": 500, "minSpend": 0}, "validDays": 1},
        "multiplier": {"multiplier": 3.0, "window": {"kind": "fixed", "from": from, "until": until}},
        "schedule": {"kind": "once", "at": until + Duration::days(1)}
    })
    .to_string();
    let (s, b, _) = answer(
        member_day::handle(
            &campaigns,
            request("POST", "/campaigns", Some(&campaign), As::Operator),
        )
        .await,
    );
    assert_eq!(s, 201, "{b}");

    let buy = |order: &str, at: chrono::DateTime<Utc>| {
        json!({"orderId": order, "amount": 10_000, "currency": "CNY", "channel": "online", "occurredAt": at}).to_string()
    };
    let path = format!("/internal/members/{id}/purchases");
    let (s, inside, _) = answer(
        purchase_points::handle(
            &points,
            request("POST", &path, Some(&buy("in", now)), As::OrderSystem),
        )
        .await,
    );
    assert_eq!(s, 201, "{inside}");
    assert_eq!(inside["pointsEarned"], 300, "100 CNY × 1.0 (regular) × 3 (campaign)");
    let before = from - Duration::minutes(1);
    // Outside the window only the rules' own member day (the 18th, 2×) could multiply it.
    let member_day =
        loyalty::calendar::program_date(env.rules.time_zone, before).format("%d").to_string()
            == "18";
    let (s, outside, _) = answer(
        purchase_points::handle(
            &points,
            request("POST", &path, Some(&buy("out", before)), As::OrderSystem),
        )
        .await,
    );
    assert_eq!(s, 201, "{outside}");
    assert_eq!(outside["pointsEarned"], if member_day { 200 } else { 100 });
}
