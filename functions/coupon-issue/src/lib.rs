//! coupon-issue: one binary, three triggers.
//! - HTTP: `POST /members/{id}/coupons` (admin: issue one coupon), `GET /members/{id}/coupons`
//!   (the member's coupons, `?status=`), `POST /coupons/{code}/redeem`.
//! - SQS: the campaign queue's `IssueBatch` messages (one coupon per member, partial batch
//!   failures reported).
//! - Schedule: `{"job": "birthday-coupons"}` sends today's birthday batches to the queue.

pub mod api;
pub mod birthday;
pub mod queue;
pub mod worker;

use lambda_runtime::Error;
use loyalty::app::Dependencies;
use loyalty::coupon::CodeKey;
use loyalty::runtime::{job_time, Outcome, Trigger};
use queue::CampaignQueue;

pub struct App {
    pub deps: Dependencies,
    pub codes: CodeKey,
    /// Where birthday batches go (`CAMPAIGN_QUEUE_URL`); the worker itself does not send.
    pub queue: Option<CampaignQueue>,
}

impl App {
    pub async fn from_env() -> Result<App, String> {
        let deps = Dependencies::from_env().await?;
        let codes = CodeKey::from_env().await?;
        let config = loyalty::aws::sdk_config().await;
        let queue = std::env::var("CAMPAIGN_QUEUE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .map(|url| CampaignQueue::new(aws_sdk_sqs::Client::new(&config), url));
        Ok(App { deps, codes, queue })
    }
}

/// Routes a trigger to its handler.
pub async fn handle_trigger(app: &App, trigger: Trigger) -> Result<Outcome, Error> {
    match trigger {
        Trigger::Http(req) => Ok(Outcome::Http(api::handle(app, req).await)),
        Trigger::Sqs(event) => Ok(Outcome::Sqs(worker::handle(app, event).await)),
        Trigger::Schedule(event) => {
            let now = job_time(&event, &app.deps.clock);
            match event.detail.get("job").and_then(|j| j.as_str()) {
                Some(birthday::JOB) => {
                    Ok(Outcome::Done(serde_json::to_value(birthday::run(app, now).await?)?))
                }
                other => Err(format!("unknown scheduled job {other:?}").into()),
            }
        }
        Trigger::Stream(_) => Err("coupon-issue reads no stream".into()),
    }
}
