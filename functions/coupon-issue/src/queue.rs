//! Sending `IssueBatch` messages to the campaign queue, ten per SendMessageBatch.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use loyalty::campaign::IssueBatch;
use loyalty::store::backoff;

const SEND_ATTEMPTS: u32 = 5;

pub struct CampaignQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl CampaignQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> CampaignQueue {
        CampaignQueue { client, url }
    }

    /// Sends every batch; entries SQS refuses are sent again (a few times) before failing.
    pub async fn send(&self, batches: &[IssueBatch]) -> Result<(), String> {
        for chunk in batches.chunks(10) {
            let mut pending: Vec<(String, String)> = Vec::with_capacity(chunk.len());
            for (i, b) in chunk.iter().enumerate() {
                pending.push((i.to_string(), serde_json::to_string(b).map_err(|e| e.to_string())?));
            }
            for attempt in 0..SEND_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let entries = pending
                    .iter()
                    .map(|(id, body)| SendMessageBatchRequestEntry::builder().id(id).message_body(body).build().map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self.client.send_message_batch().queue_url(&self.url).set_entries(Some(entries)).send().await;
                match out {
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
