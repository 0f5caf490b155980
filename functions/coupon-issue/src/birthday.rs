//! The daily birthday job: today's birthdays (program time zone; Feb 29 birthdays on Feb 28
//! in common years) from the ByBirthday index, grouped by tier, sent to the campaign queue
//! as `IssueBatch` messages of the tier's birthday coupon under the grant `birthday-<year>`
//! (so a member gets one per year however often the job runs).

use crate::App;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use loyalty::calendar;
use loyalty::campaign::IssueBatch;
use loyalty::TierCode;
use serde::Serialize;

pub const JOB: &str = "birthday-coupons";
/// Member ids per message (well inside SQS's message size with ten per SendMessageBatch).
pub const BATCH_SIZE: usize = 400;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BirthdayRun {
    pub job: &'static str,
    pub date: NaiveDate,
    pub grant: String,
    pub members: usize,
    pub batches: usize,
}

pub fn grant(today: NaiveDate) -> String {
    format!("birthday-{}", today.year())
}

pub async fn run(app: &App, now: DateTime<Utc>) -> Result<BirthdayRun, String> {
    let rules = &app.env.rules;
    let today = calendar::program_date(rules.time_zone, now);
    let mut by_tier: [Vec<String>; 4] = Default::default();
    for key in calendar::birthday_keys(today) {
        for m in app.env.store.birthdays(&key).await.map_err(|e| e.to_string())? {
            by_tier[m.tier.rank()].push(m.member_id);
        }
    }
    let grant = grant(today);
    let mut batches = Vec::new();
    for tier in TierCode::ALL {
        for (n, ids) in by_tier[tier.rank()].chunks(BATCH_SIZE).enumerate() {
            batches.push(IssueBatch {
                batch_id: format!("{grant}-{today}-{tier}-{n}"),
                grant: grant.clone(),
                template: rules.tier(tier).birthday_coupon.clone(),
                budget: None,
                run: None,
                member_ids: ids.to_vec(),
            });
        }
    }
    let members = by_tier.iter().map(Vec::len).sum();
    if !batches.is_empty() {
        let queue = app.queue.as_ref().ok_or("CAMPAIGN_QUEUE_URL is not set: birthday batches have nowhere to go")?;
        queue.send(&batches).await?;
    }
    tracing::info!(date = %today, members, batches = batches.len(), "birthday batches sent");
    Ok(BirthdayRun { job: JOB, date: today, grant, members, batches: batches.len() })
}
