//! Campaigns: the contracts between the member-day dispatcher, the coupon worker and the
//! points function. (Definitions, segments and runs are built on top of these.)

use crate::coupon::CouponTemplate;
use crate::money::Multiplier;
use crate::tier::TierCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A points multiplier a campaign grants for a window of time. Active windows are kept in one
/// small item (`keys::PROGRAM_PK` / `keys::MULTIPLIERS_SK`) so a purchase reads them in the
/// same BatchGetItem as the member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiplierWindow {
    pub campaign_id: String,
    pub multiplier: Multiplier,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Tiers it applies to; empty means every tier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierCode>,
}

impl MultiplierWindow {
    pub fn applies(&self, tier: TierCode, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.until && (self.tiers.is_empty() || self.tiers.contains(&tier))
    }
}

/// The campaign multiplier of a purchase: the largest that applies (campaign multipliers do
/// not stack with each other), at least 1. The rules' member day counts as one of them.
pub fn campaign_multiplier<'a>(
    windows: impl IntoIterator<Item = &'a MultiplierWindow>,
    tier: TierCode,
    at: DateTime<Utc>,
) -> Multiplier {
    windows
        .into_iter()
        .filter(|w| w.applies(tier, at))
        .map(|w| w.multiplier)
        .max()
        .unwrap_or(Multiplier::ONE)
        .max(Multiplier::ONE)
}

/// One SQS message on the campaign queue: issue `template` under `grant` to each member.
/// The coupon worker issues with one conditional write per coupon (codes are derived from
/// member + grant + slot, so a redelivery finds them already there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueBatch {
    /// Unique per message content (e.g. `<runId>#<page>#<n>`): progress is counted once per batch.
    pub batch_id: String,
    /// The grant the coupons belong to: one coupon per member per grant (and slot).
    pub grant: String,
    pub template: CouponTemplate,
    /// Most coupons the grant may issue, enforced atomically on a counter item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// The campaign run whose progress counters this batch adds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRef>,
    pub member_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRef {
    pub campaign_id: String,
    pub run_id: String,
}

/// Why a member of a batch got no coupon: all count as skipped, not failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    AlreadyHad,
    BudgetSpent,
    NotEligible,
}

// ---------------------------------------------------------------------------------------
// Campaign definitions, segments, schedules, grants and run progress (pure rules).
// ---------------------------------------------------------------------------------------

use crate::calendar;
use crate::money::Fen;
use crate::rules::Rules;
use chrono::{Datelike, Duration, NaiveDate};
use chrono_tz::Tz;

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
        let s = &self.segment;
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
        let mut segment = self.segment;
        segment.tiers = segment.target_tiers();
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
        })
    }
}

impl Campaign {
    /// The built-in member day: the tiers and coupon of `rules.member_day`. It installs no
    /// multiplier window: the purchase function applies the rules' member-day multiplier on the
    /// member day itself (`member_day_window`), and a manual re-run on another day must not
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
            },
            coupon: md.coupon.clone(),
            multiplier: None,
            schedule: Schedule::MonthlyMemberDay,
            budget: None,
            audience: Audience::Segment,
            created_at: now,
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
            },
            coupon: w.coupon.clone(),
            multiplier: None,
            schedule: Schedule::MonthlyMemberDay,
            budget: None,
            audience: Audience::Dormant,
            created_at: now,
        }
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
            WindowSpec::RunDay => program_day_window(tz, calendar::program_date(tz, at)),
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

/// The UTC instants a program-calendar day spans.
pub fn program_day_window(tz: Tz, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    (calendar::start_of_day(tz, day), calendar::start_of_day(tz, day + Duration::days(1)))
}

/// Whether `at` falls on the member day (program time zone).
pub fn is_member_day(rules: &Rules, at: DateTime<Utc>) -> bool {
    calendar::program_date(rules.time_zone, at).day() == rules.member_day.day_of_month
}

/// The start (00:00 program time) of the first member day at or after `at`'s program day.
pub fn next_member_day(rules: &Rules, at: DateTime<Utc>) -> DateTime<Utc> {
    let today = calendar::program_date(rules.time_zone, at);
    let day = rules.member_day.day_of_month;
    let this_month = today.with_day(day).expect("validated: day_of_month is 1..28");
    let target = if this_month >= today {
        this_month
    } else {
        let (y, m) = if today.month() == 12 {
            (today.year() + 1, 1)
        } else {
            (today.year(), today.month() + 1)
        };
        NaiveDate::from_ymd_opt(y, m, day).expect("validated: day_of_month is 1..28")
    };
    calendar::start_of_day(rules.time_zone, target)
}

/// The member-day multiplier the rules grant at `at` (1× outside the member day), for the
/// purchase function to combine with the stored campaign windows via `campaign_multiplier`.
pub fn member_day_window(rules: &Rules, at: DateTime<Utc>) -> Option<MultiplierWindow> {
    is_member_day(rules, at).then(|| {
        let (from, until) =
            program_day_window(rules.time_zone, calendar::program_date(rules.time_zone, at));
        MultiplierWindow {
            campaign_id: MEMBER_DAY_ID.into(),
            multiplier: rules.member_day.multiplier,
            from,
            until,
            tiers: rules.member_day.tiers.clone(),
        }
    })
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

/// Member ids per SQS message: at most `MAX_PACK` ids and `MAX_MESSAGE_BYTES` of JSON, so a
/// full `SendMessageBatch` (10 messages) stays within SQS's classic 256 KiB limit for the whole
/// request, and a worker issues one message's coupons well inside the queue's visibility timeout.
pub const MAX_PACK: usize = 500;
pub const MAX_MESSAGE_BYTES: usize = 24 * 1024;

/// Splits `ids` into packs for messages whose fixed part (everything but the ids) is
/// `overhead` bytes of JSON. Ids are plain ASCII (member ids allow no characters JSON escapes),
/// so an id costs its length plus two quotes and a comma.
pub fn pack_ids(ids: Vec<String>, overhead: usize) -> Vec<Vec<String>> {
    let mut packs = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut bytes = overhead;
    for id in ids {
        let cost = id.len() + 3;
        if !cur.is_empty() && (cur.len() == MAX_PACK || bytes + cost > MAX_MESSAGE_BYTES) {
            packs.push(std::mem::take(&mut cur));
            bytes = overhead;
        }
        bytes += cost;
        cur.push(id);
    }
    if !cur.is_empty() {
        packs.push(cur);
    }
    packs
}

#[cfg(test)]
mod campaign_tests {
    use super::*;
    use crate::coupon::Offer;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn template() -> CouponTemplate {
        CouponTemplate {
            title: "15 off".into(),
            offer: Offer::AmountOff { value: Fen(1500), min_spend: Fen(9900) },
            valid_days: Some(1),
            valid_from: None,
            valid_until: None,
            tiers: vec![],
            per_member_limit: 1,
            stackable: false,
        }
    }

    fn request() -> CampaignRequest {
        CampaignRequest {
            name: "Gold day".into(),
            segment: Segment {
                tiers: vec![TierCode::Gold, TierCode::Silver],
                dormant_days: None,
                birthday_month: None,
                min_rolling_spend: None,
            },
            coupon: template(),
            multiplier: Some(MultiplierSpec {
                multiplier: Multiplier(3000),
                window: WindowSpec::RunDay,
            }),
            schedule: Schedule::MonthlyMemberDay,
            budget: Some(1000),
        }
    }

    #[test]
    fn validation_refuses_each_bad_definition_with_its_code() {
        let now = t("2026-11-27T00:00:00Z");
        type Change = Box<dyn Fn(&mut CampaignRequest)>;
        let cases: Vec<(&str, Change)> = vec![
            ("invalid_name", Box::new(|r| r.name = "  ".into())),
            ("empty_segment", Box::new(|r| r.segment.tiers.clear())),
            ("invalid_segment", Box::new(|r| r.segment.birthday_month = Some(13))),
            ("invalid_segment", Box::new(|r| r.segment.dormant_days = Some(0))),
            ("invalid_segment", Box::new(|r| r.segment.min_rolling_spend = Some(Fen(-1)))),
            ("invalid_coupon", Box::new(|r| r.coupon.valid_days = None)),
            (
                "invalid_multiplier",
                Box::new(|r| r.multiplier.as_mut().unwrap().multiplier = Multiplier(999)),
            ),
            (
                "invalid_multiplier",
                Box::new(|r| r.multiplier.as_mut().unwrap().multiplier = Multiplier(10_001)),
            ),
            (
                "invalid_window",
                Box::new(|r| {
                    r.multiplier.as_mut().unwrap().window = WindowSpec::Fixed {
                        from: t("2026-12-02T00:00:00Z"),
                        until: t("2026-12-01T00:00:00Z"),
                    }
                }),
            ),
            (
                "invalid_window",
                Box::new(|r| {
                    r.multiplier.as_mut().unwrap().window = WindowSpec::Fixed {
                        from: t("2026-12-01T00:00:00Z"),
                        until: t("2026-12-01T00:00:00Z"),
                    }
                }),
            ),
            (
                "schedule_in_past",
                Box::new(|r| r.schedule = Schedule::Once { at: t("2026-11-26T00:00:00Z") }),
            ),
            ("invalid_budget", Box::new(|r| r.budget = Some(0))),
        ];
        for (code, change) in cases {
            let mut r = request();
            change(&mut r);
            assert_eq!(r.validate("c1".into(), now).map_err(|e| e.code()).unwrap_err(), code);
        }
        let ok = request().validate("c1".into(), now).unwrap();
        assert_eq!(
            ok.segment.tiers,
            vec![TierCode::Silver, TierCode::Gold],
            "tiers are normalized to rank order"
        );
    }

    #[test]
    fn monthly_grant_is_the_program_month_so_reruns_reuse_it() {
        let rules = Rules::default();
        let c = request().validate("c1".into(), t("2026-01-01T00:00:00Z")).unwrap();
        // 16:00 UTC on the 17th is 00:00 on the 18th in Shanghai; 31 Oct 16:30 UTC is 1 Nov there.
        assert_eq!(c.plan(&rules, t("2026-11-17T16:00:00Z")).grant, "campaign:c1:2026-11");
        assert_eq!(c.plan(&rules, t("2026-11-29T10:00:00Z")).grant, "campaign:c1:2026-11");
        assert_eq!(c.plan(&rules, t("2026-10-31T16:30:00Z")).grant, "campaign:c1:2026-11");
        assert_eq!(c.plan(&rules, t("2026-10-31T15:59:59Z")).grant, "campaign:c1:2026-10");
        let mut once = request();
        once.schedule = Schedule::Once { at: t("2026-12-01T00:00:00Z") };
        assert_eq!(
            once.validate("c2".into(), t("2026-11-01T00:00:00Z"))
                .unwrap()
                .plan(&rules, t("2026-12-01T00:00:00Z"))
                .grant,
            "campaign:c2:once"
        );
    }

    #[test]
    fn winback_grant_is_one_per_cooldown_period_and_runs_are_daily() {
        let rules = Rules::default();
        let c = Campaign::win_back(&rules, t("2026-01-01T00:00:00Z"));
        let a = c.plan(&rules, t("2026-06-01T02:00:00Z"));
        let b = c.plan(&rules, t("2026-06-02T02:00:00Z"));
        assert_ne!(a.label, b.label);
        assert_eq!(a.grant, b.grant);
        let start = cooldown_period_start("2026-06-01".parse().unwrap(), 180);
        assert_eq!((start - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() % 180, 0);
        assert!(
            start <= "2026-06-01".parse().unwrap()
                && "2026-06-01".parse::<NaiveDate>().unwrap() < start + Duration::days(180)
        );
        assert_ne!(
            c.plan(&rules, (start + Duration::days(180)).and_hms_opt(4, 0, 0).unwrap().and_utc())
                .grant,
            a.grant
        );
    }

    #[test]
    fn segment_filter_uses_only_the_projection() {
        let now = t("2026-11-18T00:00:00Z");
        let m = |tier, last: Option<&str>, spend: Option<i64>, bm: Option<u32>| SegmentMember {
            member_id: "m".into(),
            tier,
            last_purchase_at: last.map(t),
            rolling_spend: spend.map(Fen),
            birth_month: bm,
        };
        let s = Segment {
            tiers: vec![TierCode::Gold],
            dormant_days: Some(90),
            birthday_month: Some(11),
            min_rolling_spend: Some(Fen(100_000)),
        };
        assert!(s.matches(
            &m(TierCode::Gold, Some("2026-08-01T00:00:00Z"), Some(100_000), Some(11)),
            now
        ));
        assert!(
            s.matches(&m(TierCode::Gold, None, Some(200_000), Some(11)), now),
            "never purchased counts as dormant"
        );
        assert!(!s.matches(&m(TierCode::Silver, None, Some(200_000), Some(11)), now), "tier");
        assert!(
            !s.matches(
                &m(TierCode::Gold, Some("2026-10-01T00:00:00Z"), Some(200_000), Some(11)),
                now
            ),
            "recent purchase"
        );
        assert!(!s.matches(&m(TierCode::Gold, None, Some(99_999), Some(11)), now), "spend");
        assert!(!s.matches(&m(TierCode::Gold, None, None, Some(11)), now), "no spend projected");
        assert!(!s.matches(&m(TierCode::Gold, None, Some(200_000), None), now), "no birthday");
        let all = Segment {
            tiers: TierCode::ALL.to_vec(),
            dormant_days: None,
            birthday_month: None,
            min_rolling_spend: None,
        };
        assert!(all.matches(&m(TierCode::Regular, None, None, None), now));
    }

    #[test]
    fn member_day_is_the_18th_in_program_time() {
        let r = Rules::default();
        // Around midnight Shanghai (16:00 UTC) and midnight UTC (08:00 Shanghai).
        assert!(!is_member_day(&r, t("2026-11-17T15:59:59Z")));
        assert!(is_member_day(&r, t("2026-11-17T16:00:00Z")));
        assert!(is_member_day(&r, t("2026-11-18T00:00:00Z")));
        assert!(is_member_day(&r, t("2026-11-18T15:59:59Z")));
        assert!(!is_member_day(&r, t("2026-11-18T16:00:00Z")));
        assert!(
            !is_member_day(&r, t("2026-11-18T23:59:59Z")),
            "still the 18th in UTC, already the 19th in Shanghai"
        );
        assert_eq!(next_member_day(&r, t("2026-11-10T00:00:00Z")), t("2026-11-17T16:00:00Z"));
        assert_eq!(next_member_day(&r, t("2026-11-18T10:00:00Z")), t("2026-11-17T16:00:00Z"));
        assert_eq!(next_member_day(&r, t("2026-12-20T00:00:00Z")), t("2027-01-17T16:00:00Z"));
    }

    #[test]
    fn member_day_doubles_points_on_the_18th_only() {
        let r = Rules::default();
        let mult = |at: &str| {
            let at = t(at);
            campaign_multiplier(member_day_window(&r, at).iter(), TierCode::Silver, at)
        };
        assert_eq!(
            mult("2026-11-17T15:59:59Z"),
            Multiplier::ONE,
            "23:59:59 on the 17th in Shanghai"
        );
        assert_eq!(mult("2026-11-17T16:00:00Z"), Multiplier(2000), "00:00 on the 18th in Shanghai");
        assert_eq!(
            mult("2026-11-18T00:00:00Z"),
            Multiplier(2000),
            "midnight UTC, 08:00 on the 18th"
        );
        assert_eq!(mult("2026-11-18T16:00:00Z"), Multiplier::ONE, "00:00 on the 19th in Shanghai");
        assert_eq!(mult("2026-11-19T00:00:00Z"), Multiplier::ONE);
    }

    #[test]
    fn campaign_windows_take_the_largest_and_never_stack() {
        let r = Rules::default();
        let c = request().validate("c1".into(), t("2026-11-01T00:00:00Z")).unwrap();
        let at = t("2026-11-17T17:00:00Z");
        let w = c.multiplier_window(r.time_zone, at).unwrap();
        assert_eq!((w.from, w.until), (t("2026-11-17T16:00:00Z"), t("2026-11-18T16:00:00Z")));
        assert_eq!(w.tiers, vec![TierCode::Silver, TierCode::Gold]);
        let windows = [w.clone(), member_day_window(&r, at).unwrap()];
        assert_eq!(campaign_multiplier(windows.iter(), TierCode::Gold, at), Multiplier(3000));
        assert_eq!(
            campaign_multiplier(windows.iter(), TierCode::Regular, at),
            Multiplier(2000),
            "the 3x is for silver and gold only"
        );
        assert_eq!(
            campaign_multiplier(windows.iter(), TierCode::Gold, t("2026-11-18T16:00:00Z")),
            Multiplier::ONE
        );
    }

    #[test]
    fn merge_prunes_expired_and_replaces_a_rerun() {
        let w = |id: &str, from: &str, until: &str| MultiplierWindow {
            campaign_id: id.into(),
            multiplier: Multiplier(2000),
            from: t(from),
            until: t(until),
            tiers: vec![],
        };
        let old = w("a", "2026-10-17T16:00:00Z", "2026-10-18T16:00:00Z");
        let cur = w("b", "2026-11-17T16:00:00Z", "2026-11-18T16:00:00Z");
        let now = t("2026-11-17T16:00:00Z");
        let merged = merge_windows(vec![old, cur.clone()], Some(cur.clone()), now);
        assert_eq!(merged, vec![cur.clone()]);
        let later = w("c", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z");
        assert_eq!(merge_windows(merged, Some(later.clone()), now), vec![cur, later]);
    }

    #[test]
    fn progress_is_drained_only_when_dispatched_and_accounted() {
        let mut p =
            Progress { targeted: 10, issued: 7, skipped: 2, failed: 0, ..Default::default() };
        assert_eq!(p.state(true, false), RunState::Running);
        assert_eq!(p.state(true, true), RunState::Failed);
        p.failed = 1;
        assert_eq!(p.state(false, false), RunState::Running);
        assert_eq!(p.state(true, false), RunState::Drained);
        assert_eq!(p.state(true, true), RunState::Drained);
    }

    #[test]
    fn packs_respect_count_and_size_and_keep_every_id() {
        let ids: Vec<String> = (0..1234).map(|i| format!("member-{i:08}")).collect();
        let packs = pack_ids(ids.clone(), 400);
        assert_eq!(packs.iter().map(Vec::len).collect::<Vec<_>>(), vec![500, 500, 234]);
        assert_eq!(packs.concat(), ids);
        let long: Vec<String> = (0..1000).map(|i| format!("{i:0>128}")).collect();
        let packs = pack_ids(long.clone(), 400);
        assert!(packs
            .iter()
            .all(|p| 400 + p.iter().map(|i| i.len() + 3).sum::<usize>() <= MAX_MESSAGE_BYTES));
        assert_eq!(packs.concat(), long);
    }

    #[test]
    fn a_full_message_fits_the_budget_when_serialized() {
        // Measured: the real JSON of the largest message (500 ids of 36 characters, a uuid-sized id,
        // or fewer 128-character ids) stays under MAX_MESSAGE_BYTES, and 10 of them under 256 KiB.
        let mut t = template();
        t.title = "x".repeat(80);
        let batch = |ids: Vec<String>| IssueBatch {
            batch_id: "2026-11.a001-063-000123-09".into(),
            grant: format!("campaign:{}:2026-11", "c".repeat(40)),
            template: t.clone(),
            budget: Some(u64::MAX),
            run: Some(RunRef { campaign_id: "c".repeat(40), run_id: "2026-11.a001".into() }),
            member_ids: ids,
        };
        let overhead = serde_json::to_vec(&batch(vec![])).unwrap().len();
        for len in [36, 128] {
            let ids: Vec<String> = (0..2000).map(|i| format!("{i:0>len$}")).collect();
            for p in pack_ids(ids, overhead) {
                let size = serde_json::to_vec(&batch(p)).unwrap().len();
                assert!(size <= MAX_MESSAGE_BYTES, "{size}");
            }
        }
        const { assert!(10 * MAX_MESSAGE_BYTES <= 256 * 1024) };
    }
}
