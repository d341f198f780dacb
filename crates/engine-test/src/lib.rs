//! The test engine: issues dummy credentials ("resources") through the same reserve ->
//! create -> activate protocol as real engines, and can be told to fail revocation N times
//! or forever, to be slow (creating, renewing, revoking), or to fail creation. Every live resource is listed, so a test can
//! check that the engine holds nothing without a lease. Compiled into tests, benchmarks and
//! `lessor-test-server` only.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lessor_core::framework::field;
use lessor_core::framework::{Backend, Ctx, FieldData, LeaseCtx, Path, PathHandler, RenewGrant};
use lessor_core::logical::{Operation, Response, SecretSpec, obj};
use lessor_core::mounts::MountEntry;
use lessor_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const TYPE: &str = "lessor-test";
pub const SECRET_TYPE: &str = "dummy";

/// Behaviour knobs, persisted in the mount so they survive a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Behaviour {
    /// Revocations to fail before succeeding; -1 = fail forever.
    #[serde(default)]
    pub fail_revoke: i64,
    #[serde(default)]
    pub revoke_delay_ms: u64,
    #[serde(default)]
    pub renew_delay_ms: u64,
    #[serde(default)]
    pub create_delay_ms: u64,
    /// Fail every issuance after the resource was created (tests the rollback).
    #[serde(default)]
    pub fail_create: bool,
    /// Return the secret without its reservation id: an engine bug the core must catch.
    #[serde(default)]
    pub lose_reservation: bool,
    /// Lease TTL and max TTL the engine asks for, seconds (0 = mount defaults).
    #[serde(default)]
    pub ttl: i64,
    #[serde(default)]
    pub max_ttl: i64,
    #[serde(default = "yes")]
    pub renewable: bool,
}

fn yes() -> bool {
    true
}

/// How late each revocation came after its lease's expiry, by millisecond up to
/// `LATENESS_MS` (later ones in the last slot): what the expiry benchmark reports per lease.
const LATENESS_MS: usize = 10_000;

struct Lateness {
    by_ms: Box<[AtomicU64]>,
    /// Revocations before the lease's expiry (an explicit revoke, a revoke-prefix).
    early: AtomicU64,
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            by_ms: (0..=LATENESS_MS).map(|_| AtomicU64::new(0)).collect(),
            early: AtomicU64::new(0),
        }
    }
}

impl Lateness {
    fn record(&self, expire_time: Option<time::OffsetDateTime>) {
        let Some(at) = expire_time else { return };
        let late_ms = (time::OffsetDateTime::now_utc() - at).whole_milliseconds();
        if late_ms < 0 {
            self.early.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let slot = usize::try_from(late_ms)
            .unwrap_or(LATENESS_MS)
            .min(LATENESS_MS);
        self.by_ms[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Count, percentiles and max of the revocations at or after expiry, in ms.
    fn summary(&self) -> Value {
        let counts: Vec<u64> = self
            .by_ms
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let at = |q: f64| -> Option<usize> {
            let want = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            counts.iter().position(|c| {
                seen += c;
                seen >= want
            })
        };
        json!({
            "count": total,
            "early": self.early.load(Ordering::Relaxed),
            "p50": if total > 0 { at(0.5) } else { None },
            "p90": if total > 0 { at(0.9) } else { None },
            "p99": if total > 0 { at(0.99) } else { None },
            "max": counts.iter().rposition(|c| *c > 0),
            "capped_at": LATENESS_MS,
        })
    }
}

#[derive(Default)]
struct Stats {
    revoke_calls: AtomicU64,
    lateness: Lateness,
    revoke_failures: AtomicU64,
    renew_calls: AtomicU64,
    issued: AtomicU64,
    /// Revocation failures still to inject (mirrors `Behaviour::fail_revoke`).
    fail_left: AtomicI64,
}

struct Engine {
    paths: Vec<Path>,
    state: Arc<State>,
}

struct State {
    stats: Stats,
    behaviour: parking_lot::RwLock<Behaviour>,
}

const CONFIG_KEY: &str = "config";

impl State {
    fn behaviour(&self) -> Behaviour {
        self.behaviour.read().clone()
    }
}

struct ConfigPath(Arc<State>);

#[async_trait]
impl PathHandler for ConfigPath {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        if op == Operation::Read {
            let b = serde_json::to_value(self.0.behaviour())
                .map_err(|e| Error::internal(e.to_string()))?;
            let mut data = b.as_object().cloned().unwrap_or_default();
            data.insert(
                "fail_revoke_left".into(),
                json!(self.0.stats.fail_left.load(Ordering::SeqCst)),
            );
            return Ok(Some(Response::data(data)));
        }
        let mut b = self.0.behaviour();
        if let Some(v) = d.int("fail_revoke") {
            b.fail_revoke = v;
            self.0.stats.fail_left.store(v, Ordering::SeqCst);
        }
        if let Some(v) = d.int("revoke_delay_ms") {
            b.revoke_delay_ms = v.max(0) as u64;
        }
        if let Some(v) = d.int("renew_delay_ms") {
            b.renew_delay_ms = v.max(0) as u64;
        }
        if let Some(v) = d.int("create_delay_ms") {
            b.create_delay_ms = v.max(0) as u64;
        }
        if let Some(v) = d.bool("fail_create") {
            b.fail_create = v;
        }
        if let Some(v) = d.bool("lose_reservation") {
            b.lose_reservation = v;
        }
        if let Some(v) = d.secs("ttl") {
            b.ttl = v;
        }
        if let Some(v) = d.secs("max_ttl") {
            b.max_ttl = v;
        }
        if let Some(v) = d.bool("renewable") {
            b.renewable = v;
        }
        let raw = serde_json::to_vec(&b).map_err(|e| Error::internal(e.to_string()))?;
        ctx.storage.put(CONFIG_KEY, raw).await?;
        *self.0.behaviour.write() = b;
        Ok(None)
    }
}

struct CredsPath(Arc<State>);

#[async_trait]
impl PathHandler for CredsPath {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let b = self.0.behaviour();
        let resource = uuid::Uuid::new_v4().to_string();
        let planned = json!({"resource": resource});
        // Reserve first: from here on a crash leaves a pending lease, never a bare resource.
        let reservation = ctx.reserve(SECRET_TYPE, planned.clone()).await?;
        ctx.storage
            .put(
                &format!("resources/{resource}"),
                d.string("name").into_bytes(),
            )
            .await?;
        if b.create_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(b.create_delay_ms)).await;
        }
        if b.fail_create {
            return Err(Error::bad("test engine: creation failed as configured"));
        }
        self.0.stats.issued.fetch_add(1, Ordering::Relaxed);
        let ttl = d.secs("ttl").filter(|t| *t > 0).unwrap_or(b.ttl);
        Ok(Some(Response {
            data: Some(obj([
                ("resource", json!(resource)),
                ("name", json!(d.string("name"))),
            ])),
            secret: Some(SecretSpec {
                secret_type: SECRET_TYPE.into(),
                ttl: Duration::from_secs(ttl.max(0) as u64),
                max_ttl: Duration::from_secs(b.max_ttl.max(0) as u64),
                renewable: b.renewable,
                internal: planned,
                reservation: if b.lose_reservation {
                    String::new()
                } else {
                    reservation
                },
            }),
            ..Default::default()
        }))
    }
}

struct ResourcesPath;

#[async_trait]
impl PathHandler for ResourcesPath {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        let keys = ctx.storage.list("resources/").await?;
        let mut data = obj([("count", json!(keys.len()))]);
        data.insert("keys".into(), json!(keys));
        Ok(Some(Response::data(data)))
    }
}

struct StatsPath(Arc<State>);

#[async_trait]
impl PathHandler for StatsPath {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        let s = &self.0.stats;
        Ok(Some(Response::data(obj([
            ("issued", json!(s.issued.load(Ordering::Relaxed))),
            (
                "revoke_calls",
                json!(s.revoke_calls.load(Ordering::Relaxed)),
            ),
            (
                "revoke_failures",
                json!(s.revoke_failures.load(Ordering::Relaxed)),
            ),
            ("renew_calls", json!(s.renew_calls.load(Ordering::Relaxed))),
            ("lateness_ms", s.lateness.summary()),
        ]))))
    }
}

#[async_trait]
impl Backend for Engine {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    async fn initialize(&self, storage: &Arc<dyn lessor_storage::Storage>) -> Result<()> {
        if let Some(raw) = storage.get(CONFIG_KEY).await?
            && let Ok(b) = serde_json::from_slice::<Behaviour>(&raw)
        {
            self.state
                .stats
                .fail_left
                .store(b.fail_revoke, Ordering::SeqCst);
            *self.state.behaviour.write() = b;
        }
        Ok(())
    }

    async fn renew(&self, _ctx: &LeaseCtx<'_>) -> Result<RenewGrant> {
        self.state.stats.renew_calls.fetch_add(1, Ordering::Relaxed);
        let b = self.state.behaviour();
        if b.renew_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(b.renew_delay_ms)).await;
        }
        Ok(RenewGrant {
            ttl: Duration::from_secs(b.ttl.max(0) as u64),
            max_ttl: Duration::from_secs(b.max_ttl.max(0) as u64),
            internal: None,
        })
    }

    async fn revoke(&self, ctx: &LeaseCtx<'_>) -> Result<()> {
        let s = &self.state.stats;
        s.revoke_calls.fetch_add(1, Ordering::Relaxed);
        let b = self.state.behaviour();
        if b.revoke_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(b.revoke_delay_ms)).await;
        }
        let left = s.fail_left.load(Ordering::SeqCst);
        if left < 0 || (left > 0 && s.fail_left.fetch_sub(1, Ordering::SeqCst) > 0) {
            s.revoke_failures.fetch_add(1, Ordering::Relaxed);
            return Err(Error::internal(
                "test engine: revocation failed as configured",
            ));
        }
        let Some(resource) = ctx.internal.get("resource").and_then(Value::as_str) else {
            return Err(Error::internal("test engine: lease without a resource"));
        };
        // Idempotent: deleting a resource that is already gone succeeds.
        ctx.storage.delete(&format!("resources/{resource}")).await?;
        s.lateness.record(ctx.expire_time);
        Ok(())
    }
}

/// The factory for mount type `lessor-test`.
pub fn factory(_entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    let state = Arc::new(State {
        stats: Stats::default(),
        behaviour: parking_lot::RwLock::new(Behaviour {
            renewable: true,
            ..Default::default()
        }),
    });
    let ops_rw = &[Operation::Read, Operation::Update];
    let paths = vec![
        Path::new("config", Arc::new(ConfigPath(state.clone())))
            .fields(vec![
                field::int("fail_revoke", "Revocations to fail; -1 = forever."),
                field::int("revoke_delay_ms", "Delay of each revocation."),
                field::int("renew_delay_ms", "Delay of each renewal."),
                field::int("create_delay_ms", "Delay between reserve and return."),
                field::bool("fail_create", "Fail issuance after creating."),
                field::bool(
                    "lose_reservation",
                    "Return secrets without their reservation.",
                ),
                field::dur("ttl", "Lease TTL."),
                field::dur("max_ttl", "Lease max TTL."),
                field::bool("renewable", "Leases are renewable."),
            ])
            .ops(ops_rw),
        Path::new("creds/(?P<name>[^/]+)", Arc::new(CredsPath(state.clone())))
            .fields(vec![
                field::str("name", "Role name."),
                field::dur("ttl", "Requested TTL."),
            ])
            .ops(ops_rw),
        Path::new("resources/?", Arc::new(ResourcesPath)).ops(&[Operation::Read, Operation::List]),
        Path::new("stats", Arc::new(StatsPath(state.clone()))).ops(&[Operation::Read]),
    ];
    Ok(Arc::new(Engine { paths, state }))
}

/// The server's backend types plus this engine.
#[cfg(feature = "test-server")]
pub fn factories() -> std::collections::BTreeMap<String, lessor_core::core::Factory> {
    let mut f = lessor_server::factories();
    f.insert(TYPE.into(), Arc::new(factory));
    f
}
