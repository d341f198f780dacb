//! Telemetry: request counts and latency by path class and status, lease operations by
//! mount, storage latency, audit failures, and a census of leases and tokens, rendered as
//! Prometheus text or Vault's JSON by `sys/metrics` and the optional telemetry listener.
//!
//! The request path only touches atomics: `Core::handle` calls `begin` and `end` around
//! each request. Lease operations (issue, renew, revoke) also look up their mount's counters
//! in a read-mostly map. Everything that needs storage (leases by mount and state, the
//! expiry histogram, retrying and irrevocable leases, token count) is computed at scrape
//! time from the persisted records and reused for `leases::reuse_for` (5 s, or 20x the pass).
//!
//! The lease manager's own events (issue, renew, revoke — including expiry — failed
//! revocation attempts, irrevocable leases) are counted by mount through a `LeaseObserver`,
//! and running revoke-prefix jobs report their progress at scrape time.
//!
//! Other crates add gauges through `register_gauge` (the server registers the AWS clock
//! offset the AWS engine measures).

mod leases;
pub mod registry;
mod storage;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use lessor_storage::Storage;
use parking_lot::RwLock;
use serde_json::Value;

use crate::core::Core;
use crate::expiration::{EventKind, JobState, LeaseEvent, LeaseObserver};
use crate::logical::{Request, Response};
use crate::{Error, Result};

use registry::Histogram;
pub use registry::{Family, Kind};
pub use storage::{Metered, OPS as STORAGE_OPS, StorageTimes};

/// Path classes requests are counted by.
const CLASSES: [&str; 5] = ["sys", "auth-token", "auth", "logical", "other"];
/// Status codes counted on their own; anything else is `other`.
const STATUSES: [u16; 11] = [200, 202, 204, 400, 403, 404, 405, 429, 500, 503, 0];
const OPS: [&str; 3] = ["issue", "renew", "revoke"];

fn class_of(path: &str) -> usize {
    if path.starts_with("sys/") || path == "sys" {
        0
    } else if path.starts_with("auth/token/") {
        1
    } else if path.starts_with("auth/") {
        2
    } else if !path.is_empty() {
        3
    } else {
        4
    }
}

fn status_index(code: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == code)
        .unwrap_or(STATUSES.len() - 1)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LeaseOp {
    Issue = 0,
    Renew = 1,
    Revoke = 2,
}

/// Renew and revoke are recognised by path; an issue by its response.
fn lease_op_of(path: &str) -> Option<LeaseOp> {
    const RENEW: [&str; 3] = ["sys/leases/renew", "sys/renew", "auth/token/renew"];
    const REVOKE: [&str; 3] = ["sys/leases/revoke", "sys/revoke", "auth/token/revoke"];
    if RENEW.iter().any(|p| path.starts_with(p)) {
        Some(LeaseOp::Renew)
    } else if REVOKE.iter().any(|p| path.starts_with(p)) {
        Some(LeaseOp::Revoke)
    } else {
        None
    }
}

/// What `begin` measured, handed back to `end`.
pub struct Probe {
    class: usize,
    op: Option<LeaseOp>,
    /// The lease a renew or revoke names (body or path), for its mount label.
    target: Option<String>,
    start: Instant,
    /// Request id and path, kept only when debug logging is on (one line per request).
    debug: Option<(String, String)>,
}

/// Lease manager events counted, in `EventKind` order.
const EVENTS: [EventKind; 6] = [
    EventKind::Reserved,
    EventKind::Issued,
    EventKind::Renewed,
    EventKind::Revoked,
    EventKind::Failed,
    EventKind::Irrevocable,
];

#[derive(Default)]
struct MountEvents {
    by_kind: [AtomicU64; 6],
}

#[derive(Default)]
struct MountOps {
    by_op: [AtomicU64; 3],
}

type GaugeFn = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The census a scrape serves, and whether a newer one is being taken.
#[derive(Default)]
struct CensusSlot {
    last: Option<leases::Census>,
    taking: bool,
}

pub struct Metrics {
    requests: [[AtomicU64; STATUSES.len()]; CLASSES.len()],
    request_ms: [Histogram; CLASSES.len()],
    by_mount: RwLock<BTreeMap<String, Arc<MountOps>>>,
    events: RwLock<BTreeMap<String, Arc<MountEvents>>>,
    op_ms: [Histogram; 3],
    op_errors: [AtomicU64; 3],
    pub storage: Arc<StorageTimes>,
    /// The last census, shared with the task that refreshes it.
    census: Arc<parking_lot::Mutex<CensusSlot>>,
    /// Held while the first census is taken, so concurrent first scrapes take one.
    first_census: tokio::sync::Mutex<()>,
    external: RwLock<Vec<(&'static str, &'static str, GaugeFn)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            request_ms: std::array::from_fn(|_| Histogram::latency()),
            by_mount: RwLock::new(BTreeMap::new()),
            events: RwLock::new(BTreeMap::new()),
            op_ms: std::array::from_fn(|_| Histogram::latency()),
            op_errors: std::array::from_fn(|_| AtomicU64::new(0)),
            storage: Arc::new(StorageTimes::default()),
            census: Arc::default(),
            first_census: tokio::sync::Mutex::new(()),
            external: RwLock::new(Vec::new()),
        }
    }
}

fn lease_target(req: &Request) -> Option<String> {
    // Token renewals and revocations name a token, not a lease: their mount is the token store.
    if req.path.trim_start_matches('/').starts_with("auth/token/") {
        return Some("auth/token/".into());
    }
    if let Some(Value::String(id)) = req.data.get("lease_id") {
        return Some(id.clone());
    }
    let p = req.path.trim_start_matches('/');
    [
        "sys/leases/renew/",
        "sys/leases/revoke/",
        "sys/renew/",
        "sys/revoke/",
        "sys/leases/revoke-prefix/",
        "sys/leases/revoke-force/",
        "sys/revoke-prefix/",
        "sys/revoke-force/",
    ]
    .iter()
    .find_map(|pre| p.strip_prefix(pre))
    .map(str::to_string)
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Wraps the barrier so storage latency is measured.
    pub fn metered(&self, inner: Arc<dyn Storage>) -> Arc<dyn Storage> {
        Metered::new(inner, self.storage.clone())
    }

    /// Adds a gauge read at every scrape (another crate's measurement).
    pub fn register_gauge(&self, name: &'static str, help: &'static str, f: GaugeFn) {
        let mut ext = self.external.write();
        ext.retain(|(n, _, _)| *n != name);
        ext.push((name, help, f));
    }

    pub fn begin(&self, req: &Request) -> Probe {
        let path = req.path.trim_start_matches('/');
        let op = lease_op_of(path);
        Probe {
            class: class_of(path),
            target: op.and_then(|_| lease_target(req)),
            op,
            start: Instant::now(),
            debug: tracing::enabled!(tracing::Level::DEBUG)
                .then(|| (req.id.clone(), path.to_string())),
        }
    }

    fn mount_ops(&self, mount: &str) -> Arc<MountOps> {
        if let Some(m) = self.by_mount.read().get(mount) {
            return m.clone();
        }
        self.by_mount
            .write()
            .entry(mount.to_string())
            .or_default()
            .clone()
    }

    pub fn end(&self, core: &Core, probe: Probe, out: &Result<Option<Response>>) {
        let ms = probe.start.elapsed().as_secs_f64() * 1000.0;
        let status = match out {
            Ok(None) => 204,
            Ok(Some(r)) => r.raw.as_ref().map(|x| x.status).or(r.status).unwrap_or(200),
            Err(e) => e.status(),
        };
        if let Some(row) = self.requests.get(probe.class) {
            row[status_index(status)].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(h) = self.request_ms.get(probe.class) {
            h.observe(ms);
        }
        if let Some((request_id, path)) = &probe.debug {
            // The id is the one the audit entries carry; the path names, never holds, a secret.
            tracing::debug!(request_id = %request_id, path = %path, status, ms, "request handled");
        }
        let issued = match out {
            Ok(Some(r)) if !r.lease_id.is_empty() => Some(r.lease_id.as_str()),
            Ok(Some(r)) if r.auth.as_ref().is_some_and(|a| !a.client_token.is_empty()) => {
                Some("auth/token/")
            }
            _ => None,
        };
        let (op, target) = match (probe.op, issued) {
            (Some(op), _) => (op, probe.target.as_deref()),
            (None, Some(id)) => (LeaseOp::Issue, Some(id)),
            (None, None) => return,
        };
        let idx = op as usize;
        self.op_ms[idx].observe(ms);
        if out.is_err() {
            self.op_errors[idx].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mount = target
            .and_then(|id| {
                core.active()?
                    .router
                    .matching(id)
                    .map(|m| m.entry.route_path())
            })
            .unwrap_or_else(|| "unknown".into());
        self.mount_ops(&mount).by_op[idx].fetch_add(1, Ordering::Relaxed);
    }

    /// The lease census. Once one exists, a scrape never waits for the next: a stale one
    /// is served while a task takes a new one (as Vault's usage gauges are refreshed in the
    /// background), so a pass that outgrows a scraper's timeout still answers. Only the
    /// first scrape after start waits for a pass.
    async fn census(&self, core: &Core) -> Result<Option<leases::Census>> {
        let Some(active) = core.active() else {
            return Ok(None);
        };
        if let Some(c) = self.served_census(&active.storage, core.clock.now_unix()) {
            return Ok(Some(c));
        }
        let _first = self.first_census.lock().await;
        if let Some(c) = self.census.lock().last.clone() {
            return Ok(Some(c));
        }
        let c = leases::take(active.storage.as_ref(), core.clock.now_unix()).await?;
        self.census.lock().last = Some(c.clone());
        Ok(Some(c))
    }

    /// The census held, if any; a stale one starts its refresh.
    fn served_census(&self, storage: &Arc<dyn Storage>, now: i64) -> Option<leases::Census> {
        let mut slot = self.census.lock();
        let c = slot.last.clone()?;
        if !c.fresh() && !slot.taking {
            slot.taking = true;
            let (slot, storage) = (self.census.clone(), storage.clone());
            tokio::spawn(async move {
                let taken = leases::take(storage.as_ref(), now).await;
                let mut slot = slot.lock();
                slot.taking = false;
                match taken {
                    Ok(c) => slot.last = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "lease census failed; serving the last one")
                    }
                }
            });
        }
        Some(c)
    }

    /// Marks the census held as stale, as if its time had passed (tests).
    pub fn age_census(&self) {
        if let Some(c) = self.census.lock().last.as_mut() {
            c.taken = None;
        }
    }

    /// Every metric, as of now.
    pub async fn families(&self, core: &Core) -> Result<Vec<Family>> {
        let mut out = Vec::new();
        let sealed = core.sealed();
        out.push(Family::one(
            "vault.core.unsealed",
            Kind::Gauge,
            "1 when unsealed.",
            if sealed { 0.0 } else { 1.0 },
        ));
        if let Some(c) = self.census(core).await? {
            out.push(Family::one(
                "vault.expire.num_leases",
                Kind::Gauge,
                "Leases (secrets and tokens) recorded.",
                c.total as f64,
            ));
            out.push(Family::one(
                "vault.expire.num_irrevocable_leases",
                Kind::Gauge,
                "Leases out of revocation attempts.",
                c.irrevocable as f64,
            ));
            let mut f = Family::new(
                "lessor.expire.leases",
                Kind::Gauge,
                "Leases by mount and state.",
            );
            for ((mount, state), n) in &c.by_mount_state {
                f = f.with(
                    vec![("mount", mount.clone()), ("state", state.to_string())],
                    *n as f64,
                );
            }
            out.push(f);
            let mut f = Family::new(
                "lessor.expire.leases_retrying",
                Kind::Gauge,
                "Leases whose revocation failed and is retried, by mount.",
            );
            for (mount, n) in &c.retrying {
                f = f.with(vec![("mount", mount.clone())], *n as f64);
            }
            out.push(f);
            out.push(Family::one(
                "lessor.expire.failed_revocation_attempts",
                Kind::Gauge,
                "Failed revocation attempts recorded on live leases.",
                c.failed_attempts as f64,
            ));
            out.push(
                Family::new(
                    "lessor.expire.time_to_expiry_seconds",
                    Kind::Histogram,
                    "Seconds until each lease expires.",
                )
                .with_hist(Vec::new(), c.expiry.clone()),
            );
            out.push(Family::one(
                "vault.token.count",
                Kind::Gauge,
                "Tokens stored.",
                c.tokens as f64,
            ));
        }
        let mut f = Family::new(
            "lessor.expire.events",
            Kind::Counter,
            "Lease manager events by mount: reserved, issued, renewed, revoked (expiry included), failed (a revocation attempt failed and is retried), irrevocable.",
        );
        for (mount, c) in self.events.read().iter() {
            for (i, kind) in EVENTS.iter().enumerate() {
                f = f.with(
                    vec![
                        ("mount", mount.clone()),
                        ("event", kind.as_str().to_string()),
                    ],
                    c.by_kind[i].load(Ordering::Relaxed) as f64,
                );
            }
        }
        out.push(f);
        if let Some(active) = core.active() {
            out.extend(jobs(&active.expiration).await?);
            out.push(Family::one(
                "lessor.expire.scheduled",
                Kind::Gauge,
                "Leases in the in-memory expiry schedule.",
                active.expiration.schedule().len() as f64,
            ));
        }
        let mut f = Family::new(
            "lessor.requests",
            Kind::Counter,
            "Requests by path class and status.",
        );
        for (ci, class) in CLASSES.iter().enumerate() {
            for (si, code) in STATUSES.iter().enumerate() {
                let n = self.requests[ci][si].load(Ordering::Relaxed);
                if n > 0 {
                    let status = if *code == 0 {
                        "other".to_string()
                    } else {
                        code.to_string()
                    };
                    f = f.with(
                        vec![("class", class.to_string()), ("status", status)],
                        n as f64,
                    );
                }
            }
        }
        out.push(f);
        let mut f = Family::new(
            "lessor.request.duration_ms",
            Kind::Histogram,
            "Request latency by path class (ms).",
        );
        for (ci, class) in CLASSES.iter().enumerate() {
            f = f.with_hist(
                vec![("class", class.to_string())],
                self.request_ms[ci].snapshot(),
            );
        }
        out.push(f);
        let mut f = Family::new(
            "lessor.lease.operations",
            Kind::Counter,
            "Successful lease issues, renewals and revocations by mount.",
        );
        for (mount, ops) in self.by_mount.read().iter() {
            for (i, op) in OPS.iter().enumerate() {
                f = f.with(
                    vec![("mount", mount.clone()), ("op", op.to_string())],
                    ops.by_op[i].load(Ordering::Relaxed) as f64,
                );
            }
        }
        out.push(f);
        let mut f = Family::new(
            "lessor.lease.operation_errors",
            Kind::Counter,
            "Failed lease issues, renewals and revocations.",
        );
        let mut h = Family::new(
            "lessor.lease.operation_duration_ms",
            Kind::Histogram,
            "Latency of lease operations (ms).",
        );
        for (i, op) in OPS.iter().enumerate() {
            f = f.with(
                vec![("op", op.to_string())],
                self.op_errors[i].load(Ordering::Relaxed) as f64,
            );
            h = h.with_hist(vec![("op", op.to_string())], self.op_ms[i].snapshot());
        }
        out.push(f);
        out.push(h);
        let mut f = Family::new(
            "lessor.storage.duration_ms",
            Kind::Histogram,
            "Latency of storage calls above the barrier (ms).",
        );
        for (i, op) in storage::OPS.iter().enumerate() {
            f = f.with_hist(
                vec![("op", op.to_string())],
                self.storage.by_op[i].snapshot(),
            );
        }
        out.push(f);
        let a = &core.audit;
        out.push(Family::one(
            "lessor.audit.devices",
            Kind::Gauge,
            "Audit devices enabled.",
            a.device_count() as f64,
        ));
        out.push(Family::one(
            "lessor.audit.failed_entries",
            Kind::Counter,
            "Entries no device could write (each failed its request).",
            a.failed_entries.load(Ordering::Relaxed) as f64,
        ));
        out.push(Family::one(
            "lessor.audit.device_errors",
            Kind::Counter,
            "Writes that failed on one device.",
            a.device_errors.load(Ordering::Relaxed) as f64,
        ));
        out.push(Family::one(
            "lessor.audit.entries",
            Kind::Counter,
            "Entries written.",
            a.entries_written.load(Ordering::Relaxed) as f64,
        ));
        for (name, help, f) in self.external.read().iter() {
            out.push(Family::one(name, Kind::Gauge, help, f()));
        }
        Ok(out)
    }

    /// The body of a scrape: Prometheus text, or Vault's JSON.
    pub async fn render(&self, core: &Core, prometheus: bool) -> Result<Rendered> {
        let fams = self.families(core).await?;
        if prometheus {
            return Ok(Rendered::Text(registry::prometheus(&fams)));
        }
        Ok(Rendered::Json(registry::json(
            &fams,
            &crate::audit::now_rfc3339_nano(),
        )))
    }
}

impl LeaseObserver for Metrics {
    fn observe(&self, ev: &LeaseEvent) {
        let Some(i) = EVENTS.iter().position(|k| *k == ev.kind) else {
            return;
        };
        let found = self.events.read().get(&ev.mount).cloned();
        let counters = match found {
            Some(c) => c,
            None => self
                .events
                .write()
                .entry(ev.mount.clone())
                .or_default()
                .clone(),
        };
        counters.by_kind[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Revoke-prefix jobs: how many run, and each running job's progress.
async fn jobs(exp: &crate::expiration::Expiration) -> Result<Vec<Family>> {
    let mut running = 0u64;
    let mut finished = 0u64;
    let mut progress = Family::new(
        "lessor.revoke_prefix.leases",
        Kind::Gauge,
        "Progress of running revoke-prefix jobs: leases total, done and failed.",
    );
    for id in exp.job_ids().await? {
        let Some(job) = exp.job(&id).await? else {
            continue;
        };
        if job.state == JobState::Done {
            finished += 1;
            continue;
        }
        running += 1;
        for (what, n) in [
            ("total", job.total),
            ("done", job.done),
            ("failed", job.failed),
        ] {
            progress = progress.with(
                vec![
                    ("job", job.id.clone()),
                    ("prefix", job.prefix.clone()),
                    ("count", what.to_string()),
                ],
                n as f64,
            );
        }
    }
    let mut jobs = Family::new(
        "lessor.revoke_prefix.jobs",
        Kind::Gauge,
        "Revoke-prefix jobs by state.",
    );
    jobs = jobs
        .with(vec![("state", "running".into())], running as f64)
        .with(vec![("state", "done".into())], finished as f64);
    Ok(vec![jobs, progress])
}

/// A scrape's body.
pub enum Rendered {
    Text(String),
    Json(Value),
}

/// Content type of Prometheus text.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Parses `format` of a scrape: `prometheus` or JSON (empty).
pub fn wants_prometheus(format: &str) -> Result<bool> {
    match format {
        "prometheus" => Ok(true),
        "" | "json" => Ok(false),
        other => Err(Error::bad(format!("unsupported metrics format {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        assert_eq!(class_of("sys/mounts"), 0);
        assert_eq!(class_of("auth/token/create"), 1);
        assert_eq!(class_of("auth/approle/login"), 2);
        assert_eq!(class_of("secret/data/x"), 3);
        assert!(lease_op_of("sys/leases/renew") == Some(LeaseOp::Renew));
        assert!(lease_op_of("auth/token/revoke-self") == Some(LeaseOp::Revoke));
        assert!(lease_op_of("aws/creds/r").is_none());
        let mut req = Request::new(
            crate::logical::Operation::Update,
            "sys/leases/revoke/aws/creds/r/x",
        );
        assert_eq!(lease_target(&req).as_deref(), Some("aws/creds/r/x"));
        req.data
            .insert("lease_id".into(), Value::String("kv/y".into()));
        assert_eq!(lease_target(&req).as_deref(), Some("kv/y"));
        assert_eq!(status_index(418), STATUSES.len() - 1);
    }
}
