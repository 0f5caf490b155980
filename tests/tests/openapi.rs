//! openapi.yaml is the contract of the HTTP API; this file proves it against the template
//! and the real handlers:
//! - every HttpApi route of template.yaml is in the document and every operation is a route
//!   of its `x-function` in the template; each operation's security is exactly the route's
//!   authorizer (`memberJwt` for the JWT default, `sigv4` for AWS_IAM);
//! - every operation is called through its function's real handler against the local stack
//!   (on a table of its own), in a fixed order that builds the state the next ones need (a
//!   member from the signup examples, purchases before refunds, a checkout quoted (held)
//!   before it is confirmed or cancelled, a campaign before its run): every request example
//!   gets the documented success status and an answer valid against the documented response
//!   schema (a small JSON-schema validator, `loyalty_tests::schema`, `additionalProperties: false` enforced);
//! - every problem example with `x-request` gets exactly its documented status, code, title
//!   and detail; 401 and 403, where documented, are produced with no caller and with the
//!   wrong caller (another member on a member's route, the other kind of IAM caller on an
//!   IAM route: an operator on the order system's, the order system on an operator's);
//!   a request schema with `additionalProperties: false` is refused an unknown
//!   field (400 unknown_field), and every field of a request schema is used by an example, so
//!   a renamed field fails;
//! - every problem `code` documented occurs in the code.

mod common;

use lambda_http::{Body, Request, Response};
use loyalty::app::{Clock, Dependencies};
use loyalty::store::Store;
use loyalty::Rules;
use loyalty_tests::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The examples' dates (purchases on 2026-11-27, a one-off campaign in 2027) hold at this time.
const NOW: &str = "2026-11-27T10:00:00Z";

/// The order in which the operations are exercised: each builds what the next ones need.
/// The member joins (100 welcome points and the welcome coupon), buys twice, previews a
/// checkout, has two quoted (held): the first is confirmed, the second cancelled; then the
/// checkout order is refunded in full (its points and coupon come back). An operator defines
/// three rewards (a coupon, a limited gift, a Diamond-only coupon defined inactive), changes
/// the gift's price and opens the Diamond one; the member sees their catalog, claims the
/// coupon and two gifts, lists the claims; the first gift is shipped, the second cancelled
/// (its points come back); the coupon reward is deactivated.
const ORDER: [&str; 46] = [
    "join",
    "createPartner",
    "recordPurchase",
    "previewCheckout",
    "quoteCheckout",
    "confirmCheckout",
    "cancelCheckout",
    "recordRefund",
    "recordActivity",
    "getLedger",
    "adjustPoints",
    "getSupportLedger",
    "searchMember",
    "listCoupons",
    "issueCoupon",
    "createReward",
    "listRewards",
    "updateReward",
    "listMemberRewards",
    "claimReward",
    "listRewardClaims",
    "getSupportRewardClaims",
    "fulfilRewardClaim",
    "deactivateReward",
    "getPartner",
    "updatePartner",
    "addPartnerCode",
    "getPartnerStatement",
    "markStatementPaid",
    "getProfile",
    "setBirthday",
    "createCampaign",
    "runCampaign",
    "getCampaign",
    "listCampaigns",
    "createAward",
    "runAward",
    "getAward",
    "getKpiReport",
    "eraseMemberBySupport",
    // migration: the example file imported before the loop, its progress read.
    "listImports",
    "getImport",
    // exports: one started (its segments queued, not run here), its progress read.
    "createExport",
    "getExport",
    "eraseMember",
    // After the erasure: the member is gone.
    "getProfile",
];

fn doc() -> Value {
    serde_json::to_value(common::yaml("openapi.yaml")).expect("openapi.yaml converts to JSON")
}

/// `(METHOD, path, operation)` of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                ops.push((m.to_ascii_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

fn security_schemes(doc: &Value, op: &Value) -> BTreeSet<String> {
    let sec = op.get("security").unwrap_or(&doc["security"]);
    sec.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys().cloned())
        .collect()
}

fn is_iam_op(doc: &Value, op: &Value) -> bool {
    security_schemes(doc, op).contains("sigv4")
}

/// Follows a `$ref` (one level; the document's refs point at definitions, not at refs).
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            doc.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling $ref {r}"))
        }
        None => v,
    }
}

#[test]
fn routes_in_the_template_and_the_document_agree() {
    let doc = doc();
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));
    let ops = operations(&doc);
    let routes = common::http_routes();
    assert!(!routes.is_empty(), "template.yaml has no HttpApi route");
    let binaries: BTreeSet<String> = common::functions().into_iter().map(|f| f.binary).collect();

    for (method, path, binary, event) in &routes {
        let op = ops
            .iter()
            .find(|(m, p, _)| m == method && p == path)
            .map(|(_, _, op)| op)
            .unwrap_or_else(|| {
                panic!("{method} {path} ({binary}) is in template.yaml but not in openapi.yaml")
            });
        assert_eq!(op["x-function"].as_str(), Some(binary.as_str()), "{method} {path}: x-function");
        let iam = match &event.properties["Auth"]["Authorizer"] {
            serde_yaml::Value::Null => false,
            a => {
                assert_eq!(
                    a.as_str(),
                    Some("AWS_IAM"),
                    "{method} {path}: an authorizer this test does not know"
                );
                true
            }
        };
        let schemes = security_schemes(&doc, op);
        let want: BTreeSet<String> = [if iam { "sigv4" } else { "memberJwt" }.to_string()].into();
        assert_eq!(schemes, want, "{method} {path}: the template's authorizer is {} but the document's security is {schemes:?}", if iam { "AWS_IAM" } else { "the JWT default" });
    }
    for (method, path, op) in &ops {
        let f =
            op["x-function"].as_str().unwrap_or_else(|| panic!("{method} {path}: no x-function"));
        assert!(op["operationId"].is_string(), "{method} {path}: no operationId");
        assert!(
            binaries.contains(f),
            "{method} {path}: x-function {f} is not a function of template.yaml"
        );
        assert!(
            routes.iter().any(|(m, p, b, _)| m == method && p == path && b == f),
            "{method} {path} is documented for {f}, which is in template.yaml without this route"
        );
    }
}

/// Every problem example `(status, name, example)` of an operation, `$ref`s followed.
fn problem_examples(doc: &Value, op: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (status, resp) in op["responses"].as_object().expect("responses") {
        let resp = deref(doc, resp);
        let Some(media) = resp["content"].get("application/problem+json") else { continue };
        if let Some(m) = media["examples"].as_object() {
            out.extend(m.iter().map(|(n, e)| (status.clone(), n.clone(), e.clone())));
        }
        if let Some(e) = media.get("example") {
            out.push((status.clone(), "example".into(), json!({ "value": e })));
        }
    }
    out
}

#[test]
fn documented_error_codes_exist_in_the_code() {
    let doc = doc();
    let binaries: BTreeSet<String> = common::functions().into_iter().map(|f| f.binary).collect();
    let mut sources = String::new();
    let mut read_dir = |dir: std::path::PathBuf| {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    sources.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
    };
    read_dir(common::repo().join("shared/src"));
    read_dir(common::repo().join("edge/src"));
    for b in &binaries {
        read_dir(common::repo().join("functions").join(b).join("src"));
    }
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        for (status, name, ex) in problem_examples(&doc, &op) {
            let ex = &ex["value"];
            let code = ex["code"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} {status} {name}: example without code"));
            assert_eq!(
                ex["status"].as_u64().map(|s| s.to_string()),
                Some(status.clone()),
                "{method} {path}: example {code} has another status"
            );
            assert_eq!(
                ex["type"].as_str(),
                Some(format!("https://loyalty.dev/problems/{}", code.replace('_', "-")).as_str()),
                "{method} {path}: type of {code}"
            );
            assert!(sources.contains(&format!("\"{code}\"")), "{method} {path} {status}: code {code} occurs nowhere in shared/src, edge/src or functions/*/src");
            conforms(&doc, &doc["components"]["schemas"]["Problem"], ex, "problem")
                .unwrap_or_else(|e| panic!("{method} {path} {status} {name}: {e}"));
            checked += 1;
        }
    }
    assert!(checked > 0, "no problem example was checked");
}

/// Objects with documented properties are closed: an answer field or request field the
/// document does not name is a drift the validator must see.
#[test]
fn every_object_schema_is_closed() {
    fn walk(v: &Value, at: &str) {
        match v {
            Value::Object(m) => {
                if m.contains_key("properties") && !at.contains("/examples/") {
                    assert_eq!(
                        m.get("additionalProperties"),
                        Some(&json!(false)),
                        "{at}: an object schema without additionalProperties: false"
                    );
                }
                for (k, x) in m {
                    walk(x, &format!("{at}/{k}"));
                }
            }
            Value::Array(a) => {
                a.iter().enumerate().for_each(|(i, x)| walk(x, &format!("{at}/{i}")))
            }
            _ => {}
        }
    }
    walk(&doc(), "#");
}

/// The variants a serde enum takes, read from its own "unknown variant" error (which lists
/// them all), so that no list here can drift from the code.
fn rust_variants<T: serde::de::DeserializeOwned>(tagged: bool) -> BTreeSet<String> {
    let probe =
        if tagged { json!({ "kind": "zz-no-such-variant" }) } else { json!("zz-no-such-variant") };
    let err = serde_json::from_value::<T>(probe).err().expect("the probe is refused").to_string();
    let expected = err
        .split_once("expected")
        .map(|(_, e)| e)
        .unwrap_or_else(|| panic!("no variant list in {err:?}"));
    expected.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// The values a schema allows: its `enum`, or the `kind` consts of its `oneOf` alternatives.
fn documented_variants(doc: &Value, pointer: &str) -> BTreeSet<String> {
    let s = doc.pointer(pointer).unwrap_or_else(|| panic!("no schema at {pointer}"));
    let s = deref(doc, s);
    if let Some(e) = s["enum"].as_array() {
        return e.iter().map(|v| v.as_str().unwrap().to_string()).collect();
    }
    let alts = s["oneOf"].as_array().unwrap_or_else(|| panic!("{pointer}: neither enum nor oneOf"));
    alts.iter()
        .map(|a| {
            deref(doc, a)["properties"]["kind"]["const"]
                .as_str()
                .unwrap_or_else(|| panic!("{pointer}: an alternative without a kind const"))
                .to_string()
        })
        .collect()
}

#[test]
fn documented_enums_are_the_rust_enums() {
    use loyalty::{campaign, coupon, ledger, points, reward, tier};
    let doc = doc();
    let s = "/components/schemas";
    let cases: Vec<(String, BTreeSet<String>)> = vec![
        (format!("{s}/Tier"), rust_variants::<tier::TierCode>(false)),
        (format!("{s}/CouponStatus"), rust_variants::<coupon::CouponStatus>(false)),
        (format!("{s}/Offer"), rust_variants::<coupon::Offer>(true)),
        (format!("{s}/LedgerEntry/properties/kind"), rust_variants::<ledger::EntryKind>(false)),
        (
            format!("{s}/PurchaseRequest/properties/channel"),
            rust_variants::<points::Channel>(false),
        ),
        (
            format!("{s}/CheckoutRequest/properties/channel"),
            rust_variants::<points::Channel>(false),
        ),
        (
            format!("{s}/ActivityRequest/properties/type"),
            rust_variants::<points::ActivityKind>(false),
        ),
        (
            format!("{s}/ActivityResult/properties/type"),
            rust_variants::<points::ActivityKind>(false),
        ),
        (format!("{s}/Schedule"), rust_variants::<campaign::Schedule>(true)),
        (
            format!("{s}/MultiplierSpec/properties/window"),
            rust_variants::<campaign::WindowSpec>(true),
        ),
        (format!("{s}/Campaign/properties/audience"), rust_variants::<campaign::Audience>(false)),
        (format!("{s}/CampaignRun/properties/state"), rust_variants::<campaign::RunState>(false)),
        (format!("{s}/ChurnBand"), rust_variants::<loyalty::churn::Band>(false)),
        (
            format!("{s}/KpiUplift/properties/verdict"),
            rust_variants::<campaign::uplift::Verdict>(false),
        ),
        (format!("{s}/RewardKind"), rust_variants::<reward::RewardKind>(false)),
        (
            format!("{s}/PartnerPatch/properties/status"),
            rust_variants::<loyalty::affiliate::PartnerStatus>(false),
        ),
        (format!("{s}/LimitPeriod"), rust_variants::<reward::LimitPeriod>(false)),
        (format!("{s}/ClaimStatus"), rust_variants::<reward::ClaimStatus>(false)),
        (
            format!("{s}/FulfilmentRequest/properties/status"),
            rust_variants::<reward::Fulfilment>(false),
        ),
    ];
    for (pointer, rust) in cases {
        assert!(rust.len() >= 2, "{pointer}: could not read the Rust variants ({rust:?})");
        assert_eq!(
            documented_variants(&doc, &pointer),
            rust,
            "{pointer}: the document's values and the Rust enum's differ"
        );
    }
}

// The JSON-schema subset validator lives in the harness (`loyalty_tests::schema`), shared with
// the event schema checks of events_out.rs.

#[test]
fn the_validator_refuses_what_it_should() {
    let doc = doc();
    let s = |name: &str| doc["components"]["schemas"][name].clone();
    let ok = json!({"orderId": "o-1", "amount": 100, "currency": "CNY", "channel": "store", "occurredAt": "2026-11-27T08:30:00Z"});
    assert!(conforms(&doc, &s("PurchaseRequest"), &ok, "r").is_ok());
    for (field, bad) in [
        ("amount", json!(0)),
        ("currency", json!("USD")),
        ("orderId", json!("a b")),
        ("occurredAt", json!("yesterday")),
        ("extra", json!(1)),
    ] {
        let mut b = ok.clone();
        b[field] = bad;
        assert!(conforms(&doc, &s("PurchaseRequest"), &b, "r").is_err(), "{field}");
    }
    let mut missing = ok.clone();
    missing.as_object_mut().unwrap().remove("channel");
    assert!(conforms(&doc, &s("PurchaseRequest"), &missing, "r").is_err());
    assert!(conforms(&doc, &s("Offer"), &json!({"kind": "amount_off", "value": 5}), "o").is_ok());
    assert!(conforms(&doc, &s("Offer"), &json!({"kind": "amount_off", "percent": 5}), "o").is_err());
    let quote = json!({"orderId": "o-1", "amount": 12800, "currency": "CNY", "channel": "online", "couponCodes": ["ABCDEFGHJKMN"], "points": 500});
    assert!(conforms(&doc, &s("CheckoutRequest"), &quote, "q").is_ok());
    for (field, bad) in [
        ("points", json!(150)),
        ("points", json!(-100)),
        ("couponCodes", json!(["abc"])),
        ("couponCodes", json!("ABCDEFGHJKMN")),
    ] {
        let mut b = quote.clone();
        b[field] = bad;
        assert!(conforms(&doc, &s("CheckoutRequest"), &b, "q").is_err(), "{field}");
    }
}

// ---------------------------------------------------------------------------------------
// Every operation through the real handlers.

async fn queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue().queue_name(unique("openapi")).send().await.unwrap().queue_url.unwrap()
}

struct Apps {
    signup: signup::App,
    points: purchase_points::App,
    coupons: coupon_issue::App,
    campaigns: member_day::App,
    migration: migration::App,
}

impl Apps {
    async fn call(&self, function: &str, req: Request) -> Response<Body> {
        match function {
            "signup" => signup::handle(&self.signup, req).await,
            "purchase-points" => purchase_points::handle(&self.points, req).await,
            "coupon-issue" => coupon_issue::api::handle(&self.coupons, req).await,
            "member-day" => member_day::handle(&self.campaigns, req).await,
            "migration" => migration::api::handle(&self.migration, req).await,
            other => panic!("no handler for x-function {other}"),
        }
    }
}

/// Imports `migration/example.jsonl` as an upload would (the notification, then its chunks):
/// the import `getImport` reads.
async fn import_example(app: &migration::App) -> String {
    let bucket = std::env::var("MIGRATION_BUCKET").expect("MIGRATION_BUCKET (scripts/stack)");
    let key = format!("imports/{}.jsonl", unique("openapi"));
    let body = std::fs::read(common::repo().join("migration/example.jsonl")).unwrap();
    app.s3.put_object().bucket(&bucket).key(&key).body(body.into()).send().await.unwrap();
    let upload = migration::import::Upload {
        bucket,
        key: key.clone(),
        etag: "e".into(),
        version: String::new(),
        event_time: String::new(),
    };
    let id = migration::import::on_object(app, &upload).await.unwrap().expect("an import file");
    loop {
        let got = receive_batch(&app.sqs, &app.queue).await;
        if got.is_empty() {
            break;
        }
        for m in got {
            migration::import::on_message(app, m.body().unwrap()).await.unwrap();
            app.sqs
                .delete_message()
                .queue_url(&app.queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    let job = app.deps.store.import_job(&id).await.unwrap().unwrap();
    assert_eq!((job.imported, job.rejected), (3, 0), "migration/example.jsonl imports whole");
    id
}

/// The examples' name for the test member's welcome coupon; the test puts in the real code.
const WELCOME_COUPON: &str = "ABCDEFGHJKMN";

/// What the earlier operations made: the test member, their welcome coupon, a campaign, the
/// orders quoted (held) by quoteCheckout's examples (the first is confirmed, the last
/// cancelled).
#[derive(Default)]
struct State {
    member: String,
    coupon: String,
    campaign: String,
    held: Vec<String>,
    /// The first reward defined (createReward's first example).
    reward: String,
    /// The claims made by claimReward's request examples, in order (`x-reward-claim` indexes them).
    claims: Vec<String>,
    /// The first partner registered (createPartner's first example).
    partner: String,
    /// The import of `migration/example.jsonl`.
    import: String,
    /// The first export started (createExport's first example).
    export: String,
    /// The first award defined (createAward's first example).
    award: String,
}

/// How one request is sent: the example's extensions over the operation's defaults.
struct Call<'a> {
    method: &'a str,
    path: &'a str,
    op: &'a Value,
    /// IAM (sigv4) rather than the member's JWT.
    iam: bool,
}

impl Call<'_> {
    fn path_value(&self, name: &str, state: &State, ex: &Value) -> String {
        if let Some(v) = ex["x-path"].get(name).and_then(Value::as_str) {
            return v.to_string();
        }
        match name {
            "id" if self.path.starts_with("/campaigns") => state.campaign.clone(),
            "id" if self.path.starts_with("/awards") => state.award.clone(),
            "id" if self.path.starts_with("/support/") => state.member.clone(),
            "id" if self.path.starts_with("/rewards") => state.reward.clone(),
            "id" if self.path.starts_with("/partners") => state.partner.clone(),
            "id" if self.path.starts_with("/imports") => state.import.clone(),
            "id" if self.path.starts_with("/exports") => state.export.clone(),
            // The examples' clock is in November 2026: October is over (and can be paid).
            "month" if self.op["operationId"] == "markStatementPaid" => "2026-10".into(),
            "month" => "2026-11".into(),
            "id" => state.member.clone(),
            "claimId" => {
                let n = ex["x-reward-claim"].as_u64().unwrap_or(0) as usize;
                state.claims.get(n).cloned().unwrap_or_else(|| {
                    panic!("{} {}: no claim {n} made yet for {{claimId}}", self.method, self.path)
                })
            }
            "code" => state.coupon.clone(),
            "orderId" => {
                let held = if self.op["operationId"] == "cancelCheckout" {
                    state.held.last()
                } else {
                    state.held.first()
                };
                held.cloned().unwrap_or_else(|| {
                    panic!("{} {}: no checkout quoted yet for {{orderId}}", self.method, self.path)
                })
            }
            other => panic!("{} {}: no value for path parameter {other}", self.method, self.path),
        }
    }

    fn url(&self, state: &State, ex: &Value) -> String {
        let mut url = String::new();
        for seg in self.path.split('/').filter(|s| !s.is_empty()) {
            url.push('/');
            match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => url.push_str(&self.path_value(name, state, ex)),
                None => url.push_str(seg),
            }
        }
        if let Some(q) = ex["x-query"].as_str() {
            url = format!("{url}?{q}");
        }
        url
    }

    /// The IAM caller the route is for: the order system under `/internal`, else operators.
    fn iam_caller(&self) -> As {
        if self.path.starts_with("/internal/") {
            As::OrderSystem
        } else {
            As::Operator
        }
    }

    /// The caller refused with 403: another member on a member's route, the other kind of
    /// IAM caller on an IAM route (an IAM principal on neither list where `x-callers` lets
    /// both kinds in).
    fn wrong_caller(&self) -> As {
        if self.op["x-callers"].as_array().is_some_and(|c| c.len() > 1) {
            return As::OtherIam;
        }
        match (self.iam, self.op["operationId"] == "join") {
            (true, _) if self.path.starts_with("/internal/") => As::Operator,
            (true, _) => As::OrderSystem,
            (false, true) => As::Operator,
            (false, false) => As::Member(unique("other")),
        }
    }

    /// The usual caller: the IAM kind the route is for; otherwise the member whose resource
    /// it is (a fresh identity for a signup).
    fn caller(&self, state: &State, ex: &Value) -> As {
        // `x-claims`: the member's token carries these claims too (e.g. a verified email).
        if let Some(claims) = ex.get("x-claims") {
            let plain: Value = ex
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "x-claims")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            return match self.caller(state, &plain) {
                As::Member(sub) => As::MemberWithClaims(sub, claims.clone()),
                other => panic!("x-claims on an example whose caller is no member: {other:?}"),
            };
        }
        match ex["x-caller"].as_str() {
            Some("member") => return As::Member(state.member.clone()),
            Some("other-member") => return As::Member(unique("other")),
            Some("operator") => return As::Operator,
            Some("order-system") => return As::OrderSystem,
            Some("nobody") => return As::Nobody,
            Some(other) => panic!("unknown x-caller {other}"),
            None => {}
        }
        if self.iam {
            self.iam_caller()
        } else if self.op["operationId"] == "join" {
            As::Member(unique("joiner"))
        } else if self.path.contains("{id}") {
            As::Member(self.path_value("id", state, ex))
        } else {
            As::Member(state.member.clone())
        }
    }

    fn request(&self, state: &State, ex: &Value, body: Option<&Value>, who: As) -> Request {
        let body = body.map(|b| {
            let mut b = b.clone();
            // The examples name the test member `m-1` and their welcome coupon WELCOME_COUPON.
            if b.get("memberId") == Some(&json!("m-1")) {
                b["memberId"] = json!(state.member);
            }
            if let Some(codes) = b.get_mut("couponCodes").and_then(Value::as_array_mut) {
                for c in codes.iter_mut().filter(|c| *c == WELCOME_COUPON) {
                    *c = json!(state.coupon);
                }
            }
            b.to_string()
        });
        let headers: Vec<(String, String)> = ex["x-headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let headers: Vec<(&str, &str)> =
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        request_with_headers(self.method, &self.url(state, ex), body.as_deref(), who, &headers)
    }
}

/// The documented success answer of an operation: (status, schema).
fn success(op: &Value) -> (u16, Option<Value>) {
    for s in ["201", "202", "200", "204"] {
        if let Some(r) = op["responses"].get(s) {
            return (s.parse().unwrap(), r["content"]["application/json"].get("schema").cloned());
        }
    }
    panic!("{}: no 2xx response", op["operationId"]);
}

/// A problem example's answer: the documented status, content type, code, type, title and
/// detail (with the welcome coupon's real code read as WELCOME_COUPON). Mismatches are
/// collected, so that one run lists them all.
fn check_problem(
    name: &str,
    got: (u16, Value, String),
    ex: &Value,
    status: &str,
    state: &State,
    failures: &mut Vec<String>,
) {
    let (s, mut body, ct) = got;
    if let (Some(d), false) = (body["detail"].as_str(), state.coupon.is_empty()) {
        body["detail"] = json!(d.replace(&state.coupon, WELCOME_COUPON));
    }
    let want = &ex["value"];
    if s.to_string() != status || ct != "application/problem+json" {
        failures.push(format!("{name}: got {s} {ct} {body}, documented {status}"));
        return;
    }
    for f in ["code", "type", "title", "detail"] {
        if body[f] != want[f] {
            failures.push(format!("{name}: {f} is {}, documented {}", body[f], want[f]));
        }
    }
}

#[tokio::test]
async fn every_operation_answers_as_documented() {
    let doc = doc();
    let h = harness_with(Rules::default(), Clock::Fixed(at(NOW))).await;
    let table = clone_table(&h, "openapi").await;
    let store = Store::new(h.deps.store.client.clone(), table.clone());
    let deps = Dependencies { store, ..h.deps.clone() };
    let sqs = aws_sdk_sqs::Client::new(&h.sdk_config);
    let apps = Apps {
        signup: signup_on(&deps),
        points: purchase_points::App { deps: deps.clone(), sqs: sqs.clone(), codes: code_key() },
        coupons: worker_on(&deps),
        campaigns: member_day::App {
            deps: deps.clone(),
            sqs: sqs.clone(),
            campaign_queue: queue(&sqs).await,
            dispatch_queue: queue(&sqs).await,
            members_files: Some(member_day::MembersFiles::new(
                &h.sdk_config,
                std::env::var("MIGRATION_BUCKET").expect("MIGRATION_BUCKET (scripts/stack)"),
            )),
            budget: std::time::Duration::from_secs(30),
        },
        migration: migration::App {
            deps: deps.clone(),
            s3: migration::s3_client(&h.sdk_config),
            sqs: sqs.clone(),
            queue: queue(&sqs).await,
            contacts: contact_key(),
            export: export_settings(&[]),
        },
    };
    let ops = operations(&doc);
    let documented: BTreeSet<String> = ops
        .iter()
        .filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_string))
        .collect();
    let exercised: BTreeSet<String> = ORDER.iter().map(|s| s.to_string()).collect();
    assert_eq!(documented, exercised, "every documented operation is exercised here, in ORDER");

    let mut state = State { import: import_example(&apps.migration).await, ..State::default() };
    let mut erased = false;
    let mut failures = Vec::new();
    let (mut successes, mut problems) = (0, 0);
    for id in ORDER {
        let (method, path, op) = ops.iter().find(|(_, _, op)| op["operationId"] == id).unwrap();
        let call = Call { method, path, op, iam: is_iam_op(&doc, op) };
        let f = op["x-function"].as_str().unwrap();
        let fail = |what: &str| format!("{method} {path} ({id}): {what}");

        if erased {
            // The erased member can no longer be read.
            let (s, b, ct) = answer(
                apps.call(
                    f,
                    call.request(&state, &json!({}), None, call.caller(&state, &json!({}))),
                )
                .await,
            );
            assert_problem(s, &b, &ct, 404, "member_not_found");
            continue;
        }

        let media = op["requestBody"]
            .get("$ref")
            .map(|_| deref(&doc, &op["requestBody"]))
            .unwrap_or(&op["requestBody"]);
        let media = &media["content"]["application/json"];
        let request_schema = media.get("schema").cloned();
        let examples: Vec<(String, Value)> = match media["examples"].as_object() {
            Some(m) => m.iter().map(|(n, e)| (n.clone(), e.clone())).collect(),
            None => {
                assert!(request_schema.is_none(), "{}", fail("a request body without examples"));
                vec![("(no body)".into(), json!({ "value": null }))]
            }
        };
        let errors: Vec<(String, String, Value)> = problem_examples(&doc, op)
            .into_iter()
            .filter(|(_, _, e)| e.get("x-request").is_some())
            .collect();
        let send_errors = |before: bool, state: &State| {
            let errors = errors
                .iter()
                .filter(|(_, _, e)| e["x-before"].as_bool().unwrap_or(false) == before)
                .cloned()
                .collect::<Vec<_>>();
            let reqs: Vec<(String, String, Value, Request)> = errors
                .into_iter()
                .map(|(status, name, ex)| {
                    let body = ex.get("x-request").filter(|b| !b.is_null());
                    let req = call.request(state, &ex, body, call.caller(state, &ex));
                    (status, name, ex, req)
                })
                .collect();
            reqs
        };

        for (status, name, ex, req) in send_errors(true, &state) {
            check_problem(
                &fail(&name),
                answer(apps.call(f, req).await),
                &ex,
                &status,
                &state,
                &mut failures,
            );
            problems += 1;
        }

        // The request examples: the documented success and schema.
        let (want, schema) = success(op);
        for (i, (name, ex)) in examples.iter().enumerate() {
            let body = ex.get("value").filter(|b| !b.is_null());
            if let (Some(s), Some(b)) = (&request_schema, body) {
                conforms(&doc, s, b, "request").unwrap_or_else(|e| {
                    panic!(
                        "{}",
                        fail(&format!("example {name} is not valid against its own schema: {e}"))
                    )
                });
            }
            let who = call.caller(&state, ex);
            let joiner = match &who {
                As::Member(m) | As::MemberWithClaims(m, _) => m.clone(),
                _ => String::new(),
            };
            let (s, answer_body, _) =
                answer(apps.call(f, call.request(&state, ex, body, who)).await);
            assert_eq!(s, want, "{}", fail(&format!("example {name}: {answer_body}")));
            match &schema {
                Some(schema) => conforms(&doc, schema, &answer_body, "answer")
                    .unwrap_or_else(|e| panic!("{}", fail(&format!("example {name}: {e}")))),
                None => assert!(
                    answer_body.is_null(),
                    "{}",
                    fail(&format!("an undocumented answer body {answer_body}"))
                ),
            }
            successes += 1;
            if id == "quoteCheckout" {
                state.held.push(answer_body["orderId"].as_str().unwrap().to_string());
            }
            if id == "claimReward" {
                state.claims.push(answer_body["claimId"].as_str().unwrap().to_string());
            }
            if i == 0 {
                match id {
                    "join" => {
                        state.member = joiner;
                        state.coupon =
                            answer_body["welcomeCoupon"]["code"].as_str().unwrap().to_string();
                    }
                    "createCampaign" => {
                        state.campaign = answer_body["campaignId"].as_str().unwrap().to_string()
                    }
                    "createAward" => {
                        state.award = answer_body["awardId"].as_str().unwrap().to_string()
                    }
                    "createReward" => {
                        state.reward = answer_body["rewardId"].as_str().unwrap().to_string()
                    }
                    "createPartner" => {
                        state.partner = answer_body["partnerId"].as_str().unwrap().to_string()
                    }
                    "createExport" => {
                        state.export = answer_body["exportId"].as_str().unwrap().to_string()
                    }
                    _ => {}
                }
                // An issue answered again (same grant and slot) is the documented 200.
                if let (Some(r), true) = (op["responses"].get("200"), want == 201 && id != "join") {
                    let (s, again, _) = answer(
                        apps.call(f, call.request(&state, ex, body, call.caller(&state, ex))).await,
                    );
                    assert_eq!(s, 200, "{}", fail(&format!("example {name} again: {again}")));
                    conforms(&doc, &r["content"]["application/json"]["schema"], &again, "again")
                        .unwrap_or_else(|e| panic!("{}", fail(&e)));
                }
            }
        }
        if id == "eraseMember" {
            erased = true;
        }

        for (status, name, ex, req) in send_errors(false, &state) {
            check_problem(
                &fail(&name),
                answer(apps.call(f, req).await),
                &ex,
                &status,
                &state,
                &mut failures,
            );
            problems += 1;
        }

        // Authentication and authorization as documented.
        let first = examples[0].1.get("value").filter(|b| !b.is_null()).cloned();
        let responses = &op["responses"];
        if responses.get("401").is_some() {
            let (s, b, ct) = answer(
                apps.call(f, call.request(&state, &json!({}), first.as_ref(), As::Nobody)).await,
            );
            assert_problem(s, &b, &ct, 401, "unauthenticated");
        }
        if responses.get("403").is_some() {
            let (s, b, ct) = answer(
                apps.call(f, call.request(&state, &json!({}), first.as_ref(), call.wrong_caller()))
                    .await,
            );
            assert_problem(s, &b, &ct, 403, "forbidden");
        } else {
            assert!(call.iam, "{}", fail("a member route without a documented 403"));
        }

        // A closed request schema: unknown fields are refused, and every field is in an example.
        if let Some(s) = &request_schema {
            let s = deref(&doc, s);
            if s["additionalProperties"] == json!(false) {
                let mut b = first.clone().expect("a body example");
                b["zzUndocumented"] = json!(1);
                let (st, body, ct) = answer(
                    apps.call(
                        f,
                        call.request(&state, &json!({}), Some(&b), call.caller(&state, &json!({}))),
                    )
                    .await,
                );
                assert_problem(st, &body, &ct, 400, "unknown_field");
                assert!(
                    responses.get("400").is_some(),
                    "{}",
                    fail("refuses unknown fields with 400, which is not documented")
                );
            }
            let used: BTreeSet<String> = examples
                .iter()
                .map(|(_, e)| e["value"].clone())
                .chain(
                    errors
                        .iter()
                        .filter(|(st, _, e)| st != "400" || e["value"]["code"] != "unknown_field")
                        .map(|(_, _, e)| e["x-request"].clone()),
                )
                .filter_map(|b| b.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
                .flatten()
                .collect();
            for field in s["properties"].as_object().into_iter().flatten().map(|(k, _)| k) {
                assert!(
                    used.contains(field),
                    "{}",
                    fail(&format!("request field {field} is in no example: is it really taken?"))
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem examples differ from the handlers:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(successes >= 20, "only {successes} request examples sent");
    assert!(problems >= 60, "only {problems} problem examples sent");
    h.deps.store.client.delete_table().table_name(&table).send().await.unwrap();
}
