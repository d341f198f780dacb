//! The mount tables (secrets engines and auth methods) and the longest-prefix router.
//!
//! Each table is persisted through the barrier (`core/mounts`, `core/auth`) and restored at
//! unseal. A mount owns the storage folder `logical/<uuid>/` (or `auth/<uuid>/`), so a
//! remount moves no data. Routing is a longest-prefix match over full request paths; auth
//! mounts are routed under `auth/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use lessor_storage::Storage;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::barrier::View;
use crate::framework::Backend;
use crate::{Error, Result};

pub const MOUNTS_PATH: &str = "core/mounts";
pub const AUTH_PATH: &str = "core/auth";

/// Which table a mount belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Mounts,
    Auth,
}

impl Table {
    pub fn storage_path(self) -> &'static str {
        match self {
            Table::Mounts => MOUNTS_PATH,
            Table::Auth => AUTH_PATH,
        }
    }

    /// Prefix of routed paths: `""` for secrets engines, `auth/` for auth methods.
    pub fn route_prefix(self) -> &'static str {
        match self {
            Table::Mounts => "",
            Table::Auth => "auth/",
        }
    }

    fn data_prefix(self) -> &'static str {
        match self {
            Table::Mounts => "logical/",
            Table::Auth => "auth/",
        }
    }
}

/// Per-mount tunables. TTLs in seconds; 0 = inherit the system value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountConfig {
    #[serde(default)]
    pub default_lease_ttl: i64,
    #[serde(default)]
    pub max_lease_ttl: i64,
    #[serde(default)]
    pub force_no_cache: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing_visibility: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_non_hmac_request_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_non_hmac_response_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passthrough_request_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_response_headers: Vec<String>,
}

/// One mount, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEntry {
    pub table: Table,
    /// Path with trailing `/`, without the `auth/` prefix for auth mounts.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
    #[serde(default)]
    pub external_entropy_access: bool,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub config: MountConfig,
    #[serde(default)]
    pub plugin_version: String,
}

impl MountEntry {
    pub fn new(table: Table, path: &str, kind: &str) -> Self {
        MountEntry {
            table,
            path: normalize(path),
            kind: kind.to_string(),
            description: String::new(),
            uuid: uuid::Uuid::new_v4().to_string(),
            accessor: new_accessor(table, kind),
            local: false,
            seal_wrap: false,
            external_entropy_access: false,
            options: BTreeMap::new(),
            config: MountConfig::default(),
            plugin_version: String::new(),
        }
    }

    /// Full routed path: `secret/` or `auth/approle/`.
    pub fn route_path(&self) -> String {
        format!("{}{}", self.table.route_prefix(), self.path)
    }

    /// True when `route_path` is this mount's route path; compared in place, without
    /// building it (the lease manager asks on every revocation).
    pub fn is_route(&self, route_path: &str) -> bool {
        route_path
            .strip_prefix(self.table.route_prefix())
            .is_some_and(|rest| rest == self.path)
    }

    /// True when `path` falls under this mount (or names it without the trailing `/`).
    /// Compared in place: the router asks this of every mount on every request.
    pub fn routes(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix(self.table.route_prefix()) else {
            return false;
        };
        rest.starts_with(&self.path) || self.path.strip_suffix('/') == Some(rest)
    }

    /// Where the mount's data lives below the barrier.
    pub fn data_prefix(&self) -> String {
        format!("{}{}/", self.table.data_prefix(), self.uuid)
    }

    /// The mount as `sys/mounts` and `sys/auth` describe it.
    pub fn info(&self) -> Value {
        let mut config = json!({
            "default_lease_ttl": self.config.default_lease_ttl,
            "max_lease_ttl": self.config.max_lease_ttl,
            "force_no_cache": self.config.force_no_cache,
        });
        if let Some(obj) = config.as_object_mut() {
            if self.table == Table::Auth {
                let tt = self
                    .config
                    .token_type
                    .clone()
                    .unwrap_or_else(|| "default-service".into());
                obj.insert("token_type".into(), Value::String(tt));
            }
            if let Some(v) = &self.config.listing_visibility {
                obj.insert("listing_visibility".into(), Value::String(v.clone()));
            }
            for (k, v) in [
                (
                    "audit_non_hmac_request_keys",
                    &self.config.audit_non_hmac_request_keys,
                ),
                (
                    "audit_non_hmac_response_keys",
                    &self.config.audit_non_hmac_response_keys,
                ),
                (
                    "passthrough_request_headers",
                    &self.config.passthrough_request_headers,
                ),
                (
                    "allowed_response_headers",
                    &self.config.allowed_response_headers,
                ),
            ] {
                if !v.is_empty() {
                    obj.insert(k.into(), json!(v));
                }
            }
        }
        let options = if self.options.is_empty() {
            Value::Null
        } else {
            json!(self.options)
        };
        json!({
            "type": self.kind,
            "description": self.description,
            "accessor": self.accessor,
            "uuid": self.uuid,
            "local": self.local,
            "seal_wrap": self.seal_wrap,
            "external_entropy_access": self.external_entropy_access,
            "options": options,
            "config": config,
            "plugin_version": self.plugin_version,
            "running_plugin_version": "",
            "running_sha256": "",
            "deprecation_status": "supported",
        })
    }
}

/// A mount accessor as Vault forms it: `kv_1a2b3c4d`, `auth_token_1a2b3c4d`.
pub fn new_accessor(table: Table, kind: &str) -> String {
    match table {
        Table::Mounts => format!("{kind}_{}", random_hex(4)),
        Table::Auth => format!("auth_{kind}_{}", random_hex(4)),
    }
}

/// Random lowercase hex of `bytes` bytes.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Trims slashes and appends one: `/secret` → `secret/`.
pub fn normalize(path: &str) -> String {
    let p = path.trim_matches('/');
    format!("{p}/")
}

/// A mounted backend with its entry and storage.
#[derive(Clone)]
pub struct Mounted {
    pub entry: MountEntry,
    pub backend: Arc<dyn Backend>,
    pub storage: Arc<dyn Storage>,
    /// `storage` as the view it is: the lease manager names an engine's writes in the
    /// barrier's keys to commit them with a lease's removal.
    pub view: Arc<View>,
}

/// The live routing table of both tables.
#[derive(Default)]
pub struct Router {
    // Sorted by route path, longest first, so the first match is the longest prefix.
    // Shared, so routing a request hands out a reference count, not a copy of the entry.
    routes: RwLock<Vec<Arc<Mounted>>>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn storage_for(barrier: Arc<dyn Storage>, entry: &MountEntry) -> Arc<View> {
        View::new(barrier, entry.data_prefix())
    }

    pub fn insert(&self, m: Mounted) {
        let mut routes = self.routes.write();
        let route = m.entry.route_path();
        routes.retain(|r| !r.entry.is_route(&route));
        routes.push(Arc::new(m));
        routes.sort_by(|a, b| {
            b.entry
                .route_path()
                .len()
                .cmp(&a.entry.route_path().len())
                .then_with(|| a.entry.route_path().cmp(&b.entry.route_path()))
        });
    }

    pub fn remove(&self, route_path: &str) -> Option<Arc<Mounted>> {
        let mut routes = self.routes.write();
        let idx = routes.iter().position(|r| r.entry.is_route(route_path))?;
        Some(routes.remove(idx))
    }

    /// The longest mount whose route path prefixes `path` (or equals `path` + `/`).
    pub fn matching(&self, path: &str) -> Option<Arc<Mounted>> {
        let routes = self.routes.read();
        routes.iter().find(|r| r.entry.routes(path)).cloned()
    }

    pub fn get(&self, route_path: &str) -> Option<Arc<Mounted>> {
        self.routes
            .read()
            .iter()
            .find(|r| r.entry.is_route(route_path))
            .cloned()
    }

    pub fn entries(&self, table: Table) -> Vec<MountEntry> {
        let mut v: Vec<MountEntry> = self
            .routes
            .read()
            .iter()
            .filter(|r| r.entry.table == table)
            .map(|r| r.entry.clone())
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Replaces an entry's persisted settings (tune) without touching its backend.
    pub fn update_entry(&self, entry: MountEntry) -> Result<()> {
        let mut routes = self.routes.write();
        let route = entry.route_path();
        let r = routes
            .iter_mut()
            .find(|r| r.entry.is_route(&route))
            .ok_or_else(|| Error::bad(format!("no mount at {route}")))?;
        *r = Arc::new(Mounted {
            entry,
            ..Mounted::clone(r)
        });
        Ok(())
    }

    pub fn clear(&self) {
        self.routes.write().clear();
    }
}

/// Loads a table from storage.
pub async fn load_table(storage: &dyn Storage, table: Table) -> Result<Option<Vec<MountEntry>>> {
    let Some(raw) = storage.get(table.storage_path()).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| Error::internal(format!("corrupt mount table: {e}")))
}

/// Persists a table.
pub async fn save_table(storage: &dyn Storage, table: Table, entries: &[MountEntry]) -> Result<()> {
    let raw = serde_json::to_vec(entries).map_err(|e| Error::internal(e.to_string()))?;
    storage.put(table.storage_path(), raw).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_prefix_without_allocating() {
        let kv = MountEntry::new(Table::Mounts, "secret", "kv");
        assert!(kv.routes("secret/data/x"));
        assert!(kv.routes("secret"));
        assert!(!kv.routes("secretive/x"));
        let auth = MountEntry::new(Table::Auth, "approle", "approle");
        assert!(auth.routes("auth/approle/login"));
        assert!(auth.routes("auth/approle"));
        assert!(!auth.routes("approle/login"));
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("/secret"), "secret/");
        assert_eq!(normalize("a/b/"), "a/b/");
    }
}
