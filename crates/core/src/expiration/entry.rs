//! The persisted lease record.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseKind {
    /// A secret issued by a backend.
    Secret,
    /// A service token with a TTL.
    Token,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// Reserved before its credential was created; `expire_time` is the deadline after
    /// which the planned credential is revoked unless the lease was activated.
    Pending,
    Active,
    /// Out of revocation attempts; kept, listed and counted until forced out.
    Irrevocable,
}

/// One lease. Times are Unix seconds (UTC); `expire_time` 0 = never.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseEntry {
    pub id: String,
    pub kind: LeaseKind,
    /// Route path of the issuing mount (`aws/`, `auth/token/`).
    pub mount: String,
    pub mount_accessor: String,
    pub secret_type: String,
    /// The engine's revocation data.
    pub internal: Value,
    /// Salted hash of the owning token.
    pub token_hash: String,
    pub issue_time: i64,
    pub expire_time: i64,
    pub last_renewal: i64,
    pub renewable: bool,
    pub state: LeaseState,
    pub attempts: u32,
    pub last_error: String,
    /// The backend's max TTL at issue (0 = mount/system max).
    pub max_ttl: i64,
}

/// What restore needs of a lease, stored apart from its body so unseal reads a few bytes
/// per lease instead of decrypting and parsing every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Expiry (Unix seconds; 0 = never).
    pub e: i64,
    pub s: LeaseState,
}

impl IndexEntry {
    pub fn of(l: &LeaseEntry) -> Self {
        IndexEntry {
            e: l.expire_time,
            s: l.state,
        }
    }
}
