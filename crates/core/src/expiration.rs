//! The lease manager: every secret and every service token with a TTL is a lease, recorded
//! durably before the response leaves, scheduled by expiry, revoked on time.
//!
//! Records live through the barrier under `sys/expire/`: `id/<lease id>` holds the lease,
//! `token/<token hash>/<lease hash>` indexes the leases a token created (so revoking a token
//! revokes its secrets). The in-memory `Schedule` orders leases by expiry; one task pops due
//! leases and revokes them through their backend. A failed revocation is retried with
//! backoff and, after the last attempt, kept as irrevocable: never silently dropped.

mod backlog;
mod claims;
mod entry;
mod events;
mod jobs;
mod read_ahead;
mod restore;
mod schedule;
mod staged;
mod workers;

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use lessor_storage::{Storage, WriteOp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use claims::Claim;
pub use entry::{IndexEntry, LeaseEntry, LeaseKind, LeaseState};
pub use events::{EventKind, Item, LeaseEvent, LeaseEvents, LeaseObserver, Subscription};
pub use jobs::{Job, JobState};
pub use schedule::Schedule;
pub use workers::Workers;

use crate::barrier::View;
use crate::clock::Clock;
use crate::framework::{LeaseCtx, SystemView};
use crate::logical::{Response, SecretSpec, obj};
use crate::mounts::{Mounted, Router};
use crate::token::{LeaseWrites, TokenEntry, TokenLeaseChange, TokenLeaseHooks, TokenStore};
use crate::ttl::{self, TtlInput};
use crate::{Error, Result};

const ID_PREFIX: &str = "id/";
/// The compact index restore reads: `idx/<lease id>` -> expiry and state, a few bytes each.
const INDEX_PREFIX: &str = "idx/";
/// Records that could not be read, kept for operators: `quarantine/<lease id>` -> reason.
const QUARANTINE_PREFIX: &str = "quarantine/";
const TOKEN_PREFIX: &str = "token/";
/// Vault's retry policy: 6 attempts, 10 s x 2^n with jitter, then irrevocable.
pub const MAX_ATTEMPTS: u32 = 6;
const RETRY_BASE_SECS: i64 = 10;
/// How often an irrevocable lease is tried again.
pub const IRREVOCABLE_RETRY_SECS: i64 = 86_400;
/// How long a reservation may stay pending before its planned credential is revoked.
pub const PENDING_DEADLINE_SECS: i64 = 300;
/// How soon the scheduler looks again at a reservation past its deadline whose request is
/// still creating the credential.
const ISSUING_RECHECK_MS: i64 = 1000;
/// The deadline in force: the server may shorten it (tests of crash recovery do).
static PENDING_DEADLINE: std::sync::atomic::AtomicI64 =
    std::sync::atomic::AtomicI64::new(PENDING_DEADLINE_SECS);

/// Sets how long a reservation may stay pending (seconds, at least 1).
pub fn set_pending_deadline_secs(secs: i64) {
    PENDING_DEADLINE.store(secs.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// How long a reservation may stay pending, in seconds.
pub fn pending_deadline_secs() -> i64 {
    PENDING_DEADLINE.load(std::sync::atomic::Ordering::Relaxed)
}

/// The system-wide TTL defaults the mounts inherit.
#[derive(Debug, Clone, Copy)]
pub struct SystemTtls {
    pub default_lease_ttl: i64,
    pub max_lease_ttl: i64,
}

pub struct Expiration {
    storage: Arc<dyn Storage>,
    /// The same storage as a view: token leases are written in the token store's batches.
    view: Arc<View>,
    router: Arc<Router>,
    tokens: parking_lot::RwLock<Weak<TokenStore>>,
    schedule: Arc<Schedule>,
    clock: Arc<dyn Clock>,
    system: SystemTtls,
    workers: Workers,
    /// Lease events, for observers (quotas) and subscribers (the event stream).
    pub events: Arc<LeaseEvents>,
    jobs: jobs::Jobs,
    markers: restore::Markers,
    read_ahead: read_ahead::ReadAhead,
    /// Orders a lease's renewal against its revocation (`claims`).
    claims: Arc<claims::Claims>,
    /// How far revocation is behind, so removals can wait in a burst (`backlog`).
    backlog: backlog::Backlog,
}

/// Revocations running at once, in all and per mount.
/// Many revocations in flight let group commit share one fsync among them; the per-mount
/// limit still keeps one slow upstream from taking every worker.
pub const WORKERS: usize = 256;
pub const WORKERS_PER_MOUNT: usize = 96;
/// Due leases the scheduler takes (and hands to one task) at a time: the schedule's lock is
/// held while it takes them, and a burst's first revocations need not wait for its last
/// to be taken.
const EXPIRY_GROUP: usize = 8192;
/// Revoked leases removed in one durable batch, at most.
const FORGET_GROUP: usize = 512;
/// Leases of one token revoked at once when the token goes.
const TOKEN_REVOKE_CONCURRENCY: usize = 32;

fn lease_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// When a lease read straight from its record expires. A token lease's record keeps the
/// times of the token's creation (a renewal moves only the token and the lease's index
/// entry), so for a token lease its index entry under `index_prefix` says.
pub(crate) async fn expiry_in_force(
    storage: &dyn Storage,
    index_prefix: &str,
    e: &LeaseEntry,
) -> i64 {
    if e.kind != LeaseKind::Token {
        return e.expire_time;
    }
    match storage.get(&format!("{index_prefix}{}", e.id)).await {
        Ok(Some(raw)) => serde_json::from_slice::<IndexEntry>(&raw)
            .map(|i| i.e)
            .unwrap_or(e.expire_time),
        _ => e.expire_time,
    }
}

/// 24 random base62 characters, the suffix of a lease id.
pub fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    (0..24)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The system view of a mount: its effective default and max lease TTL.
pub fn system_view(m: &Mounted, sys: SystemTtls) -> SystemView {
    let max = if m.entry.config.max_lease_ttl > 0 {
        m.entry.config.max_lease_ttl
    } else {
        sys.max_lease_ttl
    };
    let mut default = if m.entry.config.default_lease_ttl > 0 {
        m.entry.config.default_lease_ttl
    } else {
        sys.default_lease_ttl
    };
    default = default.min(max);
    SystemView {
        default_lease_ttl: Duration::from_secs(default.max(0) as u64),
        max_lease_ttl: Duration::from_secs(max.max(0) as u64),
        mount_path: m.entry.route_path(),
    }
}

impl Expiration {
    pub fn new(
        view: Arc<View>,
        router: Arc<Router>,
        clock: Arc<dyn Clock>,
        system: SystemTtls,
    ) -> Arc<Self> {
        let storage: Arc<dyn Storage> = view.clone();
        Arc::new(Expiration {
            events: LeaseEvents::new(storage.clone(), clock.clone()),
            storage,
            view,
            router,
            tokens: parking_lot::RwLock::new(Weak::new()),
            schedule: Arc::new(Schedule::new()),
            clock,
            system,
            workers: Workers::new(WORKERS, WORKERS_PER_MOUNT),
            jobs: jobs::Jobs::default(),
            markers: restore::Markers::default(),
            read_ahead: read_ahead::ReadAhead::default(),
            claims: Arc::default(),
            backlog: backlog::Backlog::default(),
        })
    }

    pub fn set_token_store(&self, tokens: &Arc<TokenStore>) {
        *self.tokens.write() = Arc::downgrade(tokens);
    }

    fn token_store(&self) -> Result<Arc<TokenStore>> {
        self.tokens.read().upgrade().ok_or(Error::Sealed)
    }

    pub fn schedule(&self) -> &Arc<Schedule> {
        &self.schedule
    }

    /// A lease's record as stored: for a token lease, with the times of the token's
    /// creation. Enough where the times are not read (existence, revocation).
    async fn load_stored(&self, id: &str) -> Result<Option<LeaseEntry>> {
        let Some(raw) = self.storage.get(&format!("{ID_PREFIX}{id}")).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| Error::internal(format!("corrupt lease record: {e}")))
    }

    /// A lease's record, with a token lease's times as its token has them now.
    async fn load(&self, id: &str) -> Result<Option<LeaseEntry>> {
        self.load_timed(id, false).await
    }

    /// As `load`; `settled` reads a token lease's times once any renewal of the token in
    /// progress has landed (`TokenStore::lookup_settled`), for the scheduler to decide on.
    async fn load_timed(&self, id: &str, settled: bool) -> Result<Option<LeaseEntry>> {
        let Some(mut e) = self.load_stored(id).await? else {
            return Ok(None);
        };
        if e.kind != LeaseKind::Token {
            return Ok(Some(e));
        }
        let Ok(tokens) = self.token_store() else {
            return Ok(Some(e));
        };
        let token = if settled {
            tokens.lookup_settled(&e.token_hash).await?
        } else {
            tokens.lookup_hash(&e.token_hash).await?
        };
        if let Some(t) = token {
            // The record keeps the times of the token's creation: a renewal moves only the
            // token and the lease's index entry (see `token_lease_writes`).
            (e.expire_time, e.expire_ms) = (t.expire_time, t.expire_ms);
            e.last_renewal = t.last_renewal;
            e.renewable = t.renewable;
        }
        Ok(Some(e))
    }

    fn index_op(entry: &LeaseEntry) -> Result<WriteOp> {
        let index = serde_json::to_vec(&IndexEntry::of(entry))
            .map_err(|e| Error::internal(e.to_string()))?;
        Ok(WriteOp::Put(format!("{INDEX_PREFIX}{}", entry.id), index))
    }

    fn entry_ops(entry: &LeaseEntry) -> Result<Vec<WriteOp>> {
        let raw = serde_json::to_vec(entry).map_err(|e| Error::internal(e.to_string()))?;
        let mut ops = vec![
            WriteOp::Put(format!("{ID_PREFIX}{}", entry.id), raw),
            Self::index_op(entry)?,
        ];
        if !entry.token_hash.is_empty() && entry.kind == LeaseKind::Secret {
            ops.push(WriteOp::Put(
                format!(
                    "{TOKEN_PREFIX}{}/{}",
                    entry.token_hash,
                    lease_hash(&entry.id)
                ),
                entry.id.as_bytes().to_vec(),
            ));
        }
        Ok(ops)
    }

    /// The lease id of a service token: its creation path, then its hash.
    fn token_lease_id(t: &TokenEntry) -> String {
        format!("{}/{}", t.path.trim_end_matches('/'), t.id_hash)
    }

    /// The lease record of a service token that expires.
    fn token_lease(t: &TokenEntry) -> LeaseEntry {
        LeaseEntry {
            id: Self::token_lease_id(t),
            kind: LeaseKind::Token,
            mount: "auth/token/".into(),
            mount_accessor: String::new(),
            secret_type: "token".into(),
            internal: Value::Null,
            token_hash: t.id_hash.clone(),
            issue_time: t.creation_time,
            expire_time: t.expire_time,
            last_renewal: t.last_renewal,
            renewable: t.renewable,
            state: LeaseState::Active,
            attempts: 0,
            last_error: String::new(),
            max_ttl: 0,
            expire_ms: t.expire_ms,
        }
    }

    async fn persist(&self, entry: &LeaseEntry) -> Result<()> {
        self.storage.batch(Self::entry_ops(entry)?).await?;
        Ok(())
    }

    /// The writes that remove a lease: record, index entry, token link, and quarantine
    /// marker if markers may exist.
    fn forget_ops(&self, entry: &LeaseEntry) -> Vec<WriteOp> {
        let mut ops = vec![
            WriteOp::Delete(format!("{ID_PREFIX}{}", entry.id)),
            WriteOp::Delete(format!("{INDEX_PREFIX}{}", entry.id)),
        ];
        if self.markers.may_exist() {
            ops.push(WriteOp::Delete(format!("{QUARANTINE_PREFIX}{}", entry.id)));
        }
        if !entry.token_hash.is_empty() && entry.kind == LeaseKind::Secret {
            ops.push(WriteOp::Delete(format!(
                "{TOKEN_PREFIX}{}/{}",
                entry.token_hash,
                lease_hash(&entry.id)
            )));
        }
        ops
    }

    /// The writes that remove a lease, named in the barrier's keys, after the writes its
    /// engine made revoking it (taken out of `r`): one atomic batch carries both.
    fn removal(&self, r: &mut Revoked) -> Result<Vec<WriteOp>> {
        let mut ops = std::mem::take(&mut r.writes);
        ops.extend(self.view.absolute(self.forget_ops(&r.entry))?);
        Ok(ops)
    }

    /// What follows a lease's removal from storage: the event, and out of the schedule.
    fn forgotten(&self, entry: &LeaseEntry) {
        self.events.emit(LeaseEvent::of(
            EventKind::Revoked,
            entry,
            self.clock.now_unix(),
        ));
        self.schedule.remove(&entry.id);
    }

    async fn forget(&self, r: Revoked) -> Result<()> {
        self.forget_many(vec![r]).await.map_err(|(err, _)| err)
    }

    /// Removes many revoked leases in one durable batch (expiry groups, revoke-prefix
    /// pages). On failure the leases are handed back: still recorded, to be revoked again.
    async fn forget_many(
        &self,
        mut revoked: Vec<Revoked>,
    ) -> std::result::Result<(), (Error, Vec<LeaseEntry>)> {
        if revoked.is_empty() {
            return Ok(());
        }
        let written = self.batch_removals(&mut revoked).await;
        let entries = revoked.into_iter().map(|r| r.entry);
        match written {
            Ok(()) => {
                for e in entries {
                    self.forgotten(&e);
                }
                Ok(())
            }
            Err(err) => Err((err, entries.collect())),
        }
    }

    async fn batch_removals(&self, revoked: &mut [Revoked]) -> Result<()> {
        let mut ops = Vec::with_capacity(revoked.len() * 4);
        for r in revoked.iter_mut() {
            ops.extend(self.removal(r)?);
        }
        self.view.inner().batch(ops).await?;
        Ok(())
    }

    /// Reserves the lease of a credential about to be created: durable before the engine
    /// makes its first call. The pending lease is also scheduled at its deadline, so a
    /// request that never finishes cannot leave its credential behind. The claim keeps
    /// revocations off the reservation while its credential is created (`claims`); it is
    /// held until the lease is activated or aborted (dropped at once, it is a request that
    /// stopped right after reserving).
    pub async fn reserve(
        &self,
        mount: &Mounted,
        request_path: &str,
        token_hash: &str,
        secret_type: &str,
        planned: Value,
    ) -> Result<(String, Claim)> {
        let now_ms = self.clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let id = format!("{}/{}", request_path.trim_end_matches('/'), random_suffix());
        let claim = self.claims.issuance(&id);
        let mut entry = LeaseEntry {
            id: id.clone(),
            kind: LeaseKind::Secret,
            mount: mount.entry.route_path(),
            mount_accessor: mount.entry.accessor.clone(),
            secret_type: secret_type.to_string(),
            internal: planned,
            token_hash: token_hash.to_string(),
            issue_time: now,
            expire_time: 0,
            expire_ms: 0,
            last_renewal: 0,
            renewable: false,
            state: LeaseState::Pending,
            attempts: 0,
            last_error: String::new(),
            max_ttl: 0,
        };
        entry.set_expiry_ms(now_ms + pending_deadline_secs() * 1000);
        self.persist(&entry).await?;
        self.events
            .emit(LeaseEvent::of(EventKind::Reserved, &entry, now));
        self.schedule.insert(&entry.id, entry.expires_at_ms());
        Ok((id, claim))
    }

    /// Activates a reserved lease with the secret the engine created: TTL from the one TTL
    /// function, internal data replaced, one durable write. Returns the TTL and any cap
    /// warning.
    pub async fn activate(
        &self,
        mount: &Mounted,
        secret: &SecretSpec,
    ) -> Result<(i64, Option<String>)> {
        let mut e = match self.load(&secret.reservation).await? {
            Some(e) if e.state == LeaseState::Pending => e,
            _ => {
                return Err(Error::internal(
                    "lease reservation expired before activation",
                ));
            }
        };
        let now_ms = self.clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let sys = system_view(mount, self.system);
        let granted = ttl::calculate(TtlInput {
            backend_ttl: secret.ttl.as_secs() as i64,
            backend_max: secret.max_ttl.as_secs() as i64,
            mount_default: sys.default_lease_ttl.as_secs() as i64,
            mount_max: sys.max_lease_ttl.as_secs() as i64,
            start: now,
            now,
            ..Default::default()
        })?;
        e.secret_type = secret.secret_type.clone();
        e.internal = secret.internal.clone();
        e.issue_time = now;
        e.set_expiry_ms(granted.ends_at_ms(now_ms));
        e.renewable = secret.renewable;
        e.max_ttl = secret.max_ttl.as_secs() as i64;
        e.state = LeaseState::Active;
        self.persist(&e).await?;
        self.events.emit(LeaseEvent::of(EventKind::Issued, &e, now));
        self.schedule.insert(&e.id, e.expires_at_ms());
        Ok((granted.ttl, granted.warning))
    }

    /// Revokes what a failed issuance may have created (the planned credential, or the one
    /// it returned) and forgets the reservation. On failure the lease stays pending and the
    /// scheduler retries it. False when no reservation can be read under `id`: what the
    /// engine returned is then the caller's to revoke.
    pub async fn abort(&self, id: &str, internal: Option<&Value>) -> bool {
        let Ok(Some(mut e)) = self.load(id).await else {
            return false;
        };
        if let Some(v) = internal {
            e.internal = v.clone();
            if let Err(err) = self.persist(&e).await {
                tracing::error!(lease_id = %id, error = %err, "cannot record created credential of a failed issuance");
            }
        }
        match self.revoke_entry(&e, None).await {
            Ok(writes) => {
                if let Err(err) = self.forget(Revoked::unclaimed(e, writes)).await {
                    tracing::error!(lease_id = %id, error = %err, "cannot forget aborted reservation");
                }
            }
            Err(err) => self.record_failure(e, err.to_string()).await,
        }
        true
    }

    /// Revokes a secret that came back without a reservation (a backend bug), or whose
    /// reservation cannot be read to abort, so it cannot outlive the failed request.
    pub async fn revoke_unreserved(&self, mount: &Mounted, secret: &SecretSpec) {
        let sys = system_view(mount, self.system);
        let ctx = LeaseCtx {
            storage: &mount.storage,
            system: &sys,
            secret_type: &secret.secret_type,
            internal: &secret.internal,
            issue_time: crate::clock::to_datetime(self.clock.now_unix()),
            expire_time: None,
            increment: Duration::ZERO,
        };
        if let Err(e) = mount.backend.revoke(&ctx).await {
            tracing::error!(mount = %mount.entry.route_path(), error = %e, "cannot revoke an unreserved secret");
        }
    }

    pub async fn lookup(&self, id: &str) -> Result<Option<LeaseEntry>> {
        self.load(id).await
    }

    /// The `sys/leases/lookup` body of a lease.
    pub fn lookup_data(&self, e: &LeaseEntry) -> serde_json::Map<String, Value> {
        // A lease that never expires has an expiry of 0, which shows 0 as Vault does.
        let ttl = crate::clock::seconds_left(e.expires_at_ms(), self.clock.now_ms());
        let mut m = obj([
            ("id", json!(e.id)),
            ("issue_time", json!(crate::clock::rfc3339(e.issue_time))),
            (
                "expire_time",
                if e.expire_time > 0 {
                    json!(crate::clock::rfc3339_ms(e.expires_at_ms()))
                } else {
                    Value::Null
                },
            ),
            (
                "last_renewal",
                if e.last_renewal > 0 {
                    json!(crate::clock::rfc3339(e.last_renewal))
                } else {
                    Value::Null
                },
            ),
            ("ttl", json!(ttl)),
            (
                "renewable",
                json!(e.renewable && e.state == LeaseState::Active),
            ),
            (
                "path",
                json!(e.id.rsplit_once('/').map(|(p, _)| p).unwrap_or("")),
            ),
        ]);
        if e.state == LeaseState::Irrevocable {
            m.insert("revoke_error".into(), json!(e.last_error));
        }
        m
    }

    /// Renews a secret lease: the increment is advisory, counted from now, capped at issue +
    /// max TTL with Vault's warning.
    pub async fn renew(&self, id: &str, increment: i64) -> Result<Response> {
        // Held to the end: a revocation deciding on this lease waits for the renewal to land.
        let _claim = self
            .claims
            .renewal(id)
            .await
            .map_err(|_| Error::bad("lease is being revoked"))?;
        let Some(mut e) = self.load(id).await? else {
            return Err(Error::bad("lease not found"));
        };
        if e.kind == LeaseKind::Token {
            return Err(Error::bad("tokens cannot be renewed through this endpoint"));
        }
        if e.state == LeaseState::Irrevocable {
            return Err(Error::bad(
                "lease is expired and has failed previous revocation attempts",
            ));
        }
        let now_ms = self.clock.now_ms();
        let now = now_ms.div_euclid(1000);
        if e.expire_time > 0 && e.expires_at_ms() <= now_ms {
            return Err(Error::bad("lease expired"));
        }
        if !e.renewable {
            return Err(Error::bad("lease is not renewable"));
        }
        let mount = self.mount_of(&e)?;
        let sys = system_view(&mount, self.system);
        let grant = mount
            .backend
            .renew(&LeaseCtx {
                storage: &mount.storage,
                system: &sys,
                secret_type: &e.secret_type,
                internal: &e.internal,
                issue_time: crate::clock::to_datetime(e.issue_time),
                expire_time: e.expiry_datetime(),
                increment: Duration::from_secs(increment.max(0) as u64),
            })
            .await?;
        let granted = ttl::calculate(TtlInput {
            increment,
            backend_ttl: grant.ttl.as_secs() as i64,
            backend_max: grant.max_ttl.as_secs() as i64,
            mount_default: sys.default_lease_ttl.as_secs() as i64,
            mount_max: sys.max_lease_ttl.as_secs() as i64,
            start: e.issue_time,
            now,
            ..Default::default()
        })?;
        if let Some(internal) = grant.internal {
            e.internal = internal;
        }
        e.set_expiry_ms(granted.ends_at_ms(now_ms));
        e.last_renewal = now;
        self.persist(&e).await?;
        self.events
            .emit(LeaseEvent::of(EventKind::Renewed, &e, now));
        self.schedule.insert(&e.id, e.expires_at_ms());
        let mut resp = Response {
            lease_id: e.id.clone(),
            lease_duration: granted.ttl.max(0) as u64,
            renewable: true,
            ..Default::default()
        };
        resp.warnings.extend(granted.warning);
        Ok(resp)
    }

    fn mount_of(&self, e: &LeaseEntry) -> Result<Arc<Mounted>> {
        self.router
            .get(&e.mount)
            .ok_or_else(|| Error::bad(format!("no mount at {} for this lease", e.mount)))
    }

    /// Revokes one lease through its backend, then forgets it. Unknown ids succeed.
    pub async fn revoke(&self, id: &str, force: bool) -> Result<()> {
        self.revoke_recorded(id, force).await.map(|_| ())
    }

    /// As `revoke`; `Ok(false)` when no lease was recorded under `id`.
    async fn revoke_recorded(&self, id: &str, force: bool) -> Result<bool> {
        let claim = self.claims.revocation(id).await;
        let Some(e) = self.load_stored(id).await? else {
            self.schedule.remove(id);
            return Ok(false);
        };
        match self.revoke_entry(&e, None).await {
            Ok(writes) => self.forget(Revoked::claimed(e, writes, claim)).await?,
            Err(err) if force => {
                tracing::warn!(lease_id = %e.id, error = %err, "forced revocation dropped a lease whose backend revoke failed");
                self.forget(Revoked::claimed(e, Vec::new(), claim)).await?
            }
            Err(err) => return Err(Error::bad(format!("failed to revoke entry: {err}"))),
        }
        Ok(true)
    }

    /// Revokes a lease through its backend. Returns the writes the engine made doing so,
    /// held back to commit with the lease's removal (`staged`); on failure whatever it
    /// wrote is committed at once, as it would have been. `mount` is the lease's mount when
    /// the caller has already looked it up (the scheduler groups due leases by mount), used
    /// if it is still the one the record names.
    async fn revoke_entry(
        &self,
        e: &LeaseEntry,
        mount: Option<&Arc<Mounted>>,
    ) -> Result<Vec<WriteOp>> {
        match e.kind {
            LeaseKind::Token => {
                let hash = e.id.rsplit('/').next().unwrap_or_default();
                self.token_store()?.revoke_tree(hash).await?;
                Ok(Vec::new())
            }
            LeaseKind::Secret => {
                let mount = match mount {
                    Some(m) if m.entry.is_route(&e.mount) => m.clone(),
                    _ => self.mount_of(e)?,
                };
                let sys = system_view(&mount, self.system);
                let staged = staged::Staged::over(&mount.view);
                let storage: Arc<dyn Storage> = staged.clone();
                let revoked = mount
                    .backend
                    .revoke(&LeaseCtx {
                        storage: &storage,
                        system: &sys,
                        secret_type: &e.secret_type,
                        internal: &e.internal,
                        issue_time: crate::clock::to_datetime(e.issue_time),
                        expire_time: e.expiry_datetime(),
                        increment: Duration::ZERO,
                    })
                    .await;
                match revoked {
                    Ok(()) => Ok(staged.for_root(self.view.inner()).await?),
                    Err(err) => {
                        if let Err(e2) = staged.commit().await {
                            tracing::error!(lease_id = %e.id, error = %e2, "cannot record what a failed revocation wrote");
                        }
                        Err(err)
                    }
                }
            }
        }
    }

    /// Every lease id at or below `prefix`: the exact id, or the `<prefix>/` subtree.
    pub async fn ids_under(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.trim_start_matches('/');
        if self
            .load_stored(prefix.trim_end_matches('/'))
            .await?
            .is_some()
            && !prefix.ends_with('/')
        {
            return Ok(vec![prefix.to_string()]);
        }
        let base = format!("{ID_PREFIX}{}/", prefix.trim_end_matches('/'));
        let base = if prefix.is_empty() {
            ID_PREFIX.to_string()
        } else {
            base
        };
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.storage.scan(&base, after.as_deref(), 1000).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            out.extend(
                page.into_iter()
                    .map(|(k, _)| k[ID_PREFIX.len()..].to_string()),
            );
        }
        Ok(out)
    }

    /// Queues every lease under `prefix` for immediate expiry (the async form of revoke).
    pub async fn expire_prefix_now(&self, prefix: &str) -> Result<()> {
        let now = self.clock.now_ms();
        for id in self.ids_under(prefix).await? {
            self.schedule.insert_forced(&id, now);
        }
        Ok(())
    }

    /// `LIST sys/leases/lookup/<prefix>`: lease suffixes and sub-prefixes.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let p = prefix.trim_start_matches('/');
        let p = if p.is_empty() || p.ends_with('/') {
            p.to_string()
        } else {
            format!("{p}/")
        };
        Ok(self.storage.list(&format!("{ID_PREFIX}{p}")).await?)
    }

    /// Irrevocable leases, for `sys/leases?type=irrevocable` and the count.
    pub async fn irrevocable(&self) -> Result<Vec<LeaseEntry>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.storage.scan(ID_PREFIX, after.as_deref(), 1000).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, raw) in page {
                if let Ok(e) = serde_json::from_slice::<LeaseEntry>(&raw)
                    && e.state == LeaseState::Irrevocable
                {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    /// Deletes a revoked token's cubbyhole (its private storage goes with it).
    async fn delete_cubbyhole(&self, token_hash: &str) -> Result<()> {
        for entry in self.router.entries(crate::mounts::Table::Mounts) {
            if entry.kind != "cubbyhole" {
                continue;
            }
            let Some(m) = self.router.get(&entry.route_path()) else {
                continue;
            };
            let prefix = format!("{token_hash}/");
            loop {
                let keys = m.storage.scan_keys(&prefix, None, 1000).await?;
                if keys.is_empty() {
                    break;
                }
                m.storage
                    .batch(keys.into_iter().map(WriteOp::Delete).collect())
                    .await?;
            }
        }
        Ok(())
    }

    /// Revokes every secret lease a token created.
    pub async fn revoke_by_token(&self, token_hash: &str) -> Result<()> {
        use futures_util::StreamExt;
        let prefix = format!("{TOKEN_PREFIX}{token_hash}/");
        let mut after: Option<String> = None;
        loop {
            let page = self.storage.scan(&prefix, after.as_deref(), 500).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            // A revoked lease's removal takes its link with it; links naming leases already
            // gone are left over, and go in one batch.
            let dangling: Vec<WriteOp> = futures_util::stream::iter(page)
                .map(|(key, raw)| async move {
                    let id = String::from_utf8_lossy(&raw).to_string();
                    match self.revoke_recorded(&id, false).await {
                        Ok(true) => None,
                        Ok(false) => Some(WriteOp::Delete(key)),
                        Err(e) => {
                            // The lease stays recorded and is retried by the scheduler.
                            tracing::warn!(lease_id = %id, error = %e, "revocation with its token failed; queued for retry");
                            self.schedule.insert_forced(&id, self.clock.now_ms());
                            None
                        }
                    }
                })
                .buffer_unordered(TOKEN_REVOKE_CONCURRENCY)
                .filter_map(std::future::ready)
                .collect()
                .await;
            if !dangling.is_empty() {
                self.storage.batch(dangling).await?;
            }
        }
        Ok(())
    }

    /// Handles many due leases at once. Each mount's leases run in a stream of their own, at
    /// most `WORKERS_PER_MOUNT` at a time: a slow mount holds back only its own leases, and
    /// a burst of a hundred thousand is never a hundred thousand futures (each a fresh
    /// allocation, which cost the background thread a sixth of its time in page faults).
    pub async fn expire_many(self: &Arc<Self>, ids: Vec<String>) {
        self.backlog.taken(ids.len());
        type Group = (Option<Arc<Mounted>>, Vec<String>);
        let mut by_mount: std::collections::HashMap<usize, Group, foldhash::fast::RandomState> =
            Default::default();
        for id in ids {
            // The mount's address names it for this pass; a lease whose mount is gone
            // goes with the others like it, to be reported when its record is read.
            let mount = self.router.matching(&id);
            let key = mount.as_ref().map_or(0, |m| Arc::as_ptr(m) as usize);
            let group = by_mount.entry(key).or_insert_with(|| (mount, Vec::new()));
            group.1.push(id);
        }
        futures_util::future::join_all(
            by_mount
                .into_values()
                .map(|(mount, ids)| self.expire_mount(mount, ids)),
        )
        .await;
    }

    /// Revokes one mount's due leases and forgets those revoked. The removals are written
    /// while the next revocations go on: a group is handed to the writer when it is full
    /// or when no other group of this stream is being written, so the engine calls are not
    /// held to the pace of the durable commits and one commit still carries many removals.
    /// While revocation is behind (a burst), the removals wait for it, a while at most
    /// (`backlog`).
    async fn expire_mount(self: &Arc<Self>, mount: Option<Arc<Mounted>>, ids: Vec<String>) {
        use futures_util::StreamExt;
        let mount = mount.as_ref();
        let mut revocations = futures_util::stream::iter(ids)
            .map(|id| async move {
                let revoked = self.expire_revoke(&id, mount).await;
                self.backlog.revoked();
                revoked
            })
            .buffer_unordered(WORKERS_PER_MOUNT)
            .filter_map(std::future::ready)
            .ready_chunks(FORGET_GROUP);
        let mut writing = futures_util::stream::FuturesUnordered::new();
        let mut revoked: Vec<Revoked> = Vec::new();
        let mut waiting_since: Option<tokio::time::Instant> = None;
        let mut more = true;
        loop {
            let wait = !revoked.is_empty()
                && self.backlog.behind()
                && waiting_since.is_none_or(|t| t.elapsed() < backlog::HOLD_FOR);
            if !wait {
                waiting_since = None;
                while revoked.len() >= FORGET_GROUP || (writing.is_empty() && !revoked.is_empty()) {
                    let rest = revoked.split_off(revoked.len().min(FORGET_GROUP));
                    let group = std::mem::replace(&mut revoked, rest);
                    self.backlog.release(group.len());
                    writing.push(self.forget_or_retry(group));
                }
            } else if waiting_since.is_none() {
                waiting_since = Some(tokio::time::Instant::now());
            }
            if !more && writing.is_empty() && revoked.is_empty() {
                return;
            }
            tokio::select! {
                ready = revocations.next(), if more => match ready {
                    Some(ready) => {
                        self.backlog.hold(ready.len());
                        revoked.extend(ready);
                    }
                    None => more = false,
                },
                Some(()) = writing.next(), if !writing.is_empty() => {}
                () = tokio::time::sleep(backlog::HOLD_POLL), if wait => {}
            }
        }
    }

    /// Revoked leases whose removal waited for the revocations behind them (`backlog`),
    /// since start.
    pub fn removals_deferred(&self) -> u64 {
        self.backlog.deferred()
    }

    /// Removes revoked leases; if that cannot be written they come back in a while (their
    /// revocation is idempotent), never dropped.
    async fn forget_or_retry(&self, revoked: Vec<Revoked>) {
        if let Err((err, entries)) = self.forget_many(revoked).await {
            let retry = self.clock.now_ms() + RETRY_BASE_SECS * 1000;
            for e in entries {
                tracing::error!(lease_id = %e.id, error = %err, "revoked but not forgotten; retrying");
                self.schedule.insert_forced(&e.id, retry);
            }
        }
    }

    /// Revokes one due lease through its engine (`mount`: the one its id routes to, looked
    /// up once per group), under its mount's worker limit. `Some` when
    /// it is revoked and its record is to be removed; a failure is recorded and the lease
    /// rescheduled with backoff.
    async fn expire_revoke(&self, id: &str, mount: Option<&Arc<Mounted>>) -> Option<Revoked> {
        let forced = self.schedule.take_forced(id);
        let Ok(claim) = self.claims.revocation_unless_issuing(id).await else {
            // Its request is still creating the credential (a reservation past its deadline
            // on a slow upstream): it will be activated or aborted, so look again shortly.
            let again = self.clock.now_ms() + ISSUING_RECHECK_MS;
            if forced {
                self.schedule.insert_forced(id, again);
            } else {
                self.schedule.insert(id, again);
            }
            return None;
        };
        let e = match self.load_timed(id, true).await {
            Ok(Some(e)) => e,
            Ok(None) => {
                self.schedule.remove(id);
                return None;
            }
            Err(
                err @ (Error::Internal(_)
                | Error::Storage(lessor_storage::StorageError::Corrupt(_))),
            ) => {
                // Undecodable: keep the record for an operator, stop retrying it.
                self.quarantine(id, &err.to_string()).await;
                return None;
            }
            Err(err) => {
                tracing::error!(lease_id = %id, error = %err, "cannot load due lease; retrying");
                self.schedule
                    .insert(id, self.clock.now_ms() + RETRY_BASE_SECS * 1000);
                return None;
            }
        };
        if !forced
            && e.state == LeaseState::Active
            && e.attempts == 0
            && e.expires_at_ms() > self.clock.now_ms()
        {
            // Renewed after it was taken as due (the renewal's write landed in between):
            // the client was told it has more time, so it keeps it.
            self.schedule.insert(id, e.expires_at_ms());
            return None;
        }
        let _permit = self.workers.acquire(&e.mount).await?;
        match self.revoke_entry(&e, mount).await {
            Ok(writes) => Some(Revoked::claimed(e, writes, claim)),
            Err(err) => {
                self.record_failure(e, err.to_string()).await;
                None
            }
        }
    }

    async fn record_failure(&self, mut e: LeaseEntry, err: String) {
        use rand::Rng;
        e.attempts += 1;
        e.last_error = err.chars().take(240).collect();
        let now = self.clock.now_unix();
        if e.state == LeaseState::Irrevocable || e.attempts >= MAX_ATTEMPTS {
            if e.state != LeaseState::Irrevocable {
                e.state = LeaseState::Irrevocable;
                tracing::error!(lease_id = %e.id, "lease is irrevocable after {} attempts", e.attempts);
            }
            e.last_error = format!("out of retries: {}", e.last_error)
                .chars()
                .take(240)
                .collect();
            // Still retried, rarely (again after each failed rare retry): an upstream that
            // was down for a day may be back.
            self.schedule
                .insert(&e.id, (now + IRREVOCABLE_RETRY_SECS) * 1000);
        } else {
            let base = RETRY_BASE_SECS << e.attempts;
            let jitter = rand::thread_rng().gen_range(-(base / 2)..=(base / 2));
            self.schedule.insert(&e.id, (now + base + jitter) * 1000);
            tracing::warn!(lease_id = %e.id, attempt = e.attempts, "revocation failed; retrying with backoff");
        }
        if let Err(err) = self.persist(&e).await {
            tracing::error!(lease_id = %e.id, error = %err, "cannot record revocation failure");
        }
        self.events.emit_failure(&e, now);
    }

    /// Takes up to `max` due leases from the schedule and tells the backlog how many are
    /// due now and shortly, so a burst's removals can wait from its start.
    fn take_due(&self, now_ms: i64, max: usize) -> Vec<String> {
        let due = self.schedule.pop_due(now_ms, max);
        self.backlog
            .ahead(due.len() + self.schedule.due_soon(now_ms));
        due
    }

    /// Runs the scheduler until `stop` fires: due leases go to the worker pool in groups
    /// (`expire_many`), each lease revoked under its mount's concurrency limit.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let now_ms = self.clock.now_ms();
            let due = self.take_due(now_ms, EXPIRY_GROUP);
            if !due.is_empty() {
                let this = self.clone();
                crate::background::spawn(async move { this.expire_many(due).await });
                continue;
            }
            let wait = self.schedule.plan_sleep(now_ms, Duration::from_secs(1));
            // Its wake-ups are at most a second apart, so each second is read ahead
            // two to three seconds before it is due.
            drop(self.read_ahead());
            tokio::select! {
                _ = stop.changed() => return,
                _ = self.schedule.notified() => {},
                _ = tokio::time::sleep(wait) => {},
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Revokes every lease due now, as the scheduler would (`expire_many`): tests move a
    /// manual clock, then call this instead of running the scheduler. Returns how many
    /// were handled.
    pub async fn run_due_now(self: &Arc<Self>) -> usize {
        let due = self.take_due(self.clock.now_ms(), usize::MAX);
        let n = due.len();
        self.expire_many(due).await;
        n
    }

    /// Revokes, synchronously, every lease under `prefix` (a mount being disabled or moved,
    /// a role deleted with its leases). Fails if any could not be revoked.
    pub async fn revoke_prefix_sync(self: &Arc<Self>, route_path: &str) -> Result<()> {
        let job = self.start_prefix_job(route_path, false).await?;
        let job = self.wait_job(&job.id).await?;
        if job.failed > 0 {
            return Err(Error::bad(format!(
                "failed to revoke {} of {} leases under the prefix; they stay recorded and are retried: {}",
                job.failed,
                job.total,
                job.errors.first().map(String::as_str).unwrap_or("")
            )));
        }
        Ok(())
    }

    /// Force-revokes leases whose owning token no longer exists.
    pub async fn tidy(&self) -> Result<usize> {
        let tokens = self.token_store()?;
        let mut revoked = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self.storage.scan(ID_PREFIX, after.as_deref(), 1000).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, raw) in page {
                let Ok(e) = serde_json::from_slice::<LeaseEntry>(&raw) else {
                    continue;
                };
                if e.kind != LeaseKind::Secret || e.token_hash.is_empty() {
                    continue;
                }
                if tokens.lookup_hash(&e.token_hash).await?.is_none() {
                    // Not forced: a lease whose revocation fails stays, and is retried.
                    match self.revoke(&e.id, false).await {
                        Ok(()) => revoked += 1,
                        Err(err) => self.record_failure(e, err.to_string()).await,
                    }
                }
            }
        }
        Ok(revoked)
    }
}

#[async_trait]
impl TokenLeaseHooks for Expiration {
    fn token_lease_writes(&self, t: &TokenEntry, change: TokenLeaseChange) -> Result<LeaseWrites> {
        let lease = Self::token_lease(t);
        let ops = match change {
            TokenLeaseChange::Created => Self::entry_ops(&lease)?,
            // Everything the record holds but the times is fixed at creation, and the times
            // are the token's: moving the index entry (which restore schedules from) is
            // enough, and a renewal writes two records instead of three.
            TokenLeaseChange::Renewed => vec![Self::index_op(&lease)?],
        };
        Ok(LeaseWrites {
            root: self.view.inner().clone(),
            ops: self.view.absolute(ops)?,
        })
    }

    fn token_lease_recorded(&self, t: &TokenEntry) {
        let entry = Self::token_lease(t);
        self.events
            .emit(LeaseEvent::upsert(&entry, self.clock.now_unix()));
        self.schedule.insert(&entry.id, entry.expires_at_ms());
    }

    async fn token_revoked(&self, t: &TokenEntry) -> Result<()> {
        self.revoke_by_token(&t.id_hash).await?;
        self.delete_cubbyhole(&t.id_hash).await?;
        if let Some(e) = self.load_stored(&Self::token_lease_id(t)).await? {
            self.forget(Revoked::unclaimed(e, Vec::new())).await?;
        }
        Ok(())
    }
}

/// A lease its engine has revoked, with the writes the engine made doing so (named in the
/// barrier's keys), to be committed together with the lease's removal.
struct Revoked {
    entry: LeaseEntry,
    writes: Vec<WriteOp>,
    /// Keeps renewals out until the removal is durable; dropped after it is written.
    _claim: Option<claims::Claim>,
}

impl Revoked {
    /// A lease no renewal can reach (a reservation, a token's own lease: tokens renew
    /// under the token store's lock).
    fn unclaimed(entry: LeaseEntry, writes: Vec<WriteOp>) -> Self {
        Revoked {
            entry,
            writes,
            _claim: None,
        }
    }

    fn claimed(entry: LeaseEntry, writes: Vec<WriteOp>, claim: claims::Claim) -> Self {
        Revoked {
            entry,
            writes,
            _claim: Some(claim),
        }
    }
}

/// The reservations of one request: the core creates one per request and aborts whatever
/// the handler reserved but did not turn into a secret. Each reservation is held (`claims`)
/// until it is activated or aborted through here.
pub struct RequestLeases {
    pub expiration: Arc<Expiration>,
    pub mount: Arc<Mounted>,
    pub request_path: String,
    pub token_hash: String,
    reserved: parking_lot::Mutex<Vec<(String, Option<Claim>)>>,
}

impl RequestLeases {
    pub fn new(
        expiration: Arc<Expiration>,
        mount: Arc<Mounted>,
        request_path: String,
        token_hash: String,
    ) -> Self {
        RequestLeases {
            expiration,
            mount,
            request_path,
            token_hash,
            reserved: parking_lot::Mutex::new(Vec::new()),
        }
    }

    pub fn reserved(&self) -> Vec<String> {
        self.reserved
            .lock()
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Activates the reservation `secret` names (`Expiration::activate`); if that fails,
    /// revokes the credential the engine created (`abort`, or straight through the engine
    /// if the reservation is gone). Then lets revocations at it.
    pub async fn activate(&self, secret: &SecretSpec) -> Result<(i64, Option<String>)> {
        let r = self.expiration.activate(&self.mount, secret).await;
        if r.is_err()
            && !self
                .expiration
                .abort(&secret.reservation, Some(&secret.internal))
                .await
        {
            self.expiration.revoke_unreserved(&self.mount, secret).await;
        }
        self.release(&secret.reservation);
        r
    }

    /// Aborts a reservation (`Expiration::abort`), then lets go of it.
    pub async fn abort(&self, id: &str, internal: Option<&Value>) {
        // Without `internal` the engine returned nothing to revoke beyond the reservation.
        self.expiration.abort(id, internal).await;
        self.release(id);
    }

    fn release(&self, id: &str) {
        let claim = self
            .reserved
            .lock()
            .iter_mut()
            .find(|(r, _)| r == id)
            .and_then(|(_, c)| c.take());
        // Dropped outside the lock: the release wakes waiting revocations.
        drop(claim);
    }
}

#[async_trait]
impl crate::framework::Reserver for RequestLeases {
    async fn reserve(&self, secret_type: &str, planned: Value) -> Result<String> {
        let (id, claim) = self
            .expiration
            .reserve(
                &self.mount,
                &self.request_path,
                &self.token_hash,
                secret_type,
                planned,
            )
            .await?;
        self.reserved.lock().push((id.clone(), Some(claim)));
        Ok(id)
    }

    async fn revoke_prefix(&self, rel_prefix: &str) -> Result<()> {
        let prefix = format!(
            "{}{}",
            self.mount.entry.route_path(),
            rel_prefix.trim_matches('/')
        );
        // Only the subtree: a role name must not match a lease id of another role.
        self.expiration
            .revoke_prefix_sync(&format!("{prefix}/"))
            .await
    }
}
