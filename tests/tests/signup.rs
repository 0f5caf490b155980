//! signup through the real handler against DynamoDB Local.

use loyalty::store::keys;
use loyalty_tests::*;
use serde_json::{json, Value};
use signup::App;

async fn app() -> (App, Harness) {
    let h = harness().await;
    (App { deps: h.deps.clone(), codes: code_key(), contacts: contact_key() }, h)
}

fn email() -> String {
    format!("{}@example.com", unique("m").to_lowercase())
}

fn phone() -> String {
    let n = unique("p").bytes().fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
    format!("+86139{:08}", n % 100_000_000)
}

async fn join(app: &App, sub: &str, body: Value) -> (u16, Value, String) {
    answer(
        signup::handle(
            app,
            request("POST", "/members", Some(&body.to_string()), As::Member(sub.into())),
        )
        .await,
    )
}

/// A signup whose token verified these contacts.
async fn join_verified(
    app: &App,
    sub: &str,
    email: Option<&str>,
    phone: Option<&str>,
    body: Value,
) -> (u16, Value, String) {
    let who = As::MemberWithClaims(sub.into(), verified_claims(email, phone));
    answer(signup::handle(app, request("POST", "/members", Some(&body.to_string()), who)).await)
}

async fn get_profile(app: &App, sub: &str, id: &str) -> (u16, Value, String) {
    answer(
        signup::handle(
            app,
            request("GET", &format!("/members/{id}"), None, As::Member(sub.into())),
        )
        .await,
    )
}

#[tokio::test]
async fn signup_gives_welcome_points_and_coupon_visible_in_profile_and_ledger() {
    let (app, _h) = app().await;
    let id = unique("member");
    let (status, body, ct) = join(&app, &id, json!({"email": email(), "name": "李伟", "birthday": "1990-05-18", "marketingConsent": true})).await;
    assert_eq!((status, ct.as_str()), (201, "application/json"), "{body}");
    assert_eq!(body["memberId"], id.as_str());
    assert_eq!(body["tier"], "regular");
    assert_eq!(body["points"], 100);
    assert_eq!(body["referralCode"].as_str().unwrap().len(), 8);
    assert_eq!(
        body["welcomeCoupon"]["offer"],
        json!({"kind": "amount_off", "value": 2000, "minSpend": 10000})
    );
    assert_eq!(body["welcomeCoupon"]["status"], "active");

    let (status, p, _) = get_profile(&app, &id, &id).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["points"], 100);
    assert_eq!(p["name"], "李伟");
    assert_eq!(p["marketingConsent"], true);
    assert!(p["consentAt"].is_string());
    assert_eq!(p["coupons"].as_array().unwrap().len(), 1);
    assert_eq!(p["coupons"][0]["code"], body["welcomeCoupon"]["code"]);
    assert_eq!(
        p["nextTier"],
        json!({"tier": "silver", "threshold": 200000, "spendNeeded": 200000})
    );
    assert_eq!(p["benefits"]["memberDiscountPercent"], 0);

    let ledger = app.deps.store.ledger_all(&id).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger.iter().map(|e| e.points.0).sum::<i64>(), 100);
    let coupons = app.deps.store.coupons(&id).await.unwrap();
    assert_eq!(coupons.len(), 1);
}

#[tokio::test]
async fn the_same_signup_again_gets_the_first_answer_and_a_different_one_is_409() {
    let (app, _h) = app().await;
    let id = unique("member");
    let body = json!({"email": email(), "name": "Ann"});
    let first = join(&app, &id, body.clone()).await;
    assert_eq!(first.0, 201);
    let again = join(&app, &id, body).await;
    assert_eq!((again.0, &again.1), (201, &first.1));
    let (s, b, ct) = join(&app, &id, json!({"email": email(), "name": "Other"})).await;
    assert_problem(s, &b, &ct, 409, "already_member");
    assert_eq!(app.deps.store.ledger_all(&id).await.unwrap().len(), 1, "welcome points once");
}

#[tokio::test]
async fn a_taken_verified_email_or_phone_is_409() {
    let (app, _h) = app().await;
    let (e, p) = (email(), phone());
    assert_eq!(
        join_verified(
            &app,
            &unique("a"),
            Some(&e),
            Some(&p),
            json!({"email": e, "phone": p, "name": "A"})
        )
        .await
        .0,
        201
    );
    let (s, b, ct) = join_verified(
        &app,
        &unique("b"),
        Some(&e.to_uppercase()),
        None,
        json!({"email": e.to_uppercase(), "name": "B"}),
    )
    .await;
    assert_problem(s, &b, &ct, 409, "email_taken");
    let (s, b, ct) = join_verified(&app, &unique("c"), None, Some(&p), json!({"name": "C"})).await;
    assert_problem(s, &b, &ct, 409, "phone_taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_signups_with_one_verified_email_make_exactly_one_member() {
    let (app, _h) = app().await;
    let e = email();
    let ids: Vec<String> = (0..20).map(|_| unique("racer")).collect();
    let results = futures::future::join_all(
        ids.iter().map(|id| join_verified(&app, id, Some(&e), None, json!({"name": "Racer"}))),
    )
    .await;
    let created: Vec<_> = results.iter().filter(|r| r.0 == 201).collect();
    assert_eq!(created.len(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.0 != 201) {
        assert_problem(r.0, &r.1, &r.2, 409, "email_taken");
    }
    let mut members = 0;
    for id in &ids {
        members += app.deps.store.member(id).await.unwrap().is_some() as usize;
    }
    assert_eq!(members, 1);
}

#[tokio::test]
async fn a_referral_code_links_the_new_member_and_an_unknown_one_is_422() {
    let (app, _h) = app().await;
    let referrer = unique("referrer");
    let (_, r, _) = join(&app, &referrer, json!({"email": email(), "name": "R"})).await;
    let code = r["referralCode"].as_str().unwrap().to_lowercase();
    let newbie = unique("newbie");
    assert_eq!(
        join(&app, &newbie, json!({"email": email(), "name": "N", "referralCode": code})).await.0,
        201
    );
    let m = app.deps.store.member(&newbie).await.unwrap().unwrap();
    assert_eq!(m.referred_by.unwrap().as_str(), referrer);

    let stranger = unique("stranger");
    let (s, b, ct) =
        join(&app, &stranger, json!({"email": email(), "name": "S", "referralCode": "ZZZZ9999"}))
            .await;
    assert_problem(s, &b, &ct, 422, "unknown_referral_code");
    assert!(app.deps.store.member(&stranger).await.unwrap().is_none());
}

#[tokio::test]
async fn bad_signups_are_4xx_problems_and_write_nothing() {
    let (app, _h) = app().await;
    let e = email();
    let long = "x".repeat(20_000);
    let cases: Vec<(Option<String>, u16, &str)> = vec![
        (Some(json!({"name": "A"}).to_string()), 422, "contact_required"),
        (Some(json!({"email": "not-an-email", "name": "A"}).to_string()), 422, "invalid_email"),
        (Some(json!({"email": "a@b", "name": "A"}).to_string()), 422, "invalid_email"),
        (
            Some(json!({"email": e, "phone": "13800138000", "name": "A"}).to_string()),
            422,
            "invalid_phone",
        ),
        (
            Some(json!({"phone": "+86 138 0013 8000", "name": "A"}).to_string()),
            422,
            "invalid_phone",
        ),
        (Some(json!({"email": e, "name": ""}).to_string()), 422, "invalid_name"),
        (Some(json!({"email": e, "name": "y".repeat(65)}).to_string()), 422, "invalid_name"),
        (
            Some(json!({"email": e, "name": "A", "birthday": "1990-02-30"}).to_string()),
            422,
            "invalid_birthday",
        ),
        (
            Some(json!({"email": e, "name": "A", "birthday": "2999-01-01"}).to_string()),
            422,
            "invalid_birthday",
        ),
        (
            Some(json!({"email": e, "name": "A", "birthday": "18/05/1990"}).to_string()),
            422,
            "invalid_birthday",
        ),
        (
            Some(json!({"email": e, "name": "A", "referralCode": "short"}).to_string()),
            422,
            "invalid_referral_code",
        ),
        (Some(json!({"email": e, "name": "A", "isAdmin": true}).to_string()), 400, "unknown_field"),
        (Some(json!({"email": e}).to_string()), 400, "missing_field"),
        (Some(json!({"email": e, "name": 42}).to_string()), 400, "invalid_field"),
        (
            Some(json!({"email": e, "name": "A", "marketingConsent": "yes"}).to_string()),
            400,
            "invalid_field",
        ),
        (Some("{\"email\": ".into()), 400, "malformed_json"),
        (Some("[]".into()), 400, "invalid_field"),
        (None, 400, "body_required"),
        (Some(json!({"email": e, "name": long}).to_string()), 413, "body_too_large"),
    ];
    assert!(cases.len() >= 15);
    for (body, want_status, want_code) in cases {
        let id = unique("bad");
        let (s, b, ct) = answer(
            signup::handle(
                &app,
                request("POST", "/members", body.as_deref(), As::Member(id.clone())),
            )
            .await,
        );
        assert_problem(s, &b, &ct, want_status, want_code);
        assert!(
            app.deps.store.member(&id).await.unwrap().is_none(),
            "{want_code}: nothing written"
        );
    }
    // Nobody took the email along the way.
    assert_eq!(join(&app, &unique("ok"), json!({"email": e, "name": "A"})).await.0, 201);
}

#[tokio::test]
async fn members_may_read_only_themselves() {
    let (app, _h) = app().await;
    let (a, b) = (unique("a"), unique("b"));
    join(&app, &a, json!({"email": email(), "name": "A"})).await;
    let (s, body, ct) = get_profile(&app, &b, &a).await;
    assert_problem(s, &body, &ct, 403, "forbidden");
    let (s, body, ct) = answer(
        signup::handle(&app, request("GET", &format!("/members/{a}"), None, As::Nobody)).await,
    );
    assert_problem(s, &body, &ct, 401, "unauthenticated");
    let (s, body, ct) = answer(
        signup::handle(&app, request("DELETE", &format!("/members/{a}"), None, As::Member(b)))
            .await,
    );
    assert_problem(s, &body, &ct, 403, "forbidden");
    let (s, body, ct) =
        answer(signup::handle(&app, request("POST", "/members", Some("{}"), As::Nobody)).await);
    assert_problem(s, &body, &ct, 401, "unauthenticated");
    assert_eq!(get_profile(&app, &a, &a).await.0, 200);
}

#[tokio::test]
async fn erasing_removes_personal_data_keeps_the_ledger_and_frees_the_email() {
    let (app, h) = app().await;
    let id = unique("erase");
    let (e, p) = (email(), phone());
    let keys_of =
        (keys::email_pk(&app.contacts.email(&e)), keys::phone_pk(&app.contacts.phone(&p)));
    assert_eq!(
        join_verified(
            &app,
            &id,
            Some(&e),
            Some(&p),
            json!({"name": "Gone", "birthday": "1980-01-01"})
        )
        .await
        .0,
        201
    );
    assert!(
        h.deps.store.get::<Value>(&keys_of.0, keys::UNIQUE_SK).await.unwrap().is_some(),
        "a verified email holds its slot"
    );
    let del = || answer_async(&app, &id);
    assert_eq!(del().await, 204);
    let m = h.deps.store.member(&id).await.unwrap().unwrap();
    assert!(
        m.email.is_none()
            && m.phone.is_none()
            && m.name.is_none()
            && m.birthday.is_none()
            && m.erased_at.is_some()
    );
    assert!(!m.email_verified && !m.phone_verified && m.birthday_set_at.is_none());
    assert_eq!(m.wallet.balance.0, 100);
    assert_eq!(h.deps.store.ledger_all(&id).await.unwrap().len(), 1, "the ledger stays");
    assert!(h.deps.store.get::<Value>(&keys_of.0, keys::UNIQUE_SK).await.unwrap().is_none());
    assert!(h.deps.store.get::<Value>(&keys_of.1, keys::UNIQUE_SK).await.unwrap().is_none());
    // The raw item keeps no contact data and has left the birthday index.
    let store = &h.deps.store;
    let raw = store
        .client
        .get_item()
        .table_name(&store.table)
        .set_key(Some(loyalty::store::key(&keys::member_pk(&id), keys::PROFILE_SK)))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let text = format!("{raw:?}");
    assert!(
        !text.contains(&e)
            && !text.contains(&p)
            && !text.contains("Gone")
            && !raw.contains_key("GSI2PK"),
        "{text}"
    );
    assert_eq!(del().await, 204, "a second erase is harmless");
    let (s, b, ct) = get_profile(&app, &id, &id).await;
    assert_problem(s, &b, &ct, 404, "member_not_found");
    // The contact is free again (no 409), but its welcome gift was given (tests/tests/identity.rs).
    let (s, again, _) =
        join_verified(&app, &unique("again"), Some(&e), Some(&p), json!({"name": "New"})).await;
    assert_eq!((s, &again["welcomeGift"]), (201, &json!(false)), "{again}");
}

async fn answer_async(app: &App, id: &str) -> u16 {
    answer(
        signup::handle(
            app,
            request("DELETE", &format!("/members/{id}"), None, As::Member(id.into())),
        )
        .await,
    )
    .0
}

#[tokio::test]
async fn a_warm_signup_is_one_read_and_one_write_and_a_profile_one_read() {
    let (app, h) = app().await;
    let id = unique("count");
    h.counter.reset();
    // The one read: the contacts' tombstones (and a referral code's owner), one BatchGetItem.
    let (e, p) = (email(), phone());
    assert_eq!(join_verified(&app, &id, Some(&e), Some(&p), json!({"name": "C"})).await.0, 201);
    assert_eq!((h.counter.reads(), h.counter.writes()), (1, 1), "{:?}", h.counter.snapshot());
    assert_eq!(h.counter.snapshot().get("BatchGetItem"), Some(&1));
    let (_, r, _) = get_profile(&app, &id, &id).await;
    h.counter.reset();
    let referred = unique("count-referred");
    assert_eq!(join(&app, &referred, json!({"email": email(), "phone": phone(), "name": "R", "referralCode": r["referralCode"]})).await.0, 201);
    assert_eq!(
        (h.counter.reads(), h.counter.writes()),
        (1, 1),
        "with a referral code too: {:?}",
        h.counter.snapshot()
    );
    h.counter.reset();
    assert_eq!(get_profile(&app, &id, &id).await.0, 200);
    assert_eq!((h.counter.reads(), h.counter.writes()), (1, 0), "{:?}", h.counter.snapshot());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let (app, _h) = app().await;
    let (s, b, ct) = answer(
        signup::handle(&app, request("PUT", "/members/x", Some("{}"), As::Member("x".into())))
            .await,
    );
    assert_problem(s, &b, &ct, 405, "method_not_allowed");
    let (s, b, ct) =
        answer(signup::handle(&app, request("GET", "/nope", None, As::Member("x".into()))).await);
    assert_problem(s, &b, &ct, 404, "route_not_found");
    let (s, b, ct) = answer(
        signup::handle(
            &app,
            request_with_headers(
                "POST",
                "/members",
                Some("a=b"),
                As::Member("x".into()),
                &[("content-type", "application/x-www-form-urlencoded")],
            ),
        )
        .await,
    );
    assert_problem(s, &b, &ct, 415, "unsupported_media_type");
}
