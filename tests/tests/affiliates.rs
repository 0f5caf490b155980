//! Affiliate partners through the real handlers against the local stack:
//! operators register partners and codes; orders that carry a code earn the partner a
//! commission on what was paid, pending through the return window and reversed by refunds;
//! a month's statement equals a reference computed here independently; self-referral,
//! inactive partners and unknown codes earn nothing; marking a month paid pays once, also
//! under racing calls; each order with a code stays one read and one write request.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::StreamExt;
use loyalty::app::Clock;
use loyalty::Rules;
use loyalty_tests::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A Friday that is not a member day, noon in Shanghai (the program's time zone).
const NOW: &str = "2026-11-20T04:00:00Z";
const MONTH: &str = "2026-11";

struct T {
    points: purchase_points::App,
    clock: Arc<Mutex<DateTime<Utc>>>,
    h: Harness,
}

async fn setup() -> T {
    let clock = Arc::new(Mutex::new(at(NOW)));
    let h = harness_with(Rules::default(), Clock::Shared(clock.clone())).await;
    T { points: h.points_app(), clock, h }
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

impl T {
    fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    fn set(&self, to: &str) {
        *self.clock.lock().unwrap() = at(to);
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        who: As,
    ) -> (u16, Value, String) {
        let text = body.map(Value::to_string);
        answer(
            purchase_points::handle(&self.points, request(method, path, text.as_deref(), who))
                .await,
        )
    }

    /// Members as signup stores them, written straight to the table.
    async fn members(&self, n: usize) -> Vec<String> {
        let ids: Vec<String> = (0..n).map(|_| unique("af")).collect();
        let joined = self.now() - Duration::days(30);
        let members: Vec<_> =
            ids.iter().map(|id| plain_member(id, loyalty::TierCode::Regular, joined)).collect();
        seed_members(&self.h, &members, joined).await;
        ids
    }

    /// A partner registered by an operator; answers its id and first code.
    async fn partner(&self, body: Value) -> (String, String) {
        let (s, b, _) = self.call("POST", "/partners", Some(&body), As::Operator).await;
        assert_eq!(s, 201, "{b}");
        (b["partnerId"].as_str().unwrap().into(), b["trackingCode"].as_str().unwrap().into())
    }

    async fn buy(
        &self,
        id: &str,
        order: &str,
        fen: i64,
        channel: &str,
        code: Option<&str>,
        occurred: DateTime<Utc>,
    ) -> (u16, Value, String) {
        let mut body = json!({"orderId": order, "amount": fen, "currency": "CNY", "channel": channel, "occurredAt": occurred});
        if let Some(c) = code {
            body["trackingCode"] = json!(c);
        }
        self.call(
            "POST",
            &format!("/internal/members/{id}/purchases"),
            Some(&body),
            As::OrderSystem,
        )
        .await
    }

    async fn refund(&self, id: &str, order: &str, refund: &str, fen: i64) -> Value {
        let body = json!({"orderId": order, "refundId": refund, "amount": fen});
        let (s, b, _) = self
            .call("POST", &format!("/internal/members/{id}/refunds"), Some(&body), As::OrderSystem)
            .await;
        assert_eq!(s, 201, "{b}");
        b
    }

    async fn statement(&self, partner: &str, month: &str) -> Value {
        let (s, b, _) = self
            .call("GET", &format!("/partners/{partner}/statements/{month}"), None, As::Operator)
            .await;
        assert_eq!(s, 200, "{b}");
        b
    }

    async fn pay(&self, partner: &str, month: &str) -> (u16, Value, String) {
        self.call(
            "POST",
            &format!("/partners/{partner}/statements/{month}/paid"),
            None,
            As::Operator,
        )
        .await
    }
}

/// A small deterministic generator (the same orders every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// One order of the reference: what it paid, its channel, its purchase day, its refunds.
struct RefOrder {
    member: String,
    order: String,
    paid: i64,
    online: bool,
    day: NaiveDate,
    refunds: Vec<i64>,
}

/// The reference statement, computed from the orders as generated (not from anything the
/// engine stored): rate by channel, floor(paid × rate / 10,000), reversed floor(commission ×
/// refunded / paid), pending while the purchase day + 7 is after `today`.
fn reference(orders: &[RefOrder], today: NaiveDate) -> Value {
    let (mut paid, mut refunded, mut accrued, mut reversed, mut pending, mut payable) =
        (0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
    for o in orders {
        let rate = if o.online { 1200 } else { 1000 };
        let c = o.paid * rate / 10_000;
        let r: i64 = o.refunds.iter().sum();
        let back = c * r / o.paid;
        paid += o.paid;
        refunded += r;
        accrued += c;
        reversed += back;
        if o.day + Duration::days(7) > today {
            pending += c - back;
        } else {
            payable += c - back;
        }
    }
    json!({"orders": orders.len(), "paidAmount": paid, "refunded": refunded, "commissionAccrued": accrued,
           "commissionReversed": reversed, "adjustments": 0, "pending": pending, "payable": payable})
}

fn figures(statement: &Value) -> Value {
    let keys = [
        "orders",
        "paidAmount",
        "refunded",
        "commissionAccrued",
        "commissionReversed",
        "adjustments",
        "pending",
        "payable",
    ];
    Value::Object(keys.iter().map(|k| (k.to_string(), statement[*k].clone())).collect())
}

/// `n` orders through the purchase route with the partner's code (concurrently, across 40
/// members), then `n / 10` refunds, some partial and some in two parts, half before and half
/// after the first orders' release; the statement equals the reference on the way and once
/// every window has ended, and marking it paid pays the reference's payable.
async fn statement_matches_reference(n: usize) {
    let t = setup().await;
    let (partner, code) = t
        .partner(
            json!({"name": "Reference", "rateBasisPoints": 1000, "channelRates": {"online": 1200}}),
        )
        .await;
    let members = t.members(40).await;
    let mut g = Lcg(n as u64);
    let now = t.now();
    let mut orders: Vec<RefOrder> = (0..n)
        .map(|i| {
            let hours = g.next(96) as i64;
            let occurred = now - Duration::hours(hours);
            RefOrder {
                member: members[i % members.len()].clone(),
                order: format!("o-{i}-{}", unique("x")),
                paid: 100 + g.next(2_000_000) as i64,
                online: g.next(2) == 0,
                day: loyalty::calendar::program_date(Rules::default().time_zone, occurred),
                refunds: Vec::new(),
            }
        })
        .collect();
    futures::stream::iter(orders.iter())
        .for_each_concurrent(8, |o| {
            let (t, code, partner) = (&t, &code, &partner);
            async move {
                // Noon of the purchase day in Shanghai: the day the reference uses.
                let noon = o.day.and_hms_opt(4, 0, 0).unwrap().and_utc().min(t.now());
                let channel = if o.online { "online" } else { "store" };
                let (s, b, _) = t.buy(&o.member, &o.order, o.paid, channel, Some(code), noon).await;
                assert_eq!(s, 201, "{b}");
                assert_eq!(b["affiliate"]["partnerId"], json!(partner), "{b}");
            }
        })
        .await;
    let before = t.statement(&partner, MONTH).await;
    assert_eq!(figures(&before), reference(&orders, day("2026-11-20")), "{before}");
    assert_eq!(before["state"], "open");

    // Refunds: a tenth of the orders, half of them before the orders' release.
    let refunded: Vec<usize> = (0..n / 10).map(|k| k * 10 + 3).collect();
    for (k, i) in refunded.iter().enumerate() {
        if k == refunded.len() / 2 {
            t.set("2026-11-26T04:00:00Z");
        }
        let o = &mut orders[*i];
        let parts = match k % 3 {
            0 => vec![o.paid],
            1 => vec![o.paid / 3],
            _ => vec![o.paid / 4, o.paid - o.paid / 4],
        };
        for (j, part) in parts.into_iter().enumerate() {
            let b = t.refund(&o.member, &o.order, &format!("{}-r{j}", o.order), part).await;
            assert_eq!(b["affiliate"]["month"], MONTH, "{b}");
            o.refunds.push(part);
        }
    }
    let mid = t.statement(&partner, MONTH).await;
    assert_eq!(figures(&mid), reference(&orders, day("2026-11-26")), "{mid}");

    t.set("2026-12-02T04:00:00Z");
    let last = t.statement(&partner, MONTH).await;
    let want = reference(&orders, day("2026-12-02"));
    assert_eq!(figures(&last), want, "{last}");
    assert_eq!((last["state"].as_str(), last["pending"].as_i64()), (Some("payable"), Some(0)));
    let (s, paid, _) = t.pay(&partner, MONTH).await;
    assert_eq!(s, 200, "{paid}");
    assert_eq!(paid["state"], "paid");
    assert_eq!(paid["paid"], want["payable"]);
    assert_eq!(paid["payable"], 0);
}

/// The issue's size, through the real purchase and refund routes (about 15 s locally).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_month_of_1000_attributed_orders_and_100_refunds_equals_the_reference_statement() {
    statement_matches_reference(1_000).await;
}

#[tokio::test]
async fn a_member_who_sends_their_own_partner_s_code_earns_nothing() {
    let t = setup().await;
    let ids = t.members(2).await;
    let (influencer, fan) = (&ids[0], &ids[1]);
    let (partner, code) = t
        .partner(json!({"name": "Influencer", "rateBasisPoints": 1500, "memberId": influencer}))
        .await;
    let now = t.now();
    let (s, own, _) = t.buy(influencer, "own-1", 100_000, "online", Some(&code), now).await;
    assert_eq!(s, 201, "{own}");
    assert_eq!(
        own["affiliate"],
        json!({"trackingCode": code, "partnerId": partner, "commission": 0, "reason": "self_referral"})
    );
    assert!(own["pointsEarned"].as_i64().unwrap() > 0, "the order itself is recorded: {own}");
    // Through a checkout too: the quote keeps the code, the confirm earns nothing.
    let quote = json!({"orderId": "own-2", "amount": 50_000, "currency": "CNY", "channel": "online", "trackingCode": code});
    let path = format!("/internal/members/{influencer}/checkouts");
    let (s, b, _) = t.call("POST", &path, Some(&quote), As::OrderSystem).await;
    assert_eq!(s, 201, "{b}");
    let (s, confirmed, _) =
        t.call("POST", &format!("{path}/own-2/confirm"), None, As::OrderSystem).await;
    assert_eq!(s, 200, "{confirmed}");
    assert_eq!(confirmed["affiliate"]["reason"], "self_referral");
    assert_eq!(confirmed["affiliate"]["commission"], 0);
    // Another member's order with the same code earns.
    let (_, theirs, _) = t.buy(fan, "fan-1", 100_000, "online", Some(&code), now).await;
    assert_eq!(theirs["affiliate"]["commission"], 15_000, "{theirs}");
    let st = t.statement(&partner, MONTH).await;
    assert_eq!((st["orders"].as_i64(), st["commissionAccrued"].as_i64()), (Some(1), Some(15_000)));
    let month = t.h.deps.store.partner_month(&partner, MONTH).await.unwrap();
    assert_eq!(month.orders.len(), 1);
    assert_eq!(&month.orders[0].member_id, fan);
}

#[tokio::test]
async fn inactive_partners_and_unknown_codes_earn_nothing_and_the_order_is_recorded() {
    let t = setup().await;
    let id = t.members(1).await.remove(0);
    let (partner, code) = t.partner(json!({"name": "Seasonal", "rateBasisPoints": 500})).await;
    let path = format!("/partners/{partner}");
    let (s, b, _) =
        t.call("PATCH", &path, Some(&json!({"status": "inactive"})), As::Operator).await;
    assert_eq!((s, b["status"].as_str(), b["version"].as_i64()), (200, Some("inactive"), Some(2)));
    let now = t.now();
    let (s, b, _) = t.buy(&id, "in-1", 20_000, "store", Some(&code), now).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["affiliate"]["reason"], "partner_inactive");
    assert_eq!(b["affiliate"]["commission"], 0);
    let (s, b, _) = t.buy(&id, "in-2", 20_000, "store", Some("ZZZZ9999"), now).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        b["affiliate"],
        json!({"trackingCode": "ZZZZ9999", "commission": 0, "reason": "unknown_code"})
    );
    let member = t.h.deps.store.member(&id).await.unwrap().unwrap();
    assert_eq!(member.order_count, 2, "both orders are recorded");
    assert_eq!(t.statement(&partner, MONTH).await["orders"], 0);
    // Active again: the next order earns (every code item got the new terms with the change).
    let (s, _, _) = t.call("PATCH", &path, Some(&json!({"status": "active"})), As::Operator).await;
    assert_eq!(s, 200);
    let (_, b, _) = t.buy(&id, "in-3", 20_000, "store", Some(&code), now).await;
    assert_eq!(b["affiliate"]["commission"], 1_000, "{b}");
    let (s, more, _) = t.call("POST", &format!("{path}/codes"), None, As::Operator).await;
    assert_eq!(s, 201, "{more}");
    let second = more["trackingCode"].as_str().unwrap().to_string();
    assert_eq!(more["codes"], json!([code, second]));
    let (_, b, _) = t.buy(&id, "in-4", 10_000, "online", Some(&second), now).await;
    assert_eq!(
        (b["affiliate"]["partnerId"].as_str(), b["affiliate"]["commission"].as_i64()),
        (Some(partner.as_str()), Some(500))
    );
    assert_eq!(t.statement(&partner, MONTH).await["commissionAccrued"], 1_500);
}

#[tokio::test]
async fn refunds_reverse_exactly_the_refunded_share_and_retries_do_not_double() {
    let t = setup().await;
    let id = t.members(1).await.remove(0);
    let (partner, code) = t.partner(json!({"name": "Exact", "rateBasisPoints": 1000})).await;
    let now = t.now();
    let first = t.buy(&id, "ex-1", 9_973, "store", Some(&code), now).await;
    assert_eq!(first.1["affiliate"]["commission"], 997);
    assert_eq!(first.1["affiliate"]["pendingUntil"], "2026-11-27");
    // The same purchase again, also racing: the first answer, one commission.
    let again = futures::future::join_all(
        (0..5).map(|_| t.buy(&id, "ex-1", 9_973, "store", Some(&code), now)),
    )
    .await;
    for a in again {
        assert_eq!((a.0, &a.1), (201, &first.1));
    }
    let mut reversed = Vec::new();
    for (k, part) in [1, 3_000, 333, 6_639].into_iter().enumerate() {
        let b = t.refund(&id, "ex-1", &format!("ex-1-r{k}"), part).await;
        reversed.push(b["affiliate"]["commissionReversed"].as_i64().unwrap());
        // A retried refund is answered again and reverses nothing more.
        assert_eq!(t.refund(&id, "ex-1", &format!("ex-1-r{k}"), part).await, b);
    }
    assert_eq!(reversed.iter().sum::<i64>(), 997, "{reversed:?}");
    let st = t.statement(&partner, MONTH).await;
    assert_eq!(
        figures(&st),
        json!({"orders": 1, "paidAmount": 9_973, "refunded": 9_973, "commissionAccrued": 997, "commissionReversed": 997, "adjustments": 0, "pending": 0, "payable": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_month_is_paid_once_and_later_refunds_are_charged_to_the_month_they_happen_in() {
    let t = setup().await;
    let ids = t.members(3).await;
    let (partner, code) = t.partner(json!({"name": "Monthly", "rateBasisPoints": 1000})).await;
    for (i, id) in ids.iter().enumerate() {
        // The last order on the month's last day: it leaves its return window on Dec 7.
        if i == 2 {
            t.set("2026-11-30T04:00:00Z");
        }
        let (s, b, _) = t.buy(id, &format!("pm-{i}"), 100_000, "store", Some(&code), t.now()).await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, b, ct) = t.pay(&partner, MONTH).await;
    assert_problem(s, &b, &ct, 409, "month_not_over");
    assert_eq!(t.statement(&partner, MONTH).await["state"], "open");
    t.set("2026-12-01T04:00:00Z");
    let (s, b, ct) = t.pay(&partner, MONTH).await;
    assert_problem(s, &b, &ct, 409, "commission_pending");
    let pending = t.statement(&partner, MONTH).await;
    assert_eq!(
        (pending["state"].as_str(), pending["pending"].as_i64(), pending["payable"].as_i64()),
        (Some("pending"), Some(10_000), Some(20_000))
    );
    t.set("2026-12-07T04:00:00Z");
    assert_eq!(t.statement(&partner, MONTH).await["state"], "payable");
    // Ten racing calls: one statement, the same answer to all.
    let calls = futures::future::join_all((0..10).map(|_| t.pay(&partner, MONTH))).await;
    let first = calls[0].1.clone();
    for (s, b, _) in &calls {
        assert_eq!((*s, b), (200, &first));
    }
    assert_eq!(
        (first["state"].as_str(), first["paid"].as_i64(), first["payable"].as_i64()),
        (Some("paid"), Some(30_000), Some(0))
    );
    let (s, again, _) = t.pay(&partner, MONTH).await;
    assert_eq!((s, &again), (200, &first), "marking paid twice pays once");
    let month = t.h.deps.store.partner_month(&partner, MONTH).await.unwrap();
    let stmt = month.statement.unwrap();
    assert_eq!(stmt.statement.unwrap().paid, loyalty::Fen(30_000));
    // A refund after the payment: charged to December, November stays as paid.
    let b = t.refund(&ids[0], "pm-0", "pm-0-r", 40_000).await;
    assert_eq!(
        b["affiliate"],
        json!({"partnerId": partner, "commissionReversed": 4_000, "month": "2026-12", "adjustment": true})
    );
    assert_eq!(t.statement(&partner, MONTH).await, first);
    let dec = t.statement(&partner, "2026-12").await;
    assert_eq!(
        (dec["orders"].as_i64(), dec["adjustments"].as_i64(), dec["payable"].as_i64()),
        (Some(0), Some(4_000), Some(-4_000))
    );
    // The rest of that order's refund: the cumulative share, charged to December again.
    let b = t.refund(&ids[0], "pm-0", "pm-0-r2", 60_000).await;
    assert_eq!(b["affiliate"]["commissionReversed"], 6_000);
    assert_eq!(t.statement(&partner, "2026-12").await["adjustments"], 10_000);
}

/// method, path, body, caller, status, code
type Case = (&'static str, &'static str, Option<Value>, As, u16, &'static str);

#[tokio::test]
async fn bad_input_is_a_problem_and_changes_nothing() {
    let t = setup().await;
    let id = t.members(1).await.remove(0);
    let before = t.h.deps.store.member(&id).await.unwrap().unwrap();
    let now = t.now();
    for bad in ["abc", "abcdefgh", "ABCD-123", "ILLEGAL1", "AAAAAAAAAAAAAAAAA"] {
        let (s, b, ct) = t.buy(&id, "bad-1", 10_000, "store", Some(bad), now).await;
        assert_problem(s, &b, &ct, 422, "invalid_tracking_code");
    }
    let quote = json!({"orderId": "bad-2", "amount": 10_000, "currency": "CNY", "channel": "store", "trackingCode": "nope"});
    let (s, b, ct) = t
        .call("POST", &format!("/internal/members/{id}/checkouts"), Some(&quote), As::OrderSystem)
        .await;
    assert_problem(s, &b, &ct, 422, "invalid_tracking_code");
    assert_eq!(
        t.h.deps.store.member(&id).await.unwrap().unwrap().version,
        before.version,
        "nothing written"
    );

    let cases: Vec<Case> = vec![
        (
            "POST",
            "/partners",
            Some(json!({"name": "Greedy", "rateBasisPoints": 1501})),
            As::Operator,
            422,
            "rate_above_cap",
        ),
        (
            "POST",
            "/partners",
            Some(json!({"name": "Ch", "rateBasisPoints": 100, "channelRates": {"store": 2000}})),
            As::Operator,
            422,
            "rate_above_cap",
        ),
        (
            "POST",
            "/partners",
            Some(json!({"name": "", "rateBasisPoints": 100})),
            As::Operator,
            422,
            "invalid_name",
        ),
        (
            "POST",
            "/partners",
            Some(json!({"name": "X", "rateBasisPoints": 100, "memberId": "a b"})),
            As::Operator,
            422,
            "invalid_member_id",
        ),
        (
            "POST",
            "/partners",
            Some(json!({"name": "X", "rateBasisPoints": 100, "apiKey": "x"})),
            As::Operator,
            400,
            "unknown_field",
        ),
        (
            "POST",
            "/partners",
            Some(json!({"name": "X", "rateBasisPoints": 100})),
            As::OrderSystem,
            403,
            "forbidden",
        ),
        (
            "POST",
            "/partners",
            Some(json!({"name": "X", "rateBasisPoints": 100})),
            As::Member(id.clone()),
            403,
            "forbidden",
        ),
        ("GET", "/partners/p-nobody", None, As::Operator, 404, "partner_not_found"),
        (
            "GET",
            "/partners/p-nobody/statements/2026-11",
            None,
            As::Operator,
            404,
            "partner_not_found",
        ),
        ("GET", "/partners/p-x/statements/2026-13", None, As::Operator, 400, "invalid_month"),
        ("POST", "/partners/p-x/statements/11-2026/paid", None, As::Operator, 400, "invalid_month"),
        ("DELETE", "/partners/p-x", None, As::Operator, 405, "method_not_allowed"),
    ];
    for (method, path, body, who, status, code) in cases {
        let (s, b, ct) = t.call(method, path, body.as_ref(), who).await;
        assert_problem(s, &b, &ct, status, code);
    }
    let (partner, _) = t.partner(json!({"name": "Fine", "rateBasisPoints": 100})).await;
    let path = format!("/partners/{partner}");
    for (body, code) in
        [(json!({}), "empty_patch"), (json!({"rateBasisPoints": 9_000}), "rate_above_cap")]
    {
        let (s, b, ct) = t.call("PATCH", &path, Some(&body), As::Operator).await;
        assert_problem(s, &b, &ct, 422, code);
    }
    let (_, shown, _) = t.call("GET", &path, None, As::Operator).await;
    assert_eq!(
        (shown["version"].as_i64(), shown["rateBasisPoints"].as_i64()),
        (Some(1), Some(100))
    );
}

#[tokio::test]
async fn each_order_with_a_code_is_one_read_and_one_write_request() {
    let t = setup().await;
    let id = t.members(1).await.remove(0);
    let (partner, code) = t.partner(json!({"name": "Counted", "rateBasisPoints": 1000})).await;
    let now = t.now();
    let mut counts = Vec::new();
    let mut count =
        |what: &'static str, t: &T| counts.push((what, t.h.counter.reads(), t.h.counter.writes()));
    t.h.counter.reset();
    assert_eq!(t.buy(&id, "c-1", 30_000, "online", Some(&code), now).await.0, 201);
    count("purchase with a code", &t);
    t.h.counter.reset();
    assert_eq!(t.buy(&id, "c-2", 30_000, "online", Some("QQQQ7777"), now).await.0, 201);
    count("purchase with an unknown code", &t);
    t.h.counter.reset();
    t.refund(&id, "c-1", "c-1-r", 10_000).await;
    count("refund of an attributed order", &t);
    let path = format!("/internal/members/{id}/checkouts");
    let quote = json!({"orderId": "c-3", "amount": 20_000, "currency": "CNY", "channel": "online", "trackingCode": code});
    t.h.counter.reset();
    assert_eq!(t.call("POST", &path, Some(&quote), As::OrderSystem).await.0, 201);
    count("checkout quote with a code", &t);
    t.h.counter.reset();
    let (s, confirmed, _) =
        t.call("POST", &format!("{path}/c-3/confirm"), None, As::OrderSystem).await;
    assert_eq!(s, 200, "{confirmed}");
    assert_eq!(confirmed["affiliate"]["commission"], 2_000);
    count("checkout confirm", &t);
    t.h.counter.reset();
    t.statement(&partner, MONTH).await;
    count("statement", &t);
    t.set("2026-12-08T04:00:00Z");
    t.h.counter.reset();
    assert_eq!(t.pay(&partner, MONTH).await.0, 200);
    count("mark paid", &t);
    t.h.counter.reset();
    t.refund(&id, "c-1", "c-1-r2", 10_000).await;
    count("refund after the month was paid", &t);
    assert_eq!(
        counts,
        vec![
            ("purchase with a code", 1, 1),
            ("purchase with an unknown code", 1, 1),
            ("refund of an attributed order", 1, 1),
            ("checkout quote with a code", 1, 1),
            ("checkout confirm", 1, 1),
            ("statement", 1, 0),
            ("mark paid", 1, 1),
            // The first write's condition tells the refund that the month is paid (it cannot
            // read the month's statement with the order: it learns the month from the order).
            ("refund after the month was paid", 2, 2),
        ]
    );
}

#[tokio::test]
async fn a_purchase_order_event_with_a_code_earns_like_the_route() {
    let t = setup().await;
    let id = t.members(1).await.remove(0);
    let (partner, code) = t.partner(json!({"name": "Queued", "rateBasisPoints": 700})).await;
    let event = json!({"type": "purchase", "memberId": id, "orderId": "q-1", "amount": 12_900, "currency": "CNY", "channel": "online", "occurredAt": t.now(), "trackingCode": code});
    let a = purchase_points::order_event(&t.points, &event.to_string()).await.unwrap();
    assert_eq!(a.status, 201);
    let b: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(b["affiliate"]["commission"], 903, "{b}");
    let refund = json!({"type": "refund", "memberId": id, "orderId": "q-1", "refundId": "q-1-r", "amount": 12_900});
    let r = purchase_points::order_event(&t.points, &refund.to_string()).await.unwrap();
    let r: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(r["affiliate"]["commissionReversed"], 903, "{r}");
    let st = t.statement(&partner, MONTH).await;
    assert_eq!(
        (st["commissionAccrued"].as_i64(), st["commissionReversed"].as_i64()),
        (Some(903), Some(903))
    );
}

/// Refunds racing the payment of their month: each lands in the paid statement or, once the
/// month is paid, as an adjustment of the current month; never in neither, never in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_racing_the_payment_are_counted_exactly_once() {
    let t = setup().await;
    let ids = t.members(20).await;
    let (partner, code) = t.partner(json!({"name": "Racing", "rateBasisPoints": 1000})).await;
    let now = t.now();
    for (i, id) in ids.iter().enumerate() {
        let (s, b, _) = t
            .buy(id, &format!("race-{i}"), 10_000 + i as i64 * 100, "store", Some(&code), now)
            .await;
        assert_eq!(s, 201, "{b}");
    }
    t.set("2026-12-08T04:00:00Z");
    let refunds = futures::future::join_all(ids.iter().enumerate().map(|(i, id)| {
        let t = &t;
        async move { t.refund(id, &format!("race-{i}"), &format!("race-{i}-r"), 5_000).await }
    }));
    let pays = futures::future::join_all((0..5).map(|_| t.pay(&partner, MONTH)));
    let (refunds, pays) = futures::join!(refunds, pays);
    assert!(pays.iter().all(|p| p.0 == 200 && p.1 == pays[0].1), "{pays:?}");
    let accrued: i64 = (0..20).map(|i| (10_000 + i * 100) / 10).sum();
    let reversed: i64 =
        (0..20).map(|i| ((10_000 + i * 100) / 10) * 5_000 / (10_000 + i * 100)).sum();
    let in_month = refunds.iter().filter(|r| r["affiliate"]["adjustment"] == false).count();
    let nov = t.statement(&partner, MONTH).await;
    let dec = t.statement(&partner, "2026-12").await;
    assert_eq!(nov["state"], "paid");
    assert_eq!(
        nov["paid"].as_i64().unwrap() - dec["adjustments"].as_i64().unwrap(),
        accrued - reversed,
        "paid {nov} less adjusted {dec}; {in_month} refunds landed before the payment"
    );
    assert_eq!(
        nov["commissionReversed"].as_i64().unwrap() + dec["adjustments"].as_i64().unwrap(),
        reversed
    );
}

/// The samples in events/ run in the README's order through the real handlers, on a table of
/// their own (their ids are fixed): the partner, an order with its code, the statement.
#[tokio::test]
async fn the_sample_events_run_in_order_through_the_handler() {
    use loyalty::runtime::{classify, Trigger};
    let h = harness_with(Rules::default(), Clock::Fixed(at("2026-11-27T10:00:00Z"))).await;
    let table = clone_table(&h, "affiliate-samples").await;
    // Locally both principal lists are empty: any IAM caller passes, as with scripts/dev.
    let deps = loyalty::app::Dependencies {
        store: loyalty::store::Store::new(h.deps.store.client.clone(), table.clone()),
        principals: Arc::new(Default::default()),
        ..h.deps.clone()
    };
    let points =
        purchase_points::App { deps: deps.clone(), sqs: h.points_app().sqs, codes: code_key() };
    let signup = signup_on(&deps);
    let sample = |name: &str| {
        let text = std::fs::read_to_string(format!(
            "{}/../events/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        match classify(serde_json::from_str(&text).unwrap()) {
            Ok(Trigger::Http(req)) => req,
            _ => panic!("{name} is not an HTTP request"),
        }
    };
    assert_eq!(answer(signup::handle(&signup, sample("signup-join")).await).0, 201);
    let mut answers = Vec::new();
    for name in [
        "partner-create",
        "partner-show",
        "partner-update",
        "partner-code",
        "purchase-tracking-code",
        "partner-statement",
        "partner-statement-paid",
    ] {
        let (s, b, _) = answer(
            purchase_points::handle(&points, sample(&format!("purchase-points-{name}"))).await,
        );
        assert!(s < 300, "{name}: {b}");
        answers.push((name, s, b));
    }
    assert_eq!(answers[0].2["trackingCode"], "MJKTENDS", "the first code derives from the key");
    assert_eq!(answers[4].2["affiliate"]["commission"], 1_990, "{}", answers[4].2);
    assert_eq!(
        (answers[5].2["orders"].as_i64(), answers[5].2["pending"].as_i64()),
        (Some(1), Some(1_990))
    );
    assert_eq!(
        (answers[6].2["state"].as_str(), answers[6].2["paid"].as_i64()),
        (Some("paid"), Some(0))
    );
    h.deps.store.client.delete_table().table_name(&table).send().await.unwrap();
}
