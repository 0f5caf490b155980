//! The campaign queue: `IssueBatch` messages sent through the shared `loyalty::queue::Queue`.

pub use loyalty::queue::Queue as CampaignQueue;
