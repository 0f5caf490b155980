//! A run's progress counters and the state they add up to.

use serde::{Deserialize, Serialize};

/// A run's counters. `targeted` is added by the dispatcher once per page, the rest by the
/// coupon worker once per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    #[serde(default)]
    pub targeted: u64,
    #[serde(default)]
    pub issued: u64,
    #[serde(default)]
    pub skipped: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub skipped_already_had: u64,
    #[serde(default)]
    pub skipped_budget_spent: u64,
    #[serde(default)]
    pub skipped_not_eligible: u64,
    #[serde(default)]
    pub skipped_holdout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Drained,
    Failed,
}

impl Progress {
    pub fn accounted(&self) -> u64 {
        self.issued + self.skipped + self.failed
    }

    /// Drained once the dispatch finished and every targeted member is accounted for; failed
    /// when the dispatch gave up or a later attempt replaced the run before it drained.
    pub fn state(&self, dispatch_done: bool, abandoned: bool) -> RunState {
        if dispatch_done && self.accounted() == self.targeted {
            RunState::Drained
        } else if abandoned {
            RunState::Failed
        } else {
            RunState::Running
        }
    }
}
