//! A JSON-schema subset, enough for the contract's schemas (openapi.yaml) and the event
//! schemas (events/schemas): $ref (a JSON pointer into `doc`, with sibling keywords), oneOf
//! (exactly one), const, enum, type (incl. lists), required, properties,
//! additionalProperties: false, items, minItems, minimum, maximum, multipleOf, minLength,
//! maxLength, pattern, format date / date-time. Keywords it does not know are ignored, so a
//! schema must only rely on these (scripts/tests/test_event_schemas.py checks the event
//! schemas with a full implementation too).

use serde_json::{json, Value};

/// Whether `v` conforms to the schema `s` (found in the document `doc`, which `$ref`s point
/// into); the error says where and why not.
pub fn conforms(doc: &Value, s: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target =
            doc.pointer(r.trim_start_matches('#')).ok_or_else(|| format!("dangling $ref {r}"))?;
        conforms(doc, target, v, at)?;
    }
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        let ok = alts.iter().filter(|a| conforms(doc, a, v, at).is_ok()).count();
        if ok != 1 {
            let why: Vec<String> =
                alts.iter().filter_map(|a| conforms(doc, a, v, at).err()).collect();
            return Err(format!("{at}: {v} matches {ok} oneOf alternatives, not one ({why:?})"));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            return Err(format!("{at}: {v} is not {c}"));
        }
    }
    let types: Vec<&str> = match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let ok_type = types.is_empty()
        || types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
    if !ok_type {
        return Err(format!("{at}: {v} is not of type {types:?}"));
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let Some(n) = v.as_f64() {
        if s.get("minimum").and_then(Value::as_f64).is_some_and(|m| n < m) {
            return Err(format!("{at}: {v} is below the minimum {}", s["minimum"]));
        }
        if s.get("maximum").and_then(Value::as_f64).is_some_and(|m| n > m) {
            return Err(format!("{at}: {v} is above the maximum {}", s["maximum"]));
        }
        if s.get("multipleOf").and_then(Value::as_f64).is_some_and(|m| (n / m).fract() != 0.0) {
            return Err(format!("{at}: {v} is not a multiple of {}", s["multipleOf"]));
        }
    }
    if let Some(t) = v.as_str() {
        let len = t.chars().count() as u64;
        if s.get("minLength").and_then(Value::as_u64).is_some_and(|m| len < m)
            || s.get("maxLength").and_then(Value::as_u64).is_some_and(|m| len > m)
        {
            return Err(format!("{at}: {v} has a length out of bounds"));
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            let re =
                regex_lite::Regex::new(p).map_err(|e| format!("{at}: bad pattern {p}: {e}"))?;
            if !re.is_match(t) {
                return Err(format!("{at}: {v} does not match {p}"));
            }
        }
        let format_ok = match s.get("format").and_then(Value::as_str) {
            Some("date-time") => chrono::DateTime::parse_from_rfc3339(t).is_ok(),
            Some("date") => {
                chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").is_ok() && t.len() == 10
            }
            _ => true,
        };
        if !format_ok {
            return Err(format!("{at}: {v} is not a {}", s["format"]));
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for r in s["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(r) {
                return Err(format!("{at}: required field {r} missing in {v}"));
            }
        }
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(p) => conforms(doc, p, val, &format!("{at}.{k}"))?,
                None if s.get("additionalProperties") == Some(&json!(false)) => {
                    return Err(format!("{at}: field {k} is not documented"))
                }
                None => {}
            }
        }
    }
    if let Some(arr) = v.as_array() {
        if s.get("minItems").and_then(Value::as_u64).is_some_and(|m| (arr.len() as u64) < m) {
            return Err(format!("{at}: fewer than {} items", s["minItems"]));
        }
        if let Some(items) = s.get("items") {
            for (i, x) in arr.iter().enumerate() {
                conforms(doc, items, x, &format!("{at}[{i}]"))?;
            }
        }
    }
    Ok(())
}
