//! Member support for the operator console: the search by id or verified contact, the
//! support ledger, manual points adjustments and erasure by support — and what a lying caller
//! could gain from them (nothing: a member's token is refused, a replayed adjustment credits
//! once, a reused key with another body is refused, a negative adjustment makes no debt).

use loyalty_tests::*;
use serde_json::{json, Value};

struct Apps {
    signup: signup::App,
    points: purchase_points::App,
}

async fn apps() -> (Harness, Apps) {
    let h = harness().await;
    let apps = Apps {
        signup: signup::App { deps: h.deps.clone(), codes: code_key(), contacts: contact_key() },
        points: h.points_app(),
    };
    (h, apps)
}

/// A member who joined with a verified email (and an unverified phone in the body).
async fn member(a: &Apps, email: &str) -> String {
    let id = unique("sup");
    let who = As::MemberWithClaims(id.clone(), verified_claims(Some(email), None));
    let body =
        json!({ "name": "Support Case", "phone": "+8613800138000", "marketingConsent": false });
    let (s, b, _) = answer(
        signup::handle(&a.signup, request("POST", "/members", Some(&body.to_string()), who)).await,
    );
    assert_eq!(s, 201, "{b}");
    id
}

async fn search(a: &Apps, body: Value, who: As) -> (u16, Value, String) {
    answer(
        signup::handle(
            &a.signup,
            request("POST", "/support/members/search", Some(&body.to_string()), who),
        )
        .await,
    )
}

async fn adjust(
    a: &Apps,
    id: &str,
    key: Option<&str>,
    body: Value,
    who: As,
) -> (u16, Value, String) {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    let path = format!("/support/members/{id}/adjustments");
    answer(
        purchase_points::handle(
            &a.points,
            request_with_headers("POST", &path, Some(&body.to_string()), who, &headers),
        )
        .await,
    )
}

async fn ledger(a: &Apps, id: &str) -> Vec<Value> {
    let path = format!("/support/members/{id}/ledger?limit=100");
    let (s, b, _) =
        answer(purchase_points::handle(&a.points, request("GET", &path, None, As::Operator)).await);
    assert_eq!(s, 200, "{b}");
    b["entries"].as_array().unwrap().clone()
}

async fn profile(a: &Apps, id: &str) -> Value {
    let (s, b, _) = search(a, json!({ "memberId": id }), As::Operator).await;
    assert_eq!(s, 200, "{b}");
    b["profile"].clone()
}

fn ledger_sum(entries: &[Value]) -> i64 {
    entries.iter().map(|e| e["points"].as_i64().unwrap()).sum()
}

#[tokio::test]
async fn support_finds_a_member_by_id_or_verified_email_but_not_by_an_unverified_phone() {
    let (_h, a) = apps().await;
    let email = format!("{}@example.com", unique("case"));
    let id = member(&a, &email).await;

    let (s, by_id, _) = search(&a, json!({ "memberId": id }), As::Operator).await;
    assert_eq!(s, 200, "{by_id}");
    assert_eq!(by_id["matchedBy"], "memberId");
    assert_eq!(by_id["profile"]["memberId"], id.as_str());
    assert!(by_id["tierHistory"].is_array());

    // Contacts are normalized as signup normalizes them, then found by their keyed digest.
    let (s, by_email, _) =
        search(&a, json!({ "email": format!("  {}", email.to_uppercase()) }), As::Operator).await;
    assert_eq!(s, 200, "{by_email}");
    assert_eq!(by_email["matchedBy"], "email");
    assert_eq!(by_email["profile"]["memberId"], id.as_str());

    // The phone was only in the body (unverified): it reserved nothing, so it finds nobody.
    let (s, b, ct) = search(&a, json!({ "phone": "+8613800138000" }), As::Operator).await;
    assert_problem(s, &b, &ct, 404, "member_not_found");

    let (s, b, ct) = search(&a, json!({ "memberId": id, "email": email }), As::Operator).await;
    assert_problem(s, &b, &ct, 422, "one_search_key");
    let (s, b, ct) = search(&a, json!({}), As::Operator).await;
    assert_problem(s, &b, &ct, 422, "one_search_key");
}

#[tokio::test]
async fn a_member_token_or_the_order_system_cannot_use_the_support_routes() {
    let (_h, a) = apps().await;
    let email = format!("{}@example.com", unique("case"));
    let id = member(&a, &email).await;
    for who in [As::Member(id.clone()), As::OrderSystem, As::OtherIam] {
        // Not even the member themself: a token never reaches support's view or its pen.
        let (s, b, ct) = search(&a, json!({ "email": email }), who.clone()).await;
        assert_problem(s, &b, &ct, 403, "forbidden");
        let (s, b, ct) =
            adjust(&a, &id, Some("k-lie"), json!({ "points": 5000, "reason": "me" }), who.clone())
                .await;
        assert_problem(s, &b, &ct, 403, "forbidden");
        let path = format!("/support/members/{id}/ledger");
        let (s, b, ct) = answer(
            purchase_points::handle(&a.points, request("GET", &path, None, who.clone())).await,
        );
        assert_problem(s, &b, &ct, 403, "forbidden");
        let path = format!("/support/members/{id}/reward-claims");
        let (s, b, ct) = answer(
            purchase_points::handle(&a.points, request("GET", &path, None, who.clone())).await,
        );
        assert_problem(s, &b, &ct, 403, "forbidden");
        let path = format!("/support/members/{id}");
        let (s, b, ct) =
            answer(signup::handle(&a.signup, request("DELETE", &path, None, who.clone())).await);
        assert_problem(s, &b, &ct, 403, "forbidden");
    }
    let (s, b, ct) = search(&a, json!({ "memberId": id }), As::Nobody).await;
    assert_problem(s, &b, &ct, 401, "unauthenticated");
    // Nothing moved.
    assert_eq!(profile(&a, &id).await["points"], 100);
    assert_eq!(ledger(&a, &id).await.len(), 1);
}

#[tokio::test]
async fn an_adjustment_is_one_ledger_entry_with_its_reason_and_a_replay_credits_nothing_twice() {
    let (_h, a) = apps().await;
    let id = member(&a, &format!("{}@example.com", unique("case"))).await;
    let body = json!({ "points": 250, "reason": "parcel arrived damaged" });

    let (s, first, _) = adjust(&a, &id, Some("adj-1"), body.clone(), As::Operator).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["pointsAdjusted"], 250);
    assert_eq!(first["points"], 350);
    assert!(first["adjustedBy"].as_str().unwrap().contains("loyalty-operators"), "{first}");

    // The same key and body: the first answer, no second credit.
    let (s, again, _) = adjust(&a, &id, Some("adj-1"), body.clone(), As::Operator).await;
    assert_eq!((s, &again), (201, &first));
    // The same key with another body: refused, nothing changes.
    let (s, b, ct) = adjust(
        &a,
        &id,
        Some("adj-1"),
        json!({ "points": 2500, "reason": "parcel arrived damaged" }),
        As::Operator,
    )
    .await;
    assert_problem(s, &b, &ct, 409, "idempotency_key_reused");
    // No key at all: refused before anything is read.
    let (s, b, ct) = adjust(&a, &id, None, body.clone(), As::Operator).await;
    assert_problem(s, &b, &ct, 400, "idempotency_key_required");

    let entries = ledger(&a, &id).await;
    let adjustments: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "adjustment").collect();
    assert_eq!(adjustments.len(), 1, "{entries:?}");
    assert_eq!(adjustments[0]["reason"], "parcel arrived damaged");
    assert_eq!(adjustments[0]["points"], 250);
    assert_eq!(adjustments[0]["reference"], first["reference"]);
    // points == Σ ledger.
    let p = profile(&a, &id).await;
    assert_eq!(p["points"], 350);
    assert_eq!(ledger_sum(&entries), 350);
}

#[tokio::test]
async fn a_negative_adjustment_never_takes_the_balance_below_what_is_available() {
    let (_h, a) = apps().await;
    let id = member(&a, &format!("{}@example.com", unique("case"))).await;

    let (s, b, ct) = adjust(
        &a,
        &id,
        Some("neg-1"),
        json!({ "points": -101, "reason": "duplicate credit" }),
        As::Operator,
    )
    .await;
    assert_problem(s, &b, &ct, 422, "insufficient_points");
    // A refused key can be used again once the body is right (nothing was recorded).
    let (s, b, _) = adjust(
        &a,
        &id,
        Some("neg-1"),
        json!({ "points": -100, "reason": "duplicate credit" }),
        As::Operator,
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["points"], 0);

    for (body, code) in [
        (json!({ "points": 0, "reason": "x" }), "invalid_points"),
        (json!({ "points": 1_000_001, "reason": "typo" }), "invalid_points"),
        (json!({ "points": 5, "reason": "   " }), "reason_required"),
        (json!({ "points": 5, "reason": "x".repeat(201) }), "reason_required"),
    ] {
        let (s, b, ct) = adjust(&a, &id, Some(&unique("bad")), body, As::Operator).await;
        assert_problem(s, &b, &ct, 422, code);
    }
    let (s, b, ct) = adjust(&a, &id, Some("no-reason"), json!({ "points": 5 }), As::Operator).await;
    assert_problem(s, &b, &ct, 400, "missing_field");

    let entries = ledger(&a, &id).await;
    assert_eq!(ledger_sum(&entries), 0);
    assert_eq!(profile(&a, &id).await["points"], 0);
}

#[tokio::test]
async fn support_erases_a_member_and_the_contact_then_finds_nobody() {
    let (_h, a) = apps().await;
    let email = format!("{}@example.com", unique("case"));
    let id = member(&a, &email).await;
    let path = format!("/support/members/{id}");
    let resp = signup::handle(&a.signup, request("DELETE", &path, None, As::Operator)).await;
    assert_eq!(resp.status().as_u16(), 204);
    let (s, b, ct) = search(&a, json!({ "email": email }), As::Operator).await;
    assert_problem(s, &b, &ct, 404, "member_not_found");
    let (s, b, ct) = search(&a, json!({ "memberId": id }), As::Operator).await;
    assert_problem(s, &b, &ct, 404, "member_not_found");
    // Points cannot be moved on an erased member.
    let (s, b, ct) =
        adjust(&a, &id, Some("after"), json!({ "points": 5, "reason": "late" }), As::Operator)
            .await;
    assert_problem(s, &b, &ct, 404, "member_not_found");
}
