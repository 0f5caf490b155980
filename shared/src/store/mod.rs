//! The DynamoDB adapter. Items are serde structs (serde_dynamo); every change that touches
//! more than one item is one `TransactWriteItems` with conditions.

pub mod award;
pub mod campaign;
pub mod change;
pub mod checkout;
mod claim;
pub mod coupon;
mod erasure;
pub mod export;
pub mod holdout;
pub mod issue;
pub mod keys;
pub mod kpi;
pub mod ledger;
pub mod member;
pub mod migration;
pub mod partner;
pub mod points;
pub mod receipt;
pub mod reward;
pub mod signup;
pub mod stream;
pub mod tier;

mod read;
mod write;

#[cfg(test)]
mod size_tests;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

pub type Item = HashMap<String, AttributeValue>;

/// How many times an optimistic write is tried before the caller is told to retry (with the
/// backoff capped at 250 ms, about ten seconds of a hot member: well inside the API timeout).
pub const MAX_ATTEMPTS: u32 = 80;

/// BatchGetItem takes at most this many keys per request.
pub(crate) const BATCH_GET_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("gave up after {MAX_ATTEMPTS} attempts against concurrent writes")]
    Contended,
    #[error("throttled: {0}")]
    Throttled(String),
    #[error("item does not map to the model: {0}")]
    Mapping(String),
    #[error("dynamodb: {0}")]
    Sdk(String),
}

/// Why a transaction did not commit.
#[derive(Debug)]
pub enum TxFailure {
    /// These items' conditions failed (indexes into the request).
    Conditions(Vec<usize>),
    /// Another transaction held an item: safe to retry from a fresh read.
    Conflict,
    Store(StoreError),
}

#[derive(Clone, Debug)]
pub struct Store {
    pub client: Client,
    pub table: String,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Store {
        Store { client, table: table.into() }
    }

    /// Client from the environment (region, credentials, `AWS_ENDPOINT_URL_DYNAMODB` for a
    /// local endpoint) and the table from `LOYALTY_TABLE`. Makes no network call.
    pub async fn from_env(config: &crate::aws::SdkConfig) -> Result<Store, String> {
        let table =
            std::env::var("LOYALTY_TABLE").map_err(|_| "LOYALTY_TABLE is not set".to_string())?;
        Ok(Store::new(Client::new(config), table))
    }
}

/// A condition expression with its placeholders.
#[derive(Debug, Clone, Default)]
pub struct Cond {
    pub expr: String,
    pub names: Option<HashMap<String, String>>,
    pub values: Option<HashMap<String, AttributeValue>>,
}

impl Cond {
    pub fn new(expr: &str) -> Cond {
        Cond { expr: expr.to_string(), ..Default::default() }
    }
    pub fn name(mut self, placeholder: &str, name: &str) -> Cond {
        self.names.get_or_insert_with(HashMap::new).insert(placeholder.into(), name.into());
        self
    }
    pub fn value(mut self, placeholder: &str, v: AttributeValue) -> Cond {
        self.values.get_or_insert_with(HashMap::new).insert(placeholder.into(), v);
        self
    }
    /// The item must not exist yet.
    pub fn absent() -> Cond {
        Cond::new("attribute_not_exists(PK)")
    }
    pub fn present() -> Cond {
        Cond::new("attribute_exists(PK)")
    }
    /// The item is still at the version that was read (optimistic concurrency).
    pub fn version(v: u64) -> Cond {
        Cond::new("#v = :v").name("#v", "version").value(":v", AttributeValue::N(v.to_string()))
    }
}

/// The kind of a stored item (its `entity` attribute).
pub fn entity(item: &Item) -> Option<&str> {
    item.get("entity").and_then(|e| e.as_s().ok()).map(String::as_str)
}

pub fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([
        ("PK".to_string(), AttributeValue::S(pk.into())),
        ("SK".to_string(), AttributeValue::S(sk.into())),
    ])
}

/// An item's size by DynamoDB's rule (what its write units are priced by): attribute names
/// and values; a number about a byte per two significant digits plus one; three bytes plus
/// one per element for lists and maps.
pub fn item_size(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => {
                n.trim_start_matches('-').replace('.', "").len().div_ceil(2) + 1
            }
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::Ss(l) => l.iter().map(String::len).sum(),
            AttributeValue::Ns(l) => l.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
            AttributeValue::Bs(l) => l.iter().map(|b| b.as_ref().len()).sum(),
            AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value(e)).sum::<usize>(),
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, e)| 1 + k.len() + value(e)).sum::<usize>()
            }
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

pub fn to_item<T: Serialize>(v: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(v).map_err(|e| StoreError::Mapping(e.to_string()))
}

/// One value as the item would store it (for a condition comparing with a stored attribute).
pub fn to_attribute<T: Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(v).map_err(|e| StoreError::Mapping(e.to_string()))
}

pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Mapping(e.to_string()))
}

pub fn sdk<E: std::error::Error + 'static>(e: E) -> StoreError {
    let text = aws_smithy_types::error::display::DisplayErrorContext(&e).to_string();
    if text.contains("Throughput") || text.contains("Throttl") || text.contains("LimitExceeded") {
        StoreError::Throttled(text)
    } else {
        StoreError::Sdk(text)
    }
}

/// Waits before retry `attempt` (0-based): exponential with full jitter, capped, so that
/// writers contending for one member spread out instead of colliding in lockstep.
pub async fn backoff(attempt: u32) {
    let cap_ms = (4u64 << attempt.min(6)).min(250);
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let ms = u16::from_le_bytes(b) as u64 % (cap_ms + 1);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
