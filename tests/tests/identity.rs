//! Identity and anti-farming, through the real handlers against the local stack: contacts
//! from the token's verified claims, the welcome gift / referral link / birthday coupon once
//! per contact across erase and rejoin (tombstones), birthdays known in advance, and
//! support's birthday route. Each test works on a table of its own (a copy of the
//! bootstrapped one), so table scans and the birthday job see only its members.

use chrono::{DateTime, Utc};
use coupon_issue::queue::CampaignQueue;
use loyalty::app::{Clock, Dependencies};
use loyalty::store::{keys, Store};
use loyalty::Rules;
use loyalty_tests::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

struct T {
    h: Harness,
    signup: signup::App,
    coupons: coupon_issue::App,
    clock: Arc<Mutex<DateTime<Utc>>>,
    table: String,
}

async fn setup(start: &str) -> T {
    let clock = Arc::new(Mutex::new(at(start)));
    let h = harness_with(Rules::default(), Clock::Shared(clock.clone())).await;
    let table = clone_table(&h, "identity").await;
    let deps = Dependencies {
        store: Store::new(h.deps.store.client.clone(), table.clone()),
        ..h.deps.clone()
    };
    let sqs = aws_sdk_sqs::Client::new(&h.sdk_config);
    let url =
        sqs.create_queue().queue_name(unique("identity")).send().await.unwrap().queue_url.unwrap();
    T {
        signup: signup_on(&deps),
        coupons: coupon_issue::App {
            deps,
            codes: code_key(),
            queue: Some(CampaignQueue::new(sqs, url)),
        },
        h,
        clock,
        table,
    }
}

impl T {
    fn store(&self) -> &Store {
        &self.signup.deps.store
    }

    fn set_now(&self, t: &str) {
        *self.clock.lock().unwrap() = at(t);
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        who: As,
    ) -> (u16, Value, String) {
        let body = body.map(|b| b.to_string());
        answer(signup::handle(&self.signup, request(method, path, body.as_deref(), who)).await)
    }

    /// A signup whose token verified `email` / `phone` (None: not in the token).
    async fn join(
        &self,
        sub: &str,
        email: Option<&str>,
        phone: Option<&str>,
        body: Value,
    ) -> (u16, Value, String) {
        self.call(
            "POST",
            "/members",
            Some(body),
            As::MemberWithClaims(sub.into(), verified_claims(email, phone)),
        )
        .await
    }

    async fn erase(&self, id: &str) -> u16 {
        self.call("DELETE", &format!("/members/{id}"), None, As::Member(id.into())).await.0
    }

    async fn set_birthday(&self, id: &str, body: Value, who: As) -> (u16, Value, String) {
        self.call("PUT", &format!("/members/{id}/birthday"), Some(body), who).await
    }

    async fn member(&self, id: &str) -> loyalty::member::Member {
        self.store().member(id).await.unwrap().expect("the member exists")
    }

    /// Fires the birthday schedule at `now` (as EventBridge Scheduler with `detail.now`) and
    /// hands what it queued to the worker, as Lambda would.
    async fn birthday_job(&self, now: &str) {
        let event = json!({"detail-type": "Scheduled Event", "source": "loyalty.schedule", "detail": {"job": "birthday-coupons", "now": now}});
        *self.clock.lock().unwrap() = at(now);
        coupon_issue::handle_trigger(&self.coupons, loyalty::runtime::classify(event).unwrap())
            .await
            .unwrap();
        let q = self.coupons.queue.as_ref().unwrap();
        loop {
            let msgs = receive_batch(&q.client, &q.url).await;
            if msgs.is_empty() {
                return;
            }
            let records: Vec<Value> = msgs
                .iter()
                .map(|m| json!({"messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body, "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs"}))
                .collect();
            let resp = coupon_issue::worker::handle(
                &self.coupons,
                serde_json::from_value(json!({ "Records": records })).unwrap(),
            )
            .await;
            assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
            for m in &msgs {
                q.client
                    .delete_message()
                    .queue_url(&q.url)
                    .receipt_handle(m.receipt_handle.clone().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    async fn birthday_grants(&self, id: &str) -> Vec<String> {
        let mut g: Vec<String> = self
            .store()
            .coupons(id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.grant)
            .filter(|g| g.starts_with("birthday-"))
            .collect();
        g.sort();
        g
    }

    /// Every item of this test's table, as JSON text.
    async fn scan(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .h
                .deps
                .store
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items.unwrap_or_default() {
                let v: Value = loyalty::store::from_item(item).unwrap();
                out.push(v.to_string());
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return out;
            }
        }
    }

    async fn done(self) {
        self.h.deps.store.client.delete_table().table_name(&self.table).send().await.unwrap();
    }
}

fn email() -> String {
    format!("{}@example.com", unique("id").to_lowercase())
}

fn phone() -> String {
    let n = unique("p").bytes().fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
    format!("+86137{:08}", n % 100_000_000)
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

const WELCOME_WITHHELD: &str = "this email or phone number already received the welcome gift in an earlier membership that was erased";

// ---------------------------------------------------------------------------------------
// Erase and rejoin

#[tokio::test]
async fn welcome_gift_once_per_contact_erase_and_rejoin_gets_none_and_the_debt_stays_on_the_erased_record(
) {
    let t = setup("2026-11-27T10:00:00Z").await;
    let (e, p) = (email(), phone());
    let first = unique("first");
    let (s, joined, _) = t
        .join(&first, Some(&e), Some(&p), json!({"name": "First", "birthday": "1990-05-18"}))
        .await;
    assert_eq!(
        (s, &joined["points"], &joined["welcomeGift"]),
        (201, &json!(100), &json!(true)),
        "{joined}"
    );
    assert!(joined.get("withheld").is_none(), "{joined}");

    // A refund's clawback left a points debt of 200 (written to the record as a refund would).
    let mut m = t.member(&first).await;
    m.wallet.claw_back(300);
    m.version += 1;
    let write = t
        .store()
        .member_write(&m, m.version - 1, &t.signup.deps.rules, at("2026-11-27T10:00:00Z"))
        .unwrap();
    t.store().transact(vec![write]).await.unwrap();
    assert_eq!(t.member(&first).await.wallet.balance.0, -200);

    t.set_now("2026-11-28T10:00:00Z");
    assert_eq!(t.erase(&first).await, 204);
    let erased = t.member(&first).await;
    assert!(erased.is_erased());
    assert_eq!(erased.wallet.balance.0, -200, "erasure does not erase a points debt");

    // Nothing in the table gives the contacts back (the erased record and its tombstones
    // are all that is left of them): not the email, not the phone, not their bare SHA-256;
    // and the tombstones do not name the erased member.
    let items = t.scan().await;
    let tombstones: Vec<&String> = items.iter().filter(|i| i.contains("\"GIFTED#")).collect();
    assert_eq!(tombstones.len(), 2, "one per verified contact: {tombstones:?}");
    for needle in [e.clone(), p.clone(), sha256_hex(&e), sha256_hex(&p)] {
        let found: Vec<&String> = items.iter().filter(|i| i.contains(&needle)).collect();
        assert!(found.is_empty(), "{needle} is in the table: {found:?}");
    }
    for tomb in tombstones {
        assert!(!tomb.contains(&first) && !tomb.contains("memberId"), "{tomb}");
        let v: Value = serde_json::from_str(tomb).unwrap();
        assert_eq!(
            (&v["welcome"], &v["referral"], &v["erasedAt"]),
            (&json!(true), &json!(false), &json!("2026-11-28T10:00:00Z")),
            "{v}"
        );
    }

    // A new account with the same (verified) email joins, without a welcome gift, and says why.
    t.set_now("2026-11-29T10:00:00Z");
    let again = unique("again");
    let (s, body, _) = t.join(&again, Some(&e), None, json!({"name": "Again"})).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["memberId"], again.as_str());
    assert_eq!(body["points"], 0);
    assert_eq!(body["welcomeGift"], false);
    assert!(body.get("welcomeCoupon").is_none(), "{body}");
    assert_eq!(
        body["withheld"],
        json!([{"gift": "welcome", "code": "contact_already_gifted", "detail": WELCOME_WITHHELD}])
    );
    assert!(t.store().ledger_all(&again).await.unwrap().is_empty(), "no welcome points");
    assert!(t.store().coupons(&again).await.unwrap().is_empty(), "no welcome coupon");
    let (s, profile, _) =
        t.call("GET", &format!("/members/{again}"), None, As::Member(again.clone())).await;
    assert_eq!(
        (s, &profile["points"], &profile["coupons"], &profile["emailVerified"]),
        (200, &json!(0), &json!([]), &json!(true)),
        "{profile}"
    );

    // The same phone, even unverified (only in the body), is a contact that had its gift too.
    let third = unique("third");
    let (s, body, _) = t.join(&third, None, None, json!({"phone": p, "name": "Third"})).await;
    assert_eq!(
        (s, &body["welcomeGift"], &body["points"]),
        (201, &json!(false), &json!(0)),
        "{body}"
    );

    t.done().await;
}

#[tokio::test]
async fn a_referral_link_goes_once_per_contact() {
    let t = setup("2026-11-27T10:00:00Z").await;
    let referrer = unique("referrer");
    let (_, r, _) = t.join(&referrer, Some(&email()), None, json!({"name": "R"})).await;
    let code = r["referralCode"].as_str().unwrap().to_string();
    let e = email();
    let friend = unique("friend");
    assert_eq!(
        t.join(&friend, Some(&e), None, json!({"name": "F", "referralCode": code})).await.0,
        201
    );
    assert_eq!(t.member(&friend).await.referred_by.unwrap().as_str(), referrer);
    assert_eq!(t.erase(&friend).await, 204);

    let again = unique("friend-again");
    let (s, body, _) =
        t.join(&again, Some(&e), None, json!({"name": "F", "referralCode": code})).await;
    assert_eq!(s, 201, "{body}");
    let codes: Vec<&str> =
        body["withheld"].as_array().unwrap().iter().map(|w| w["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["contact_already_gifted", "contact_already_referred"]);
    assert!(
        t.member(&again).await.referred_by.is_none(),
        "no second referral link for this contact"
    );
    // An unknown code is still refused: a rejoin does not skip validation.
    let (s, b, ct) = t
        .join(&unique("x"), Some(&e), None, json!({"name": "F", "referralCode": "ZZZZ9999"}))
        .await;
    assert_problem(s, &b, &ct, 422, "unknown_referral_code");
    t.done().await;
}

#[tokio::test]
async fn tombstones_chain_through_repeated_erase_and_rejoin() {
    let t = setup("2026-11-27T10:00:00Z").await;
    let (e, p) = (email(), phone());
    let a = unique("a");
    t.join(&a, Some(&e), Some(&p), json!({"name": "A"})).await;
    assert_eq!(t.erase(&a).await, 204);
    // B joins with the email only, C with both: each time no gift.
    let b = unique("b");
    assert_eq!(t.join(&b, Some(&e), None, json!({"name": "B"})).await.1["welcomeGift"], false);
    assert_eq!(t.erase(&b).await, 204);
    let c = unique("c");
    let (s, body, _) = t.join(&c, Some(&e), Some(&p), json!({"name": "C"})).await;
    assert_eq!((s, &body["welcomeGift"]), (201, &json!(false)), "{body}");
    assert_eq!(t.erase(&c).await, 204);
    assert_eq!(
        t.join(&unique("d"), None, Some(&p), json!({"name": "D"})).await.1["welcomeGift"],
        false
    );
    t.done().await;
}

/// Signup reads the tombstones, then writes on the condition that they are still as read: an
/// erasure of the same contact landing in between fails the write (signup then reads again
/// and withholds the gift) instead of letting a second welcome gift through.
#[tokio::test]
async fn a_tombstone_written_between_signup_s_read_and_write_fails_the_write() {
    use loyalty::contact::Verification;
    use loyalty::member::{Member, MemberId, SignupRequest};
    use loyalty::store::receipt::Receipt;
    use loyalty::store::signup::{NewMemberWrite, SignupConflict};
    let t = setup("2026-11-27T10:00:00Z").await;
    let (store, rules, key) = (t.store(), t.signup.deps.rules.clone(), contact_key());
    let e = email();
    let digest = key.email(&e);
    let racer = |id: &str| {
        let req = SignupRequest {
            email: Some(e.clone()),
            phone: None,
            name: "Racer".into(),
            birthday: None,
            referral_code: None,
            marketing_consent: false,
        };
        let new = req.validate(at("2026-11-27T10:00:00Z").date_naive()).unwrap();
        Member::sign_up(
            MemberId::parse(id).unwrap(),
            &new,
            Verification::default(),
            Default::default(),
            loyalty::member::new_referral_code(),
            None,
            at("2026-11-27T10:00:00Z"),
        )
    };
    fn write<'a>(
        m: &'a Member,
        read: &'a [(
            loyalty::contact::ContactDigest,
            Option<loyalty::store::signup::TombstoneItem>,
        )],
    ) -> NewMemberWrite<'a> {
        let receipt = Receipt::new(
            m.member_id.as_str(),
            "signup",
            "-",
            "fp".into(),
            201,
            "{}".into(),
            at("2026-11-27T10:00:00Z"),
        );
        NewMemberWrite {
            member: m,
            welcome: None,
            receipt,
            referral_code_used: None,
            reserve_email: None,
            reserve_phone: None,
            tombstones_read: read,
        }
    }

    // Read: no tombstone. Meanwhile a member with that email is erased. The write fails.
    let before = store.signup_lookup(std::slice::from_ref(&digest), None).await.unwrap();
    assert!(before.tombstones[0].1.is_none());
    let a = unique("a");
    t.join(&a, Some(&e), None, json!({"name": "A"})).await;
    assert_eq!(t.erase(&a).await, 204);
    let m = racer(&unique("racer"));
    assert_eq!(
        store
            .create_member(write(&m, &before.tombstones), &rules, at("2026-11-27T10:00:00Z"))
            .await
            .unwrap(),
        Err(SignupConflict::TombstoneChanged)
    );
    assert!(store.member(m.member_id.as_str()).await.unwrap().is_none());

    // Read: a tombstone. Meanwhile another erasure rewrites it. The write fails too.
    let stale = store.signup_lookup(std::slice::from_ref(&digest), None).await.unwrap();
    assert!(stale.tombstones[0].1.is_some());
    t.set_now("2026-11-28T10:00:00Z");
    let b = unique("b");
    t.join(&b, Some(&e), None, json!({"name": "B"})).await;
    assert_eq!(t.erase(&b).await, 204);
    let m = racer(&unique("racer"));
    assert_eq!(
        store
            .create_member(write(&m, &stale.tombstones), &rules, at("2026-11-28T10:00:00Z"))
            .await
            .unwrap(),
        Err(SignupConflict::TombstoneChanged)
    );
    // With what is there now, it lands.
    let fresh = store.signup_lookup(std::slice::from_ref(&digest), None).await.unwrap();
    assert_eq!(
        store
            .create_member(write(&m, &fresh.tombstones), &rules, at("2026-11-28T10:00:00Z"))
            .await
            .unwrap(),
        Ok(())
    );
    t.done().await;
}

// ---------------------------------------------------------------------------------------
// Contacts from the identity

#[tokio::test]
async fn verified_token_contacts_are_used_and_a_body_naming_others_is_422() {
    let t = setup("2026-11-27T10:00:00Z").await;
    let (e, p) = (email(), phone());
    let cases = [
        (Some(e.as_str()), None, json!({"email": email(), "name": "A"}), "email differs from the verified email of your sign-in: leave it out or send that one"),
        (None, Some(p.as_str()), json!({"phone": phone(), "name": "A"}), "phone differs from the verified phone number of your sign-in: leave it out or send that one"),
        (Some(e.as_str()), Some(p.as_str()), json!({"email": e.to_uppercase(), "phone": phone(), "name": "A"}), "phone differs from the verified phone number of your sign-in: leave it out or send that one"),
    ];
    for (ve, vp, body, detail) in cases {
        let id = unique("mismatch");
        let (s, b, ct) = t.join(&id, ve, vp, body).await;
        assert_problem(s, &b, &ct, 422, "contact_mismatch");
        assert_eq!(b["detail"], detail);
        assert!(t.store().member(&id).await.unwrap().is_none(), "nothing written");
    }
    assert!(
        t.scan().await.iter().all(|i| !i.contains("\"EMAIL#") && !i.contains("\"PHONE#")),
        "no slot taken"
    );

    // The body may leave the verified contacts out; the same (any case) is accepted.
    let id = unique("from-token");
    let (s, body, _) =
        t.join(&id, Some(&e.to_uppercase()), Some(&p), json!({"email": e, "name": "Token"})).await;
    assert_eq!(s, 201, "{body}");
    let (_, profile, _) =
        t.call("GET", &format!("/members/{id}"), None, As::Member(id.clone())).await;
    assert_eq!((&profile["email"], &profile["emailVerified"]), (&json!(e), &json!(true)));
    assert_eq!((&profile["phone"], &profile["phoneVerified"]), (&json!(p), &json!(true)));

    // A claim the provider did not verify proves nothing: the body's contact is kept, unverified.
    let id = unique("unverified-claim");
    let claims = json!({"email": email(), "email_verified": "false"});
    let other = email();
    let (s, body, _) = t
        .call(
            "POST",
            "/members",
            Some(json!({"email": other, "name": "U"})),
            As::MemberWithClaims(id.clone(), claims),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let m = t.member(&id).await;
    assert_eq!((m.email.as_deref(), m.email_verified), (Some(other.as_str()), false));
    t.done().await;
}

#[tokio::test]
async fn nobody_can_squat_a_verified_contact() {
    let t = setup("2026-11-27T10:00:00Z").await;
    let e = email();
    let slot = keys::email_pk(&contact_key().email(&e));
    // Someone types another person's address: kept unverified, and it takes no slot.
    let squatter = unique("squatter");
    let (s, body, _) = t.join(&squatter, None, None, json!({"email": e, "name": "Squatter"})).await;
    assert_eq!(s, 201, "{body}");
    assert!(!t.member(&squatter).await.email_verified);
    assert!(
        t.store().get::<Value>(&slot, keys::UNIQUE_SK).await.unwrap().is_none(),
        "an unverified email takes no slot"
    );

    // The owner, whose token verifies it, joins; the slot is theirs.
    let owner = unique("owner");
    let (s, body, _) = t.join(&owner, Some(&e), None, json!({"name": "Owner"})).await;
    assert_eq!((s, &body["welcomeGift"]), (201, &json!(true)), "{body}");
    let held: Value = t.store().get(&slot, keys::UNIQUE_SK).await.unwrap().unwrap();
    assert_eq!(held["memberId"], owner.as_str());

    // A second identity verifying the same email is refused.
    let second = unique("second");
    let (s, b, ct) = t.join(&second, Some(&e), None, json!({"name": "Second"})).await;
    assert_problem(s, &b, &ct, 409, "email_taken");
    assert!(t.store().member(&second).await.unwrap().is_none());

    // Erasing the squatter (unverified) leaves the owner's slot alone and no tombstone.
    assert_eq!(t.erase(&squatter).await, 204);
    assert!(t.store().get::<Value>(&slot, keys::UNIQUE_SK).await.unwrap().is_some());
    assert!(
        t.store()
            .get::<Value>(&keys::gifted_pk(&contact_key().email(&e)), keys::GIFTED_SK)
            .await
            .unwrap()
            .is_none(),
        "an unverified contact leaves no tombstone"
    );
    t.done().await;
}

// ---------------------------------------------------------------------------------------
// Birthdays

#[tokio::test]
async fn birthday_min_days_known_a_birthday_set_5_days_before_brings_no_coupon_that_year() {
    let t = setup("2026-04-01T02:00:00Z").await;
    let early = unique("early");
    t.join(&early, Some(&email()), None, json!({"name": "Early", "birthday": "1990-05-18"})).await;
    t.set_now("2026-05-13T02:00:00Z");
    let late = unique("late");
    t.join(&late, Some(&email()), None, json!({"name": "Late", "birthday": "1991-05-18"})).await;
    assert_eq!(t.member(&late).await.birthday_set_at, Some(at("2026-05-13T02:00:00Z")));

    // 2026-05-18 00:05 in Shanghai.
    t.birthday_job("2026-05-17T16:05:00Z").await;
    assert_eq!(t.birthday_grants(&early).await, ["birthday-2026"], "recorded 47 days before");
    assert!(t.birthday_grants(&late).await.is_empty(), "recorded 5 days before: no coupon in 2026");
    // A year on, the birthday has long been known.
    t.birthday_job("2027-05-17T16:05:00Z").await;
    assert_eq!(t.birthday_grants(&late).await, ["birthday-2027"]);
    assert_eq!(t.birthday_grants(&early).await, ["birthday-2026", "birthday-2027"]);
    t.done().await;
}

#[tokio::test]
async fn erase_and_rejoin_cannot_collect_a_second_birthday_coupon_in_the_same_year() {
    let t = setup("2026-01-10T02:00:00Z").await;
    let e = email();
    let first = unique("bday-first");
    t.join(&first, Some(&e), None, json!({"name": "First", "birthday": "1990-03-01"})).await;
    t.birthday_job("2026-02-28T16:05:00Z").await;
    assert_eq!(t.birthday_grants(&first).await, ["birthday-2026"]);

    t.set_now("2026-03-02T02:00:00Z");
    assert_eq!(t.erase(&first).await, 204);
    // Rejoin with the same email and another birthday, well ahead of it.
    t.set_now("2026-03-03T02:00:00Z");
    let again = unique("bday-again");
    let (s, body, _) =
        t.join(&again, Some(&e), None, json!({"name": "Again", "birthday": "1990-06-10"})).await;
    assert_eq!((s, &body["welcomeGift"]), (201, &json!(false)), "{body}");
    assert_eq!(
        t.member(&again).await.prior_gifts.birthday_year,
        Some(2026),
        "the tombstone's birthday year came along"
    );

    t.birthday_job("2026-06-09T16:05:00Z").await;
    assert!(
        t.birthday_grants(&again).await.is_empty(),
        "this contact had its 2026 birthday coupon"
    );
    t.birthday_job("2027-06-09T16:05:00Z").await;
    assert_eq!(t.birthday_grants(&again).await, ["birthday-2027"], "next year's is due");
    t.done().await;
}

#[tokio::test]
async fn support_sets_and_corrects_a_birthday_with_a_reason() {
    let t = setup("2026-11-27T10:00:00Z").await;
    let id = unique("bday-support");
    t.join(&id, Some(&email()), None, json!({"name": "No Birthday"})).await;

    let (s, body, _) = t
        .set_birthday(
            &id,
            json!({"birthday": "1990-12-20", "reason": "Added on the member's request, ticket 17"}),
            As::Operator,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body,
        json!({"memberId": id, "birthday": "1990-12-20", "birthdaySetAt": "2026-11-27T10:00:00Z", "changed": true, "firstGiftOn": "2027-12-20"})
    );
    let m = t.member(&id).await;
    assert_eq!(
        (m.birthday, m.birthday_set_at),
        ("1990-12-20".parse().ok(), Some(at("2026-11-27T10:00:00Z")))
    );
    assert_eq!(m.birthday_changes.len(), 1);
    assert_eq!(
        m.birthday_changes[0].by,
        format!("arn:aws:sts::123456789012:assumed-role/{OPERATOR_ROLE}/alice")
    );
    assert_eq!(m.birthday_changes[0].reason, "Added on the member's request, ticket 17");
    let (_, profile, _) =
        t.call("GET", &format!("/members/{id}"), None, As::Member(id.clone())).await;
    assert_eq!(
        (&profile["birthday"], &profile["birthdaySetAt"]),
        (&json!("1990-12-20"), &json!("2026-11-27T10:00:00Z"))
    );

    // The same birthday again (a retry) writes nothing.
    t.h.counter.reset();
    t.set_now("2026-11-28T10:00:00Z");
    let (s, body, _) = t
        .set_birthday(&id, json!({"birthday": "1990-12-20", "reason": "retry"}), As::Operator)
        .await;
    assert_eq!(
        (s, &body["changed"], &body["birthdaySetAt"]),
        (200, &json!(false), &json!("2026-11-27T10:00:00Z")),
        "{body}"
    );
    assert_eq!((t.h.counter.reads(), t.h.counter.writes()), (1, 0), "{:?}", t.h.counter.snapshot());

    // A correction restarts the clock: recorded 2026-11-28, Dec 21 is 23 days away.
    t.h.counter.reset();
    let (s, body, _) = t
        .set_birthday(
            &id,
            json!({"birthday": "1990-12-21", "reason": "Typo, ID card checked"}),
            As::Operator,
        )
        .await;
    assert_eq!(
        (s, &body["changed"], &body["firstGiftOn"]),
        (200, &json!(true), &json!("2027-12-21")),
        "{body}"
    );
    assert_eq!(
        (t.h.counter.reads(), t.h.counter.writes()),
        (1, 1),
        "one read, one write: {:?}",
        t.h.counter.snapshot()
    );
    assert_eq!(t.member(&id).await.birthday_changes.len(), 2);
    t.done().await;
}

#[tokio::test]
async fn the_birthday_route_is_for_operators_only_and_bad_input_writes_nothing() {
    let t = setup("2026-11-27T10:00:00Z").await;
    let id = unique("bday-guard");
    t.join(&id, Some(&email()), None, json!({"name": "Guarded", "birthday": "1990-05-18"})).await;
    let before = t.member(&id).await;
    let ok = json!({"birthday": "1990-05-19", "reason": "ticket 9"});
    let callers = [
        (As::Member(id.clone()), 403, "forbidden"),
        (As::OrderSystem, 403, "forbidden"),
        (As::OtherIam, 403, "forbidden"),
        (As::Nobody, 401, "unauthenticated"),
    ];
    for (who, status, code) in callers {
        let (s, b, ct) = t.set_birthday(&id, ok.clone(), who.clone()).await;
        assert_problem(s, &b, &ct, status, code);
    }
    let long = "r".repeat(201);
    let bodies: Vec<(Option<String>, u16, &str)> = vec![
        (
            Some(json!({"birthday": "2999-01-01", "reason": "x"}).to_string()),
            422,
            "invalid_birthday",
        ),
        (
            Some(json!({"birthday": "2026-11-27", "reason": "x"}).to_string()),
            422,
            "invalid_birthday",
        ),
        (
            Some(json!({"birthday": "1990-02-30", "reason": "x"}).to_string()),
            422,
            "invalid_birthday",
        ),
        (
            Some(json!({"birthday": "19/05/1990", "reason": "x"}).to_string()),
            422,
            "invalid_birthday",
        ),
        (
            Some(json!({"birthday": "1990-05-19", "reason": "  "}).to_string()),
            422,
            "invalid_reason",
        ),
        (
            Some(json!({"birthday": "1990-05-19", "reason": long}).to_string()),
            422,
            "invalid_reason",
        ),
        (
            Some(json!({"birthday": "1990-05-19", "reason": "two\nlines"}).to_string()),
            422,
            "invalid_reason",
        ),
        (Some(json!({"birthday": "1990-05-19"}).to_string()), 400, "missing_field"),
        (
            Some(json!({"birthday": "1990-05-19", "reason": "x", "by": "me"}).to_string()),
            400,
            "unknown_field",
        ),
        (Some(json!({"birthday": 19900519, "reason": "x"}).to_string()), 400, "invalid_field"),
        (Some("{\"birthday\": ".into()), 400, "malformed_json"),
        (None, 400, "body_required"),
    ];
    for (body, status, code) in bodies {
        let (s, b, ct) = answer(
            signup::handle(
                &t.signup,
                request("PUT", &format!("/members/{id}/birthday"), body.as_deref(), As::Operator),
            )
            .await,
        );
        assert_problem(s, &b, &ct, status, code);
    }
    let (s, b, ct) = t.set_birthday("bad!id", ok.clone(), As::Operator).await;
    assert_problem(s, &b, &ct, 400, "invalid_member_id");
    let (s, b, ct) = t.set_birthday(&unique("never"), ok.clone(), As::Operator).await;
    assert_problem(s, &b, &ct, 404, "member_not_found");
    let (s, b, ct) =
        t.call("POST", &format!("/members/{id}/birthday"), Some(ok.clone()), As::Operator).await;
    assert_problem(s, &b, &ct, 405, "method_not_allowed");
    let after = t.member(&id).await;
    assert_eq!(
        (after.version, after.birthday, after.birthday_set_at, after.birthday_changes.len()),
        (before.version, before.birthday, before.birthday_set_at, 0),
        "nothing written"
    );

    // An erased member's birthday is gone and stays so.
    assert_eq!(t.erase(&id).await, 204);
    let (s, b, ct) = t.set_birthday(&id, ok, As::Operator).await;
    assert_problem(s, &b, &ct, 404, "member_not_found");
    t.done().await;
}

// ---------------------------------------------------------------------------------------
// Samples

#[tokio::test]
async fn the_signup_samples_reach_the_handler() {
    let t = setup("2026-11-27T08:00:00Z").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let sample = |name: &str| -> lambda_http::Request {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
        match loyalty::runtime::classify(v).unwrap() {
            loyalty::runtime::Trigger::Http(req) => req,
            _ => panic!("{name} is an HTTP sample"),
        }
    };
    let (s, b, _) = answer(signup::handle(&t.signup, sample("signup-join.json")).await);
    assert_eq!(s, 201, "{b}");
    let m = t.member("member-demo-1").await;
    assert!(
        m.email_verified && !m.phone_verified,
        "the sample's token verifies the email, not the phone"
    );
    let (s, b, _) = answer(signup::handle(&t.signup, sample("signup-set-birthday.json")).await);
    assert_eq!((s, &b["birthday"]), (200, &json!("1990-05-19")), "{b}");
    let (s, b, _) = answer(signup::handle(&t.signup, sample("signup-profile.json")).await);
    assert_eq!((s, &b["birthday"]), (200, &json!("1990-05-19")), "{b}");
    let (s, b, _) = answer(signup::handle(&t.signup, sample("signup-erase.json")).await);
    assert_eq!(s, 204, "{b}");
    t.done().await;
}
