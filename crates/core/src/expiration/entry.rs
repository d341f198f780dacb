//! The persisted lease record.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::{is_zero_ms, join_ms, split_ms};

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

/// One lease. Times are Unix seconds (UTC); `expire_time` 0 = never. A lease expires to
/// the millisecond (`expire_ms` past `expire_time`'s second), as its TTL was counted from
/// the millisecond it was issued or renewed.
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
    /// Milliseconds past `expire_time` (0-999). Records written before it was kept read
    /// as 0: they expire at the start of their second, as they were scheduled then.
    #[serde(default, skip_serializing_if = "is_zero_ms")]
    pub expire_ms: u16,
    pub last_renewal: i64,
    pub renewable: bool,
    pub state: LeaseState,
    pub attempts: u32,
    pub last_error: String,
    /// The backend's max TTL at issue (0 = mount/system max).
    pub max_ttl: i64,
}

impl LeaseEntry {
    /// When it expires (Unix ms; 0 = never).
    pub fn expires_at_ms(&self) -> i64 {
        join_ms(self.expire_time, self.expire_ms)
    }

    /// When it expires, as a time (`None` = never).
    pub fn expiry_datetime(&self) -> Option<time::OffsetDateTime> {
        let at = self.expires_at_ms();
        (at > 0).then(|| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        })
    }

    pub fn set_expiry_ms(&mut self, at_ms: i64) {
        (self.expire_time, self.expire_ms) = split_ms(at_ms);
    }
}

/// What restore needs of a lease, stored apart from its body so unseal reads a few bytes
/// per lease instead of decrypting and parsing every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Expiry (Unix seconds; 0 = never) and the milliseconds past it.
    pub e: i64,
    #[serde(default, skip_serializing_if = "is_zero_ms")]
    pub m: u16,
    pub s: LeaseState,
}

impl IndexEntry {
    pub fn of(l: &LeaseEntry) -> Self {
        IndexEntry {
            e: l.expire_time,
            m: l.expire_ms,
            s: l.state,
        }
    }

    /// When the lease expires (Unix ms; 0 = never).
    pub fn at_ms(&self) -> i64 {
        join_ms(self.e, self.m)
    }
}
