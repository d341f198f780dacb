//! The Core: seal state, the mounted backends, and the request pipeline.
//!
//! `handle` is the one way into lessor: sealed check, token resolution, routing, the
//! existence check (create vs update), the ACL, the backend, then lease registration for
//! secrets and token creation for logins. Layers only call downward.

use std::collections::BTreeMap;
use std::sync::Arc;

use lessor_storage::Storage;
use parking_lot::RwLock;

use crate::barrier::{Barrier, View};
use crate::clock::{Clock, MonotonicClock};
use crate::expiration::{Expiration, RequestLeases, SystemTtls, system_view};
use crate::framework::{self, Backend, Ctx, matches_any};
use crate::logical::{Operation, Request, Response};
use crate::mounts::{self, MountEntry, Mounted, Router, Table};
use crate::policy::{Capabilities, PolicyStore};
use crate::seal::{Seal, SealStatus};
use crate::token::{CreateParams, TokenEntry, TokenStore, TtlLimits};
use crate::{Error, Result, builtin, sys};

/// Builds the backend of a mount type from its entry (options, config).
pub type Factory = Arc<dyn Fn(&MountEntry) -> Result<Arc<dyn Backend>> + Send + Sync>;

/// Server-wide settings the core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub default_lease_ttl: i64,
    pub max_lease_ttl: i64,
    pub cluster_name: String,
    /// The operator set `cluster_name` (it then wins over the stored one).
    pub cluster_name_configured: bool,
    pub api_addr: String,
    pub version: String,
    /// Tests drive the scheduler themselves (`Expiration::run_due_now`) with a manual clock.
    pub manual_scheduler: bool,
    /// Most lease records read ahead of their expiry into the storage read cache (see
    /// `expiration/read_ahead.rs`); 0, the default, when there is no read cache.
    pub read_ahead_leases: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            default_lease_ttl: 2_764_800,
            max_lease_ttl: 2_764_800,
            cluster_name: format!("lessor-cluster-{}", mounts::random_hex(4)),
            cluster_name_configured: false,
            api_addr: String::new(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            manual_scheduler: false,
            read_ahead_leases: 0,
        }
    }
}

/// What exists only while unsealed.
pub struct Active {
    pub router: Arc<Router>,
    pub tokens: Arc<TokenStore>,
    pub policies: Arc<PolicyStore>,
    pub expiration: Arc<Expiration>,
    pub quotas: Arc<crate::quota::LeaseQuotas>,
    pub storage: Arc<dyn Storage>,
    pub active_since: String,
    /// Persisted at first unseal, so `sys/health` names the same cluster after a restart.
    pub cluster_name: String,
    pub cluster_id: String,
    stop: tokio::sync::watch::Sender<bool>,
}

pub struct Core {
    pub physical: Arc<dyn Storage>,
    pub barrier: Arc<Barrier>,
    pub seal: Arc<Seal>,
    pub config: CoreConfig,
    pub clock: Arc<dyn Clock>,
    pub cluster_id: String,
    factories: BTreeMap<String, Factory>,
    /// Audit devices; enabled at unseal, consulted by `handle`.
    pub audit: Arc<crate::audit::Broker>,
    /// Telemetry: `handle` counts and times every request.
    pub metrics: Arc<crate::metrics::Metrics>,
    state: RwLock<Option<Arc<Active>>>,
    lifecycle: tokio::sync::Mutex<()>,
}

/// System paths answered without a token.
const UNAUTH_SYS: &[&str] = &[
    "sys/init",
    "sys/seal-status",
    "sys/unseal",
    "sys/health",
    "sys/leader",
    "sys/wrapping/lookup",
    "sys/internal/ui/mounts",
    "sys/internal/ui/mounts/*",
];

fn capability_for(op: Operation) -> Capabilities {
    match op {
        Operation::Read => Capabilities::READ,
        Operation::Create => Capabilities::CREATE,
        Operation::Update => Capabilities::UPDATE,
        Operation::Patch => Capabilities::PATCH,
        Operation::Delete => Capabilities::DELETE,
        Operation::List => Capabilities::LIST,
    }
}

impl Core {
    pub fn new(
        physical: Arc<dyn Storage>,
        config: CoreConfig,
        factories: BTreeMap<String, Factory>,
    ) -> Arc<Core> {
        Self::with_clock(physical, config, factories, Arc::new(MonotonicClock::new()))
    }

    pub fn with_clock(
        physical: Arc<dyn Storage>,
        config: CoreConfig,
        factories: BTreeMap<String, Factory>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Core> {
        let barrier = Barrier::new(physical.clone());
        let seal = Seal::new(physical.clone(), barrier.clone());
        Arc::new(Core {
            physical,
            barrier,
            seal,
            config,
            clock,
            cluster_id: uuid::Uuid::new_v4().to_string(),
            factories,
            audit: crate::audit::Broker::new(),
            metrics: crate::metrics::Metrics::new(),
            state: RwLock::new(None),
            lifecycle: tokio::sync::Mutex::new(()),
        })
    }

    pub fn active(&self) -> Option<Arc<Active>> {
        self.state.read().clone()
    }

    pub fn sealed(&self) -> bool {
        self.active().is_none()
    }

    pub fn system_ttls(&self) -> SystemTtls {
        SystemTtls {
            default_lease_ttl: self.config.default_lease_ttl,
            max_lease_ttl: self.config.max_lease_ttl,
        }
    }

    /// `sys/init`: creates the keys and the root token; the core stays sealed.
    pub async fn init(
        self: &Arc<Self>,
        shares: u32,
        threshold: u32,
    ) -> Result<(Vec<Vec<u8>>, String)> {
        let out = self.seal.init(shares, threshold).await?;
        for key in out.keys.iter().take(threshold.max(1) as usize) {
            self.seal.submit_key(key).await?;
        }
        self.post_unseal(false).await?;
        let root = match self.active() {
            Some(a) => a.tokens.create_root(None).await,
            None => Err(Error::Sealed),
        };
        self.seal_now().await;
        Ok((out.keys, root?))
    }

    /// Dev mode: one share, unsealed, KV v2 at `secret/`, a known root token.
    pub async fn dev_init(self: &Arc<Self>, root_id: Option<&str>) -> Result<(Vec<u8>, String)> {
        let key = self.seal.dev_init().await?;
        self.post_unseal(true).await?;
        let active = self.active().ok_or(Error::Sealed)?;
        let root = active.tokens.create_root(root_id).await?;
        Ok((key, root))
    }

    /// `sys/unseal` with one key share.
    pub async fn unseal(self: &Arc<Self>, key: &[u8]) -> Result<SealStatus> {
        let status = self.seal.submit_key(key).await?;
        if !status.sealed && self.sealed() {
            self.post_unseal(false).await?;
        }
        self.seal.status().await
    }

    /// Seals: stops the scheduler, forgets everything in memory, drops the keys.
    pub async fn seal_now(&self) {
        let _g = self.lifecycle.lock().await;
        if let Some(active) = self.state.write().take() {
            let _ = active.stop.send(true);
            active.expiration.schedule().clear();
            active.router.clear();
            active.policies.clear_cache();
        }
        self.audit.clear();
        self.seal.seal().await;
    }

    async fn post_unseal(self: &Arc<Self>, dev: bool) -> Result<()> {
        let _g = self.lifecycle.lock().await;
        if self.active().is_some() {
            return Ok(());
        }
        let storage: Arc<dyn Storage> = self.metrics.metered(self.barrier.clone());
        let router = Arc::new(Router::new());
        let policies = Arc::new(PolicyStore::new(View::new(storage.clone(), "sys/policy/")));
        policies.setup_defaults().await?;
        let tokens = Arc::new(
            TokenStore::with_clock(View::new(storage.clone(), "sys/token/"), self.clock.clone())
                .await?,
        );
        let expiration = Expiration::new(
            View::new(storage.clone(), "sys/expire/"),
            router.clone(),
            self.clock.clone(),
            self.system_ttls(),
        );
        tokens.set_hooks(expiration.clone());
        tokens.set_login_renewer(crate::token::RouterRenewer::new(
            &router,
            self.system_ttls(),
        ));
        expiration.set_token_store(&tokens);
        expiration.set_read_ahead(self.config.read_ahead_leases);
        let quotas = crate::quota::LeaseQuotas::new(
            View::new(storage.clone(), "sys/quotas/"),
            View::new(storage.clone(), "sys/expire/"),
        );
        expiration.events.observe(quotas.clone());
        expiration.events.observe(self.metrics.clone());
        let (cluster_name, cluster_id) = self.cluster_identity(storage.as_ref()).await?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let active = Arc::new(Active {
            router,
            tokens,
            policies,
            expiration: expiration.clone(),
            quotas: quotas.clone(),
            storage: storage.clone(),
            active_since: crate::clock::now_rfc3339(),
            cluster_name,
            cluster_id,
            stop,
        });
        for table in [Table::Mounts, Table::Auth] {
            let entries = match mounts::load_table(storage.as_ref(), table).await? {
                Some(e) => e,
                None => {
                    let defaults = builtin::default_mounts(table, dev);
                    mounts::save_table(storage.as_ref(), table, &defaults).await?;
                    defaults
                }
            };
            for entry in entries {
                match self.instantiate(&active, entry.clone()).await {
                    Ok(m) => active.router.insert(m),
                    Err(e) => {
                        tracing::error!(mount = %entry.route_path(), error = %e, "cannot mount backend");
                    }
                }
            }
        }
        self.audit.restore(storage.as_ref()).await?;
        // The API serves at once; the schedule fills in the background (a lookup reads
        // storage directly, so it answers correctly before its lease is scheduled).
        let restoring = expiration.clone();
        let restore = crate::background::spawn(async move {
            let started = std::time::Instant::now();
            match restoring.restore().await {
                Ok(n) => tracing::info!(
                    leases = n,
                    ms = started.elapsed().as_millis() as u64,
                    "lease schedule restored"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "lease restore failed; due leases are revoked as they are read")
                }
            }
            if let Err(e) = restoring.resume_jobs().await {
                tracing::error!(error = %e, "cannot resume revoke-prefix jobs");
            }
        });
        if self.config.manual_scheduler {
            // Tests want a deterministic start.
            let _ = restore.await;
        }
        quotas.restore().await?;
        if !self.config.manual_scheduler {
            crate::background::spawn(expiration.run(stop_rx));
        }
        *self.state.write() = Some(active);
        Ok(())
    }

    /// The cluster's name and id: stored at the first unseal; a configured name wins.
    async fn cluster_identity(&self, storage: &dyn Storage) -> Result<(String, String)> {
        const KEY: &str = "core/cluster";
        let stored: Option<(String, String)> = match storage.get(KEY).await? {
            Some(raw) => serde_json::from_slice(&raw).ok(),
            None => None,
        };
        let (name, id) = match stored {
            Some(v) => v,
            None => {
                let v = (self.config.cluster_name.clone(), self.cluster_id.clone());
                let raw = serde_json::to_vec(&v).map_err(|e| Error::internal(e.to_string()))?;
                storage.put(KEY, raw).await?;
                v
            }
        };
        let name = if self.config.cluster_name_configured {
            self.config.cluster_name.clone()
        } else {
            name
        };
        Ok((name, id))
    }

    /// Builds a backend for `entry` and initializes it.
    pub async fn instantiate(
        self: &Arc<Self>,
        active: &Arc<Active>,
        entry: MountEntry,
    ) -> Result<Mounted> {
        let backend: Arc<dyn Backend> = match entry.kind.as_str() {
            "system" => sys::backend(Arc::downgrade(self)),
            "token" => crate::token::backend(active.tokens.clone()),
            "cubbyhole" => builtin::cubbyhole(),
            "identity" => builtin::identity(),
            kind => {
                let factory = self.factories.get(kind).ok_or_else(|| {
                    Error::bad(format!("plugin not found in the catalog: {kind}"))
                })?;
                factory(&entry)?
            }
        };
        let view = Router::storage_for(active.storage.clone(), &entry);
        let storage: Arc<dyn Storage> = view.clone();
        backend.initialize(&storage).await?;
        Ok(Mounted {
            entry,
            backend,
            storage,
            view,
        })
    }

    pub fn supports_type(&self, kind: &str) -> bool {
        self.factories.contains_key(kind)
    }

    /// Persists the table `table` from the router's current state.
    pub async fn save_table(&self, active: &Active, table: Table) -> Result<()> {
        mounts::save_table(
            active.storage.as_ref(),
            table,
            &active.router.entries(table),
        )
        .await
    }

    /// Handles one request end to end.
    /// Handles one request: timed and counted for the metrics, in a span carrying the
    /// request id its audit entries carry.
    pub async fn handle(self: &Arc<Self>, req: Request) -> Result<Option<Response>> {
        use tracing::Instrument as _;
        let span = tracing::info_span!("request", request_id = %req.id);
        let probe = self.metrics.begin(&req);
        let out = self.handle_inner(req).instrument(span).await;
        self.metrics.end(self, probe, &out);
        out
    }

    async fn handle_inner(self: &Arc<Self>, mut req: Request) -> Result<Option<Response>> {
        req.path = req.path.trim_start_matches('/').to_string();
        if let Some(resp) = sys::raw::handle(self, &req).await? {
            return Ok(Some(resp));
        }
        let active = self.active().ok_or(Error::Sealed)?;
        let mounted = active.router.matching(&req.path);

        let token_entry = match req.client_token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => Some(active.tokens.resolve(t).await?.ok_or(Error::InvalidToken)?),
            None => None,
        };
        // A token bound to CIDR blocks works only from inside them.
        if token_entry
            .as_ref()
            .is_some_and(|t| !crate::token::cidr::allows(&t.bound_cidrs, req.remote_addr))
        {
            return Err(Error::PermissionDenied);
        }
        let unauth = matches_any(UNAUTH_SYS, &req.path)
            || mounted.as_ref().is_some_and(|m| {
                let rel = rel_path(&req.path, &m.entry);
                matches_any(m.backend.unauthenticated_paths(), &rel)
            });
        if !unauth && token_entry.is_none() {
            return Err(Error::PermissionDenied);
        }
        let mounted = mounted.ok_or_else(|| {
            Error::NoHandler(format!(
                "no handler for route \"{}\". route entry not found.",
                req.path
            ))
        })?;
        req.mount_point = mounted.entry.route_path();
        req.mount_type = mounted.entry.kind.clone();
        req.mount_accessor = mounted.entry.accessor.clone();
        req.rel_path = rel_path(&req.path, &mounted.entry);
        if let Some(t) = &token_entry {
            req.caller = Some(t.caller());
        }
        let sys_view = system_view(&mounted, self.system_ttls());

        if req.operation == Operation::Update {
            let ctx = Ctx::new(&req, &mounted.storage, &sys_view);
            if framework::existence(mounted.backend.as_ref(), &ctx).await? == Some(false) {
                req.operation = Operation::Create;
            }
        }
        let mut token_entry = token_entry;
        if let Some(t) = token_entry.as_mut() {
            if !unauth {
                self.authorize(&active, &mounted, t, &mut req).await?;
            }
            // A use counts once authorized, before the backend runs, so concurrent
            // requests cannot exceed `num_uses`.
            active.tokens.use_token(t).await?;
        }

        let owner = token_entry
            .as_ref()
            .map(|t| t.id_hash.clone())
            .unwrap_or_default();
        let leases = RequestLeases::new(
            active.expiration.clone(),
            mounted.clone(),
            req.path.clone(),
            owner,
        );
        let audited = self.audit_request(&req, token_entry.as_ref()).await?;
        let exempt = token_entry
            .as_ref()
            .is_some_and(|t| t.policies.iter().any(|p| p == "root"));
        let _admitted = active.quotas.admit_token_request(
            &mounted.entry.kind,
            mounted.entry.table == Table::Auth,
            unauth,
            &req,
            exempt,
        )?;
        let gated = crate::quota::GatedLeases {
            inner: &leases,
            quotas: &active.quotas,
            exempt,
        };
        let ctx = Ctx {
            req: &req,
            storage: &mounted.storage,
            system: &sys_view,
            leases: Some(&gated),
        };
        let mut resp = match framework::dispatch(mounted.backend.as_ref(), &ctx).await {
            Ok(resp) => resp,
            Err(e) => {
                if unauth && mounted.entry.table == Table::Auth {
                    crate::token::login_failures()
                        .record(&mounted.entry.route_path(), &mounted.entry.kind);
                }
                let _ = self
                    .audit_response(
                        &active,
                        &audited,
                        &req,
                        token_entry.as_ref(),
                        None,
                        Some(&e),
                    )
                    .await;
                // The engine failed: whatever it reserved may exist in part. Revoke it now.
                for id in leases.reserved() {
                    leases.abort(&id, None).await;
                }
                return Err(e);
            }
        };
        let registered = match resp.as_mut() {
            Some(r) => {
                r.mount_type = mounted.entry.kind.clone();
                self.register(&active, &mounted, &req, &leases, r).await
            }
            None => Ok(()),
        };
        // Whatever the request reserved and is not handing out is revoked now, also when
        // registering failed (the client gets nothing, so nothing it reserved stays).
        let used = match (&registered, resp.as_ref()) {
            (Ok(()), Some(r)) => r.lease_id.clone(),
            _ => String::new(),
        };
        for id in leases.reserved().into_iter().filter(|id| *id != used) {
            leases.abort(&id, None).await;
        }
        registered?;
        if let Some(t) = &token_entry {
            active.tokens.finish_use(t).await?;
        }
        self.audit_response(
            &active,
            &audited,
            &req,
            token_entry.as_ref(),
            resp.as_ref(),
            None,
        )
        .await?;
        Ok(resp)
    }

    async fn authorize(
        &self,
        active: &Active,
        mounted: &Mounted,
        token: &TokenEntry,
        req: &mut Request,
    ) -> Result<()> {
        let acl = active.policies.acl(&token.policies).await?;
        let decision = acl.check(&req.path, capability_for(req.operation), Some(&req.data));
        if !decision.allowed {
            return Err(Error::PermissionDenied);
        }
        if matches_any(mounted.backend.sudo_paths(), &req.rel_path) && !decision.sudo {
            return Err(Error::PermissionDenied);
        }
        if let Some(c) = req.caller.as_mut() {
            c.sudo = decision.sudo;
        }
        Ok(())
    }

    /// Turns a secret into a lease (activating its reservation) and a login's auth block
    /// into a token.
    async fn register(
        &self,
        active: &Active,
        mounted: &Mounted,
        req: &Request,
        leases: &RequestLeases,
        r: &mut Response,
    ) -> Result<()> {
        if let Some(secret) = r.secret.take() {
            if secret.reservation.is_empty() || !leases.reserved().contains(&secret.reservation) {
                // Reserve -> create -> activate is the only way to issue: a secret that
                // skipped it is revoked, never returned.
                active.expiration.revoke_unreserved(mounted, &secret).await;
                return Err(Error::internal(
                    "the backend issued a secret without reserving its lease",
                ));
            }
            let (ttl, warning) = leases.activate(&secret).await?;
            r.lease_id = secret.reservation.clone();
            r.lease_duration = ttl.max(0) as u64;
            r.renewable = secret.renewable;
            r.warnings.extend(warning);
        }
        if mounted.entry.table == Table::Auth
            && mounted.entry.kind != "token"
            && let Some(auth) = r.auth.as_mut().filter(|a| a.client_token.is_empty())
        {
            let sys_view = system_view(mounted, self.system_ttls());
            let mut params = CreateParams::from_auth(auth, &req.path);
            params.mount_accessor = mounted.entry.accessor.clone();
            let warning = params.apply_ttl(TtlLimits::from(&sys_view), self.clock.now_unix())?;
            let (client_token, entry) = active.tokens.create(params).await?;
            *auth = entry.auth(&client_token, entry.creation_ttl);
            r.warnings.extend(warning);
        }
        Ok(())
    }
}

/// The path relative to a mount: `secret/data/x` under `secret/` is `data/x`.
fn rel_path(path: &str, entry: &MountEntry) -> String {
    let rp = entry.route_path();
    path.strip_prefix(&rp).unwrap_or("").to_string()
}
