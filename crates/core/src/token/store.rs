//! The token store: minting, resolving, renewing and revoking service tokens.
//!
//! Layout in its storage view (already scoped to `sys/token/` and encrypted):
//! * `salt` — the random per-store HMAC key;
//! * `id/<id_hash>` — the `TokenEntry`;
//! * `accessor/<hash(accessor)>` — `{id_hash, accessor}`;
//! * `parent/<parent id_hash>/<child id_hash>` — the tree, walked on revocation;
//! * `roles/<name>` — token roles.
//!
//! Multi-key changes go through one atomic `batch`; the token's lease record (kept by the
//! lease manager in its own view) joins that batch, so an issuance is one durable commit. A token is revoked children first, so
//! an interrupted revocation leaves a smaller tree still linked to a live parent, never an
//! orphan whose parent is gone. Read-modify-write of an entry (renew, use counting,
//! orphaning) holds a per-token stripe lock, and deletion takes it too, so a renewal can
//! never write back a token that was just revoked. Hooks run outside those locks.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use lessor_storage::{Storage, WriteOp};
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::entry::{LAST_USE, TokenEntry, sanitize_policies};
use super::login::LoginRenewer;
use super::params::{CreateParams, TtlLimits};
use crate::barrier::View;
use crate::clock::{Clock, SystemClock, split_ms};
use crate::stripes::Stripes;
use crate::ttl::{TtlInput, calculate};
use crate::{Error, Result};

const SALT_KEY: &str = "salt";
pub(super) const ID_PREFIX: &str = "id/";
pub(super) const ACCESSOR_PREFIX: &str = "accessor/";
pub(super) const PARENT_PREFIX: &str = "parent/";
/// Random characters after `hvs.` in a generated token.
const TOKEN_RANDOM_LEN: usize = 24;
const ACCESSOR_LEN: usize = 24;
const LOCK_STRIPES: usize = 64;
const SCAN_PAGE: usize = 256;

/// The writes that record a token's lease, keyed in `root`: the storage below the lease
/// manager's view. When the token store's view is over the same storage they join the
/// token's own batch.
pub struct LeaseWrites {
    pub root: Arc<dyn Storage>,
    pub ops: Vec<WriteOp>,
}

/// Why a token's lease is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLeaseChange {
    /// The token was created: its lease is recorded.
    Created,
    /// The token was renewed: its lease moves to the token's new expiry.
    Renewed,
}

/// What the lease manager does for tokens. Called by the store; a no-op until set.
#[async_trait]
pub trait TokenLeaseHooks: Send + Sync {
    /// The writes that record (`Created`) or move (`Renewed`) the token's lease
    /// `<entry.path>/<id_hash>` to `entry.expire_time`. Asked on create and on every renewal
    /// of a token that expires.
    fn token_lease_writes(
        &self,
        entry: &TokenEntry,
        change: TokenLeaseChange,
    ) -> Result<LeaseWrites>;
    /// Called once the writes of `token_lease_writes` are durable (schedule, events).
    fn token_lease_recorded(&self, entry: &TokenEntry);
    /// Revokes every secret lease the token created and drops the token's own lease.
    /// Called for each token of a revoked tree before its record is deleted.
    async fn token_revoked(&self, entry: &TokenEntry) -> Result<()>;
}

/// The accessor index record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AccessorRecord {
    pub id_hash: String,
    pub accessor: String,
}

/// Result of a renewal: the updated entry, the TTL granted and the cap warning.
#[derive(Debug, Clone)]
pub struct Renewed {
    pub entry: TokenEntry,
    pub ttl: i64,
    pub warning: Option<String>,
}

/// What a tidy pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TidyReport {
    pub dangling_accessors: usize,
    pub dangling_links: usize,
    pub revoked: usize,
}

pub struct TokenStore {
    storage: Arc<dyn Storage>,
    /// The same storage as a view, for batches shared with the lease manager.
    view: Arc<View>,
    /// HMAC keyed with the store's salt, cloned for each hash.
    mac: Hmac<Sha256>,
    clock: Arc<dyn Clock>,
    hooks: OnceLock<Arc<dyn TokenLeaseHooks>>,
    login: OnceLock<Arc<dyn LoginRenewer>>,
    locks: Stripes,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore").finish_non_exhaustive()
    }
}

fn random_base62(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::internal(format!("encoding token record: {e}")))
}

fn from_json<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::internal(format!("decoding token record: {e}")))
}

impl TokenStore {
    /// Opens the store on its storage view, creating the salt on first use.
    pub async fn new(storage: Arc<View>) -> Result<Self> {
        Self::with_clock(storage, Arc::new(SystemClock)).await
    }

    /// As `new`, with a clock tests can drive.
    pub async fn with_clock(view: Arc<View>, clock: Arc<dyn Clock>) -> Result<Self> {
        let storage: Arc<dyn Storage> = view.clone();
        let salt = match storage.get(SALT_KEY).await? {
            Some(s) if !s.is_empty() => s,
            _ => {
                let s: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
                storage.put(SALT_KEY, s.clone()).await?;
                s
            }
        };
        let mac = Hmac::<Sha256>::new_from_slice(&salt)
            .map_err(|e| Error::internal(format!("token salt: {e}")))?;
        Ok(TokenStore {
            storage,
            view,
            mac,
            clock,
            hooks: OnceLock::new(),
            login: OnceLock::new(),
            locks: Stripes::new(LOCK_STRIPES),
        })
    }

    /// Installs the lease manager's hooks (once; later calls are ignored).
    pub fn set_hooks(&self, hooks: Arc<dyn TokenLeaseHooks>) {
        if self.hooks.set(hooks).is_err() {
            tracing::warn!("token lease hooks already set; ignoring the new ones");
        }
    }

    /// Installs what renewal of login tokens asks (once; later calls are ignored).
    pub fn set_login_renewer(&self, renewer: Arc<dyn LoginRenewer>) {
        if self.login.set(renewer).is_err() {
            tracing::warn!("login renewer already set; ignoring the new one");
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_unix()
    }

    /// Now in Unix ms: expiry is checked to the millisecond.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(super) fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// `h` + hex HMAC-SHA256(salt, value): how tokens and accessors are keyed.
    pub fn hash(&self, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        format!("h{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Commits `ops` together with the writes that record `entry`'s lease: one atomic,
    /// durable batch when both views are over the same storage (always, in a server), so
    /// a token is never usable without its lease nor a lease left without its token.
    async fn commit_with_lease(
        &self,
        ops: Vec<WriteOp>,
        entry: &TokenEntry,
        change: TokenLeaseChange,
    ) -> Result<()> {
        let hooks = match self.hooks.get() {
            Some(h) if entry.expire_time > 0 => h,
            _ => {
                self.storage.batch(ops).await?;
                return Ok(());
            }
        };
        let lease = hooks.token_lease_writes(entry, change)?;
        let mut all = self.view.joining(&lease.root, ops).await?;
        all.extend(lease.ops);
        lease.root.batch(all).await?;
        hooks.token_lease_recorded(entry);
        Ok(())
    }

    /// Mints a token. The TTL in `p` is final (see `CreateParams::apply_ttl`). Returns the
    /// client token (shown once, never stored) and its entry.
    pub async fn create(&self, p: CreateParams) -> Result<(String, TokenEntry)> {
        let now_ms = self.now_ms();
        let now = now_ms.div_euclid(1000);
        let custom = p.id.is_some();
        let token =
            p.id.unwrap_or_else(|| format!("hvs.{}", random_base62(TOKEN_RANDOM_LEN)));
        let id_hash = self.hash(&token);
        if custom && self.lookup_hash(&id_hash).await?.is_some() {
            return Err(Error::bad("cannot create a token with a duplicate ID"));
        }
        let accessor = random_base62(ACCESSOR_LEN);
        let ttl = p.ttl.max(0);
        // Counted from this millisecond, as the client counts its lease_duration.
        let (expire_time, expire_ms) = if ttl > 0 {
            split_ms(now_ms.saturating_add(ttl.saturating_mul(1000)))
        } else {
            (0, 0)
        };
        let entry = TokenEntry {
            id_hash: id_hash.clone(),
            accessor: accessor.clone(),
            parent: p.parent.clone(),
            policies: sanitize_policies(&p.policies, p.add_default_policy),
            path: p.path,
            meta: p.meta,
            display_name: p.display_name,
            num_uses: p.num_uses.max(0),
            creation_time: now,
            creation_ttl: ttl,
            expire_time,
            expire_ms,
            explicit_max_ttl: p.explicit_max_ttl.max(0),
            max_ttl: p.max_ttl.max(0),
            period: p.period.max(0),
            renewable: p.renewable && ttl > 0,
            role: p.role,
            token_type: "service".into(),
            orphan: p.parent.is_empty(),
            bound_cidrs: p.bound_cidrs,
            entity_id: p.entity_id,
            last_renewal: 0,
            mount_accessor: p.mount_accessor,
            internal: p.internal,
        };
        let mut ops = vec![
            WriteOp::Put(format!("{ID_PREFIX}{id_hash}"), to_json(&entry)?),
            WriteOp::Put(
                format!("{ACCESSOR_PREFIX}{}", self.hash(&accessor)),
                to_json(&AccessorRecord {
                    id_hash: id_hash.clone(),
                    accessor,
                })?,
            ),
        ];
        if !entry.parent.is_empty() {
            ops.push(WriteOp::Put(
                format!("{PARENT_PREFIX}{}/{id_hash}", entry.parent),
                id_hash.clone().into_bytes(),
            ));
        }
        self.commit_with_lease(ops, &entry, TokenLeaseChange::Created)
            .await?;
        // The parent is checked once, after the write: before it would not do (a parent
        // revoked while this child is written would leave it dangling), and the caller's
        // token was checked moments ago anyway. A missing parent undoes the child, whose
        // token was never handed out.
        if !entry.parent.is_empty() && self.lookup_hash(&entry.parent).await?.is_none() {
            self.revoke_tree(&id_hash).await?;
            return Err(Error::bad("parent token not found"));
        }
        Ok((token, entry))
    }

    /// Mints a root token (policy `root`, no TTL, never expires, orphan), for `sys/init`
    /// and dev mode; `id` chooses the token (dev mode's known root token).
    pub async fn create_root(&self, id: Option<&str>) -> Result<String> {
        let (token, _) = self
            .create(CreateParams {
                id: id.map(str::to_string),
                policies: vec!["root".into()],
                display_name: "root".into(),
                path: "auth/token/root".into(),
                ..Default::default()
            })
            .await?;
        Ok(token)
    }

    /// The entry under `id_hash`, as stored (expired or in its last use included).
    pub async fn lookup_hash(&self, id_hash: &str) -> Result<Option<TokenEntry>> {
        if id_hash.is_empty() || id_hash.contains('/') {
            return Ok(None);
        }
        match self.storage.get(&format!("{ID_PREFIX}{id_hash}")).await? {
            Some(b) => Ok(Some(from_json(&b)?)),
            None => Ok(None),
        }
    }

    /// The token once any renewal in progress has landed (read under its stripe lock). If
    /// it is expired now, no later renewal can succeed, since a renewal refuses an expired
    /// token: the scheduler revokes on this read.
    pub async fn lookup_settled(&self, id_hash: &str) -> Result<Option<TokenEntry>> {
        let _g = self.locks.lock(id_hash).await;
        self.lookup_hash(id_hash).await
    }

    /// Checks a live entry: expired tokens are revoked on sight; a token in its last use
    /// resolves no more.
    async fn live(&self, entry: Option<TokenEntry>) -> Result<Option<TokenEntry>> {
        let Some(e) = entry else { return Ok(None) };
        if e.is_expired(self.now_ms()) {
            if let Err(err) = self.revoke_tree(&e.id_hash).await {
                tracing::warn!(accessor = %e.accessor, error = %err,
                    "revoking an expired token failed; its lease will retry");
            }
            return Ok(None);
        }
        if e.last_use_pending() {
            return Ok(None);
        }
        Ok(Some(e))
    }

    /// The entry of a client token; `None` if unknown, expired or used up.
    pub async fn resolve(&self, token: &str) -> Result<Option<TokenEntry>> {
        if token.is_empty() {
            return Ok(None);
        }
        let e = self.lookup_hash(&self.hash(token)).await?;
        self.live(e).await
    }

    /// The live entry an accessor names.
    pub async fn lookup_accessor(&self, accessor: &str) -> Result<Option<TokenEntry>> {
        if accessor.is_empty() {
            return Ok(None);
        }
        let key = format!("{ACCESSOR_PREFIX}{}", self.hash(accessor));
        let Some(b) = self.storage.get(&key).await? else {
            return Ok(None);
        };
        let rec: AccessorRecord = from_json(&b)?;
        let e = self.lookup_hash(&rec.id_hash).await?;
        self.live(e).await
    }

    /// Counts one use of a limited-use token; call it once the token is authorized, before
    /// the request runs. When this is the last use, `entry.num_uses` becomes `LAST_USE`
    /// (persisted, so the token resolves no more) and `finish_use` revokes it once the
    /// request is done. A token already used up is refused; one revoked meanwhile is left
    /// alone.
    pub async fn use_token(&self, entry: &mut TokenEntry) -> Result<()> {
        if entry.num_uses == 0 {
            return Ok(());
        }
        let _g = self.locks.lock(&entry.id_hash).await;
        let Some(mut cur) = self.lookup_hash(&entry.id_hash).await? else {
            return Ok(());
        };
        match cur.num_uses {
            0 => {}
            LAST_USE => return Err(Error::InvalidToken),
            1 => cur.num_uses = LAST_USE,
            n => cur.num_uses = n - 1,
        }
        self.storage
            .put(&format!("{ID_PREFIX}{}", cur.id_hash), to_json(&cur)?)
            .await?;
        *entry = cur;
        Ok(())
    }

    /// After a request: revokes the token whose last use it was (see `use_token`).
    pub async fn finish_use(&self, entry: &TokenEntry) -> Result<()> {
        if entry.last_use_pending() {
            self.revoke_tree(&entry.id_hash).await?;
        }
        Ok(())
    }

    /// Renews a token: `increment` (or its creation TTL) from now, capped by the mount max
    /// and explicit max counted from creation; periodic tokens get their period again.
    ///
    /// A login token is renewed on the terms its auth method answers now (see
    /// `LoginRenewer`), within that auth mount's limits instead of `limits`.
    pub async fn renew(&self, id_hash: &str, increment: i64, limits: TtlLimits) -> Result<Renewed> {
        let stored = self.lookup_hash(id_hash).await?;
        // Asked outside the stripe lock: the backend reads its own storage.
        let login = match (&stored, self.login.get()) {
            (Some(e), Some(r)) if e.renewable && e.expire_time > 0 => r.login_terms(e).await?,
            _ => None,
        };
        let role = match stored {
            Some(e) if !e.role.is_empty() => {
                Some(self.get_role(&e.role).await?.ok_or_else(|| {
                    Error::bad(format!(
                        "original token role ({}) could not be found, not renewing",
                        e.role
                    ))
                })?)
            }
            _ => None,
        };
        let renewed = {
            let _g = self.locks.lock(id_hash).await;
            let now_ms = self.now_ms();
            let now = now_ms.div_euclid(1000);
            let Some(mut e) = self.lookup_hash(id_hash).await? else {
                return Err(Error::bad("token not found"));
            };
            if e.is_expired(now_ms) || e.last_use_pending() {
                return Err(Error::bad("token not found"));
            }
            if !e.renewable || e.expire_time == 0 {
                return Err(Error::bad("lease is not renewable"));
            }
            let (period, explicit_max) = match &role {
                Some(r) => (
                    r.effective_period(),
                    min_nonzero(e.explicit_max_ttl, r.effective_explicit_max_ttl()),
                ),
                None => (e.period, e.explicit_max_ttl),
            };
            let (backend_ttl, period, limits) = match login {
                Some(t) => {
                    // The role's settings now are the token's from here on.
                    e.max_ttl = t.max_ttl.max(0);
                    e.period = t.period.max(0);
                    (t.ttl, e.period, t.limits)
                }
                None => (e.creation_ttl, period, limits),
            };
            let granted = calculate(TtlInput {
                increment: increment.max(0),
                backend_ttl,
                backend_max: e.max_ttl,
                explicit_max,
                period,
                mount_default: limits.default,
                mount_max: limits.max,
                start: e.creation_time,
                now,
            })?;
            e.set_expiry_ms(granted.ends_at_ms(now_ms));
            e.last_renewal = now;
            let put = WriteOp::Put(format!("{ID_PREFIX}{id_hash}"), to_json(&e)?);
            self.commit_with_lease(vec![put], &e, TokenLeaseChange::Renewed)
                .await?;
            Renewed {
                entry: e,
                ttl: granted.ttl,
                warning: granted.warning,
            }
        };
        Ok(renewed)
    }

    async fn children(&self, id_hash: &str) -> Result<Vec<String>> {
        let names = self
            .storage
            .list(&format!("{PARENT_PREFIX}{id_hash}/"))
            .await?;
        Ok(names
            .into_iter()
            .filter(|n| !n.ends_with('/') && !n.is_empty())
            .collect())
    }

    /// Deletes a token's records (entry, accessor index, link to its parent, and the link
    /// under `parent_hint` when the walk came from there) in one batch.
    async fn delete_entry(&self, entry: &TokenEntry, parent_hint: Option<&str>) -> Result<()> {
        let h = &entry.id_hash;
        let mut ops = vec![
            WriteOp::Delete(format!("{ID_PREFIX}{h}")),
            WriteOp::Delete(format!("{ACCESSOR_PREFIX}{}", self.hash(&entry.accessor))),
        ];
        if !entry.parent.is_empty() {
            ops.push(WriteOp::Delete(format!(
                "{PARENT_PREFIX}{}/{h}",
                entry.parent
            )));
        }
        if let Some(p) = parent_hint.filter(|p| *p != entry.parent) {
            ops.push(WriteOp::Delete(format!("{PARENT_PREFIX}{p}/{h}")));
        }
        let _g = self.locks.lock(h).await;
        self.storage.batch(ops).await?;
        Ok(())
    }

    /// Revokes one token whose children are gone: its leases through the hooks, then its
    /// records. A missing entry only loses its link.
    async fn revoke_one(&self, id_hash: &str, parent_hint: Option<&str>) -> Result<()> {
        match self.lookup_hash(id_hash).await? {
            Some(e) => {
                if let Some(h) = self.hooks.get() {
                    h.token_revoked(&e).await?;
                }
                self.delete_entry(&e, parent_hint).await
            }
            None => {
                if let Some(p) = parent_hint {
                    self.storage
                        .delete(&format!("{PARENT_PREFIX}{p}/{id_hash}"))
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// Revokes a token and every descendant, children first, calling `token_revoked` for
    /// each. Unknown tokens succeed. Iterative: a deep tree does not grow the stack.
    pub async fn revoke_tree(&self, id_hash: &str) -> Result<()> {
        // (token, the parent the walk came from)
        let mut stack: Vec<(String, Option<String>)> = vec![(id_hash.to_string(), None)];
        let mut expanded: HashSet<String> = HashSet::new();
        while let Some((h, parent)) = stack.last().cloned() {
            let kids = if expanded.insert(h.clone()) {
                self.children(&h).await?
            } else {
                // Children added after the walk saw this node are picked up here.
                self.children(&h)
                    .await?
                    .into_iter()
                    .filter(|c| !expanded.contains(c))
                    .collect()
            };
            if kids.is_empty() {
                stack.pop();
                self.revoke_one(&h, parent.as_deref()).await?;
            } else {
                stack.extend(kids.into_iter().map(|c| (c, Some(h.clone()))));
            }
        }
        Ok(())
    }

    /// Revokes a token but not its children, which become orphans. `Ok(false)` if unknown.
    pub async fn revoke_orphan(&self, id_hash: &str) -> Result<bool> {
        if self.lookup_hash(id_hash).await?.is_none() {
            return Ok(false);
        }
        for child in self.children(id_hash).await? {
            let _g = self.locks.lock(&child).await;
            let link = format!("{PARENT_PREFIX}{id_hash}/{child}");
            let mut ops = vec![WriteOp::Delete(link)];
            if let Some(mut c) = self.lookup_hash(&child).await? {
                c.parent.clear();
                c.orphan = true;
                ops.push(WriteOp::Put(format!("{ID_PREFIX}{child}"), to_json(&c)?));
            }
            self.storage.batch(ops).await?;
        }
        self.revoke_one(id_hash, None).await?;
        Ok(true)
    }

    /// Scans every key under `prefix` with its value.
    async fn scan_all(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .storage
                .scan(prefix, after.as_deref(), SCAN_PAGE)
                .await?;
            let done = page.len() < SCAN_PAGE;
            after = page.last().map(|(k, _)| k.clone());
            out.extend(page);
            if done || after.is_none() {
                return Ok(out);
            }
        }
    }

    /// Every accessor of a live token (for `LIST auth/token/accessors`).
    pub async fn list_accessors(&self) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        for (_, v) in self.scan_all(ACCESSOR_PREFIX).await? {
            let rec: AccessorRecord = from_json(&v)?;
            keys.push(rec.accessor);
        }
        Ok(keys)
    }

    /// Removes index entries that point nowhere, revokes the subtrees of links whose parent
    /// is gone, and revokes expired or used-up tokens that were not cleaned up.
    pub async fn tidy(&self) -> Result<TidyReport> {
        let mut report = TidyReport::default();
        let now_ms = self.now_ms();
        for (k, v) in self.scan_all(ACCESSOR_PREFIX).await? {
            let rec: AccessorRecord = from_json(&v)?;
            if self.lookup_hash(&rec.id_hash).await?.is_none() {
                self.storage.delete(&k).await?;
                report.dangling_accessors += 1;
            }
        }
        for (k, _) in self.scan_all(PARENT_PREFIX).await? {
            let Some((parent, child)) = k
                .strip_prefix(PARENT_PREFIX)
                .and_then(|r| r.split_once('/'))
            else {
                continue;
            };
            let child_entry = self.lookup_hash(child).await?;
            if child_entry.is_none() {
                self.storage.delete(&k).await?;
                report.dangling_links += 1;
            } else if self.lookup_hash(parent).await?.is_none() {
                // A child must not outlive its parent: finish the interrupted revocation.
                self.revoke_tree(child).await?;
                self.storage.delete(&k).await?;
                report.dangling_links += 1;
                report.revoked += 1;
            }
        }
        for (_, v) in self.scan_all(ID_PREFIX).await? {
            let e: TokenEntry = from_json(&v)?;
            if e.is_expired(now_ms) || e.last_use_pending() {
                self.revoke_tree(&e.id_hash).await?;
                report.revoked += 1;
            }
        }
        Ok(report)
    }
}

pub(super) fn min_nonzero(a: i64, b: i64) -> i64 {
    match (a > 0, b > 0) {
        (true, true) => a.min(b),
        (true, false) => a,
        (false, _) => b.max(0),
    }
}
