//! Durable named policies and the cache of compiled ACLs.
//!
//! Policies live in storage as `policy/<name>` (JSON holding the raw text). Each is parsed once,
//! when written or first loaded, and kept parsed; compiled ACLs are cached per sorted set of
//! policy names, so a request resolves its token's ACL with one hash lookup. Any write or delete
//! drops every cached ACL (policy changes are rare; correctness beats cleverness here).
//!
//! Locks: a synchronous lock guards the in-memory caches and is never held across `.await`;
//! an async mutex serialises writers so storage and cache always agree on the latest text. A
//! generation counter stops a reader that loaded before a write from caching stale results.

use std::collections::HashMap;
use std::sync::Arc;

use lessor_storage::Storage;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::acl::Acl;
use super::builtin::{
    DEFAULT_POLICY, DEFAULT_POLICY_TEXT, IMMUTABLE_POLICIES, RESPONSE_WRAPPING_POLICY,
    RESPONSE_WRAPPING_POLICY_TEXT, ROOT_POLICY,
};
use super::parse::{Policy, parse_decoded, parse_policy};
use crate::{Error, Result};

const KEY_PREFIX: &str = "policy/";

/// Bound on cached ACLs; past it the cache starts over (token policy sets are few in practice).
const MAX_CACHED_ACLS: usize = 4096;

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    raw: String,
}

#[derive(Default)]
struct Cache {
    policies: HashMap<String, Arc<Policy>>,
    acls: HashMap<Vec<String>, Arc<Acl>>,
    generation: u64,
}

/// Named ACL policies over a storage view.
pub struct PolicyStore {
    storage: Arc<dyn Storage>,
    cache: RwLock<Cache>,
    writes: tokio::sync::Mutex<()>,
}

/// Policy names are case-insensitive and ignore surrounding space.
pub fn sanitize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

fn storage_key(name: &str) -> String {
    format!("{KEY_PREFIX}{name}")
}

impl PolicyStore {
    pub fn new(storage: Arc<dyn Storage>) -> PolicyStore {
        PolicyStore {
            storage,
            cache: RwLock::new(Cache::default()),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Writes the `default` policy if it is absent. Run at init and at every unseal; also
    /// forgets everything cached, since storage may have changed while sealed.
    pub async fn setup_defaults(&self) -> Result<()> {
        let _writer = self.writes.lock().await;
        self.clear_cache();
        let key = storage_key(DEFAULT_POLICY);
        if self.storage.get(&key).await?.is_none() {
            self.persist(DEFAULT_POLICY, DEFAULT_POLICY_TEXT).await?;
        }
        Ok(())
    }

    /// Creates or replaces a policy from `text` (HCL or JSON, maybe base64).
    pub async fn set(&self, name: &str, text: &str) -> Result<()> {
        let name = sanitize_name(name);
        if text.is_empty() {
            return Err(Error::bad("'policy' parameter not supplied or empty"));
        }
        let policy = parse_policy(&name, text)?;
        if name.is_empty() {
            return Err(Error::bad("policy name missing"));
        }
        if IMMUTABLE_POLICIES.contains(&name.as_str()) {
            return Err(Error::bad(format!("cannot update \"{name}\" policy")));
        }
        let _writer = self.writes.lock().await;
        self.persist(&name, &policy.raw).await?;
        let mut cache = self.cache.write();
        cache.policies.insert(name, Arc::new(policy));
        Self::invalidate(&mut cache);
        Ok(())
    }

    async fn persist(&self, name: &str, raw: &str) -> Result<()> {
        let value = serde_json::to_vec(&StoredPolicy {
            raw: raw.to_string(),
        })
        .map_err(|e| Error::internal(format!("failed to encode policy: {e}")))?;
        self.storage.put(&storage_key(name), value).await?;
        let mut cache = self.cache.write();
        cache.policies.remove(name);
        Self::invalidate(&mut cache);
        Ok(())
    }

    /// Deletes a policy; deleting one that does not exist succeeds.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let name = sanitize_name(name);
        if IMMUTABLE_POLICIES.contains(&name.as_str()) {
            return Err(Error::bad(format!("cannot delete \"{name}\" policy")));
        }
        if name == DEFAULT_POLICY {
            return Err(Error::bad("cannot delete default policy"));
        }
        let _writer = self.writes.lock().await;
        self.storage.delete(&storage_key(&name)).await?;
        let mut cache = self.cache.write();
        cache.policies.remove(&name);
        Self::invalidate(&mut cache);
        Ok(())
    }

    /// A policy by name, with its raw text (`root` has empty text and no rules).
    pub async fn get(&self, name: &str) -> Result<Option<Policy>> {
        Ok(self
            .load(&sanitize_name(name))
            .await?
            .map(|p| Policy::clone(&p)))
    }

    /// Every assignable policy name, sorted; includes `root` and `default`.
    pub async fn list(&self) -> Result<Vec<String>> {
        let mut names = vec![ROOT_POLICY.to_string(), DEFAULT_POLICY.to_string()];
        // Names may contain `/`, which storage shows as folders: walk them.
        let mut folders = vec![String::new()];
        while let Some(folder) = folders.pop() {
            for entry in self.storage.list(&storage_key(&folder)).await? {
                let full = format!("{folder}{entry}");
                if entry.ends_with('/') {
                    folders.push(full);
                } else {
                    names.push(full);
                }
            }
        }
        names.retain(|n| n != RESPONSE_WRAPPING_POLICY);
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    /// The compiled ACL of a token holding `names`. Unknown names are ignored; `root` among
    /// them gives the root ACL. Cached until the next policy change.
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>> {
        let mut key: Vec<String> = names
            .iter()
            .map(|n| sanitize_name(n))
            .filter(|n| !n.is_empty())
            .collect();
        key.sort_unstable();
        key.dedup();

        let generation = {
            let cache = self.cache.read();
            if let Some(acl) = cache.acls.get(&key) {
                return Ok(Arc::clone(acl));
            }
            cache.generation
        };

        let acl = if key.iter().any(|n| n == ROOT_POLICY) {
            Arc::new(Acl::root())
        } else {
            let mut policies = Vec::with_capacity(key.len());
            for name in &key {
                if let Some(policy) = self.load(name).await? {
                    policies.push(policy);
                }
            }
            Arc::new(Acl::new(&policies))
        };

        let mut cache = self.cache.write();
        if cache.generation == generation {
            if cache.acls.len() >= MAX_CACHED_ACLS {
                cache.acls.clear();
            }
            cache.acls.insert(key, Arc::clone(&acl));
        }
        Ok(acl)
    }

    /// Forgets every parsed policy and compiled ACL (after storage changed behind our back,
    /// e.g. a standby becoming active).
    pub fn clear_cache(&self) {
        let mut cache = self.cache.write();
        cache.policies.clear();
        Self::invalidate(&mut cache);
    }

    fn invalidate(cache: &mut Cache) {
        cache.acls.clear();
        cache.generation = cache.generation.wrapping_add(1);
    }

    /// A parsed policy from the cache, or from storage (parsed once, then cached).
    async fn load(&self, name: &str) -> Result<Option<Arc<Policy>>> {
        let generation = {
            let cache = self.cache.read();
            if let Some(p) = cache.policies.get(name) {
                return Ok(Some(Arc::clone(p)));
            }
            cache.generation
        };
        let policy = match name {
            ROOT_POLICY => Policy {
                name: ROOT_POLICY.to_string(),
                raw: String::new(),
                rules: Vec::new(),
            },
            RESPONSE_WRAPPING_POLICY => {
                parse_decoded(name, RESPONSE_WRAPPING_POLICY_TEXT.to_string())?
            }
            _ => {
                let Some(bytes) = self.storage.get(&storage_key(name)).await? else {
                    return Ok(None);
                };
                let stored: StoredPolicy = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::internal(format!("failed to decode policy: {e}")))?;
                // The stored text was validated when written; a failure here means the
                // parser changed, which the operator must see rather than silently lose rules.
                parse_decoded(name, stored.raw)
                    .map_err(|e| Error::internal(format!("stored policy {name:?}: {e}")))?
            }
        };
        let policy = Arc::new(policy);
        let mut cache = self.cache.write();
        if cache.generation == generation {
            cache.policies.insert(name.to_string(), Arc::clone(&policy));
        }
        Ok(Some(policy))
    }
}
