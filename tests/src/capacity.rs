//! Capacity units, not only requests: DynamoDB prices a request by the units it consumes,
//! which grow with the size of the items written (1 write unit per KB, twice that inside a
//! transaction). This interceptor asks for `ReturnConsumedCapacity: INDEXES` on every
//! DynamoDB request (added to the serialized body, so the code under test is unchanged) and
//! adds up the units each answer reports, table and indexes together.

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
    let entries: Vec<&Value> = match answer.get("ConsumedCapacity") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
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
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = ctx.request_mut();
        let Some(mut body) = request.body().bytes().and_then(|b| serde_json::from_slice::<Value>(b).ok()) else {
            return Ok(());
        };
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
        let Some(answer) = response.body().bytes().and_then(|b| serde_json::from_slice::<Value>(b).ok()) else {
            return Ok(());
        };
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_default();
        let got = units_of(&operation, &answer);
        let mut total = self.0.lock().unwrap();
        total.read += got.read;
        total.write += got.write;
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
        assert_eq!(units_of("GetItem", &get), Units { read: 0.5, write: 0.0 });
        let put = json!({"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 3.0}});
        assert_eq!(units_of("PutItem", &put), Units { read: 0.0, write: 3.0 });
        let tx = json!({"ConsumedCapacity": [
            {"TableName": "t", "CapacityUnits": 8.0, "ReadCapacityUnits": 2.0, "WriteCapacityUnits": 6.0},
            {"TableName": "u", "CapacityUnits": 4.0}]});
        assert_eq!(units_of("TransactWriteItems", &tx), Units { read: 2.0, write: 10.0 });
        assert_eq!(units_of("PutItem", &json!({})), Units::default());
    }
}
