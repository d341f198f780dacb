//! The Shamir seal: `sys/init`, `sys/unseal`, `sys/seal`, `sys/seal-status` below HTTP.
//!
//! Init makes two random 32-byte keys. The root key opens the barrier's keyring; it is stored
//! sealed under the unseal key (associated data: its path). The unseal key is never stored:
//! it is handed out whole (one share) or split with Shamir's scheme, and unseal rebuilds it
//! from the threshold of shares kept in memory meanwhile. The seal configuration is stored in
//! plain JSON because status must answer while sealed and it holds no secret. Init writes the
//! keyring, the sealed root key and the configuration in one atomic batch.

use std::sync::Arc;

use base64::Engine as _;
use lessor_storage::{Storage, WriteOp};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::barrier::envelope::{self, EnvelopeError, KEY_LEN, NO_TERM};
use crate::barrier::{Barrier, ROOT_KEY_PATH, SEAL_CONFIG_PATH};
use crate::{Error, Result};

mod shamir;

const SEAL_TYPE: &str = "shamir";
const ALREADY_INIT: &str = "Vault is already initialized";
const NOT_INIT: &str = "Vault is not initialized";
const BAD_ENCODING: &str = "'key' must be a valid hex or base64 string";
/// Shortest accepted unseal key or share, as Vault (an AES-128 key).
const MIN_KEY_LEN: usize = 16;
/// Longest: a 32-byte key plus the trailing x-coordinate of a share.
const MAX_KEY_LEN: usize = KEY_LEN + 1;

/// The stored seal configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_shares: u32,
    pub secret_threshold: u32,
}

/// The seal-status fields the seal knows; the server adds version, storage type, cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub kind: String,
    pub initialized: bool,
    pub sealed: bool,
    pub t: u32,
    pub n: u32,
    pub progress: u32,
    pub nonce: String,
}

/// The unseal key shares from init, raw bytes (the server hex- and base64-encodes them).
pub struct InitOutput {
    pub keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for InitOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InitOutput {{ keys: <{} redacted> }}", self.keys.len())
    }
}

pub struct Seal {
    physical: Arc<dyn Storage>,
    barrier: Arc<Barrier>,
    /// The stored configuration once seen; it never changes after init.
    config: RwLock<Option<SealConfig>>,
    /// Shares submitted towards the threshold.
    parts: Mutex<Vec<Zeroizing<Vec<u8>>>>,
    init_lock: tokio::sync::Mutex<()>,
}

impl Seal {
    pub fn new(physical: Arc<dyn Storage>, barrier: Arc<Barrier>) -> Arc<Seal> {
        Arc::new(Seal {
            physical,
            barrier,
            config: RwLock::new(None),
            parts: Mutex::new(Vec::new()),
            init_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// The stored configuration, `None` before init.
    pub async fn config(&self) -> Result<Option<SealConfig>> {
        let cached = self.config.read().clone();
        if cached.is_some() {
            return Ok(cached);
        }
        let Some(raw) = self.physical.get(SEAL_CONFIG_PATH).await? else {
            return Ok(None);
        };
        let config: SealConfig = serde_json::from_slice(&raw)
            .map_err(|e| Error::internal(format!("seal configuration is unreadable: {e}")))?;
        *self.config.write() = Some(config.clone());
        Ok(Some(config))
    }

    pub async fn initialized(&self) -> Result<bool> {
        Ok(self.config().await?.is_some())
    }

    /// Initializes the seal and the barrier and returns the unseal key shares. Stays sealed.
    pub async fn init(&self, shares: u32, threshold: u32) -> Result<InitOutput> {
        validate(shares, threshold)
            .map_err(|msg| Error::bad(format!("invalid seal configuration: {msg}")))?;
        let _guard = self.init_lock.lock().await;
        if self.initialized().await? || self.barrier.initialized().await? {
            return Err(Error::bad(ALREADY_INIT));
        }
        let unseal_key = envelope::random_key();
        let root_key = envelope::random_key();
        let wrapping = envelope::cipher(unseal_key.as_ref()).map_err(crypto_internal)?;
        let sealed_root = envelope::seal(
            &wrapping,
            NO_TERM,
            ROOT_KEY_PATH.as_bytes(),
            root_key.as_ref(),
        )
        .map_err(crypto_internal)?;
        let config = SealConfig {
            kind: SEAL_TYPE.to_string(),
            secret_shares: shares,
            secret_threshold: threshold,
        };
        let config_json = serde_json::to_vec(&config)
            .map_err(|e| Error::internal(format!("seal configuration: {e}")))?;
        let extra = vec![
            WriteOp::Put(ROOT_KEY_PATH.to_string(), sealed_root),
            WriteOp::Put(SEAL_CONFIG_PATH.to_string(), config_json),
        ];
        self.barrier
            .initialize_with(root_key.as_ref(), extra)
            .await?;
        *self.config.write() = Some(config);
        self.reset();
        let keys = match (u8::try_from(shares), u8::try_from(threshold)) {
            (Ok(1), _) => vec![unseal_key.to_vec()],
            (Ok(n), Ok(t)) => shamir::split(unseal_key.as_ref(), n, t),
            _ => return Err(Error::internal("seal configuration out of range")),
        };
        Ok(InitOutput { keys })
    }

    /// Submits one unseal key share. Below the threshold it is remembered (a share already
    /// given is ignored, as Vault does); at the threshold the shares are combined, the root key
    /// decrypted and the barrier unsealed. Any failure then is a 400 and starts over.
    pub async fn submit_key(&self, key: &[u8]) -> Result<SealStatus> {
        let config = self.config().await?.ok_or_else(|| Error::bad(NOT_INIT))?;
        if !self.barrier.sealed() {
            return self.status().await;
        }
        if key.len() < MIN_KEY_LEN {
            return Err(Error::bad(format!(
                "key is shorter than minimum {MIN_KEY_LEN} bytes"
            )));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(Error::bad(format!(
                "key is longer than maximum {MAX_KEY_LEN} bytes"
            )));
        }
        let ready = {
            let mut parts = self.parts.lock();
            if parts.iter().any(|p| bool::from(p.as_slice().ct_eq(key))) {
                None
            } else {
                parts.push(Zeroizing::new(key.to_vec()));
                (parts.len() >= config.secret_threshold as usize)
                    .then(|| std::mem::take(&mut *parts))
            }
        };
        let Some(parts) = ready else {
            return self.status().await;
        };
        let unseal_key = if config.secret_threshold == 1 {
            Zeroizing::new(parts[0].to_vec())
        } else {
            shamir::combine(&parts)
                .map_err(|e| Error::bad(format!("failed to compute combined key: {e}")))?
        };
        let root_key = self.root_key(&unseal_key).await?;
        self.barrier.unseal(&root_key).await?;
        self.status().await
    }

    /// Decrypts the stored root key with an unseal key.
    async fn root_key(&self, unseal_key: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let stored = self
            .physical
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or_else(|| Error::internal("the stored root key is missing"))?;
        let wrapping = envelope::cipher(unseal_key)
            .map_err(|e| Error::bad(format!("failed to setup unseal key: {e}")))?;
        envelope::open(&wrapping, ROOT_KEY_PATH.as_bytes(), &stored).map_err(|e| match e {
            EnvelopeError::Auth => Error::bad(
                "unable to retrieve stored keys: failed to decrypt the root key: invalid unseal key",
            ),
            other => crypto_internal(other),
        })
    }

    /// Forgets the shares submitted so far.
    pub fn reset(&self) {
        self.parts.lock().clear();
    }

    /// `(progress, threshold, shares)`; zeros for the configuration before it is known.
    pub fn progress(&self) -> (u32, u32, u32) {
        let progress = self.parts.lock().len() as u32;
        match &*self.config.read() {
            Some(c) => (progress, c.secret_threshold, c.secret_shares),
            None => (progress, 0, 0),
        }
    }

    /// Seals the barrier and forgets any unseal progress.
    pub async fn seal(&self) {
        self.barrier.seal();
        self.reset();
    }

    pub async fn status(&self) -> Result<SealStatus> {
        let config = self.config().await?;
        let (progress, t, n) = self.progress();
        Ok(SealStatus {
            kind: SEAL_TYPE.to_string(),
            initialized: config.is_some(),
            sealed: self.barrier.sealed(),
            t,
            n,
            progress,
            nonce: String::new(),
        })
    }

    /// Dev mode: one share, initialized and unsealed at once. Returns the unseal key.
    pub async fn dev_init(&self) -> Result<Vec<u8>> {
        let out = self.init(1, 1).await?;
        let key = out
            .keys
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal("init returned no key"))?;
        self.submit_key(&key).await?;
        Ok(key)
    }
}

/// Vault's seal configuration rules, in Vault's order and words.
fn validate(shares: u32, threshold: u32) -> std::result::Result<(), &'static str> {
    if shares < 1 {
        return Err("shares must be at least one");
    }
    if threshold < 1 {
        return Err("threshold must be at least one");
    }
    if shares > 1 && threshold == 1 {
        return Err("threshold must be greater than one for multiple shares");
    }
    if shares > 255 {
        return Err("shares must be less than 256");
    }
    if threshold > 255 {
        return Err("threshold must be less than 256");
    }
    if threshold > shares {
        return Err("threshold cannot be larger than shares");
    }
    Ok(())
}

/// Decodes a submitted unseal key: hex first, then standard base64, as Vault.
pub fn decode_key(s: &str) -> Result<Vec<u8>> {
    if let Ok(bytes) = hex::decode(s) {
        return Ok(bytes);
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| Error::bad(BAD_ENCODING))
}

fn crypto_internal(e: EnvelopeError) -> Error {
    Error::internal(format!("seal: {e}"))
}

#[cfg(test)]
mod tests;
