//! Capacity units, not only requests: DynamoDB prices a request by the units it consumes,
//! which grow with the size of the items written (1 write unit per KB, twice that inside a
//! transaction). This interceptor asks for `ReturnConsumedCapacity: INDEXES` on every
//! DynamoDB request (added to the serialized body, so the code under test is unchanged).
//!
//! Read units and index write units are taken as DynamoDB Local reports them. Table write
//! units are computed by DynamoDB's documented rule from the items in the request, because
//! DynamoDB Local under-reports transactions: it bills two 100-byte items written in one
//! transaction as 2 units where the rule (each item rounded up to 1 KB, doubled) makes 4.
//! Puts are sized exactly; an update, delete or condition check counts one KB (the items
//! this engine updates, deletes or checks are counters and markers well under 1 KB).

use aws_sdk_dynamodb::config::{Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// Read and write units consumed since the last reset, as DynamoDB reported them.
#[derive(Debug, Default, Clone)]
pub struct Capacity(Arc<Mutex<Units>>);

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Units {
    pub read: f64,
    pub write: f64,
    /// The part of `write` spent on global secondary indexes (as DynamoDB Local reports it).
    pub index_write: f64,
    /// What DynamoDB Local itself reported as write units (for comparison).
    pub reported_write: f64,
}

/// The table write units of one request by DynamoDB's rule, stored between signing and the
/// answer of the same attempt.
#[derive(Debug, Clone, Copy)]
struct TableWriteUnits(f64);

impl aws_smithy_types::config_bag::Storable for TableWriteUnits {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// DynamoDB's item size of an item in DynamoDB JSON (`{"name": {"S": "..."}}`): attribute
/// names and values (binary as its decoded bytes); numbers about a byte per two digits; three
/// bytes plus one per element for lists and maps.
pub fn item_size(item: &serde_json::Map<String, Value>) -> usize {
    fn value(v: &Value) -> usize {
        let Some((kind, x)) = v.as_object().and_then(|o| o.iter().next()) else { return 0 };
        match (kind.as_str(), x) {
            ("S", Value::String(s)) => s.len(),
            // Binary travels base64-encoded; DynamoDB counts the decoded bytes.
            ("B", Value::String(b)) => {
                b.len() / 4 * 3 - b.chars().rev().take_while(|&c| c == '=').count()
            }
            ("N", Value::String(n)) => {
                n.trim_start_matches('-').replace('.', "").len().div_ceil(2) + 1
            }
            ("BOOL" | "NULL", _) => 1,
            ("SS" | "NS" | "BS", Value::Array(l)) => {
                l.iter().filter_map(Value::as_str).map(str::len).sum()
            }
            ("L", Value::Array(l)) => 3 + l.iter().map(|e| 1 + value(e)).sum::<usize>(),
            ("M", Value::Object(m)) => {
                3 + m.iter().map(|(k, e)| 1 + k.len() + value(e)).sum::<usize>()
            }
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// Table write units of a write request's body by the rule: 1 per KB of each item put (each
/// item rounded up), 1 for an update or delete, all doubled in a transaction.
pub fn rule_write_units(operation: &str, body: &Value) -> Option<f64> {
    let kb = |item: Option<&Value>| {
        item.and_then(Value::as_object)
            .map_or(1.0, |i| (item_size(i) as f64 / 1024.0).ceil().max(1.0))
    };
    match operation {
        "PutItem" => Some(kb(body.get("Item"))),
        "UpdateItem" | "DeleteItem" => Some(1.0),
        "BatchWriteItem" => Some(
            body.get("RequestItems")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|t| t.values())
                .filter_map(Value::as_array)
                .flatten()
                .map(|w| w.get("PutRequest").map_or(1.0, |p| kb(p.get("Item"))))
                .sum(),
        ),
        "TransactWriteItems" => Some(
            body.get("TransactItems")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| 2.0 * t.get("Put").map_or(1.0, |p| kb(p.get("Item"))))
                .sum(),
        ),
        _ => None,
    }
}

impl Capacity {
    pub fn reset(&self) {
        *self.0.lock().unwrap() = Units::default();
    }
    pub fn units(&self) -> Units {
        *self.0.lock().unwrap()
    }
}

const READS: [&str; 5] = ["GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"];

/// The units one answer reports: `ConsumedCapacity` is an object for single-item and query
/// operations and a list (one entry per table) for batches and transactions. Where DynamoDB
/// gives only `CapacityUnits`, the operation says whether they are read or write units.
pub fn units_of(operation: &str, answer: &Value) -> Units {
    reported(operation, answer)
}

/// The `ConsumedCapacity` entries of an answer: an object for single-item and query
/// operations, a list (one entry per table) for batches and transactions.
fn consumed_entries(answer: &Value) -> Vec<&Value> {
    match answer.get("ConsumedCapacity") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

/// Write units DynamoDB Local reports for the indexes of an answer.
pub fn index_write_units(answer: &Value) -> f64 {
    consumed_entries(answer)
        .iter()
        .filter_map(|e| e.get("GlobalSecondaryIndexes").and_then(Value::as_object))
        .flat_map(|m| m.values())
        .filter_map(|i| i.get("CapacityUnits").and_then(Value::as_f64))
        .sum()
}

fn reported(operation: &str, answer: &Value) -> Units {
    let entries = consumed_entries(answer);
    let mut units = Units::default();
    for e in entries {
        let field = |k: &str| e.get(k).and_then(Value::as_f64);
        match (field("ReadCapacityUnits"), field("WriteCapacityUnits")) {
            (None, None) => {
                let total = field("CapacityUnits").unwrap_or(0.0);
                if READS.contains(&operation) {
                    units.read += total;
                } else {
                    units.write += total;
                }
            }
            (read, write) => {
                units.read += read.unwrap_or(0.0);
                units.write += write.unwrap_or(0.0);
            }
        }
    }
    units
}

impl Intercept for Capacity {
    fn name(&self) -> &'static str {
        "consumed-capacity"
    }

    // Before signing, so the signature covers the body DynamoDB receives.
    fn modify_before_signing(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = ctx.request_mut();
        let Some(mut body) =
            request.body().bytes().and_then(|b| serde_json::from_slice::<Value>(b).ok())
        else {
            return Ok(());
        };
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_default();
        if let Some(units) = rule_write_units(&operation, &body) {
            cfg.interceptor_state().store_put(TableWriteUnits(units));
        }
        let Some(fields) = body.as_object_mut() else { return Ok(()) };
        fields.insert("ReturnConsumedCapacity".into(), Value::String("INDEXES".into()));
        let bytes = serde_json::to_vec(&body)?;
        request.headers_mut().insert("content-length", bytes.len().to_string());
        *request.body_mut() = SdkBody::from(bytes);
        Ok(())
    }

    // Every attempt, as DynamoDB bills retried attempts too. The answer's body is in memory
    // once deserialized (DynamoDB answers are never streamed).
    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(response) = ctx.response() else { return Ok(()) };
        let Some(answer) =
            response.body().bytes().and_then(|b| serde_json::from_slice::<Value>(b).ok())
        else {
            return Ok(());
        };
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_default();
        let got = reported(&operation, &answer);
        let mut total = self.0.lock().unwrap();
        total.read += got.read;
        total.reported_write += got.write;
        match cfg.load::<TableWriteUnits>() {
            Some(TableWriteUnits(table)) => {
                let index = index_write_units(&answer);
                total.write += table + index;
                total.index_write += index;
            }
            None => total.write += got.write,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn units_are_read_from_objects_lists_and_split_fields() {
        let get = json!({"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5}});
        assert_eq!(units_of("GetItem", &get), Units { read: 0.5, ..Units::default() });
        let put = json!({"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 3.0}});
        assert_eq!(units_of("PutItem", &put), Units { write: 3.0, ..Units::default() });
        let tx = json!({"ConsumedCapacity": [
            {"TableName": "t", "CapacityUnits": 8.0, "ReadCapacityUnits": 2.0, "WriteCapacityUnits": 6.0},
            {"TableName": "u", "CapacityUnits": 4.0}]});
        assert_eq!(
            units_of("TransactWriteItems", &tx),
            Units { read: 2.0, write: 10.0, ..Units::default() }
        );
        assert_eq!(units_of("PutItem", &json!({})), Units::default());
        let indexes = json!({"ConsumedCapacity": {"CapacityUnits": 7.0, "Table": {"CapacityUnits": 5.0}, "GlobalSecondaryIndexes": {"a": {"CapacityUnits": 2.0}}}});
        assert_eq!(index_write_units(&indexes), 2.0);
    }

    #[test]
    fn the_rule_rounds_each_item_up_and_doubles_transactions() {
        let small = json!({"PK": {"S": "MEMBER#a"}, "SK": {"S": "#PROFILE"}, "n": {"N": "12345"}});
        assert_eq!(item_size(small.as_object().unwrap()), 2 + 8 + 2 + 8 + 1 + 4);
        let packed = json!({"lots": {"B": "AQIDBA=="}, "x": {"B": "AQID"}});
        assert_eq!(item_size(packed.as_object().unwrap()), 4 + 4 + 1 + 3);
        let big = json!({"PK": {"S": "x"}, "v": {"S": "y".repeat(1500)}});
        assert_eq!(rule_write_units("PutItem", &json!({"Item": big})), Some(2.0));
        let tx = json!({"TransactItems": [{"Put": {"Item": small}}, {"Put": {"Item": big}}, {"Update": {"Key": {}}}, {"ConditionCheck": {"Key": {}}}]});
        assert_eq!(
            rule_write_units("TransactWriteItems", &tx),
            Some(2.0 * (1.0 + 2.0 + 1.0 + 1.0))
        );
        let batch = json!({"RequestItems": {"t": [{"PutRequest": {"Item": small}}, {"DeleteRequest": {"Key": {}}}]}});
        assert_eq!(rule_write_units("BatchWriteItem", &batch), Some(2.0));
        assert_eq!(rule_write_units("GetItem", &json!({})), None);
    }
}
