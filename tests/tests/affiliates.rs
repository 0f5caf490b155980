//! Affiliate partners (issue #19) through the real handlers against the local stack:
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_month_of_300_attributed_orders_and_30_refunds_equals_the_reference_statement() {
    statement_matches_reference(300).await;
}

/// The size: 1,000 orders and 100 refunds (about a minute on the local stack):
/// `cargo nextest run -p loyalty-tests --test affiliates --run-ignored all`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn a_month_of_1000_attributed_orders_and_100_refunds_equals_the_reference_statement() {
    statement_matches_reference(1_000).await;
}
