//! Churn risk end to end, on a table of the test's own: members written as their last
//! purchase left them (scored as of that day), the real nightly worker (tier-recompute) over
//! the review index, then a campaign whose segment names `churnRisk: ["high"]` through the
//! real dispatcher and coupon worker.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use loyalty::churn::{self, Band};
use loyalty::member::{Member, MemberId, NewMember};
use loyalty::store::member::MemberItem;
use loyalty::store::{keys, Store};
use loyalty::{Fen, Rules, TierCode};
use loyalty_tests::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use tier_recompute::{App, Segment, ShardTask};

fn noon(day: NaiveDate) -> DateTime<Utc> {
    loyalty::calendar::start_of_day(Rules::default().time_zone, day) + Duration::hours(12)
}

/// A member last seen `ago` days before `today` (bought then, or joined then when `orders` is
/// 0), with `orders` orders and `spend` spent in all.
fn member(id: &str, today: NaiveDate, ago: i64, orders: u32, spend: i64) -> Member {
    let new = NewMember {
        email: None,
        phone: None,
        name: "Churn".into(),
        birthday: None,
        referral_code: None,
        marketing_consent: false,
    };
    let seen = noon(today - Duration::days(ago));
    let joined = if orders == 0 { seen } else { seen - Duration::days(400) };
    let mut m = Member::join(MemberId::parse(id).unwrap(), &new, "CHURN000".into(), None, joined);
    m.tier = TierCode::Regular;
    m.order_count = orders;
    m.lifetime_spend = Fen(spend);
    m.last_purchase_at = (orders > 0).then_some(seen);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nightly_scores_each_member_and_a_high_risk_segment_targets_exactly_them() {
    let mut h = harness().await;
    let table = clone_table(&h, "churn").await;
    h.deps.store = Store::new(h.deps.store.client.clone(), table);
    let (store, rules) = (h.deps.store.clone(), h.deps.rules.clone());
    let today: NaiveDate = "2026-11-20".parse().unwrap();
    let tonight = loyalty::calendar::start_of_day(rules.time_zone, today) + Duration::minutes(30);

    // Every recency boundary, with and without a good history.
    let mut members = Vec::new();
    for (i, ago) in [0, 5, 30, 31, 60, 61, 90, 91, 180, 181, 400].into_iter().enumerate() {
        for (j, (orders, spend)) in
            [(0, 0), (1, 5_000), (3, 60_000), (12, 3_000_000)].into_iter().enumerate()
        {
            members.push(member(&format!("churn-{i:02}-{j}"), today, ago, orders, spend));
        }
    }
    // Written as their last purchase (or signup) left them: scored as of that day.
    for m in &members {
        let written = m.last_purchase_at.unwrap_or(m.joined_at);
        let item = MemberItem::new(m, &rules, written);
        store
            .transact(vec![store.put(&item, None).unwrap()])
            .await
            .map_err(|e| format!("{e:?}"))
            .unwrap();
    }
    let expected = |m: &Member| {
        let seen = loyalty::calendar::program_date(
            rules.time_zone,
            m.last_purchase_at.unwrap_or(m.joined_at),
        );
        churn::assess(&rules.churn, seen, today, m.order_count, m.lifetime_spend)
    };

    // The night: every shard's review slice.
    let app = App {
        deps: h.deps.clone(),
        sqs: aws_sdk_sqs::Client::new(&h.sdk_config),
        queue_url: std::env::var("TIER_SHARD_QUEUE_URL").unwrap(),
        budget: std::time::Duration::from_secs(120),
        page_size: 100,
        concurrency: 8,
    };
    let mut written = 0;
    for shard in 0..keys::SHARDS {
        let task = ShardTask { now: tonight, shard, segment: Segment::Review, cursor: None };
        let tally = tier_recompute::run_task(&app, task, std::time::Instant::now()).await.unwrap();
        assert!(!tally.continued);
        written += tally.written;
    }
    // Only members whose band could have moved since their last write were due (seen 31 days
    // ago or more); of them, the ones whose R dropped were rewritten.
    let due = members.iter().filter(|m| expected(m).recency < 5).count();
    assert!(written > 0 && written <= due, "{written} written of {due} due");

    let mut bands: BTreeMap<Band, BTreeSet<String>> = BTreeMap::new();
    for m in &members {
        let id = m.member_id.as_str();
        let item: MemberItem =
            store.get(&keys::member_pk(id), keys::PROFILE_SK).await.unwrap().unwrap();
        let want = expected(m);
        assert_eq!(item.churn.as_deref(), Some(want.mark().as_str()), "{id}: {want:?}");
        assert_eq!(item.gsi1sk.as_deref(), Some(keys::tier_segment_sk(want.band).as_str()));
        let review = item
            .gsi5sk
            .as_deref()
            .and_then(|k| k.split('#').next())
            .map(|d| d.parse::<NaiveDate>().unwrap());
        assert_eq!(review, want.next_change, "{id} is due again the day its band can rise");
        bands.entry(want.band).or_default().insert(id.to_string());
    }
    assert!(Band::ALL.iter().all(|b| !bands[b].is_empty()), "every band is met: {bands:?}");
    // The same night again writes nothing.
    for shard in 0..keys::SHARDS {
        let task = ShardTask { now: tonight, shard, segment: Segment::Review, cursor: None };
        let tally = tier_recompute::run_task(&app, task, std::time::Instant::now()).await.unwrap();
        assert_eq!(tally.written, 0, "shard {shard}");
    }

    // A campaign for the high-risk members of every tier.
    let md = campaigns_on(&h, &h.deps).await;
    let sqs = md.sqs.clone();
    let worker = worker_on(&h.deps);
    let body = json!({
        "name": "We miss you",
        "segment": {"tiers": ["regular", "silver", "gold", "diamond"], "churnRisk": ["high"]},
        "coupon": {"title": "15 CNY off", "offer": {"kind": "amount_off", "value": 1500, "minSpend": 0}, "validDays": 14},
    })
    .to_string();
    let (s, created, _) = answer(
        member_day::handle(&md, request("POST", "/campaigns", Some(&body), As::Operator)).await,
    );
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["campaign"]["segment"]["churnRisk"], json!(["high"]));
    let id = created["campaignId"].as_str().unwrap();
    let (s, run, _) = answer(
        member_day::handle(
            &md,
            request("POST", &format!("/campaigns/{id}/run"), None, As::Operator),
        )
        .await,
    );
    assert_eq!(s, 202, "{run}");
    drain_campaign_queues(&md, &worker, &sqs, async || {}).await;
    let grant = run["grant"].as_str().unwrap();
    let out = store
        .client
        .scan()
        .table_name(&store.table)
        .filter_expression("entity = :c AND #g = :g")
        .expression_attribute_names("#g", "grant")
        .expression_attribute_values(":c", AttributeValue::S("coupon".into()))
        .expression_attribute_values(":g", AttributeValue::S(grant.into()))
        .send()
        .await
        .unwrap();
    let got: BTreeSet<String> =
        out.items().iter().map(|i| i["memberId"].as_s().unwrap().clone()).collect();
    assert_eq!(got, bands[&Band::High], "exactly the high-risk members");
    let (_, view, _) = answer(
        member_day::handle(&md, request("GET", &format!("/campaigns/{id}"), None, As::Operator))
            .await,
    );
    assert_eq!(view["runs"][0]["targeted"], bands[&Band::High].len(), "{view}");
}
