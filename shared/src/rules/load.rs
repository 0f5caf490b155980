//! Loading the rules: the bundled defaults, a deployment's overrides merged over them, one
//! validation at start.

use super::Rules;
use chrono_tz::Tz;
use serde_json::Value;

pub(super) const DEFAULTS: &str = include_str!("../../rules/default.json");

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RulesError {
    #[error("rules document is not valid JSON: {0}")]
    Json(String),
    #[error("rules document does not fit the rules schema: {0}")]
    Schema(String),
    #[error("invalid rules: {0}")]
    Invalid(String),
}

impl Default for Rules {
    fn default() -> Self {
        // The bundled document is a constant checked by `defaults_are_valid`.
        Rules::from_overrides("{}").expect("bundled default rules are valid")
    }
}

impl Rules {
    /// Defaults with `overrides` merged over them (objects merge key by key; arrays and
    /// values replace), then validated.
    pub fn from_overrides(overrides: &str) -> Result<Rules, RulesError> {
        let mut doc: Value =
            serde_json::from_str(DEFAULTS).map_err(|e| RulesError::Json(e.to_string()))?;
        let patch: Value = if overrides.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(overrides).map_err(|e| RulesError::Json(e.to_string()))?
        };
        if !patch.is_object() {
            return Err(RulesError::Json("the rules document must be a JSON object".into()));
        }
        merge(&mut doc, patch);
        if let Some(zone) = doc.get("timeZone").and_then(Value::as_str) {
            if zone.parse::<Tz>().is_err() {
                return Err(RulesError::Invalid(format!(
                    "timeZone {zone:?} is not a time zone these binaries carry (built with CHRONO_TZ_TIMEZONE_FILTER={}; .cargo/config.toml): an IANA name such as Asia/Shanghai, or rebuild with a filter that includes it",
                    option_env!("CHRONO_TZ_TIMEZONE_FILTER").unwrap_or("every zone")
                )));
            }
        }
        let rules: Rules =
            serde_json::from_value(doc).map_err(|e| RulesError::Schema(e.to_string()))?;
        rules.validate()?;
        Ok(rules)
    }

    /// The deployment's rules: `LOYALTY_RULES` (a JSON document) or `LOYALTY_RULES_FILE`.
    pub fn from_env() -> Result<Rules, RulesError> {
        if let Ok(path) = std::env::var("LOYALTY_RULES_FILE") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| RulesError::Json(format!("{path}: {e}")))?;
            return Rules::from_overrides(&text);
        }
        Rules::from_overrides(&std::env::var("LOYALTY_RULES").unwrap_or_default())
    }
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}
