//! The AWS secrets engine: IAM users and STS credentials issued as leases, and static
//! roles whose access keys are rotated on a schedule.
//!
//! Layout: `config` (root credentials, lease TTLs, rotate-root), `role` (roles CRUD),
//! `creds` (issuance), `iam_user` (create and delete users), `static_roles` (rotation),
//! `template` (user name templates), `sdk` (clients, AWS errors, clock skew).

pub mod config;
pub mod creds;
pub mod iam_user;
pub mod role;
pub mod sdk;
pub mod static_roles;
pub mod template;
#[cfg(test)]
mod testmoto;

use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::core::Factory;
use lessor_core::framework::{Backend, LeaseCtx, Path, RenewGrant};
use lessor_core::mounts::MountEntry;
use lessor_core::{Error, Result};
use lessor_storage::Storage;

pub use sdk::clock_offset_seconds;

/// The one secret type of this engine, as Vault names it.
pub const SECRET_TYPE: &str = "access_keys";

/// State the paths of one mount share: the cached SDK clients and the rotation task.
pub struct Shared {
    clients: parking_lot::Mutex<Option<sdk::Clients>>,
    pub(crate) rotate_root_lock: tokio::sync::Mutex<()>,
    pub(crate) static_lock: tokio::sync::Mutex<()>,
    pub(crate) min_rotation_secs: i64,
}

impl Shared {
    /// The clients of the current `config/root`, built once and reused until it changes.
    pub async fn clients(&self, storage: &Arc<dyn Storage>) -> Result<sdk::Clients> {
        if let Some(c) = self.clients.lock().clone() {
            return Ok(c);
        }
        let cfg = config::read_root(storage)
            .await?
            .unwrap_or_else(config::RootConfig::unset);
        let c = sdk::build(&cfg).await;
        *self.clients.lock() = Some(c.clone());
        Ok(c)
    }

    pub fn invalidate(&self) {
        *self.clients.lock() = None;
    }
}

pub struct AwsBackend {
    paths: Vec<Path>,
    shared: Arc<Shared>,
    rotation: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for AwsBackend {
    fn drop(&mut self) {
        if let Some(h) = self.rotation.lock().take() {
            h.abort();
        }
    }
}

/// The mount option that lowers the minimum static `rotation_period` (seconds; tests).
pub const MIN_ROTATION_OPTION: &str = "static_min_rotation_period";

/// Builds the engine for a mount.
pub fn factory(entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    let min_rotation_secs = match entry.options.get(MIN_ROTATION_OPTION) {
        Some(v) => lessor_core::duration::parse_str(v)
            .map_err(|e| Error::bad(format!("{MIN_ROTATION_OPTION}: {e}")))?
            .max(1),
        None => static_roles::MIN_ROTATION_SECS,
    };
    Ok(Arc::new(AwsBackend::new(min_rotation_secs)))
}

/// A factory for the server's table of engine types.
pub fn factory_entry() -> Factory {
    Arc::new(factory)
}

impl AwsBackend {
    pub fn new(min_rotation_secs: i64) -> Self {
        let shared = Arc::new(Shared {
            clients: parking_lot::Mutex::new(None),
            rotate_root_lock: tokio::sync::Mutex::new(()),
            static_lock: tokio::sync::Mutex::new(()),
            min_rotation_secs,
        });
        let mut paths = config::paths(&shared);
        paths.extend(role::paths());
        paths.extend(creds::paths(&shared));
        paths.extend(static_roles::paths(&shared));
        AwsBackend {
            paths,
            shared,
            rotation: parking_lot::Mutex::new(None),
        }
    }
}

fn is_sts(internal: &serde_json::Value) -> bool {
    internal
        .get("is_sts")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

#[async_trait]
impl Backend for AwsBackend {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    async fn renew(&self, ctx: &LeaseCtx<'_>) -> Result<RenewGrant> {
        if is_sts(ctx.internal) {
            return Err(Error::bad("lease is not renewable"));
        }
        let lease = config::read_lease(ctx.storage).await?.unwrap_or_default();
        Ok(RenewGrant {
            ttl: std::time::Duration::from_secs(lease.lease.max(0) as u64),
            max_ttl: std::time::Duration::from_secs(lease.lease_max.max(0) as u64),
            internal: None,
        })
    }

    async fn revoke(&self, ctx: &LeaseCtx<'_>) -> Result<()> {
        // STS credentials cannot be revoked: they expire with their lease.
        if is_sts(ctx.internal) {
            return Ok(());
        }
        let Some(user) = ctx.internal.get("username").and_then(|v| v.as_str()) else {
            return Err(Error::internal("lease has no username to revoke"));
        };
        let clients = self.shared.clients(ctx.storage).await?;
        iam_user::delete(&clients, user)
            .await
            .map_err(|e| Error::bad(format!("failed to delete IAM user {user}: {e}")))
    }

    async fn initialize(&self, storage: &Arc<dyn Storage>) -> Result<()> {
        let handle = static_roles::spawn_rotation(self.shared.clone(), storage.clone());
        if let Some(old) = self.rotation.lock().replace(handle) {
            old.abort();
        }
        Ok(())
    }
}
