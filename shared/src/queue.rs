//! Sending to an SQS queue: the one place that knows SendMessageBatch's limits (ten entries
//! and 256 KiB a request) and retries the entries SQS refuses. Every function that fans work
//! out to a queue (coupon-issue's birthday batches, the member-day dispatcher, the tier
//! coordinator) sends through `Queue::send`.

use crate::store::backoff;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::Serialize;

/// Attempts per request: the first send and the retries of what SQS refused (or of a request
/// that failed as a whole).
const SEND_ATTEMPTS: u32 = 5;
/// SendMessageBatch takes at most ten entries.
const MAX_ENTRIES: usize = 10;
/// SQS caps a SendMessageBatch request's total payload (the sum of the bodies) at 256 KiB.
/// Exactly that, not less: the member-day packs (`campaign::pack_ids`, at most 24 KiB each)
/// are sized so that ten fit in one request, and the request counts in BENCHMARKS.md rely on it.
const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// A queue and the client that sends to it.
pub struct Queue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl Queue {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> Queue {
        Queue { client, url }
    }

    /// Sends every item as one JSON message (see the function `send`).
    pub async fn send<T: Serialize>(&self, items: &[T]) -> Result<(), String> {
        send(&self.client, &self.url, items).await
    }
}

/// Sends every item to the queue at `url` as one JSON message, up to ten messages and
/// `MAX_REQUEST_BYTES` per SendMessageBatch; entries SQS refuses are sent again (a few
/// times) before failing.
pub async fn send<T: Serialize>(
    client: &aws_sdk_sqs::Client,
    url: &str,
    items: &[T],
) -> Result<(), String> {
    let bodies = items
        .iter()
        .map(|b| serde_json::to_string(b).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    for group in groups(&bodies) {
        send_group(client, url, group).await?;
    }
    Ok(())
}

/// One SendMessageBatch request, and again with the entries refused.
async fn send_group(
    client: &aws_sdk_sqs::Client,
    url: &str,
    group: &[String],
) -> Result<(), String> {
    let mut pending: Vec<(String, &str)> =
        group.iter().enumerate().map(|(i, b)| (i.to_string(), b.as_str())).collect();
    for attempt in 0..SEND_ATTEMPTS {
        let entries = pending
            .iter()
            .map(|(id, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(id)
                    .message_body(*body)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        match client.send_message_batch().queue_url(url).set_entries(Some(entries)).send().await {
            Ok(o) => {
                let failed: Vec<&str> = o.failed().iter().map(|f| f.id()).collect();
                pending.retain(|(id, _)| failed.contains(&id.as_str()));
            }
            Err(e) if attempt + 1 == SEND_ATTEMPTS => {
                return Err(format!(
                    "sending to {}: {}",
                    url,
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ));
            }
            Err(e) => {
                tracing::warn!(attempt, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "SendMessageBatch failed; sending again")
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            refused = pending.len(),
            attempt,
            "the queue refused some messages; sending them again"
        );
        backoff(attempt).await;
    }
    Err(format!("the queue {} refused {} messages", url, pending.len()))
}

/// Consecutive groups of at most ten bodies and `MAX_REQUEST_BYTES` (a larger single body
/// goes alone, and SQS judges it).
fn groups(bodies: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, b) in bodies.iter().enumerate() {
        if i > start && (i - start == MAX_ENTRIES || bytes + b.len() > MAX_REQUEST_BYTES) {
            out.push(&bodies[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += b.len();
    }
    if start < bodies.len() {
        out.push(&bodies[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_hold_at_most_ten_messages_and_stay_under_the_request_size() {
        let small: Vec<String> = (0..23).map(|i| i.to_string()).collect();
        assert_eq!(groups(&small).iter().map(|g| g.len()).collect::<Vec<_>>(), vec![10, 10, 3]);
        let big: Vec<String> = (0..5).map(|_| "x".repeat(90 * 1024)).collect();
        assert_eq!(groups(&big).iter().map(|g| g.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert!(groups(&[]).is_empty());
    }
}
