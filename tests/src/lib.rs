//! The integration-test harness: clients for the local stack that `scripts/test` started
//! (DynamoDB Local and the SQS endpoint, reached through the standard
//! `AWS_ENDPOINT_URL_*` variables), API Gateway events built like the real ones, and a
//! counter of DynamoDB requests by operation.

use aws_sdk_dynamodb::config::{Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_types::config_bag::ConfigBag;
use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use loyalty::app::{Clock, Dependencies};
use loyalty::store::Store;
use loyalty::Rules;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub mod capacity;
pub mod outbox;
pub mod schema;
pub use schema::conforms;

/// Counts DynamoDB requests by operation (`GetItem`, `TransactWriteItems`...).
#[derive(Debug, Default, Clone)]
pub struct Counter(Arc<Mutex<HashMap<String, u64>>>);

impl Counter {
    pub fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
    pub fn snapshot(&self) -> HashMap<String, u64> {
        self.0.lock().unwrap().clone()
    }
    /// Requests that read (GetItem, BatchGetItem, Query, Scan).
    pub fn reads(&self) -> u64 {
        self.sum(&["GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"])
    }
    /// Requests that write (PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems).
    pub fn writes(&self) -> u64 {
        self.sum(&["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"])
    }
    fn sum(&self, ops: &[&str]) -> u64 {
        let m = self.0.lock().unwrap();
        ops.iter().map(|o| m.get(*o).copied().unwrap_or(0)).sum()
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "request-counter"
    }
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = ctx.request().headers().get("x-amz-target").unwrap_or("unknown");
        let op = target.rsplit('.').next().unwrap_or(target).to_string();
        *self.0.lock().unwrap().entry(op).or_default() += 1;
        Ok(())
    }
}

pub struct Harness {
    pub deps: Dependencies,
    pub counter: Counter,
    pub capacity: capacity::Capacity,
    pub sdk_config: aws_config::SdkConfig,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A fresh, unique id for this test run (members, orders... never collide across tests).
pub fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut r = [0u8; 4];
    getrandom_fill(&mut r);
    format!("{prefix}-{}-{n}-{:08x}", std::process::id(), u32::from_le_bytes(r))
}

fn getrandom_fill(b: &mut [u8]) {
    // Tests need uniqueness, not secrecy; the time and a counter are mixed in above.
    let t = Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64;
    for (i, x) in b.iter_mut().enumerate() {
        *x = (t >> (i * 8)) as u8 ^ (t >> 32) as u8;
    }
}

pub async fn harness() -> Harness {
    harness_with(Rules::default(), Clock::System).await
}

pub async fn harness_with(rules: Rules, clock: Clock) -> Harness {
    let table = std::env::var("LOYALTY_TABLE").expect(
        "LOYALTY_TABLE is not set: run the tests with scripts/test, which starts the local stack",
    );
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: run the tests with scripts/test"
    );
    let sdk_config = loyalty::aws::sdk_config().await;
    let counter = Counter::default();
    let capacity = capacity::Capacity::default();
    let ddb = aws_sdk_dynamodb::config::Builder::from(&sdk_config)
        .interceptor(counter.clone())
        .interceptor(capacity.clone())
        .build();
    let store = Store::new(aws_sdk_dynamodb::Client::from_conf(ddb), table);
    let principals = loyalty::auth::Principals {
        order_system: vec![ORDER_SYSTEM_ROLE.into()],
        operators: vec![OPERATOR_ROLE.into()],
    };
    Harness {
        deps: Dependencies {
            store,
            rules: Arc::new(rules),
            clock,
            principals: Arc::new(principals),
        },
        counter,
        capacity,
        sdk_config,
    }
}

/// The IAM roles the harness's allow-lists name (as a deployment's parameters would).
pub const ORDER_SYSTEM_ROLE: &str = "order-system";
pub const OPERATOR_ROLE: &str = "loyalty-operators";

impl Harness {
    /// purchase-points over this harness's store and SQS endpoint.
    pub fn points_app(&self) -> purchase_points::App {
        points_on(self, &self.deps)
    }
}

// ---------------------------------------------------------------------------------------
// The functions' handlers on an environment: the harness's table, or a table of a test's own
// (`clone_table`) when what it checks is program-wide.

pub fn signup_on(deps: &Dependencies) -> signup::App {
    signup::App { deps: deps.clone(), codes: code_key(), contacts: contact_key() }
}

/// The coupon worker, without a campaign queue (it issues inline).
pub fn worker_on(deps: &Dependencies) -> coupon_issue::App {
    coupon_issue::App { deps: deps.clone(), codes: code_key(), queue: None }
}

pub fn points_on(h: &Harness, deps: &Dependencies) -> purchase_points::App {
    purchase_points::App {
        deps: deps.clone(),
        sqs: aws_sdk_sqs::Client::new(&h.sdk_config),
        codes: code_key(),
    }
}

/// The member-day function with a campaign queue and a dispatch queue of its own (fresh, so
/// a test drains only its own batches), and a dispatch budget of a minute.
pub async fn campaigns_on(h: &Harness, deps: &Dependencies) -> member_day::App {
    let sqs = aws_sdk_sqs::Client::new(&h.sdk_config);
    let mut urls = Vec::new();
    for prefix in ["cq", "dq"] {
        let made = sqs.create_queue().queue_name(unique(prefix)).send().await;
        urls.push(made.expect("create a test queue").queue_url.expect("a queue url"));
    }
    member_day::App {
        deps: deps.clone(),
        sqs,
        dispatch_queue: urls.pop().expect("two queues"),
        campaign_queue: urls.pop().expect("two queues"),
        members_files: None,
        budget: std::time::Duration::from_secs(60),
    }
}

/// One ReceiveMessage of up to 10 messages, without waiting: none when the queue has none
/// visible (a test's own queue, read until it answers none).
pub async fn receive_batch(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Vec<aws_sdk_sqs::types::Message> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .send()
        .await
        .expect("receive from a test queue")
        .messages
        .unwrap_or_default()
}

/// The migration function's export settings on the local stack's bucket: personal data
/// exported by the principals named (none: nobody), DynamoDB's own page size.
pub fn export_settings(personal_data_exporters: &[&str]) -> migration::ExportSettings {
    migration::ExportSettings {
        bucket: std::env::var("MIGRATION_BUCKET").expect("MIGRATION_BUCKET (scripts/stack)"),
        personal_data_exporters: personal_data_exporters.iter().map(|s| s.to_string()).collect(),
        page_limit: None,
        pages_per_part: loyalty::migration::export::PAGES_PER_PART,
    }
}

pub fn code_key() -> loyalty::coupon::CodeKey {
    loyalty::coupon::CodeKey::new(b"integration-tests-coupon-secret-0123456789").unwrap()
}

/// The key contact details are digested with (uniqueness items, tombstones), as a
/// deployment's `ContactKeySecret`.
pub fn contact_key() -> loyalty::contact::ContactKey {
    loyalty::contact::ContactKey::new(b"integration-tests-contact-secret-0123456789").unwrap()
}

/// Who the request claims to be, as API Gateway's authorizers would put it.
#[derive(Debug, Clone)]
pub enum As {
    Member(String),
    /// A member whose token carries more claims than `sub`, e.g. Cognito's verified contacts:
    /// `{"email": "a@example.com", "email_verified": "true"}` (API Gateway passes every claim
    /// as a string).
    MemberWithClaims(String, Value),
    /// An operator's role session (campaigns, coupon grants, support).
    Operator,
    /// The order system's role session (purchases, refunds, checkout).
    OrderSystem,
    /// An IAM principal on neither allow-list.
    OtherIam,
    Nobody,
}

/// The claims of a token whose identity provider verified these contacts (Cognito's names).
pub fn verified_claims(email: Option<&str>, phone: Option<&str>) -> Value {
    let mut c = serde_json::Map::new();
    if let Some(e) = email {
        c.insert("email".into(), e.into());
        c.insert("email_verified".into(), "true".into());
    }
    if let Some(p) = phone {
        c.insert("phone_number".into(), p.into());
        c.insert("phone_number_verified".into(), "true".into());
    }
    Value::Object(c)
}

/// An API Gateway HTTP API (payload 2.0) event, parsed the way the runtime parses it.
pub fn request(method: &str, path_and_query: &str, body: Option<&str>, who: As) -> Request {
    request_with_headers(method, path_and_query, body, who, &[])
}

pub fn request_with_headers(
    method: &str,
    path_and_query: &str,
    body: Option<&str>,
    who: As,
    headers: &[(&str, &str)],
) -> Request {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let authorizer = match who {
        As::Member(sub) => json!({ "jwt": { "claims": { "sub": sub }, "scopes": null } }),
        As::MemberWithClaims(sub, claims) => {
            let mut all = claims.as_object().cloned().unwrap_or_default();
            all.insert("sub".into(), Value::String(sub));
            json!({ "jwt": { "claims": all, "scopes": null } })
        }
        As::Operator => {
            iam(&format!("arn:aws:sts::123456789012:assumed-role/{OPERATOR_ROLE}/alice"))
        }
        As::OrderSystem => iam(&format!(
            "arn:aws:sts::123456789012:assumed-role/{ORDER_SYSTEM_ROLE}/checkout-service"
        )),
        As::OtherIam => iam("arn:aws:sts::123456789012:assumed-role/someone-else/x"),
        As::Nobody => Value::Null,
    };
    let mut hdrs = serde_json::Map::new();
    hdrs.insert("content-type".into(), "application/json".into());
    for (k, v) in headers {
        hdrs.insert(k.to_string(), Value::String(v.to_string()));
    }
    let mut ctx = json!({
        "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
        "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tests" },
        "requestId": unique("req"), "routeKey": "$default", "stage": "$default",
        "time": "27/Nov/2026:00:00:00 +0000", "timeEpoch": 0
    });
    if !authorizer.is_null() {
        ctx["authorizer"] = authorizer;
    }
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": hdrs, "requestContext": ctx, "body": body, "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("test event parses")
}

fn iam(arn: &str) -> Value {
    json!({ "iam": { "accessKey": "ASIA", "accountId": "123456789012", "callerId": "AROA:x", "userArn": arn, "userId": "AROA:x" } })
}

/// Status and JSON body of a response (problem+json included).
pub fn answer(resp: Response<Body>) -> (u16, Value, String) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: &[u8] = resp.body().as_ref();
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or(Value::String(String::from_utf8_lossy(body).into()))
    };
    (status, v, ct)
}

/// Asserts an RFC 9457 problem with the given status and machine code.
pub fn assert_problem(
    status: u16,
    body: &Value,
    content_type: &str,
    want_status: u16,
    want_code: &str,
) {
    assert_eq!(status, want_status, "status for {body}");
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert_eq!(body["status"], want_status);
    for f in ["type", "title", "detail"] {
        assert!(body[f].is_string(), "problem lacks {f}: {body}");
    }
}

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("a test timestamp")
}

/// Writes members straight in their stored shape (as signup and purchases leave them), 25 per
/// BatchWriteItem with several requests in flight: for tests and benchmarks that need
/// thousands of members quickly.
pub async fn seed_members(h: &Harness, members: &[loyalty::member::Member], now: DateTime<Utc>) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use futures::StreamExt;
    let (store, rules) = (&h.deps.store, &h.deps.rules);
    futures::stream::iter(members.chunks(25))
        .for_each_concurrent(8, |chunk| async move {
            let writes: Vec<WriteRequest> = chunk
                .iter()
                .map(|m| {
                    let item = loyalty::store::to_item(&loyalty::store::member::MemberItem::new(
                        m, rules, now,
                    ))
                    .expect("a member maps to an item");
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder().set_item(Some(item)).build().expect("item set"),
                        )
                        .build()
                })
                .collect();
            let mut pending = Some(writes);
            while let Some(w) = pending.take() {
                let out = store
                    .client
                    .batch_write_item()
                    .request_items(&store.table, w)
                    .send()
                    .await
                    .expect("batch write");
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&store.table))
                    .filter(|v| !v.is_empty());
            }
        })
        .await;
}

/// A member as signup would store it, of `tier`, without contact data.
pub fn plain_member(
    id: &str,
    tier: loyalty::TierCode,
    joined: DateTime<Utc>,
) -> loyalty::member::Member {
    let new = loyalty::member::NewMember {
        email: None,
        phone: None,
        name: "Seed".into(),
        birthday: None,
        referral_code: None,
        marketing_consent: false,
    };
    let mut m = loyalty::member::Member::join(
        loyalty::member::MemberId::parse(id).expect("a valid member id"),
        &new,
        "SEEDCODE".into(),
        None,
        joined,
    );
    m.tier = tier;
    m
}

/// A new, empty table with the bootstrapped table's keys and indexes (both from
/// template.yaml): for tests whose writes are program-wide (campaign multiplier windows,
/// whole-table jobs) and must touch no other test.
pub async fn clone_table(h: &Harness, prefix: &str) -> String {
    clone_table_with_stream(h, prefix, false).await
}

/// `clone_table`, with the template's stream (`NEW_AND_OLD_IMAGES`) when `stream` is set: the
/// bootstrapped table may have none (the shared test stack's is made from another template).
pub async fn clone_table_with_stream(h: &Harness, prefix: &str, stream: bool) -> String {
    use aws_sdk_dynamodb::types::{
        BillingMode, GlobalSecondaryIndex, StreamSpecification, StreamViewType,
    };
    let client = &h.deps.store.client;
    let d = client
        .describe_table()
        .table_name(&h.deps.store.table)
        .send()
        .await
        .expect("describe the table")
        .table
        .expect("a table");
    let gsis: Vec<GlobalSecondaryIndex> = d
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            let b = GlobalSecondaryIndex::builder()
                .index_name(g.index_name().unwrap_or_default())
                .set_key_schema(Some(g.key_schema().to_vec()));
            b.set_projection(g.projection().cloned()).build().expect("index definition")
        })
        .collect();
    let name = unique(prefix);
    client
        .create_table()
        .table_name(&name)
        .set_attribute_definitions(Some(d.attribute_definitions().to_vec()))
        .set_key_schema(Some(d.key_schema().to_vec()))
        .billing_mode(BillingMode::PayPerRequest)
        .set_global_secondary_indexes(Some(gsis))
        .set_stream_specification(stream.then(|| {
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("a stream specification")
        }))
        .send()
        .await
        .expect("create the table");
    name
}

/// Runs a campaign's queues to empty in process, as the event source mappings would: each
/// dispatch message through member-day's dispatcher, each batch through coupon-issue's
/// worker (which must fail no record), deleting what was handled; `after_each` runs after
/// every message (a test that publishes as the run goes).
pub async fn drain_campaign_queues(
    app: &member_day::App,
    worker: &coupon_issue::App,
    sqs: &aws_sdk_sqs::Client,
    mut after_each: impl AsyncFnMut(),
) {
    loop {
        let mut moved = false;
        for (queue, dispatch) in
            [(app.dispatch_queue.clone(), true), (app.campaign_queue.clone(), false)]
        {
            let got = receive_batch(sqs, &queue).await;
            for m in got {
                moved = true;
                let body = m.body().unwrap_or_default().to_string();
                if dispatch {
                    member_day::dispatch::on_message(
                        app,
                        &body,
                        std::time::Instant::now() + std::time::Duration::from_secs(60),
                    )
                    .await
                    .expect("dispatch");
                } else {
                    let batch = serde_json::from_value(json!({"Records": [{"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": body, "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs"}]})).unwrap();
                    assert!(coupon_issue::worker::handle(worker, batch)
                        .await
                        .batch_item_failures
                        .is_empty());
                }
                sqs.delete_message()
                    .queue_url(&queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                after_each().await;
            }
        }
        if !moved {
            break;
        }
    }
}
