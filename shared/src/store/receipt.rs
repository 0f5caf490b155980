//! Idempotency on the store's side: the first answer to a keyed request, kept in the
//! member's partition and written in the same transaction as the change it answers, so a
//! retry finds either both or neither.

use super::keys::ItemKey;
use super::keys::{self, member_pk};
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The first answer to an idempotent request, kept so a retry gets it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    #[serde(flatten)]
    pub key: ItemKey,
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    pub at: DateTime<Utc>,
    /// TTL (epoch seconds) for receipts that may vanish; natural-key receipts keep none.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none", default)]
    pub expires_at: Option<i64>,
}

impl Receipt {
    pub fn new(
        member_id: &str,
        scope: &str,
        key: &str,
        fingerprint: String,
        status: u16,
        body: String,
        at: DateTime<Utc>,
    ) -> Receipt {
        Receipt {
            key: ItemKey::new(member_pk(member_id), keys::receipt_sk(scope, key), "receipt"),
            fingerprint,
            status,
            body,
            at,
            expires_at: None,
        }
    }
}

impl Store {
    pub async fn receipt(
        &self,
        member_id: &str,
        scope: &str,
        key: &str,
    ) -> Result<Option<Receipt>, StoreError> {
        self.get(&member_pk(member_id), &keys::receipt_sk(scope, key)).await
    }
}
