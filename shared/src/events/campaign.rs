//! Campaigns events.

use super::*;

/// What the drained event tells of a run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFacts {
    pub campaign_id: String,
    pub run_id: String,
    pub label: String,
    pub attempt: u32,
    pub grant: String,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub dispatch_done: bool,
    #[serde(default)]
    pub dispatched_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub superseded_by: Option<String>,
    #[serde(flatten)]
    pub progress: Progress,
}

impl RunFacts {
    pub fn drained(&self) -> bool {
        self.progress.state(self.dispatch_done, self.superseded_by.is_some())
            == crate::campaign::RunState::Drained
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Drained<'a> {
    campaign_id: &'a str,
    run_id: &'a str,
    label: &'a str,
    attempt: u32,
    grant: &'a str,
    started_at: DateTime<Utc>,
    targeted: u64,
    issued: u64,
    skipped: u64,
    skipped_already_had: u64,
    skipped_budget_spent: u64,
    skipped_not_eligible: u64,
    skipped_holdout: u64,
    failed: u64,
}

/// A run that this write drained: every targeted member is accounted for.
pub fn run_events(
    origin: Origin<'_>,
    old: Option<&RunFacts>,
    new: &RunFacts,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, serde_json::Error> {
    if !new.drained() || old.is_some_and(RunFacts::drained) {
        return Ok(Vec::new());
    }
    let p = &new.progress;
    let body = Drained {
        campaign_id: &new.campaign_id,
        run_id: &new.run_id,
        label: &new.label,
        attempt: new.attempt,
        grant: &new.grant,
        started_at: new.started_at,
        targeted: p.targeted,
        issued: p.issued,
        skipped: p.skipped,
        skipped_already_had: p.skipped_already_had,
        skipped_budget_spent: p.skipped_budget_spent,
        skipped_not_eligible: p.skipped_not_eligible,
        skipped_holdout: p.skipped_holdout,
        failed: p.failed,
    };
    Ok(vec![event(DetailType::CampaignRunDrained, origin, "", None, at, &body)?])
}
