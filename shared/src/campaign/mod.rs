//! Campaigns: definitions (segments, schedules, multipliers, grants) and runs, built on
//! the contracts in `message` (what travels on the queues) and the member-day calendar in
//! `member_day`.

pub mod award;
pub mod experiment;
#[cfg(test)]
mod experiment_tests;
mod message;
mod progress;
#[cfg(test)]
mod tests;
pub mod uplift;

pub use experiment::{Experiment, Share, Variant};
pub use message::*;
pub use progress::*;

use crate::calendar;
use crate::churn::Band;
use crate::coupon::CouponTemplate;
use crate::money::{Fen, Multiplier};
use crate::rules::Rules;
use crate::tier_code::TierCode;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The id of the built-in monthly member day (from `rules.member_day`).
pub const MEMBER_DAY_ID: &str = "member-day";
/// The id of the built-in dormant win-back (from `rules.winback`).
pub const WINBACK_ID: &str = "win-back";
/// A daily win-back run targets members who crossed the dormancy line within this many days,
/// so a missed daily run is made up by the next ones without re-sending the whole dormant base.
pub const WINBACK_LOOKBACK_DAYS: i64 = 7;
/// The largest campaign multiplier accepted (a typo guard: 100× would be a mistake).
pub const MAX_CAMPAIGN_MULTIPLIER: Multiplier = Multiplier(10_000);

/// Who a campaign targets. Tiers are required; the other filters narrow them down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Segment {
    pub tiers: Vec<TierCode>,
    /// Only members with no purchase for at least this many days (never purchased counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dormant_days: Option<u32>,
    /// Only members whose birthday falls in this month (1..12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday_month: Option<u32>,
    /// Only members whose rolling qualifying spend is at least this (fen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rolling_spend: Option<Fen>,
    /// Only members in these churn risk bands (as the nightly job last scored them). Read as
    /// key ranges of the tier index (its sort key starts with the band), not filtered after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub churn_risk: Vec<Band>,
}

/// A member as the segment indexes project it (ByTier: memberId, lastPurchaseAt,
/// rollingSpend, birthMonth; the tier is the index partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMember {
    pub member_id: String,
    pub tier: TierCode,
    pub last_purchase_at: Option<DateTime<Utc>>,
    pub rolling_spend: Option<Fen>,
    pub birth_month: Option<u32>,
}

impl Segment {
    /// Whether `m` belongs to the segment at `now`. A filter on an attribute the index did not
    /// project (e.g. no rolling spend) does not match: missing data never widens a segment.
    pub fn matches(&self, m: &SegmentMember, now: DateTime<Utc>) -> bool {
        self.tiers.contains(&m.tier)
            && self.dormant_days.is_none_or(|d| {
                m.last_purchase_at.is_none_or(|t| t <= now - Duration::days(d as i64))
            })
            && self.birthday_month.is_none_or(|month| m.birth_month == Some(month))
            && self.min_rolling_spend.is_none_or(|min| m.rolling_spend.is_some_and(|s| s >= min))
    }

    /// The segment checked (a campaign's or an award's) and normalized: tiers each once in
    /// rank order, churn bands sorted.
    pub fn checked(&self) -> Result<Segment, CampaignError> {
        let s = self;
        if s.tiers.is_empty() {
            return Err(CampaignError::EmptySegment);
        }
        if s.dormant_days.is_some_and(|d| d == 0 || d > 3650) {
            return Err(CampaignError::InvalidSegment("dormantDays must be 1..3650"));
        }
        if s.birthday_month.is_some_and(|m| !(1..=12).contains(&m)) {
            return Err(CampaignError::InvalidSegment("birthdayMonth must be 1..12"));
        }
        if s.min_rolling_spend.is_some_and(|f| f.0 < 0) {
            return Err(CampaignError::InvalidSegment("minRollingSpend must not be negative"));
        }
        if s.churn_risk.iter().enumerate().any(|(i, b)| s.churn_risk[..i].contains(b)) {
            return Err(CampaignError::InvalidSegment("churnRisk names a band twice"));
        }
        let mut segment = s.clone();
        segment.tiers = segment.target_tiers();
        segment.churn_risk.sort();
        Ok(segment)
    }

    /// The target tiers, each once, in rank order (the index partitions to page).
    pub fn target_tiers(&self) -> Vec<TierCode> {
        TierCode::ALL.into_iter().filter(|t| self.tiers.contains(t)).collect()
    }
}

/// When a campaign's multiplier applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum WindowSpec {
    /// The whole program-calendar day the run is for (the member day, all day).
    RunDay,
    /// A fixed window.
    Fixed { from: DateTime<Utc>, until: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MultiplierSpec {
    pub multiplier: Multiplier,
    pub window: WindowSpec,
}

/// When a campaign runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Schedule {
    /// Every month on the rules' member day, 00:00 program time.
    #[default]
    MonthlyMemberDay,
    /// Once, at this instant.
    Once { at: DateTime<Utc> },
}

/// What an operator posts to define a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CampaignRequest {
    pub name: String,
    pub segment: Segment,
    pub coupon: CouponTemplate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<MultiplierSpec>,
    #[serde(default)]
    pub schedule: Schedule,
    /// Most coupons one run's grant may issue; none means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// An experiment's variants (`experiment`); none: every member gets `coupon`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    /// The share of the segment held out (gets nothing, counted for comparison); 0..0.5.
    #[serde(default, skip_serializing_if = "Share::is_zero")]
    pub holdout: Share,
}

/// What the dispatcher pages for a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The segment's tiers on the ByTier index.
    #[default]
    Segment,
    /// Members who crossed the dormancy line recently, on the ByLastPurchase index.
    Dormant,
}

/// A validated campaign definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub segment: Segment,
    pub coupon: CouponTemplate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<MultiplierSpec>,
    pub schedule: Schedule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    #[serde(default)]
    pub audience: Audience,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    #[serde(default, skip_serializing_if = "Share::is_zero")]
    pub holdout: Share,
}

/// Why a campaign definition is refused; each maps to a stable problem `code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    #[error("name must be 1..100 characters")]
    InvalidName,
    #[error("the segment must name at least one tier")]
    EmptySegment,
    #[error("segment: {0}")]
    InvalidSegment(&'static str),
    #[error("coupon: {0}")]
    InvalidCoupon(String),
    #[error("the multiplier must be at least 1 and at most {}", MAX_CAMPAIGN_MULTIPLIER.as_f64())]
    InvalidMultiplier,
    #[error("the multiplier window must end after it starts")]
    InvalidWindow,
    #[error("a one-off schedule must be in the future")]
    ScheduleInPast,
    #[error("the budget must be at least 1 coupon")]
    InvalidBudget,
    #[error("{0}")]
    InvalidExperiment(experiment::ExperimentError),
}

impl CampaignError {
    pub fn code(&self) -> &'static str {
        match self {
            CampaignError::InvalidName => "invalid_name",
            CampaignError::EmptySegment => "empty_segment",
            CampaignError::InvalidSegment(_) => "invalid_segment",
            CampaignError::InvalidCoupon(_) => "invalid_coupon",
            CampaignError::InvalidMultiplier => "invalid_multiplier",
            CampaignError::InvalidWindow => "invalid_window",
            CampaignError::ScheduleInPast => "schedule_in_past",
            CampaignError::InvalidBudget => "invalid_budget",
            CampaignError::InvalidExperiment(_) => "invalid_experiment",
        }
    }
}

impl CampaignRequest {
    /// Checks the request and makes it a campaign with `id`, defined at `now`.
    pub fn validate(self, id: String, now: DateTime<Utc>) -> Result<Campaign, CampaignError> {
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(CampaignError::InvalidName);
        }
        let segment = self.segment.checked()?;
        self.coupon.validate().map_err(CampaignError::InvalidCoupon)?;
        if let Some(m) = &self.multiplier {
            if m.multiplier < Multiplier::ONE || m.multiplier > MAX_CAMPAIGN_MULTIPLIER {
                return Err(CampaignError::InvalidMultiplier);
            }
            if let WindowSpec::Fixed { from, until } = m.window {
                if until <= from {
                    return Err(CampaignError::InvalidWindow);
                }
            }
        }
        if let Schedule::Once { at } = self.schedule {
            if at <= now {
                return Err(CampaignError::ScheduleInPast);
            }
        }
        if self.budget == Some(0) {
            return Err(CampaignError::InvalidBudget);
        }
        experiment::validate(&self.variants, self.holdout)
            .map_err(CampaignError::InvalidExperiment)?;
        for (i, v) in self.variants.iter().enumerate() {
            let refuse = |reason: &str| {
                CampaignError::InvalidExperiment(experiment::ExperimentError {
                    field: format!("variants[{i}].multiplier"),
                    reason: reason.into(),
                })
            };
            match (v.multiplier, &self.multiplier) {
                (None, _) => {}
                (Some(_), None) => {
                    return Err(refuse(
                        "a variant's multiplier needs the campaign's multiplier (its window)",
                    ))
                }
                (Some(m), Some(_)) if m < Multiplier::ONE || m > MAX_CAMPAIGN_MULTIPLIER => {
                    return Err(refuse(&format!(
                        "must be at least 1 and at most {}",
                        MAX_CAMPAIGN_MULTIPLIER.as_f64()
                    )))
                }
                (Some(_), Some(_)) => {}
            }
        }
        Ok(Campaign {
            id,
            name,
            segment,
            coupon: self.coupon,
            multiplier: self.multiplier,
            schedule: self.schedule,
            budget: self.budget,
            audience: Audience::Segment,
            created_at: now,
            variants: self.variants,
            holdout: self.holdout,
        })
    }
}

impl Campaign {
    /// The built-in member day: the tiers and coupon of `rules.member_day`. It installs no
    /// multiplier window: the purchase function applies the rules' member-day multiplier on the
    /// member day itself (`points::member_day_multiplier`), and a manual re-run on another day must not
    /// double that day's points.
    pub fn member_day(rules: &Rules, now: DateTime<Utc>) -> Campaign {
        let md = &rules.member_day;
        Campaign {
            id: MEMBER_DAY_ID.into(),
            name: format!("Member day (the {}th of each month)", md.day_of_month),
            segment: Segment {
                tiers: md.tiers.clone(),
                dormant_days: None,
                birthday_month: None,
                min_rolling_spend: None,
                churn_risk: vec![],
            },
            coupon: md.coupon.clone(),
            multiplier: None,
            schedule: Schedule::MonthlyMemberDay,
            budget: None,
            audience: Audience::Segment,
            created_at: now,
            variants: Vec::new(),
            holdout: Share::ZERO,
        }
    }

    /// The built-in dormant win-back from `rules.winback`.
    pub fn win_back(rules: &Rules, now: DateTime<Utc>) -> Campaign {
        let w = &rules.winback;
        Campaign {
            id: WINBACK_ID.into(),
            name: format!("Win-back: no purchase for {} days", w.dormant_days),
            segment: Segment {
                tiers: TierCode::ALL.to_vec(),
                dormant_days: Some(w.dormant_days),
                birthday_month: None,
                min_rolling_spend: None,
                churn_risk: vec![],
            },
            coupon: w.coupon.clone(),
            multiplier: None,
            schedule: Schedule::MonthlyMemberDay,
            budget: None,
            audience: Audience::Dormant,
            created_at: now,
            variants: Vec::new(),
            holdout: Share::ZERO,
        }
    }

    /// The experiment its runs carry; none for a campaign without variants or holdout.
    pub fn experiment(&self) -> Option<Experiment> {
        Experiment::of(&self.id, &self.variants, self.holdout)
    }

    /// What a run started at `at` is for: its label (runs of one label are attempts at the same
    /// job) and its grant (one coupon per member per grant, so every attempt reuses it).
    /// - monthly: the program month, `campaign:<id>:<YYYY-MM>`: the same month never issues twice;
    /// - one-off: `campaign:<id>:once`;
    /// - win-back: labelled by the program day (it runs daily), granted per cooldown period:
    ///   `winback:<first day of the period>`, periods being `cooldown_days` long from 1970-01-01.
    pub fn plan(&self, rules: &Rules, at: DateTime<Utc>) -> RunPlan {
        let today = calendar::program_date(rules.time_zone, at);
        match (self.audience, &self.schedule) {
            (Audience::Dormant, _) => {
                let start = cooldown_period_start(today, rules.winback.cooldown_days);
                RunPlan {
                    label: today.format("%Y-%m-%d").to_string(),
                    grant: format!("winback:{}", start.format("%Y-%m-%d")),
                }
            }
            (_, Schedule::MonthlyMemberDay) => {
                let month = today.format("%Y-%m").to_string();
                RunPlan { grant: format!("campaign:{}:{month}", self.id), label: month }
            }
            (_, Schedule::Once { .. }) => {
                RunPlan { label: "once".into(), grant: format!("campaign:{}:once", self.id) }
            }
        }
    }

    /// The multiplier window a run for `at` installs, if the campaign has a multiplier.
    pub fn multiplier_window(&self, tz: Tz, at: DateTime<Utc>) -> Option<MultiplierWindow> {
        let m = self.multiplier.as_ref()?;
        let (from, until) = match m.window {
            WindowSpec::Fixed { from, until } => (from, until),
            WindowSpec::RunDay => calendar::day_window(tz, calendar::program_date(tz, at)),
        };
        let tiers = if self.segment.tiers.len() == TierCode::ALL.len() {
            Vec::new()
        } else {
            self.segment.tiers.clone()
        };
        Some(MultiplierWindow {
            campaign_id: self.id.clone(),
            multiplier: m.multiplier,
            from,
            until,
            tiers,
            experiment: self.experiment().map(|e| e.without_coupons()),
        })
    }
}

/// The label and grant of a run (see `Campaign::plan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPlan {
    pub label: String,
    pub grant: String,
}

/// The id of attempt `attempt` (1-based) of the runs labelled `label`: sorts by label, then attempt.
pub fn run_id(label: &str, attempt: u32) -> String {
    format!("{label}.a{attempt:03}")
}

/// The first day of the cooldown period `date` falls in (periods of `days` days from 1970-01-01).
pub fn cooldown_period_start(date: NaiveDate, days: u32) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
    let n = (date - epoch).num_days().div_euclid(days.max(1) as i64);
    epoch + Duration::days(n * days.max(1) as i64)
}

/// The stored window list after adding `new`: windows that ended by `now` are pruned, a window
/// of the same campaign and start is replaced (a re-run does not duplicate it), sorted by start.
pub fn merge_windows(
    existing: Vec<MultiplierWindow>,
    new: Option<MultiplierWindow>,
    now: DateTime<Utc>,
) -> Vec<MultiplierWindow> {
    let mut out: Vec<MultiplierWindow> = existing
        .into_iter()
        .filter(|w| w.until > now)
        .filter(|w| {
            new.as_ref().is_none_or(|n| !(n.campaign_id == w.campaign_id && n.from == w.from))
        })
        .collect();
    out.extend(new.filter(|n| n.until > now));
    out.sort_by(|a, b| (a.from, &a.campaign_id).cmp(&(b.from, &b.campaign_id)));
    out
}
