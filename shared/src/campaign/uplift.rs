//! An experiment's results per arm, and the uplift of each variant's conversion over the
//! holdout's: the difference of the two proportions with its 95% confidence interval (normal
//! approximation, unpooled standard error) and the two-proportion z-test (pooled standard
//! error) with its two-sided p-value. Pure arithmetic over the counts the KPI counters keep.
//!
//! "Significant" means the interval excludes 0. The z-test's pooled error and the interval's
//! unpooled one can disagree at the very edge (p just under 0.05 while the interval touches 0);
//! the interval decides, as it is what the report shows. The normal approximation wants about
//! ten conversions and ten non-conversions in each arm: below that the verdict is
//! "too few members" rather than a number that looks precise.

use super::experiment::HOLDOUT_ARM;
use crate::money::Fen;
use serde::{Deserialize, Serialize};

/// z of a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;
/// Conversions and non-conversions each arm needs before the normal approximation is used.
pub const MIN_OUTCOMES: i64 = 10;

/// What the counters hold of one arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmFigures {
    pub arm: String,
    /// Members assigned to the arm and recorded (a coupon issued, or held out).
    pub members: i64,
    /// Of them, those who bought within the conversion window of the run's day.
    pub converted: i64,
    /// What they paid for orders placed within that window (fen).
    pub gmv: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    #[serde(rename = "significant")]
    Significant,
    #[serde(rename = "not significant")]
    NotSignificant,
    #[serde(rename = "too few members")]
    TooFewMembers,
}

/// A variant's conversion rate less the holdout's (as a fraction: 0.02 is two points).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Uplift {
    pub difference: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub confidence: f64,
    pub z: f64,
    pub p_value: f64,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmResult {
    pub arm: String,
    pub holdout: bool,
    pub members: i64,
    pub converted: i64,
    pub conversion_rate: Option<f64>,
    pub gmv: Fen,
    pub gmv_per_member: Option<Fen>,
    /// Over the holdout; none for the holdout itself and for an experiment without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplift: Option<Uplift>,
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The conversion uplift of a variant (`converted` of `members`) over the holdout's. None when
/// either arm has no members.
pub fn conversion_uplift(variant: (i64, i64), holdout: (i64, i64)) -> Option<Uplift> {
    let ((c1, n1), (c0, n0)) = (variant, holdout);
    if n1 <= 0 || n0 <= 0 {
        return None;
    }
    let (p1, p0) = (c1 as f64 / n1 as f64, c0 as f64 / n0 as f64);
    let diff = p1 - p0;
    let se = (p1 * (1.0 - p1) / n1 as f64 + p0 * (1.0 - p0) / n0 as f64).sqrt();
    let (low, high) = (diff - Z_95 * se, diff + Z_95 * se);
    let pooled = (c1 + c0) as f64 / (n1 + n0) as f64;
    let se0 = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n0 as f64)).sqrt();
    let z = if se0 > 0.0 { diff / se0 } else { 0.0 };
    let p_value = (2.0 * (1.0 - normal_cdf(z.abs()))).clamp(0.0, 1.0);
    let enough = [c1, n1 - c1, c0, n0 - c0].iter().all(|k| *k >= MIN_OUTCOMES);
    let verdict = if !enough {
        Verdict::TooFewMembers
    } else if low > 0.0 || high < 0.0 {
        Verdict::Significant
    } else {
        Verdict::NotSignificant
    };
    Some(Uplift {
        difference: round4(diff),
        ci_low: round4(low),
        ci_high: round4(high),
        confidence: 0.95,
        z: round4(z),
        p_value: round4(p_value),
        verdict,
    })
}

/// Each arm's results, variants first (by name) and the holdout last, every variant with its
/// uplift over the holdout when there is one.
pub fn arm_results(mut arms: Vec<ArmFigures>) -> Vec<ArmResult> {
    arms.sort_by(|a, b| (a.arm == HOLDOUT_ARM, &a.arm).cmp(&(b.arm == HOLDOUT_ARM, &b.arm)));
    let holdout = arms.iter().find(|a| a.arm == HOLDOUT_ARM).map(|h| (h.converted, h.members));
    arms.into_iter()
        .map(|a| {
            let is_holdout = a.arm == HOLDOUT_ARM;
            ArmResult {
                holdout: is_holdout,
                members: a.members,
                converted: a.converted,
                conversion_rate: (a.members > 0)
                    .then(|| round4(a.converted as f64 / a.members as f64)),
                gmv: Fen(a.gmv),
                gmv_per_member: (a.members > 0).then(|| Fen(a.gmv / a.members)),
                uplift: match (is_holdout, holdout) {
                    (false, Some(h)) => conversion_uplift((a.converted, a.members), h),
                    _ => None,
                },
                arm: a.arm,
            }
        })
        .collect()
}

/// The standard normal CDF, from the complementary error function (Numerical Recipes'
/// Chebyshev fit, fractional error below 1.2e-7: ample for a p-value shown to 4 decimals).
pub fn normal_cdf(x: f64) -> f64 {
    1.0 - 0.5 * erfc(x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}
