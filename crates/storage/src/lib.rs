//! Physical storage: the small async key-value contract every backend implements.
//!
//! Keys are `/`-separated paths; values are opaque bytes (barrier ciphertext above the
//! barrier, so a backend never sees plaintext). The trait knows nothing of its
//! implementations; `conformance` is the one suite they all pass.
//!
//! `cache` is the read cache in front of a backend (Vault's `cache_size`); `priority` marks
//! the threads doing background work, whose writes the file backend commits at their priority.
//!
//! Backends: `inmem` (dev mode, tests) and `file` (the durable default, fjall with group
//! commit; docs/decisions/storage.md has the measurements behind it).

use async_trait::async_trait;

pub mod cache;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod file;
pub mod inmem;
pub mod listing;
pub mod priority;

pub use file::{FileStorage, open_file};

/// Errors from a physical backend. Callers map them to a 500 (and never log values).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error("storage is closed")]
    Closed,
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A stored value that cannot be decoded or authenticated: the data is bad, not the
    /// device, so retrying will not help.
    #[error("corrupt value: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// Checks a key a write names: non-empty and free of NUL (which some backends, PostgreSQL's
/// `text` among them, cannot store). Every backend calls it before writing anything, so a
/// batch with one bad key applies none of its writes.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey("empty key".into()));
    }
    if key.contains('\0') {
        return Err(StorageError::InvalidKey("key contains NUL".into()));
    }
    Ok(())
}

/// Validates every key of a batch (see [`validate_key`]).
pub fn validate_ops(ops: &[WriteOp]) -> Result<()> {
    ops.iter().try_for_each(|op| validate_key(op.key()))
}

/// One write in an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put(String, Vec<u8>),
    Delete(String),
}

impl WriteOp {
    /// The key the write names.
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Put(k, _) | WriteOp::Delete(k) => k,
        }
    }
}

/// The storage contract.
///
/// * `list(prefix)` answers like Vault: the names directly below `prefix`, with a trailing
///   `/` on names that are folders (have keys below them); sorted, no duplicates.
/// * `scan(prefix, after, limit)` pages through every key (recursively) that starts with
///   `prefix`, in key order, strictly after `after`, with values: restore uses it to rebuild
///   indexes without one round trip per key.
/// * `batch` applies all its writes, in order, or none of them; readers never see part of one.
/// * Writes name keys that pass [`validate_key`]; others fail with `InvalidKey` and write
///   nothing. Reads of such keys simply find nothing.
/// * Once a write returns `Ok`, it survives a crash of the process (`kill -9`) for durable
///   backends.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()>;
    async fn delete(&self, key: &str) -> Result<()>;
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>>;
    async fn batch(&self, ops: Vec<WriteOp>) -> Result<()>;

    /// `scan` without the values: layers that transform values (the barrier) skip that
    /// work, and a value that cannot be read does not fail the page.
    async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        Ok(self
            .scan(prefix, after, limit)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// A short name for `sys/seal-status` `storage_type` (e.g. `inmem`, `file`).
    fn kind(&self) -> &'static str;

    /// The HA lock of backends that can share state between nodes; `None` for single-node
    /// backends. Callers ask for it instead of knowing which backend they run on.
    fn ha_lock(&self) -> Option<std::sync::Arc<dyn HaLock>> {
        None
    }
}

/// Leadership among several nodes sharing one backend (PostgreSQL in a later issue).
#[async_trait]
pub trait HaLock: Send + Sync {
    /// Tries to become (or stay) the active node; `Ok(true)` when held.
    async fn try_acquire(&self, node_id: &str, advertise_addr: &str) -> Result<bool>;
    /// Gives leadership up.
    async fn release(&self, node_id: &str) -> Result<()>;
    /// The current holder's advertised address, if any.
    async fn leader(&self) -> Result<Option<String>>;
}
