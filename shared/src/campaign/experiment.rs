//! Experiments: a campaign's variants (A/B/n, each with its own coupon and a weight) and its
//! holdout (a share of the segment that gets nothing and is only counted). Which arm a member
//! is in is a pure function of the campaign id and the member id, so every run, redelivery and
//! Lambda instance puts a member in the same arm without storing or reading an assignment.
//! The report's statistics (conversion uplift of each variant over the holdout, with its 95%
//! confidence interval) are in `stats`.

use crate::coupon::CouponTemplate;
use crate::money::Multiplier;
use serde::{Deserialize, Serialize};

/// The arm of the members held out.
pub const HOLDOUT_ARM: &str = "holdout";
/// The arm of a campaign with a holdout and no variants: everyone else, with the campaign's coupon.
pub const DEFAULT_ARM: &str = "campaign";
pub const MAX_VARIANTS: usize = 10;
/// The largest holdout share: at least half the segment gets the campaign.
pub const MAX_HOLDOUT: Share = Share(5_000);
pub const MAX_WEIGHT: u32 = 1_000;

/// A share of a segment, held as basis points (0.1 = 1000) so that assignment is integer
/// arithmetic; written as a plain number (0.1) in definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Share(pub i32);

impl Share {
    pub const ZERO: Share = Share(0);
    pub const WHOLE: i32 = 10_000;
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / f64::from(Share::WHOLE)
    }
}

impl Serialize for Share {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

// Out-of-range values are kept (not refused here) so that validation names the field in a
// 422; only what is not a number at all is a 400.
impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !v.is_finite() || v.abs() > 1e6 {
            return Err(serde::de::Error::custom(format!("share {v} is not a number")));
        }
        Ok(Share((v * f64::from(Share::WHOLE)).round() as i32))
    }
}

/// One variant of a campaign, as defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    /// Relative weight among the variants (1..1000): members not held out are split in these
    /// proportions.
    pub weight: u32,
    /// This variant's coupon; none: the campaign's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<CouponTemplate>,
    /// This variant's points multiplier inside the campaign's multiplier window; none: the
    /// campaign's. Only with a campaign `multiplier` (it gives the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<Multiplier>,
}

/// Why a campaign's experiment is refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ExperimentError {
    pub field: String,
    pub reason: String,
}

fn refuse(field: impl Into<String>, reason: impl Into<String>) -> ExperimentError {
    ExperimentError { field: field.into(), reason: reason.into() }
}

/// Checks a definition's variants and holdout share.
pub fn validate(variants: &[Variant], holdout: Share) -> Result<(), ExperimentError> {
    if !(Share::ZERO..=MAX_HOLDOUT).contains(&holdout) {
        return Err(refuse("holdout", "must be a share from 0 to 0.5"));
    }
    if variants.len() > MAX_VARIANTS {
        return Err(refuse("variants", format!("at most {MAX_VARIANTS} variants")));
    }
    if variants.len() == 1 && holdout.is_zero() {
        return Err(refuse(
            "variants",
            "one variant needs a holdout to compare with, or a second variant",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, v) in variants.iter().enumerate() {
        let field = |f: &str| format!("variants[{i}].{f}");
        let name_ok = (1..=32).contains(&v.name.len())
            && v.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(refuse(field("name"), "must be 1..32 characters of a-z, 0-9, - and _"));
        }
        if v.name == HOLDOUT_ARM || v.name == DEFAULT_ARM {
            return Err(refuse(field("name"), format!("{:?} is reserved", v.name)));
        }
        if !seen.insert(v.name.as_str()) {
            return Err(refuse(field("name"), format!("{:?} is used by another variant", v.name)));
        }
        if !(1..=MAX_WEIGHT).contains(&v.weight) {
            return Err(refuse(
                field("weight"),
                format!("must be a whole number from 1 to {MAX_WEIGHT}"),
            ));
        }
        if let Some(c) = &v.coupon {
            c.validate().map_err(|e| refuse(field("coupon"), e))?;
        }
    }
    Ok(())
}

/// An arm of a run's experiment, resolved: its coupon (none: the batch's template) and its
/// points multiplier (none: the campaign window's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arm {
    pub name: String,
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<CouponTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<Multiplier>,
}

/// A run's experiment as the dispatcher hands it to the coupon worker: the campaign id (the
/// assignment's salt), the holdout share and the variants (at least one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Experiment {
    pub campaign_id: String,
    #[serde(default, skip_serializing_if = "Share::is_zero")]
    pub holdout: Share,
    pub arms: Vec<Arm>,
}

/// Where a member lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment<'a> {
    Holdout,
    Variant(&'a Arm),
}

impl<'a> Assignment<'a> {
    pub fn name(&self) -> &'a str {
        match self {
            Assignment::Holdout => HOLDOUT_ARM,
            Assignment::Variant(a) => &a.name,
        }
    }
}

impl Experiment {
    /// The experiment of a definition: none when it has neither variants nor a holdout (the
    /// campaign runs exactly as one without experiments).
    pub fn of(campaign_id: &str, variants: &[Variant], holdout: Share) -> Option<Experiment> {
        if variants.is_empty() && holdout.is_zero() {
            return None;
        }
        let arms = match variants.is_empty() {
            true => {
                vec![Arm { name: DEFAULT_ARM.into(), weight: 1, coupon: None, multiplier: None }]
            }
            false => variants
                .iter()
                .map(|v| Arm {
                    name: v.name.clone(),
                    weight: v.weight,
                    coupon: v.coupon.clone(),
                    multiplier: v.multiplier,
                })
                .collect(),
        };
        Some(Experiment { campaign_id: campaign_id.into(), holdout, arms })
    }

    /// The same split without the coupons: what a multiplier window carries (the purchase
    /// function reads the window item on every purchase, so it stays small).
    pub fn without_coupons(&self) -> Experiment {
        let arms = self.arms.iter().map(|a| Arm { coupon: None, ..a.clone() }).collect();
        Experiment { arms, ..self.clone() }
    }

    /// The member's arm: the low digits of the hash (in basis points) against the holdout
    /// share, the rest against the variants' cumulative weights. Two independent parts of one
    /// 64-bit hash, so the holdout share and the split among variants do not bias each other.
    pub fn assign(&self, member_id: &str) -> Assignment<'_> {
        let h = bucket(&self.campaign_id, member_id);
        let whole = Share::WHOLE as u64;
        if ((h % whole) as i64) < i64::from(self.holdout.0) {
            return Assignment::Holdout;
        }
        let total: u64 = self.arms.iter().map(|a| u64::from(a.weight)).sum::<u64>().max(1);
        let mut point = (h / whole) % total;
        for arm in &self.arms {
            let w = u64::from(arm.weight);
            if point < w {
                return Assignment::Variant(arm);
            }
            point -= w;
        }
        // Unreachable with positive weights; an empty arm list holds everyone out.
        Assignment::Holdout
    }
}

/// A stable 64-bit hash of (campaign, member): FNV-1a over the bytes, separated by a NUL that
/// neither id may contain, then the SplitMix64 finalizer so that every bit depends on every
/// input byte (FNV alone leaves the low bits of similar ids correlated). Never std's
/// `RandomState`, which is seeded per process: an assignment must be the same on every
/// instance and every re-run.
pub fn bucket(campaign_id: &str, member_id: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in campaign_id.bytes().chain(std::iter::once(0)).chain(member_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}
