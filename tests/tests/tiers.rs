//! The nightly tier evaluation through the real handler against the local stack: the
//! schedule fans shard tasks out to the local queue, the worker handler takes them back as
//! SQS events, and every member ends where a plain reference computation says.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use loyalty::member::{Member, MemberId, NewMember, SpendDay};
use loyalty::runtime::{Outcome, Trigger};
use loyalty::store::keys;
use loyalty::store::member::MemberItem;
use loyalty::store::tier::TierRulesMark;
use loyalty::{tier, Fen, Rules, TierCode};
use loyalty_tests::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use tier_recompute::{App, ShardTask};

const MEMBERS: usize = 1_000;

/// The tests of this file run nights over the shared indexes: one at a time, so one test's
/// night never evaluates the other's members halfway through.
static NIGHTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The nightly run's instant on a program date: 00:30 in Shanghai.
fn night(day: NaiveDate) -> DateTime<Utc> {
    loyalty::calendar::start_of_day(Rules::default().time_zone, day) + Duration::minutes(30)
}

fn noon(day: NaiveDate) -> DateTime<Utc> {
    // The program time zone (Asia/Shanghai) has no daylight saving: noon is 12 h after midnight.
    loyalty::calendar::start_of_day(Rules::default().time_zone, day) + Duration::hours(12)
}

/// A small deterministic generator (splitmix64): the same histories on every run.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const THRESHOLDS: [i64; 4] = [0, 200_000, 1_000_000, 5_000_000];

/// A member as the purchase side would have left it: spend days over the last ~500 days
/// (amounts on, under and over the thresholds, some refunded down), and a tier at least as
/// high as any the spend ever earned (instant upgrades), reached on a date chosen to land on
/// the protection boundaries (365, 366 days ago) often.
fn generate(g: &mut Gen, id: &str, today: NaiveDate) -> Member {
    let nm = NewMember {
        email: None,
        phone: Some("+8613800138000".into()),
        name: "T".into(),
        birthday: None,
        referral_code: None,
        marketing_consent: false,
    };
    let mut days: Vec<SpendDay> = Vec::new();
    for _ in 0..g.below(6) {
        let any_day = g.below(500);
        let ago = g.pick(&[0, 1, 30, 200, 363, 364, 365, 366, 400, 500, any_day]);
        let any_amount = g.below(3_000_000) + 1;
        let amount = g.pick(&[
            200_000, 199_999, 1_000_000, 999_999, 5_000_000, 4_999_999, 300_000, 2_500_000,
            any_amount,
        ]);
        let refunded = if g.below(5) == 0 { g.below(amount as u64 + 1) } else { 0 };
        let day = today - Duration::days(ago);
        match days.iter_mut().find(|s| s.day == day) {
            Some(s) => s.amount += Fen(amount - refunded),
            None => days.push(SpendDay { day, amount: Fen(amount - refunded) }),
        }
    }
    days.sort_by_key(|s| s.day);
    let peak = days.iter().map(|s| plain_earned(plain_rolling(&days, s.day))).max().unwrap_or(0);
    let tier = peak.max(g.pick(&[0, 0, 1, 1, 2, 3]) as usize);
    let any_since = g.below(800);
    let since_ago = g.pick(&[0, 10, 300, 364, 365, 366, 367, 700, any_since]);
    // Reached at noon that day; "today" means just before tonight's run (00:10).
    let since = if since_ago == 0 {
        night(today) - Duration::minutes(20)
    } else {
        noon(today - Duration::days(since_ago))
    };
    let mut m = Member::join(
        MemberId::parse(id).unwrap(),
        &nm,
        "TIER0000".into(),
        None,
        since - Duration::days(30),
    );
    m.phone = None;
    m.tier = TierCode::ALL[tier];
    m.tier_since = since;
    m.spend_days = days;
    if g.below(8) == 0 {
        m.stepped_down_at = Some(since); // entered this tier by stepping down: not protected
    }
    if g.below(20) == 0 {
        m.last_tier_evaluation = Some(today); // already evaluated tonight
    }
    m
}

// ---- the plain reference -----------------------------------------------------------------

fn plain_rolling(days: &[SpendDay], today: NaiveDate) -> i64 {
    let mut sum = 0;
    for s in days {
        let age = (today - s.day).num_days();
        if (0..365).contains(&age) {
            sum += s.amount.0;
        }
    }
    sum
}

fn plain_earned(spend: i64) -> usize {
    let mut t = 0;
    for (i, th) in THRESHOLDS.iter().enumerate() {
        if spend >= *th {
            t = i;
        }
    }
    t
}

/// One night, by the rules as written: raise to the earned tier; else, after 365 protected
/// days (a stepped-down tier has none), one level down while above the earned tier; a night
/// already evaluated changes nothing.
fn plain_night(m: &Member, today: NaiveDate) -> usize {
    let tier = m.tier as usize;
    if m.last_tier_evaluation.is_some_and(|d| d >= today) {
        return tier;
    }
    let earned = plain_earned(plain_rolling(&m.spend_days, today));
    let since = loyalty::calendar::program_date(Rules::default().time_zone, m.tier_since);
    let protected = m.stepped_down_at != Some(m.tier_since) && (today - since).num_days() <= 365;
    if earned > tier {
        earned
    } else if earned < tier && !protected {
        tier - 1
    } else {
        tier
    }
}

// ---- driving the function ------------------------------------------------------------------

async fn seed(h: &Harness, members: &[Member], at: DateTime<Utc>) {
    seed_members(h, members, at).await;
}

fn schedule(now: DateTime<Utc>) -> Trigger {
    let e: EventBridgeEvent<Value> = serde_json::from_value(json!({
        "version": "0", "id": unique("ev"), "detail-type": "Scheduled Event", "source": "loyalty.schedule",
        "account": "123456789012", "time": now, "region": "ap-east-1", "resources": [],
        "detail": {"job": "tier-evaluation", "now": now}
    }))
    .unwrap();
    Trigger::Schedule(e)
}

/// Runs a night: the schedule event to the coordinator, then every task on the local queue
/// (continuations included) to the worker as SQS events, until the queue is empty.
async fn run_night(app: &App, now: DateTime<Utc>) -> (Value, usize) {
    let Outcome::Done(summary) = tier_recompute::handle_trigger(app, schedule(now)).await.unwrap()
    else {
        panic!("the schedule answers a summary")
    };
    let mut handled = 0;
    let mut empty = 0;
    while empty < 2 {
        let messages = receive_batch(&app.sqs, &app.queue_url).await;
        if messages.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        let records: Vec<Value> = messages
            .iter()
            .map(|m| json!({"messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body, "eventSource": "aws:sqs", "attributes": {}, "messageAttributes": {}}))
            .collect();
        for m in &messages {
            let task: ShardTask = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
            assert_eq!(task.now, now, "only tonight's tasks are on the queue");
        }
        let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
        let Outcome::Sqs(resp) =
            tier_recompute::handle_trigger(app, Trigger::Sqs(event)).await.unwrap()
        else {
            panic!("the worker answers a batch response")
        };
        assert!(resp.batch_item_failures.is_empty(), "no task failed");
        for m in &messages {
            app.sqs
                .delete_message()
                .queue_url(&app.queue_url)
                .receipt_handle(m.receipt_handle.as_deref().unwrap())
                .send()
                .await
                .unwrap();
        }
        handled += messages.len();
    }
    (summary, handled)
}

/// Leftovers of an interrupted earlier run would be worked as tonight's tasks: drop them.
async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) {
    loop {
        let messages = receive_batch(sqs, queue_url).await;
        if messages.is_empty() {
            return;
        }
        for m in messages {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle.unwrap_or_default())
                .send()
                .await
                .unwrap();
        }
    }
}

async fn read_all(h: &Harness, ids: &[String]) -> HashMap<String, Member> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(100) {
        let got = futures::future::join_all(chunk.iter().map(|id| h.deps.store.member(id))).await;
        for (id, m) in chunk.iter().zip(got) {
            out.insert(id.clone(), m.unwrap().expect("seeded member exists"));
        }
    }
    out
}

#[tokio::test]
async fn a_night_over_a_thousand_members_matches_the_reference_and_a_rerun_changes_nothing() {
    let _night = NIGHTS.lock().await;
    let started = std::time::Instant::now();
    let h = harness().await;
    let rules = Rules::default();
    // 2020-03-01 in Shanghai: the window reaches back over Feb 29. Far in the past, so
    // members of other tests (reviewed years later) are never due in this night.
    let today: NaiveDate = "2020-03-01".parse().unwrap();
    let now = night(today);
    let queue_url = std::env::var("TIER_SHARD_QUEUE_URL")
        .expect("TIER_SHARD_QUEUE_URL comes from template.yaml");
    let sqs = aws_sdk_sqs::Client::new(&h.sdk_config);
    drain(&sqs, &queue_url).await;
    // First night: tiny pages and no time budget, so every page hands on a continuation.
    let mut app = App {
        deps: h.deps.clone(),
        sqs,
        queue_url,
        budget: std::time::Duration::ZERO,
        page_size: 5,
        concurrency: 16,
    };

    let mut g = Gen(0x7469_6572);
    let ids: Vec<String> = (0..MEMBERS).map(|_| unique("tier")).collect();
    let members: Vec<Member> = ids.iter().map(|id| generate(&mut g, id, today)).collect();
    seed(&h, &members, now - Duration::hours(1)).await;
    // The tier rules are unchanged since the last sweep: tonight is the review index only.
    h.deps
        .store
        .set_tier_rules_mark(&TierRulesMark::new(tier::rules_fingerprint(&rules), now))
        .await
        .unwrap();

    let (summary, handled) = run_night(&app, now).await;
    assert_eq!(summary["tasks"], keys::SHARDS);
    assert_eq!(
        (summary["sweep"].clone(), summary["date"].clone()),
        (json!(false), json!("2020-03-01"))
    );
    assert!(handled > keys::SHARDS as usize, "continuations were handed on ({handled} tasks)");

    let after = read_all(&h, &ids).await;
    let mut changed = 0;
    for m in &members {
        let got = &after[m.member_id.as_str()];
        let want = plain_night(m, today);
        assert_eq!(
            got.tier as usize, want,
            "{} {:?} since {} spend {:?}",
            m.member_id, m.tier, m.tier_since, m.spend_days
        );
        let history = h.deps.store.tier_history(m.member_id.as_str()).await.unwrap();
        if want != m.tier as usize {
            changed += 1;
            assert_eq!(history.len(), 1, "{}", m.member_id);
            let c = &history[0];
            assert_eq!((c.from, c.to, c.at), (m.tier, got.tier, now));
            assert_eq!(
                c.reason,
                if want < m.tier as usize { "step_down" } else { "nightly_upgrade" }
            );
            assert_eq!(
                (got.tier_since, got.stepped_down_at),
                (now, Some(now).filter(|_| want < m.tier as usize))
            );
            assert_eq!(got.version, m.version + 1);
        } else {
            assert!(history.is_empty(), "{}", m.member_id);
            assert_eq!(got.tier_since, m.tier_since);
        }
        assert!(
            got.spend_days.iter().all(|s| (today - s.day).num_days() < 365)
                || got.version == m.version,
            "evaluated members keep only the window"
        );
        assert!(
            tier::review_date(got, &rules).is_none_or(|d| d > today),
            "{} is not due again tonight",
            m.member_id
        );
    }
    assert!(changed > 50 && changed < MEMBERS / 2, "a realistic mix: {changed} changed");

    // The same night again, with a normal budget: nothing is written twice.
    app.budget = std::time::Duration::from_secs(60);
    app.page_size = 100;
    let (_, handled) = run_night(&app, now).await;
    assert_eq!(handled, keys::SHARDS as usize, "no continuation needed");
    let again = read_all(&h, &ids).await;
    for id in &ids {
        assert_eq!(again[id], after[id], "{id} unchanged by the re-run");
    }

    // The next night: those still above their earned tier step down one more level.
    let tomorrow = today + Duration::days(1);
    run_night(&app, night(tomorrow)).await;
    let next = read_all(&h, &ids).await;
    for id in &ids {
        assert_eq!(next[id].tier as usize, plain_night(&after[id], tomorrow), "{id} on {tomorrow}");
    }
    let diamonds_down: Vec<&String> = ids
        .iter()
        .filter(|id| after[*id].stepped_down_at == Some(now) && next[*id].tier < after[*id].tier)
        .collect();
    assert!(!diamonds_down.is_empty(), "someone stepped down two nights in a row");
    eprintln!(
        "tiers: {MEMBERS} members, {changed} changed the first night, {:?}",
        started.elapsed()
    );
}

/// After operators lower the thresholds, the rules-change sweep (ByTier segments) raises those
/// whose spend now earns more, at once; a raised threshold lowers nobody still protected,
/// but moves their review date to the end of their protection.
#[tokio::test]
async fn a_rules_change_sweep_raises_at_once_and_lowers_nobody_protected() {
    let _night = NIGHTS.lock().await;
    let mut rules = Rules::default();
    rules.tiers[1].threshold = Fen::from_cny(1_000);
    rules.tiers[2].threshold = Fen::from_cny(20_000);
    rules.validate().unwrap();
    let h = harness_with(rules.clone(), loyalty::app::Clock::System).await;
    // Years before any other test's members, so the segments' other members are newer than
    // this night and left alone.
    let today: NaiveDate = "2016-06-01".parse().unwrap();
    let now = night(today);
    let since = noon("2015-09-01".parse().unwrap());
    let nm = NewMember {
        email: None,
        phone: None,
        name: "T".into(),
        birthday: None,
        referral_code: None,
        marketing_consent: false,
    };
    let make = |tier: TierCode, cny: i64| {
        let mut m = Member::join(
            MemberId::parse(&unique("sweep")).unwrap(),
            &nm,
            "TIER0000".into(),
            None,
            since,
        );
        m.tier = tier;
        m.spend_days =
            vec![SpendDay { day: "2016-03-01".parse().unwrap(), amount: Fen::from_cny(cny) }];
        m
    };
    let raised = make(TierCode::Regular, 1_500); // silver under the new rules
    let kept = make(TierCode::Gold, 12_000); // only silver under the new rules, but protected
    let plain = make(TierCode::Silver, 2_500); // silver under both, due on the same roll-off day
    let members = [raised.clone(), kept.clone(), plain.clone()];
    // Written as the purchase side wrote them, under the old rules.
    let old = Rules::default();
    for m in &members {
        h.deps
            .store
            .transact(vec![h.deps.store.put(&MemberItem::new(m, &old, since), None).unwrap()])
            .await
            .map_err(|e| format!("{e:?}"))
            .unwrap();
    }
    let app = App {
        deps: h.deps.clone(),
        sqs: aws_sdk_sqs::Client::new(&h.sdk_config),
        queue_url: std::env::var("TIER_SHARD_QUEUE_URL").unwrap(),
        budget: std::time::Duration::from_secs(60),
        page_size: 100,
        concurrency: 8,
    };
    let mut shards: Vec<u32> = members.iter().map(|m| keys::shard(m.member_id.as_str())).collect();
    shards.sort_unstable();
    shards.dedup();
    for shard in shards {
        for tier in TierCode::ALL {
            let task = ShardTask {
                now,
                shard,
                segment: tier_recompute::Segment::Tier { tier },
                cursor: None,
            };
            let tally =
                tier_recompute::run_task(&app, task, std::time::Instant::now()).await.unwrap();
            assert!(!tally.continued);
        }
    }
    let got =
        read_all(&h, &members.iter().map(|m| m.member_id.to_string()).collect::<Vec<_>>()).await;
    let r = &got[raised.member_id.as_str()];
    assert_eq!((r.tier, r.tier_since), (TierCode::Silver, now));
    let history = h.deps.store.tier_history(raised.member_id.as_str()).await.unwrap();
    assert_eq!(
        history.iter().map(|c| (c.from, c.to, c.reason.as_str())).collect::<Vec<_>>(),
        vec![(TierCode::Regular, TierCode::Silver, "nightly_upgrade")]
    );

    let k = &got[kept.member_id.as_str()];
    assert_eq!(
        (k.tier, k.tier_since),
        (TierCode::Gold, since),
        "protected through 2016-08-31 (day 365; 2016 has a Feb 29)"
    );
    assert!(h.deps.store.tier_history(kept.member_id.as_str()).await.unwrap().is_empty());
    let item: MemberItem = h
        .deps
        .store
        .get(&keys::member_pk(kept.member_id.as_str()), keys::PROFILE_SK)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        item.gsi5sk.as_deref(),
        Some("2016-09-01"),
        "due when protection ends, under the new thresholds"
    );

    // Nothing to change for its tier; written only because the sweep rescored its churn risk
    // (written nine months ago as a new member, it has not bought since: high).
    let p = &got[plain.member_id.as_str()];
    assert_eq!(
        (p.tier, p.tier_since, p.version),
        (TierCode::Silver, plain.tier_since, plain.version + 1)
    );
    assert!(h.deps.store.tier_history(plain.member_id.as_str()).await.unwrap().is_empty());
    let item: MemberItem = h
        .deps
        .store
        .get(&keys::member_pk(plain.member_id.as_str()), keys::PROFILE_SK)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        item.churn.as_deref().and_then(loyalty::churn::band_of_mark),
        Some(loyalty::churn::Band::High)
    );
}

/// `GET /members/{id}` after a night: the tier, since when, until when it is protected, the
/// rolling spend, what the next tier needs and what keeping this one needs, and the benefits.
#[tokio::test]
async fn the_profile_shows_tier_standing_after_the_nightly_step_down() {
    let today: NaiveDate = "2021-07-01".parse().unwrap();
    let now = night(today);
    let h =
        harness_with(Rules::default(), loyalty::app::Clock::Fixed(now + Duration::hours(10))).await;
    let nm = NewMember {
        email: None,
        phone: None,
        name: "T".into(),
        birthday: None,
        referral_code: None,
        marketing_consent: false,
    };
    let id = unique("profile");
    let mut m = Member::join(
        MemberId::parse(&id).unwrap(),
        &nm,
        "TIER0000".into(),
        None,
        noon("2020-01-01".parse().unwrap()),
    );
    m.tier = TierCode::Diamond;
    m.spend_days =
        vec![SpendDay { day: "2021-01-15".parse().unwrap(), amount: Fen::from_cny(12_000) }];
    h.deps
        .store
        .transact(vec![h.deps.store.put(&MemberItem::new(&m, &h.deps.rules, now), None).unwrap()])
        .await
        .map_err(|e| format!("{e:?}"))
        .unwrap();
    // One night by the worker: protection long over, gold earned: diamond -> gold.
    assert_eq!(
        tier_recompute::evaluate_member(&h.deps, &id, now).await.unwrap(),
        tier_recompute::Step::Changed
    );
    assert_eq!(
        tier_recompute::evaluate_member(&h.deps, &id, now).await.unwrap(),
        tier_recompute::Step::Unchanged,
        "once a night"
    );

    let app = signup_on(&h.deps);
    let (status, p, _) = answer(
        signup::handle(
            &app,
            request("GET", &format!("/members/{id}"), None, As::Member(id.clone())),
        )
        .await,
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["tier"], "gold");
    assert_eq!(p["tierSince"], json!(now));
    assert_eq!(
        p["tierProtectedUntil"],
        Value::Null,
        "a tier entered by stepping down is not protected"
    );
    assert_eq!(p["rollingSpend"], 1_200_000);
    assert_eq!(
        p["nextTier"],
        json!({"tier": "diamond", "threshold": 5_000_000, "spendNeeded": 3_800_000})
    );
    assert_eq!(p["spendToKeepTier"], 0);
    assert_eq!(p["benefits"]["memberDiscountPercent"], 20);
    assert_eq!(
        p["benefits"]["birthdayCoupon"]["offer"],
        json!({"kind": "amount_off", "value": 8000, "minSpend": 20000})
    );
    let history = h.deps.store.tier_history(&id).await.unwrap();
    assert_eq!(
        history.iter().map(|c| (c.from, c.to, c.reason.as_str(), c.at)).collect::<Vec<_>>(),
        vec![(TierCode::Diamond, TierCode::Gold, "step_down", now)]
    );
}
