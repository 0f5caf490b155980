//! Sending `IssueBatch` messages to the campaign queue, ten per SendMessageBatch.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use loyalty::campaign::IssueBatch;
use loyalty::store::backoff;

const SEND_ATTEMPTS: u32 = 5;
/// SQS caps a SendMessageBatch request's total payload (256 KiB); stay well inside it.
const MAX_REQUEST_BYTES: usize = 200 * 1024;

/// Consecutive groups of at most ten bodies and `MAX_REQUEST_BYTES` (a larger single body
/// goes alone, and SQS judges it).
fn groups(bodies: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, b) in bodies.iter().enumerate() {
        if i > start && (i - start == 10 || bytes + b.len() > MAX_REQUEST_BYTES) {
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

pub struct CampaignQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl CampaignQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> CampaignQueue {
        CampaignQueue { client, url }
    }

    /// Sends every batch, up to ten messages and `MAX_REQUEST_BYTES` per SendMessageBatch;
    /// entries SQS refuses are sent again (a few times) before failing.
    pub async fn send(&self, batches: &[IssueBatch]) -> Result<(), String> {
        let bodies = batches.iter().map(|b| serde_json::to_string(b).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()?;
        for group in groups(&bodies) {
            let mut pending: Vec<(String, &str)> = group.iter().enumerate().map(|(i, b)| (i.to_string(), b.as_str())).collect();
            for attempt in 0..SEND_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let entries = pending
                    .iter()
                    .map(|(id, body)| SendMessageBatchRequestEntry::builder().id(id).message_body(*body).build().map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                match self.client.send_message_batch().queue_url(&self.url).set_entries(Some(entries)).send().await {
                    Ok(o) => {
                        let failed: Vec<&str> = o.failed().iter().map(|f| f.id()).collect();
                        pending.retain(|(id, _)| failed.contains(&id.as_str()));
                    }
                    Err(e) if attempt + 1 == SEND_ATTEMPTS => return Err(format!("sending to the campaign queue: {e}")),
                    Err(_) => {}
                }
                if !pending.is_empty() {
                    backoff(attempt).await;
                }
            }
            if !pending.is_empty() {
                return Err(format!("the campaign queue refused {} messages", pending.len()));
            }
        }
        Ok(())
    }
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
