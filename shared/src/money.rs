//! Money and points are integers: fen (CNY minor units) and whole points. Never floats.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// An amount of CNY in fen (1 CNY = 100 fen).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fen(pub i64);

/// A number of loyalty points (may be negative for a debt or a debit entry).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Points(pub i64);

impl Fen {
    pub const ZERO: Fen = Fen(0);
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
    /// Whole CNY, rounded down (points are earned per whole yuan).
    pub fn whole_cny(self) -> i64 {
        self.0.div_euclid(100)
    }
    pub fn from_cny(cny: i64) -> Fen {
        Fen(cny * 100)
    }
}

impl Points {
    pub const ZERO: Points = Points(0);
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

macro_rules! arithmetic {
    ($t:ident) => {
        impl Add for $t {
            type Output = $t;
            fn add(self, o: $t) -> $t {
                $t(self.0 + o.0)
            }
        }
        impl Sub for $t {
            type Output = $t;
            fn sub(self, o: $t) -> $t {
                $t(self.0 - o.0)
            }
        }
        impl AddAssign for $t {
            fn add_assign(&mut self, o: $t) {
                self.0 += o.0
            }
        }
        impl SubAssign for $t {
            fn sub_assign(&mut self, o: $t) {
                self.0 -= o.0
            }
        }
        impl Neg for $t {
            type Output = $t;
            fn neg(self) -> $t {
                $t(-self.0)
            }
        }
        impl std::iter::Sum for $t {
            fn sum<I: Iterator<Item = $t>>(iter: I) -> $t {
                $t(iter.map(|v| v.0).sum())
            }
        }
    };
}
arithmetic!(Fen);
arithmetic!(Points);

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}{}.{:02} CNY", self.0.unsigned_abs() / 100, self.0.unsigned_abs() % 100)
    }
}

/// A multiplier held exactly as thousandths (1.2× = 1200), so points stay integer math.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Multiplier(pub u32);

impl Multiplier {
    pub const ONE: Multiplier = Multiplier(1000);
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    /// Multipliers compose by product; the result keeps thousandths, rounding down.
    pub fn then(self, other: Multiplier) -> Multiplier {
        Multiplier(((self.0 as u64 * other.0 as u64) / 1000) as u32)
    }
}

// In the rules document a multiplier is written as a plain number (1.5). It is turned into
// thousandths once, at the edge; arithmetic never sees a float.
impl Serialize for Multiplier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}
impl<'de> Deserialize<'de> for Multiplier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !v.is_finite() || !(0.0..=100.0).contains(&v) {
            return Err(serde::de::Error::custom(format!("multiplier {v} is out of range 0..100")));
        }
        Ok(Multiplier((v * 1000.0).round() as u32))
    }
}

/// For `skip_serializing_if` on plain integer amounts.
pub fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_cny_rounds_down() {
        assert_eq!(Fen(12_399).whole_cny(), 123);
        assert_eq!(Fen(99).whole_cny(), 0);
    }

    #[test]
    fn multiplier_reads_decimals_exactly() {
        let m: Multiplier = serde_json::from_str("1.2").unwrap();
        assert_eq!(m, Multiplier(1200));
        assert_eq!(Multiplier(1500).then(Multiplier(2000)), Multiplier(3000));
    }

    #[test]
    fn fen_displays_as_cny() {
        assert_eq!(Fen(2_000_00).to_string(), "2000.00 CNY");
        assert_eq!(Fen(-5).to_string(), "-0.05 CNY");
    }
}
