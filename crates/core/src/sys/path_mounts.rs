//! `sys/mounts`, `sys/auth`, their `tune`, `sys/remount`, and `sys/internal/ui/mounts`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::SysRef;
use crate::framework::field::{self, FieldType};
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response, obj};
use crate::mounts::{MountEntry, Table, normalize};
use crate::{Error, Result};

const READ: &[Operation] = &[Operation::Read];
const WRITE_RW: &[Operation] = &[Operation::Read, Operation::Update, Operation::Delete];

/// Mount types that cannot be enabled, disabled or moved by hand.
const SINGLETONS: &[&str] = &["system", "token", "cubbyhole", "identity"];

pub(super) fn paths(s: &SysRef) -> Vec<Path> {
    let mut v = Vec::new();
    for table in [Table::Mounts, Table::Auth] {
        let base = match table {
            Table::Mounts => "mounts",
            Table::Auth => "auth",
        };
        v.push(
            Path::new(
                base,
                Arc::new(ListMounts {
                    s: s.clone(),
                    table,
                }),
            )
            .ops(READ)
            .help("List the mounted backends."),
        );
        v.push(
            Path::new(
                &format!("{base}/(?P<path>.+?)/tune"),
                Arc::new(Tune {
                    s: s.clone(),
                    table,
                }),
            )
            .fields(tune_fields())
            .ops(&[Operation::Read, Operation::Update])
            .help("Tune a mount's settings."),
        );
        v.push(
            Path::new(
                &format!("{base}/(?P<path>.+)"),
                Arc::new(Mount {
                    s: s.clone(),
                    table,
                }),
            )
            .fields(mount_fields())
            .ops(WRITE_RW)
            .help("Enable, read or disable a mount."),
        );
    }
    // `sys/mounts/auth/<path>/tune` is the older spelling of `sys/auth/<path>/tune`: it is
    // matched above as a secrets mount named `auth/<path>`, and resolved in `find_entry`.
    v.push(
        Path::new("remount", Arc::new(Remount { s: s.clone() }))
            .fields(vec![
                field::str("from", "Current mount path."),
                field::str("to", "New mount path."),
            ])
            .ops(&[Operation::Update]),
    );
    v.push(
        Path::new(
            "remount/status/(?P<migration_id>.+)",
            Arc::new(RemountStatus),
        )
        .fields(vec![field::str("migration_id", "")])
        .ops(READ),
    );
    v.push(Path::new("internal/ui/mounts", Arc::new(UiMounts { s: s.clone() })).ops(READ));
    v.push(
        Path::new(
            "internal/ui/mounts/(?P<path>.+)",
            Arc::new(UiMount { s: s.clone() }),
        )
        .fields(vec![field::str("path", "")])
        .ops(READ),
    );
    v
}

fn mount_fields() -> Vec<field::Field> {
    vec![
        field::str("path", "Mount path."),
        field::str("type", "Backend type."),
        field::str("description", "Human-friendly description."),
        field::map("config", "default_lease_ttl, max_lease_ttl, ..."),
        field::Field::new("options", FieldType::KvPairs, "Backend options (version)."),
        field::bool("local", "Local mount (no replication)."),
        field::bool("seal_wrap", "Seal-wrap the mount."),
        field::bool("external_entropy_access", ""),
        field::str("plugin_name", "Legacy name of the type."),
        field::str("plugin_version", ""),
    ]
}

fn tune_fields() -> Vec<field::Field> {
    vec![
        field::str("path", "Mount path."),
        field::any("default_lease_ttl", "Default lease TTL or \"system\"."),
        field::any("max_lease_ttl", "Max lease TTL or \"system\"."),
        field::str("description", ""),
        field::Field::new("options", FieldType::KvPairs, ""),
        field::str("listing_visibility", ""),
        field::bool("force_no_cache", ""),
        field::str("token_type", ""),
        field::list("audit_non_hmac_request_keys", ""),
        field::list("audit_non_hmac_response_keys", ""),
        field::list("passthrough_request_headers", ""),
        field::list("allowed_response_headers", ""),
    ]
}

/// Parses a mount TTL: a duration, or `system` (= inherit, stored as 0).
fn mount_ttl(name: &str, v: &Value) -> Result<i64> {
    if v.as_str().is_some_and(|s| s.trim() == "system") {
        return Ok(0);
    }
    match field::parse(name, FieldType::Duration, v)? {
        Some(field::Parsed::Secs(s)) => Ok(s),
        _ => Ok(0),
    }
}

fn apply_config(entry: &mut MountEntry, config: &Map<String, Value>, sys_max: i64) -> Result<()> {
    if let Some(v) = config.get("default_lease_ttl") {
        entry.config.default_lease_ttl = mount_ttl("default_lease_ttl", v)?;
    }
    if let Some(v) = config.get("max_lease_ttl") {
        entry.config.max_lease_ttl = mount_ttl("max_lease_ttl", v)?;
    }
    let max = if entry.config.max_lease_ttl > 0 {
        entry.config.max_lease_ttl
    } else {
        sys_max
    };
    if entry.config.default_lease_ttl > max {
        return Err(Error::bad(
            "given default lease TTL greater than given max lease TTL",
        ));
    }
    let bool_of = |k: &str| -> Result<Option<bool>> {
        match config.get(k) {
            Some(v) => match field::parse(k, FieldType::Bool, v)? {
                Some(field::Parsed::Bool(b)) => Ok(Some(b)),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    };
    if let Some(b) = bool_of("force_no_cache")? {
        entry.config.force_no_cache = b;
    }
    let list_of = |k: &str| -> Result<Option<Vec<String>>> {
        match config.get(k) {
            Some(v) => match field::parse(k, FieldType::CommaList, v)? {
                Some(field::Parsed::List(l)) => Ok(Some(l)),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    };
    for (k, slot) in [
        (
            "audit_non_hmac_request_keys",
            &mut entry.config.audit_non_hmac_request_keys,
        ),
        (
            "audit_non_hmac_response_keys",
            &mut entry.config.audit_non_hmac_response_keys,
        ),
        (
            "passthrough_request_headers",
            &mut entry.config.passthrough_request_headers,
        ),
        (
            "allowed_response_headers",
            &mut entry.config.allowed_response_headers,
        ),
    ] {
        if let Some(l) = list_of(k)? {
            *slot = l;
        }
    }
    if let Some(v) = config.get("listing_visibility").and_then(Value::as_str) {
        entry.config.listing_visibility = Some(v.to_string());
    }
    if let Some(v) = config.get("token_type").and_then(Value::as_str) {
        if entry.table != Table::Auth {
            return Err(Error::bad("token_type can only be modified on auth mounts"));
        }
        entry.config.token_type = Some(v.to_string());
    }
    Ok(())
}

/// Resolves `kv-v1`/`kv-v2` and checks the `version` option, as Vault does.
fn resolve_type(kind: &str, entry: &mut MountEntry) -> Result<()> {
    match kind {
        "kv-v1" | "kv-v2" => {
            entry.kind = "kv".into();
            entry
                .options
                .insert("version".into(), kind[4..].to_string());
        }
        "kv" | "generic" => entry.kind = "kv".into(),
        other => {
            if entry.options.contains_key("version") {
                return Err(Error::bad(format!(
                    "version is not supported for mount type {other}"
                )));
            }
            entry.kind = other.to_string();
        }
    }
    if entry.kind == "kv" && !entry.options.contains_key("version") {
        entry.options.insert("version".into(), "1".into());
    }
    Ok(())
}

struct ListMounts {
    s: SysRef,
    table: Table,
}

#[async_trait]
impl PathHandler for ListMounts {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        let (_, active) = self.s.active()?;
        let data: Map<String, Value> = active
            .router
            .entries(self.table)
            .iter()
            .map(|e| (e.path.clone(), e.info()))
            .collect();
        Ok(Some(Response::data(data).legacy()))
    }
}

struct Mount {
    s: SysRef,
    table: Table,
}

impl Mount {
    async fn enable(&self, d: &FieldData) -> Result<Option<Response>> {
        let (core, active) = self.s.active()?;
        let path = normalize(&d.string("path"));
        if path == "/" {
            return Err(Error::bad("mount path cannot be empty"));
        }
        let kind = d
            .str("type")
            .filter(|t| !t.is_empty())
            .or_else(|| d.str("plugin_name").filter(|t| !t.is_empty()))
            .ok_or_else(|| Error::bad("backend type must be specified as a string"))?
            .to_string();
        if SINGLETONS.contains(&kind.as_str()) {
            return Err(Error::bad(format!(
                "mount type of \"{kind}\" is not mountable"
            )));
        }
        if self.table == Table::Mounts {
            for reserved in ["sys/", "auth/", "cubbyhole/", "identity/"] {
                if path.starts_with(reserved) {
                    return Err(Error::bad(format!("cannot mount under \"{reserved}\"")));
                }
            }
        }
        let mut entry = MountEntry::new(self.table, &path, &kind);
        entry.description = d.string("description");
        entry.local = d.bool("local").unwrap_or(false);
        entry.seal_wrap = d.bool("seal_wrap").unwrap_or(false);
        entry.external_entropy_access = d.bool("external_entropy_access").unwrap_or(false);
        entry.plugin_version = d.string("plugin_version");
        if let Some(opts) = d.kv("options") {
            entry.options = opts.clone();
        }
        resolve_type(&kind, &mut entry)?;
        entry.accessor = crate::mounts::new_accessor(self.table, &entry.kind);
        if let Some(cfg) = d.map("config") {
            apply_config(&mut entry, cfg, core.config.max_lease_ttl)?;
        }
        let route = entry.route_path();
        for existing in active.router.entries(self.table) {
            let ep = existing.route_path();
            if route.starts_with(&ep) || ep.starts_with(&route) {
                return Err(Error::bad(format!(
                    "path is already in use at {}",
                    existing.path
                )));
            }
        }
        if !core.supports_type(&entry.kind) {
            return Err(Error::bad(format!(
                "plugin not found in the catalog: {}",
                entry.kind
            )));
        }
        let mounted = core.instantiate(&active, entry).await?;
        active.router.insert(mounted);
        core.save_table(&active, self.table).await?;
        Ok(None)
    }

    async fn disable(&self, d: &FieldData) -> Result<Option<Response>> {
        let (core, active) = self.s.active()?;
        let route = format!(
            "{}{}",
            self.table.route_prefix(),
            normalize(&d.string("path"))
        );
        let Some(m) = active.router.get(&route) else {
            return Ok(None);
        };
        if SINGLETONS.contains(&m.entry.kind.as_str()) {
            return Err(Error::bad(format!("cannot unmount \"{}\"", m.entry.path)));
        }
        // Leases first: a mount never disappears while credentials it issued live on.
        active.expiration.revoke_prefix_sync(&route).await?;
        active.router.remove(&route);
        core.save_table(&active, self.table).await?;
        delete_all(m.storage.as_ref()).await?;
        Ok(None)
    }
}

/// Deletes every key of a mount's storage.
async fn delete_all(storage: &dyn lessor_storage::Storage) -> Result<()> {
    loop {
        let page = storage.scan("", None, 1000).await?;
        if page.is_empty() {
            return Ok(());
        }
        let ops = page
            .into_iter()
            .map(|(k, _)| lessor_storage::WriteOp::Delete(k))
            .collect();
        storage.batch(ops).await?;
    }
}

#[async_trait]
impl PathHandler for Mount {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        match op {
            Operation::Read => {
                let (_, active) = self.s.active()?;
                let route = format!(
                    "{}{}",
                    self.table.route_prefix(),
                    normalize(&d.string("path"))
                );
                let m = active.router.get(&route).ok_or(Error::NotFound)?;
                let data = m.entry.info().as_object().cloned().unwrap_or_default();
                Ok(Some(Response::data(data).legacy()))
            }
            Operation::Delete => self.disable(d).await,
            _ => self.enable(d).await,
        }
    }
}

struct Tune {
    s: SysRef,
    table: Table,
}

impl Tune {
    /// `sys/mounts/auth/x/tune` addresses the auth mount `auth/x/`.
    fn route(&self, d: &FieldData) -> String {
        format!(
            "{}{}",
            self.table.route_prefix(),
            normalize(&d.string("path"))
        )
    }
}

#[async_trait]
impl PathHandler for Tune {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let (core, active) = self.s.active()?;
        let route = self.route(d);
        let m = active.router.get(&route).ok_or_else(|| {
            Error::bad(format!(
                "cannot fetch mount entry on \"{}\"",
                route.trim_end_matches('/')
            ))
        })?;
        if op == Operation::Read {
            let sys = crate::expiration::system_view(&m, core.system_ttls());
            let mut data = obj([
                ("description", json!(m.entry.description)),
                ("default_lease_ttl", json!(sys.default_lease_ttl.as_secs())),
                ("max_lease_ttl", json!(sys.max_lease_ttl.as_secs())),
                ("force_no_cache", json!(m.entry.config.force_no_cache)),
            ]);
            if !m.entry.options.is_empty() {
                data.insert("options".into(), json!(m.entry.options));
            }
            if m.entry.table == Table::Auth {
                let tt = m
                    .entry
                    .config
                    .token_type
                    .clone()
                    .unwrap_or_else(|| "default-service".into());
                data.insert("token_type".into(), json!(tt));
            }
            return Ok(Some(Response::data(data).legacy()));
        }
        let mut entry = m.entry.clone();
        let mut config = d.raw.clone();
        config.remove("path");
        config.remove("options");
        apply_config(&mut entry, &config, core.config.max_lease_ttl)?;
        if let Some(desc) = d.str("description") {
            entry.description = desc.to_string();
        }
        let mut rebuild = false;
        if let Some(opts) = d.kv("options") {
            for (k, v) in opts {
                if k == "version" {
                    if entry.kind != "kv" {
                        return Err(Error::bad(format!(
                            "version is not supported for mount type {}",
                            entry.kind
                        )));
                    }
                    let old = entry
                        .options
                        .get("version")
                        .cloned()
                        .unwrap_or_else(|| "1".into());
                    if old == "2" && v == "1" {
                        return Err(Error::bad("cannot downgrade mount from KV version 2"));
                    }
                    rebuild |= *v != old;
                }
                entry.options.insert(k.clone(), v.clone());
            }
        }
        if rebuild {
            let mounted = core.instantiate(&active, entry).await?;
            active.router.insert(mounted);
        } else {
            active.router.update_entry(entry)?;
        }
        core.save_table(&active, m.entry.table).await?;
        Ok(None)
    }
}

struct Remount {
    s: SysRef,
}

#[async_trait]
impl PathHandler for Remount {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let (core, active) = self.s.active()?;
        let from = normalize(&d.string("from"));
        let to = normalize(&d.string("to"));
        if from == "/" || to == "/" {
            return Err(Error::bad("both 'from' and 'to' must be specified"));
        }
        let m = active
            .router
            .get(&from)
            .ok_or_else(|| Error::bad(format!("no matching mount at \"{from}\"")))?;
        if SINGLETONS.contains(&m.entry.kind.as_str()) {
            return Err(Error::bad(format!("cannot remount \"{from}\"")));
        }
        let taken = active.router.entries(m.entry.table).iter().any(|e| {
            let ep = e.route_path();
            ep != from && (to.starts_with(&ep) || ep.starts_with(&to))
        });
        if taken {
            return Err(Error::bad(format!("path already in use at \"{to}\"")));
        }
        let table = m.entry.table;
        let to_rel = to
            .strip_prefix(table.route_prefix())
            .unwrap_or(&to)
            .to_string();
        // Leases name their mount by path: revoke them rather than leave them unroutable.
        active.expiration.revoke_prefix_sync(&from).await?;
        active.router.remove(&from);
        let mut entry = m.entry.clone();
        entry.path = to_rel;
        active.router.insert(crate::mounts::Mounted {
            entry,
            backend: m.backend.clone(),
            storage: m.storage.clone(),
            view: m.view.clone(),
        });
        core.save_table(&active, table).await?;
        let id = uuid::Uuid::new_v4().to_string();
        Ok(Some(Response::data(obj([("migration_id", json!(id))]))))
    }
}

struct RemountStatus;

#[async_trait]
impl PathHandler for RemountStatus {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        // Remounts complete synchronously, so any id the caller holds has succeeded.
        Ok(Some(Response::data(obj([
            ("migration_id", json!(d.string("migration_id"))),
            ("migration_info", json!({"status": "success"})),
        ]))))
    }
}

struct UiMounts {
    s: SysRef,
}

#[async_trait]
impl PathHandler for UiMounts {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        let (_, active) = self.s.active()?;
        let table = |t: Table| -> Value {
            Value::Object(
                active
                    .router
                    .entries(t)
                    .iter()
                    .map(|e| (e.path.clone(), e.info()))
                    .collect(),
            )
        };
        Ok(Some(Response::data(obj([
            ("secret", table(Table::Mounts)),
            ("auth", table(Table::Auth)),
        ]))))
    }
}

struct UiMount {
    s: SysRef,
}

#[async_trait]
impl PathHandler for UiMount {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let (_, active) = self.s.active()?;
        let path = d.string("path");
        let denied = || {
            Error::PermissionDeniedMsg(format!(
                "preflight capability check returned 403, please ensure client's policies grant access to path \"{path}\""
            ))
        };
        let m = active
            .router
            .matching(path.trim_start_matches('/'))
            .ok_or_else(denied)?;
        let caller = ctx.req.caller.as_ref().ok_or_else(denied)?;
        if !caller.is_root {
            let acl = active.policies.acl(&caller.policies).await?;
            if !acl.has_any_under(&m.entry.route_path()) {
                return Err(denied());
            }
        }
        let mut data = m.entry.info().as_object().cloned().unwrap_or_default();
        data.insert("path".into(), json!(m.entry.route_path()));
        Ok(Some(Response::data(data)))
    }
}
