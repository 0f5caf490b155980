//! One Lambda binary may be reached by several triggers: API Gateway (HTTP API, payload
//! 2.0), SQS, EventBridge schedules and DynamoDB streams. `run` reads the raw event once, tells which it is,
//! and hands the handler a typed `Trigger`; the handler answers an `Outcome`.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::encodings::Body as EventBody;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_lambda_events::streams::DynamoDbEventResponse;
use futures::StreamExt;
use lambda_http::{Body, Request, Response};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use loyalty_domain::store::stream::StreamChange;
use serde_json::Value;
use std::future::Future;

pub enum Trigger {
    Http(Request),
    Sqs(SqsEvent),
    /// A scheduled (or manually fired) job: an EventBridge event whose `detail` names the job.
    Schedule(EventBridgeEvent<Value>),
    /// A batch of the table's stream records (`Records[].eventSource` = `aws:dynamodb`).
    Stream(StreamEvent),
}

pub enum Outcome {
    Http(Response<Body>),
    Sqs(SqsBatchResponse),
    /// Partial batch failures of a stream batch: the first failed record's sequence number.
    Stream(DynamoDbEventResponse),
    Done(Value),
}

/// A stream record as the domain's mappings read it.
pub fn stream_change(record: &EventRecord) -> StreamChange<'_> {
    let c = &record.change;
    StreamChange {
        event_id: &record.event_id,
        event_name: &record.event_name,
        keys: &c.keys,
        new_image: &c.new_image,
        old_image: &c.old_image,
        sequence_number: c.sequence_number.as_deref(),
        at: c.approximate_creation_date_time,
    }
}

/// Tells the trigger from the event's shape.
pub fn classify(event: Value) -> Result<Trigger, Error> {
    if event.get("requestContext").and_then(|c| c.get("http")).is_some() {
        let req = lambda_http::request::from_str(&event.to_string())?;
        return Ok(Trigger::Http(req));
    }
    let source = event
        .get("Records")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str);
    if source == Some("aws:dynamodb") {
        return Ok(Trigger::Stream(serde_json::from_value(event)?));
    }
    if source == Some("aws:sqs")
        || event.get("Records").and_then(Value::as_array).is_some_and(|r| r.is_empty())
    {
        return Ok(Trigger::Sqs(serde_json::from_value(event)?));
    }
    if event.get("detail-type").is_some() {
        return Ok(Trigger::Schedule(serde_json::from_value(event)?));
    }
    Err("unrecognised event: expected an HTTP API request, an SQS batch, a DynamoDB stream batch or an EventBridge event".into())
}

/// The HTTP API's response shape for an `http::Response`.
pub fn http_response(resp: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = resp.into_parts();
    let (body, is_base64_encoded) = match body {
        Body::Empty => (None, false),
        Body::Text(t) => (Some(EventBody::Text(t)), false),
        Body::Binary(b) => match String::from_utf8(b) {
            Ok(t) => (Some(EventBody::Text(t)), false),
            Err(e) => (Some(EventBody::Binary(e.into_bytes())), true),
        },
        _ => (None, false),
    };
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = parts.status.as_u16() as i64;
    out.headers = parts.headers;
    out.body = body;
    out.is_base64_encoded = is_base64_encoded;
    out
}

impl Outcome {
    pub fn into_value(self) -> Result<Value, Error> {
        Ok(match self {
            Outcome::Http(r) => serde_json::to_value(http_response(r))?,
            Outcome::Sqs(b) => serde_json::to_value(b)?,
            Outcome::Stream(b) => serde_json::to_value(b)?,
            Outcome::Done(v) => v,
        })
    }
}

/// Runs the Lambda loop with `handler` for every event.
pub async fn run<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(Trigger) -> Fut,
    Fut: Future<Output = Result<Outcome, Error>>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler(classify(event.payload)?).await?.into_value()
    }))
    .await
}

/// Like `run`, also giving the handler the invocation's deadline, so long jobs (sweeps) can
/// stop in time and leave the rest to the next run.
pub async fn run_with_deadline<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(Trigger, std::time::SystemTime) -> Fut,
    Fut: Future<Output = Result<Outcome, Error>>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline =
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.context.deadline);
        handler(classify(event.payload)?, deadline).await?.into_value()
    }))
    .await
}

/// An SQS batch with partial failures (`ReportBatchItemFailures`): runs `handle` on every
/// message, at most `concurrency` at once, and reports the messages it did not finish
/// (`handle` answered `false`) so that only they are redelivered. `handle` logs its own
/// failures: it knows what went wrong.
pub async fn each_message<F, Fut>(
    event: SqsEvent,
    concurrency: usize,
    handle: F,
) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = bool>,
{
    let ids: Vec<String> =
        event.records.iter().map(|r| r.message_id.clone().unwrap_or_default()).collect();
    let done: Vec<bool> = futures::stream::iter(event.records)
        .map(handle)
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for (id, done) in ids.into_iter().zip(done) {
        if !done {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// A scheduled job's instant: `detail.now` when given (to replay or test a day), else the
/// event's time, else the clock.
pub fn job_time(
    event: &EventBridgeEvent<Value>,
    clock: &crate::app::Clock,
) -> chrono::DateTime<chrono::Utc> {
    event
        .detail
        .get("now")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .or(event.time)
        .unwrap_or_else(|| clock.now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_each_trigger() {
        let sqs = serde_json::json!({"Records": [{"messageId": "1", "body": "{}", "eventSource": "aws:sqs", "attributes": {}, "messageAttributes": {}}]});
        assert!(matches!(classify(sqs), Ok(Trigger::Sqs(_))));
        let sched = serde_json::json!({"detail-type": "Scheduled Event", "source": "loyalty.schedule", "detail": {"job": "expiry-sweep"}});
        assert!(matches!(classify(sched), Ok(Trigger::Schedule(_))));
        let stream = serde_json::json!({"Records": [{"eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": 1.7e9, "Keys": {"PK": {"S": "MEMBER#m"}, "SK": {"S": "#PROFILE"}}, "SequenceNumber": "1", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}}]});
        assert!(matches!(classify(stream), Ok(Trigger::Stream(_))));
        assert!(classify(serde_json::json!({"hello": 1})).is_err());
    }
}
