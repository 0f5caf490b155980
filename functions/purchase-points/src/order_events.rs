//! The order-events queue: the order system's asynchronous way to report purchases, refunds
//! and checkout confirms/cancels. Events may arrive in any order: one that names an order or
//! checkout not recorded yet (a refund before its purchase) is not a failure of the event but
//! of timing, so it waits with exponential back-off — 1 minute doubling to 12 hours, which
//! with the queue's `maxReceiveCount` of 14 is about 2.2 days — and is applied once what it
//! names is there. Everything else that fails is retried after the queue's visibility timeout
//! (transient faults) or made visible again at once (a refused event: 4xx) so that it reaches
//! the dead-letter queue, and its alarm, quickly.

use crate::{checkout, purchase, refund, Answer, App};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use loyalty::member::MemberId;
use loyalty::ApiError;
use serde_json::Value;

/// How long an event that came before its order waits before its next try.
pub fn retry_delay(receive_count: u32) -> i32 {
    const BASE_SECONDS: i64 = 60;
    const MAX_SECONDS: i64 = 12 * 3600;
    (BASE_SECONDS << receive_count.saturating_sub(1).min(20)).min(MAX_SECONDS) as i32
}

/// Codes that mean "what this event names is not recorded yet": wait and try again.
const EARLY: [&str; 2] = ["order_not_found", "checkout_not_found"];

/// One message of the order-events queue: `type` and `memberId`, then the fields of the
/// matching HTTP body, e.g.
/// `{"type":"purchase","memberId":"m1","orderId":"o1","amount":12900,"currency":"CNY","channel":"online","occurredAt":"2026-11-27T08:00:00Z"}`,
/// `{"type":"refund","memberId":"m1","orderId":"o1","refundId":"r1","amount":2900}`,
/// `{"type":"confirm","memberId":"m1","orderId":"o1","paid":12900}` or
/// `{"type":"cancel","memberId":"m1","orderId":"o1"}`.
pub async fn order_event(app: &App, body: &str) -> Result<Answer, ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_order_event", m);
    let mut v: Value = serde_json::from_str(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let obj = v.as_object_mut().ok_or_else(|| bad("the message must be a JSON object".into()))?;
    let kind = obj
        .remove("type")
        .and_then(|t| t.as_str().map(str::to_string))
        .ok_or_else(|| bad("type is required".into()))?;
    let member = obj
        .remove("memberId")
        .and_then(|t| t.as_str().and_then(MemberId::parse))
        .ok_or_else(|| bad("memberId is missing or invalid".into()))?;
    let order_id = || {
        obj.get("orderId")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad("orderId is required".into()))
    };
    match kind.as_str() {
        "purchase" => {
            purchase(app, &member, serde_json::from_value(v).map_err(|e| bad(e.to_string()))?).await
        }
        "refund" => {
            refund(app, &member, serde_json::from_value(v).map_err(|e| bad(e.to_string()))?).await
        }
        "confirm" => {
            let order = order_id()?;
            obj.remove("orderId");
            checkout::confirm(
                app,
                &member,
                &order,
                serde_json::from_value(v).map_err(|e| bad(e.to_string()))?,
            )
            .await
        }
        "cancel" => {
            let order = order_id()?;
            obj.remove("orderId");
            if !obj.is_empty() {
                return Err(bad("a cancel carries only type, memberId and orderId".into()));
            }
            checkout::cancel(app, &member, &order).await
        }
        other => Err(bad(format!(
            "unknown type {:?}: purchase, refund, confirm or cancel",
            other.chars().take(20).collect::<String>()
        ))),
    }
}

/// Each message is handled on its own; the failed ones are reported so that only they are
/// redelivered. A retried event that was already recorded replays its first answer: a success.
pub async fn handle_sqs(app: &App, event: SqsEvent) -> SqsBatchResponse {
    // One at a time, in order: a refund after its purchase in the same batch finds it.
    loyalty::runtime::each_message(
        event,
        1,
        |record| async move { handle_message(app, &record).await },
    )
    .await
}

/// Applies one message; `false` when it is to be delivered again.
async fn handle_message(app: &App, record: &SqsMessage) -> bool {
    let id = record.message_id.as_deref().unwrap_or_default();
    let Err(e) = order_event(app, record.body.as_deref().unwrap_or_default()).await else {
        return true;
    };
    let receives = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse::<u32>().ok())
        .unwrap_or(1);
    let wait = if EARLY.contains(&e.code()) {
        Some(retry_delay(receives))
    } else if e.status() < 500 {
        Some(0)
    } else {
        None
    };
    tracing::warn!(message_id = %id, code = e.code(), status = e.status(), receives, wait_seconds = ?wait, "order event failed");
    if let Some(seconds) = wait {
        set_visibility(app, record, seconds).await;
    }
    false
}

/// Makes the message visible again in `seconds`. If this fails the queue's own visibility
/// timeout applies: the event is retried later all the same.
async fn set_visibility(app: &App, record: &SqsMessage, seconds: i32) {
    let (Some(arn), Some(handle)) =
        (record.event_source_arn.as_deref(), record.receipt_handle.as_deref())
    else {
        return;
    };
    let Some(url) = queue_url(arn) else { return };
    if let Err(e) = app
        .sqs
        .change_message_visibility()
        .queue_url(url)
        .receipt_handle(handle)
        .visibility_timeout(seconds)
        .send()
        .await
    {
        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not set the event's back-off; the queue's visibility timeout applies");
    }
}

/// The queue URL of a queue ARN (`arn:aws:sqs:<region>:<account>:<name>`). The request goes
/// to the client's endpoint; the URL names the queue (a local endpoint reads its last parts).
pub fn queue_url(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let [_, _, "sqs", region, account, name] = parts.as_slice() else { return None };
    Some(format!("https://sqs.{region}.amazonaws.com/{account}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_events_wait_a_minute_doubling_to_twelve_hours_over_more_than_a_day() {
        assert_eq!((retry_delay(1), retry_delay(2), retry_delay(3)), (60, 120, 240));
        assert_eq!((retry_delay(11), retry_delay(40)), (43_200, 43_200));
        // The queue's maxReceiveCount is 14: 13 waits before the DLQ.
        let waited: i64 = (1..14).map(|n| retry_delay(n) as i64).sum();
        assert!(waited > 24 * 3600, "{waited}");
    }

    #[test]
    fn queue_urls_come_from_the_arn() {
        assert_eq!(
            queue_url("arn:aws:sqs:ap-east-1:123:orders").as_deref(),
            Some("https://sqs.ap-east-1.amazonaws.com/123/orders")
        );
        assert_eq!(queue_url("nonsense"), None);
    }
}
