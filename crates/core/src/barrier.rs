//! The barrier: the encrypting layer between lessor and its physical storage.
//!
//! Everything above it sees plaintext through the `Storage` trait; everything below it sees only
//! envelopes (`envelope`): AES-256-GCM under the active keyring term, with the storage path as
//! associated data so a ciphertext cannot be replayed under another key. The keyring lives at
//! a reserved physical path, sealed under the root key, and is only in memory while unsealed.
//!
//! Sealing drops the in-memory keys (the ciphers wipe their key schedules on drop); while sealed
//! every storage call fails with `StorageError::Closed`. Rotation adds a term online: the new
//! term takes all new writes, old terms keep decrypting, and the keyring is persisted with one
//! atomic put before the new term is used.
//!
//! Locking: the in-memory state is a `parking_lot::RwLock` around an `Arc`, held only long enough
//! to clone the `Arc`; lifecycle changes that do I/O (initialize, unseal, rotate) serialise on
//! an async mutex instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::Aes256Gcm;
use async_trait::async_trait;
use lessor_storage::{HaLock, Storage, StorageError, WriteOp};
use parking_lot::RwLock;
use time::format_description::well_known::Rfc3339;

use crate::{Error, Result};

pub(crate) mod envelope;
mod keyring;
mod view;

pub use view::View;

use envelope::{EnvelopeError, NO_TERM};
use keyring::Keyring;

/// Physical path of the keyring, sealed under the root key.
pub const KEYRING_PATH: &str = "core/keyring";
/// Physical path of the root key, sealed under the unseal key (written by the seal).
pub const ROOT_KEY_PATH: &str = "core/root-key";
/// Physical path of the seal configuration (plain JSON: it holds no secret).
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";

/// Paths owned by the barrier and the seal. The barrier's `Storage` interface neither reads
/// nor writes them: they are not barrier envelopes and must not be clobbered from above.
const RESERVED: [&str; 3] = [KEYRING_PATH, ROOT_KEY_PATH, SEAL_CONFIG_PATH];

const ALREADY_INIT: &str = "Vault is already initialized";
const NOT_INIT: &str = "Vault is not initialized";
const INVALID_KEY: &str = "Unseal failed, invalid key";

fn is_reserved(key: &str) -> bool {
    RESERVED.contains(&key)
}

/// What `sys/key-status` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyStatus {
    /// The active term, 1 after init, +1 per rotation.
    pub term: u32,
    /// When the active term was installed, RFC 3339 in UTC.
    pub install_time: String,
    /// Encryptions under the active term since unseal (or since the last rotation).
    pub encryptions: u64,
}

/// The keys of an unsealed barrier.
struct Unsealed {
    /// Seals the keyring on rotation.
    root: Aes256Gcm,
    keyring: Keyring,
}

pub struct Barrier {
    physical: Arc<dyn Storage>,
    state: RwLock<Option<Arc<Unsealed>>>,
    lifecycle: tokio::sync::Mutex<()>,
    encryptions: AtomicU64,
}

impl Barrier {
    pub fn new(physical: Arc<dyn Storage>) -> Arc<Barrier> {
        Arc::new(Barrier {
            physical,
            state: RwLock::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
            encryptions: AtomicU64::new(0),
        })
    }

    /// Creates the keyring (term 1) and persists it under `root_key`. Stays sealed.
    pub async fn initialize(&self, root_key: &[u8]) -> Result<()> {
        self.initialize_with(root_key, Vec::new()).await
    }

    /// `initialize`, writing `extra` physical ops in the same atomic batch: the seal stores its
    /// configuration and wrapped root key this way, so a crash never leaves half an init.
    pub(crate) async fn initialize_with(&self, root_key: &[u8], extra: Vec<WriteOp>) -> Result<()> {
        let _guard = self.lifecycle.lock().await;
        if self.physical.get(KEYRING_PATH).await?.is_some() {
            return Err(Error::bad(ALREADY_INIT));
        }
        let root =
            envelope::cipher(root_key).map_err(|_| Error::internal("root key must be 32 bytes"))?;
        let ring = Keyring::fresh().map_err(crypto_internal)?;
        let sealed = envelope::seal(&root, NO_TERM, KEYRING_PATH.as_bytes(), &ring.encode())
            .map_err(crypto_internal)?;
        let mut ops = Vec::with_capacity(1 + extra.len());
        ops.push(WriteOp::Put(KEYRING_PATH.to_string(), sealed));
        ops.extend(extra);
        self.physical.batch(ops).await?;
        Ok(())
    }

    pub async fn initialized(&self) -> Result<bool> {
        Ok(self.physical.get(KEYRING_PATH).await?.is_some())
    }

    /// Loads the keyring with `root_key`. A wrong key is a 400 and leaves the barrier sealed;
    /// unsealing an unsealed barrier does nothing.
    pub async fn unseal(&self, root_key: &[u8]) -> Result<()> {
        let _guard = self.lifecycle.lock().await;
        if !self.sealed() {
            return Ok(());
        }
        let stored = self
            .physical
            .get(KEYRING_PATH)
            .await?
            .ok_or_else(|| Error::bad(NOT_INIT))?;
        let root = envelope::cipher(root_key).map_err(|_| Error::bad(INVALID_KEY))?;
        let plain =
            envelope::open(&root, KEYRING_PATH.as_bytes(), &stored).map_err(|e| match e {
                EnvelopeError::Auth => Error::bad(INVALID_KEY),
                other => crypto_internal(other),
            })?;
        let keyring = Keyring::decode(&plain).map_err(crypto_internal)?;
        self.encryptions.store(0, Ordering::Relaxed);
        *self.state.write() = Some(Arc::new(Unsealed { root, keyring }));
        Ok(())
    }

    /// Forgets the keys. Operations already holding them finish; every later call fails.
    pub fn seal(&self) {
        *self.state.write() = None;
    }

    pub fn sealed(&self) -> bool {
        self.state.read().is_none()
    }

    /// Adds a keyring term and makes it active for new writes; old terms still decrypt.
    pub async fn rotate(&self) -> Result<KeyStatus> {
        let _guard = self.lifecycle.lock().await;
        let current = self.keys().ok_or(Error::Sealed)?;
        let keyring = current.keyring.rotated().map_err(crypto_internal)?;
        let sealed = envelope::seal(
            &current.root,
            NO_TERM,
            KEYRING_PATH.as_bytes(),
            &keyring.encode(),
        )
        .map_err(crypto_internal)?;
        // Persist before use: a value must never be written under a term that could be lost.
        self.physical.put(KEYRING_PATH, sealed).await?;
        {
            let mut state = self.state.write();
            if state.is_none() {
                // Sealed meanwhile; the persisted keyring is loaded by the next unseal.
                return Err(Error::Sealed);
            }
            *state = Some(Arc::new(Unsealed {
                root: current.root.clone(),
                keyring,
            }));
        }
        self.encryptions.store(0, Ordering::Relaxed);
        self.key_status()
    }

    pub fn key_status(&self) -> Result<KeyStatus> {
        let keys = self.keys().ok_or(Error::Sealed)?;
        let active = keys.keyring.active();
        let install_time = active
            .install_time
            .format(&Rfc3339)
            .map_err(|_| Error::internal("cannot format the key install time"))?;
        Ok(KeyStatus {
            term: active.term,
            install_time,
            encryptions: self.encryptions.load(Ordering::Relaxed),
        })
    }

    fn keys(&self) -> Option<Arc<Unsealed>> {
        self.state.read().clone()
    }

    fn unsealed(&self) -> lessor_storage::Result<Arc<Unsealed>> {
        self.keys().ok_or(StorageError::Closed)
    }

    fn encrypt(&self, keys: &Unsealed, key: &str, value: &[u8]) -> lessor_storage::Result<Vec<u8>> {
        let active = keys.keyring.active();
        let sealed = envelope::seal(&active.cipher, active.term, key.as_bytes(), value)
            .map_err(crypto_storage)?;
        self.encryptions.fetch_add(1, Ordering::Relaxed);
        Ok(sealed)
    }

    fn decrypt(keys: &Unsealed, key: &str, stored: &[u8]) -> lessor_storage::Result<Vec<u8>> {
        let term = envelope::term(stored).map_err(crypto_storage)?;
        let cipher = &keys
            .keyring
            .get(term)
            .ok_or_else(|| crypto_storage(EnvelopeError::UnknownTerm(term)))?
            .cipher;
        let mut plain = envelope::open(cipher, key.as_bytes(), stored).map_err(crypto_storage)?;
        Ok(std::mem::take(&mut *plain))
    }

    fn writable(key: &str) -> lessor_storage::Result<()> {
        if is_reserved(key) {
            return Err(StorageError::InvalidKey(format!("{key} is reserved")));
        }
        Ok(())
    }
}

/// A crypto failure as a storage error: names the failure, never the key material or value.
fn crypto_storage(e: EnvelopeError) -> StorageError {
    StorageError::Corrupt(format!("barrier: {e}"))
}

fn crypto_internal(e: EnvelopeError) -> Error {
    Error::internal(format!("barrier: {e}"))
}

#[async_trait]
impl Storage for Barrier {
    async fn get(&self, key: &str) -> lessor_storage::Result<Option<Vec<u8>>> {
        let keys = self.unsealed()?;
        if is_reserved(key) {
            return Ok(None);
        }
        match self.physical.get(key).await? {
            Some(stored) => Ok(Some(Self::decrypt(&keys, key, &stored)?)),
            None => Ok(None),
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> lessor_storage::Result<()> {
        let keys = self.unsealed()?;
        Self::writable(key)?;
        let sealed = self.encrypt(&keys, key, &value)?;
        drop(keys);
        self.physical.put(key, sealed).await
    }

    async fn delete(&self, key: &str) -> lessor_storage::Result<()> {
        self.unsealed()?;
        Self::writable(key)?;
        self.physical.delete(key).await
    }

    async fn list(&self, prefix: &str) -> lessor_storage::Result<Vec<String>> {
        self.unsealed()?;
        let mut names = self.physical.list(prefix).await?;
        names.retain(|name| !is_reserved(&format!("{prefix}{name}")));
        Ok(names)
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> lessor_storage::Result<Vec<(String, Vec<u8>)>> {
        let keys = self.unsealed()?;
        let mut out = Vec::new();
        let mut cursor = after.map(str::to_string);
        // Reserved entries are skipped, so a short page from below is refilled: callers read a
        // page shorter than `limit` as the end.
        while out.len() < limit {
            let want = limit - out.len();
            let page = self.physical.scan(prefix, cursor.as_deref(), want).await?;
            let done = page.len() < want;
            for (key, stored) in page {
                if !is_reserved(&key) {
                    let plain = Self::decrypt(&keys, &key, &stored)?;
                    out.push((key.clone(), plain));
                }
                cursor = Some(key);
            }
            if done {
                break;
            }
        }
        Ok(out)
    }

    async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> lessor_storage::Result<Vec<String>> {
        self.unsealed()?;
        let mut out = Vec::new();
        let mut cursor = after.map(str::to_string);
        while out.len() < limit {
            let want = limit - out.len();
            let page = self
                .physical
                .scan_keys(prefix, cursor.as_deref(), want)
                .await?;
            let done = page.len() < want;
            for key in page {
                if !is_reserved(&key) {
                    out.push(key.clone());
                }
                cursor = Some(key);
            }
            if done {
                break;
            }
        }
        Ok(out)
    }

    async fn batch(&self, ops: Vec<WriteOp>) -> lessor_storage::Result<()> {
        let keys = self.unsealed()?;
        let mut sealed = Vec::with_capacity(ops.len());
        for op in ops {
            sealed.push(match op {
                WriteOp::Put(key, value) => {
                    Self::writable(&key)?;
                    let env = self.encrypt(&keys, &key, &value)?;
                    WriteOp::Put(key, env)
                }
                WriteOp::Delete(key) => {
                    Self::writable(&key)?;
                    WriteOp::Delete(key)
                }
            });
        }
        drop(keys);
        self.physical.batch(sealed).await
    }

    fn kind(&self) -> &'static str {
        self.physical.kind()
    }

    fn ha_lock(&self) -> Option<Arc<dyn HaLock>> {
        self.physical.ha_lock()
    }
}

#[cfg(test)]
mod tests;
