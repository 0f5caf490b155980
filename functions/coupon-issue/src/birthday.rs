//! The daily birthday job: today's birthdays (program time zone; Feb 29 birthdays on Feb 28
//! in common years) from the ByBirthday index, grouped by tier, sent to the campaign queue
//! as `IssueBatch` messages of the tier's birthday coupon under the grant `birthday-<year>`
//! (so a member gets one per year however often the job runs). The worker, which reads each
//! member's record anyway, skips birthdays recorded too late and contacts that already had
//! this year's gift in an erased membership (`loyalty::birthday`); the index projects only
//! the id and the tier, so the job sends every birthday of the day.
//!
//! Re-running a day (`detail.now`, e.g. after a failed run reached the schedule DLQ) sends
//! every birthday of that day again; the grant slots let only the missing coupons through,
//! and each run's batch ids carry a tag of their own, so the coupons an earlier run issued
//! count as already had (a redelivered message keeps its id and counts its own as issued).

use crate::App;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use loyalty::calendar;
use loyalty::campaign::IssueBatch;
use loyalty::store::issue::BirthdayMember;
use loyalty::{Rules, TierCode};
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
    loyalty::birthday::grant(today.year())
}

pub async fn run(app: &App, now: DateTime<Utc>) -> Result<BirthdayRun, String> {
    let rules = &app.deps.rules;
    let today = calendar::program_date(rules.time_zone, now);
    let mut members = Vec::new();
    for key in calendar::birthday_keys(today) {
        members.extend(app.deps.store.birthdays(&key).await.map_err(|e| e.to_string())?);
    }
    let batches = batches(rules, today, &members, &run_tag());
    if !batches.is_empty() {
        let queue = app
            .queue
            .as_ref()
            .ok_or("CAMPAIGN_QUEUE_URL is not set: birthday batches have nowhere to go")?;
        queue.send(&batches).await?;
    }
    tracing::info!(date = %today, members = members.len(), batches = batches.len(), "birthday batches sent");
    Ok(BirthdayRun {
        job: JOB,
        date: today,
        grant: grant(today),
        members: members.len(),
        batches: batches.len(),
    })
}

/// A run's own mark in its batch ids (random: two runs of one day must differ).
fn run_tag() -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Today's birthday members as batches: one tier's birthday coupon per batch, at most
/// `BATCH_SIZE` members each, ids `<grant>-<day>-<run tag>-<tier>-<n>`.
pub fn batches(
    rules: &Rules,
    today: NaiveDate,
    members: &[BirthdayMember],
    run_tag: &str,
) -> Vec<IssueBatch> {
    let grant = grant(today);
    let mut out = Vec::new();
    for tier in TierCode::ALL {
        let ids: Vec<String> =
            members.iter().filter(|m| m.tier == tier).map(|m| m.member_id.clone()).collect();
        for (n, chunk) in ids.chunks(BATCH_SIZE).enumerate() {
            out.push(IssueBatch {
                batch_id: format!("{grant}-{today}-{run_tag}-{tier}-{n}"),
                grant: grant.clone(),
                template: Some(rules.tier(tier).birthday_coupon.clone()),
                points: None,
                budget: None,
                run: None,
                experiment: None,
                member_ids: chunk.to_vec(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_batch_per_tier_and_page_with_the_tier_s_birthday_coupon() {
        let rules = Rules::default();
        let m = |id: String, tier| BirthdayMember { member_id: id, tier };
        let mut members: Vec<BirthdayMember> =
            (0..BATCH_SIZE + 1).map(|i| m(format!("r{i}"), TierCode::Regular)).collect();
        members.push(m("g1".into(), TierCode::Gold));
        let today: NaiveDate = "2027-02-28".parse().unwrap();
        let b = batches(&rules, today, &members, "t1");
        let shape: Vec<_> = b.iter().map(|b| (b.batch_id.as_str(), b.member_ids.len())).collect();
        assert_eq!(
            shape,
            vec![
                ("birthday-2027-2027-02-28-t1-regular-0", BATCH_SIZE),
                ("birthday-2027-2027-02-28-t1-regular-1", 1),
                ("birthday-2027-2027-02-28-t1-gold-0", 1)
            ]
        );
        assert!(b
            .iter()
            .all(|b| b.grant == "birthday-2027" && b.budget.is_none() && b.run.is_none()));
        assert_eq!(b[2].template.as_ref(), Some(&rules.tier(TierCode::Gold).birthday_coupon));
        assert!(batches(&rules, today, &[], "t1").is_empty());
        assert_ne!(run_tag(), run_tag());
    }
}
