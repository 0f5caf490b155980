//! The events-out harness: a table of the test's own with a stream (the shared test table has
//! none), a reader of that stream that hands records over as Lambda delivers them, and an
//! event bus on the local EventBridge (moto) with a rule sending every event to a sink queue,
//! which the tests read back and check against the schemas of events/schemas.
//!
//! Endpoints: `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` (else DynamoDB Local's, which serves the
//! streams API) and `AWS_ENDPOINT_URL_EVENTBRIDGE` (else the SQS endpoint: moto serves both).

use crate::{unique, Harness};
use aws_lambda_events::dynamodb::EventRecord;
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

fn endpoint(var: &str, fallback: &str) -> String {
    std::env::var(var).or_else(|_| std::env::var(fallback)).unwrap_or_else(|_| {
        panic!("neither {var} nor {fallback} is set: run the tests with scripts/test")
    })
}

/// A table like `clone_table`'s, with the template's stream (`NEW_AND_OLD_IMAGES`).
pub async fn stream_table(h: &Harness, prefix: &str) -> String {
    crate::clone_table_with_stream(h, prefix, true).await
}

pub async fn drop_table(h: &Harness, table: &str) {
    let _ = h.deps.store.client.delete_table().table_name(table).send().await;
}

/// Reads a table's stream from its start, shard by shard, remembering where it stopped.
pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    pub arn: String,
    /// Where each shard's next read starts (absent: from its beginning; None: read to its end).
    next: BTreeMap<String, Option<String>>,
    /// The last sequence number read from each shard: after a restart at the trim horizon,
    /// what was read already is not returned again.
    last: BTreeMap<String, u128>,
    region: String,
}

impl StreamReader {
    pub async fn open(h: &Harness, table: &str) -> StreamReader {
        let d = h
            .deps
            .store
            .client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .expect("describe the table")
            .table
            .expect("a table");
        let arn = d.latest_stream_arn().expect("the table has a stream").to_string();
        let conf = aws_sdk_dynamodbstreams::config::Builder::from(&h.sdk_config)
            .endpoint_url(endpoint(
                "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
                "AWS_ENDPOINT_URL_DYNAMODB",
            ))
            .build();
        let region =
            h.sdk_config.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        StreamReader {
            client: aws_sdk_dynamodbstreams::Client::from_conf(conf),
            arn,
            next: BTreeMap::new(),
            last: BTreeMap::new(),
            region,
        }
    }

    /// An iterator at the shard's oldest record still kept.
    async fn trim_horizon(&self, shard: &str) -> String {
        self.client
            .get_shard_iterator()
            .stream_arn(&self.arn)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("a shard iterator")
            .shard_iterator
            .expect("an iterator")
    }

    /// Every record written since the last read, in stream order per shard (parents first),
    /// as the records of a Lambda event; 1,000 a GetRecords call.
    pub async fn read(&mut self) -> Vec<EventRecord> {
        let mut shards = Vec::new();
        let mut start = None;
        loop {
            let d = self
                .client
                .describe_stream()
                .stream_arn(&self.arn)
                .set_exclusive_start_shard_id(start)
                .send()
                .await
                .expect("describe the stream");
            let d = d.stream_description.expect("a stream description");
            shards.extend(d.shards().iter().map(|s| s.shard_id().unwrap_or_default().to_string()));
            start = d.last_evaluated_shard_id;
            if start.is_none() {
                break;
            }
        }
        let mut out = Vec::new();
        for shard in shards {
            let mut iterator = match self.next.get(&shard) {
                Some(None) => continue,
                Some(Some(it)) => it.clone(),
                None => self.trim_horizon(&shard).await,
            };
            let mut trimmed = 0;
            loop {
                let page = match self
                    .client
                    .get_records()
                    .shard_iterator(&iterator)
                    .limit(1000)
                    .send()
                    .await
                {
                    Ok(page) => page,
                    // DynamoDB Local trims a shard's oldest records now and then; an iterator
                    // that pointed at them is then refused. Lambda's event source mapping starts
                    // again at the trim horizon; so does this reader (what was trimmed is older
                    // than anything a test is waiting for).
                    Err(e)
                        if trimmed < 3
                            && e.as_service_error()
                                .is_some_and(|e| e.is_trimmed_data_access_exception()) =>
                    {
                        trimmed += 1;
                        iterator = self.trim_horizon(&shard).await;
                        continue;
                    }
                    Err(e) => panic!("get records: {e:?}"),
                };
                let got = page.records().len();
                for r in page.records() {
                    let seq = r
                        .dynamodb()
                        .and_then(|d| d.sequence_number())
                        .and_then(|n| n.parse::<u128>().ok())
                        .unwrap_or(0);
                    if self.last.get(&shard).is_some_and(|last| seq <= *last) {
                        continue;
                    }
                    self.last.insert(shard.clone(), seq);
                    out.push(self.lambda_record(r));
                }
                match page.next_shard_iterator {
                    Some(next) if got > 0 => iterator = next,
                    Some(next) => {
                        self.next.insert(shard.clone(), Some(next));
                        break;
                    }
                    None => {
                        self.next.insert(shard.clone(), None);
                        break;
                    }
                }
            }
        }
        out
    }

    /// The record as the event source mapping puts it in a Lambda event.
    fn lambda_record(&self, r: &Record) -> EventRecord {
        let d = r.dynamodb().expect("a stream record");
        let image = |m: Option<&HashMap<String, AttributeValue>>| {
            m.map(|m| Value::Object(m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect()))
        };
        let mut change = Map::new();
        let created = d.approximate_creation_date_time().map(|t| t.as_secs_f64()).unwrap_or(0.0);
        change.insert("ApproximateCreationDateTime".into(), json!(created));
        for (name, m) in
            [("Keys", d.keys()), ("NewImage", d.new_image()), ("OldImage", d.old_image())]
        {
            if let Some(v) = image(m) {
                change.insert(name.into(), v);
            }
        }
        change.insert("SequenceNumber".into(), json!(d.sequence_number()));
        change.insert("SizeBytes".into(), json!(d.size_bytes().unwrap_or(0)));
        change.insert("StreamViewType".into(), json!(d.stream_view_type().map(|v| v.as_str())));
        let record = json!({
            "eventID": r.event_id(), "eventName": r.event_name().map(|n| n.as_str()), "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": self.region, "dynamodb": change, "eventSourceARN": self.arn,
        });
        serde_json::from_value(record).expect("a stream record is a Lambda DynamoDB record")
    }
}

/// A DynamoDB Streams attribute value in the JSON of a Lambda event.
fn attribute(v: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        aws_smithy_types::base64::encode(b.as_ref())
    };
    match v {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": b64(b)}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(n) => json!({"NULL": n}),
        AttributeValue::Ss(ss) => json!({"SS": ss}),
        AttributeValue::Ns(ns) => json!({"NS": ns}),
        AttributeValue::Bs(bs) => json!({"BS": bs.iter().map(b64).collect::<Vec<_>>()}),
        AttributeValue::M(m) => {
            json!({"M": m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect::<Map<_, _>>()})
        }
        AttributeValue::L(l) => json!({"L": l.iter().map(attribute).collect::<Vec<_>>()}),
        other => panic!("an attribute type the tests do not know: {other:?}"),
    }
}

/// `records` as the Lambda events of a mapping with this batch size, each parsed by the
/// runtime as the function would receive it.
pub fn batches(records: &[EventRecord], size: usize) -> Vec<aws_lambda_events::dynamodb::Event> {
    records
        .chunks(size)
        .map(|chunk| {
            let raw = json!({ "Records": chunk });
            match loyalty::runtime::classify(raw) {
                Ok(loyalty::runtime::Trigger::Stream(e)) => e,
                _ => panic!("a stream batch is not read as a stream trigger"),
            }
        })
        .collect()
}

/// A bus on the local EventBridge with a rule sending every event to a sink queue.
pub struct Sink {
    pub events: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub bus: String,
    pub queue_url: String,
}

impl Sink {
    pub async fn new(h: &Harness) -> Sink {
        let events = events_client(h);
        let sqs = aws_sdk_sqs::Client::new(&h.sdk_config);
        let bus = unique("bus");
        events.create_event_bus().name(&bus).send().await.expect("create the bus");
        let queue_url = sqs
            .create_queue()
            .queue_name(unique("sink"))
            .send()
            .await
            .expect("create the sink")
            .queue_url
            .expect("a queue url");
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
            .expect("a queue arn");
        events
            .put_rule()
            .name("all")
            .event_bus_name(&bus)
            .event_pattern(r#"{"source":[{"prefix":""}]}"#)
            .send()
            .await
            .expect("the sink rule");
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("sink")
            .arn(arn)
            .build()
            .expect("a target");
        events
            .put_targets()
            .rule("all")
            .event_bus_name(&bus)
            .targets(target)
            .send()
            .await
            .expect("the sink target");
        Sink { events, sqs, bus, queue_url }
    }

    /// The publisher on this bus.
    pub fn app(&self) -> events_out::App {
        events_out::App {
            events: self.events.clone(),
            bus: self.bus.clone(),
            tries: 3,
            concurrency: 4,
            kpis: None,
        }
    }

    /// The events that reach the sink (each taken off it), until `at_least` have come and the
    /// sink is empty, or nothing at all came for 20 s. Run it while publishing: the local SQS
    /// (moto) slows down with every message a queue holds, so the sink is kept nearly empty.
    /// (moto delivers an event to the queue before PutEvents answers.)
    pub async fn take(&self, at_least: usize) -> Vec<Value> {
        self.take_until(|| Some(at_least)).await
    }

    /// `take`, for a number of events known only later (`want` answers None until then).
    pub async fn take_until(&self, want: impl Fn() -> Option<usize>) -> Vec<Value> {
        let mut out = Vec::new();
        let mut progress = Instant::now();
        loop {
            let known = want();
            if known.is_some() && progress.elapsed() > Duration::from_secs(20) {
                break;
            }
            // Long polling while the count is unknown: no busy loop on the local SQS.
            let wait = if known.is_some() { 0 } else { 1 };
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(300)
                .wait_time_seconds(wait)
                .send()
                .await
                .expect("receive");
            let msgs = got.messages.unwrap_or_default();
            if msgs.is_empty() {
                if known.is_some_and(|k| out.len() >= k) {
                    break;
                }
                if known.is_none() {
                    progress = Instant::now();
                } else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
            progress = Instant::now();
            let entries = msgs
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                        .expect("an entry")
                })
                .collect();
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("delete");
            for m in msgs {
                out.push(
                    serde_json::from_str(m.body().unwrap_or_default())
                        .expect("an EventBridge event"),
                );
            }
        }
        out
    }

    pub async fn remove(self) {
        let _ = self
            .events
            .remove_targets()
            .rule("all")
            .event_bus_name(&self.bus)
            .ids("sink")
            .send()
            .await;
        let _ = self.events.delete_rule().name("all").event_bus_name(&self.bus).send().await;
        let _ = self.events.delete_event_bus().name(&self.bus).send().await;
        let _ = self.sqs.delete_queue().queue_url(&self.queue_url).send().await;
    }
}

/// An EventBridge client for the local endpoint.
pub fn events_client(h: &Harness) -> aws_sdk_eventbridge::Client {
    let conf = aws_sdk_eventbridge::config::Builder::from(&h.sdk_config)
        .endpoint_url(endpoint("AWS_ENDPOINT_URL_EVENTBRIDGE", "AWS_ENDPOINT_URL_SQS"))
        .build();
    aws_sdk_eventbridge::Client::from_conf(conf)
}

/// Publishes `records` in batches of `size`, one after the other as one shard's mapping
/// does; answers each batch's response.
pub async fn publish(
    app: &events_out::App,
    records: &[EventRecord],
    size: usize,
) -> Vec<DynamoDbEventResponse> {
    let mut out = Vec::new();
    for batch in batches(records, size) {
        out.push(events_out::handle_stream(app, batch).await);
    }
    out
}

/// The event schema of a detail type (events/schemas/<DetailType>.json).
pub fn schema(detail_type: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events/schemas")
        .join(format!("{detail_type}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no schema {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks an event as it reached the sink: the envelope's source, and the detail against the
/// schema of its detail type.
pub fn check(event: &Value) {
    assert_eq!(event["source"], "loyalty", "{event}");
    let dt = event["detail-type"].as_str().expect("a detail type");
    let s = schema(dt);
    crate::conforms(&s, &s, &event["detail"], dt)
        .unwrap_or_else(|e| panic!("{dt} does not match its schema: {e}\n{event}"));
}

/// The detail types of events, sorted (for comparing what was published).
pub fn types(events: &[Value]) -> Vec<String> {
    let mut t: Vec<String> =
        events.iter().map(|e| e["detail-type"].as_str().unwrap_or_default().to_string()).collect();
    t.sort();
    t
}
