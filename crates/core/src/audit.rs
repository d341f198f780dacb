//! The audit broker: devices that record every request before its backend runs and every
//! response before it leaves, failing closed.
//!
//! Devices (`file` with `stdout`/`discard`, `socket` over tcp/udp/unix) are enabled through
//! `sys/audit/:path` or declared in the server configuration. The API table is persisted
//! through the barrier at `core/audit`; each device's salt is a random key stored at
//! `core/audit-salt/<uuid>` (declared devices: keyed by path, so their hashes survive
//! restarts). Disabling a device discards its salt.
//!
//! Fail closed: with any device enabled, an entry that no device wrote fails the request
//! with 500. The core calls `Core::audit_request` after authorization and
//! `Core::audit_response` after the secret or token exists; if the response cannot be
//! recorded the secret's lease (or the token) is revoked at once and never returned.

pub mod format;
mod sink;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lessor_storage::Storage;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::core::{Active, Core};
use crate::logical::{Request, Response};
use crate::token::TokenEntry;
use crate::{Error, Result};

use format::{Record, Salting, TokenInfo};
use sink::{FileSink, Sink, SocketKind, SocketSink};

pub use format::hmac_hex;

/// Storage path of the API-enabled device table.
pub const TABLE_PATH: &str = "core/audit";
const SALT_PREFIX: &str = "core/audit-salt/";
/// Message of the 500 a request gets when no device recorded it.
pub const FAILED: &str = "internal error";

/// One device as enabled: what `sys/audit` lists and what the table stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub uuid: String,
    /// Declared in the server configuration: enabled at unseal, not removable by API.
    #[serde(skip)]
    pub declared: bool,
}

impl DeviceEntry {
    pub fn new(path: &str, kind: &str, options: BTreeMap<String, String>) -> DeviceEntry {
        DeviceEntry {
            path: normalize(path),
            kind: kind.to_string(),
            description: String::new(),
            options,
            local: false,
            uuid: String::new(),
            declared: false,
        }
    }

    fn salt_key(&self) -> String {
        if self.declared {
            format!("{SALT_PREFIX}declared/{}", self.path.trim_end_matches('/'))
        } else {
            format!("{SALT_PREFIX}{}", self.uuid)
        }
    }
}

/// Device paths always end with `/`.
pub fn normalize(path: &str) -> String {
    format!("{}/", path.trim_matches('/'))
}

#[derive(Clone, Copy)]
enum Format {
    Json,
    Jsonx,
}

struct Device {
    entry: DeviceEntry,
    key: format::Keyed,
    sink: Sink,
    format: Format,
    prefix: String,
    log_raw: bool,
    hmac_accessor: bool,
    elide_list_responses: bool,
}

fn opt_bool(o: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool> {
    match o.get(key).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(s) if s.is_empty() => Ok(default),
        Some(s) => match s.as_str() {
            "true" | "1" | "t" => Ok(true),
            "false" | "0" | "f" => Ok(false),
            _ => Err(Error::bad(format!(
                "unable to parse '{key}': invalid boolean {s:?}"
            ))),
        },
    }
}

impl Device {
    fn build(entry: DeviceEntry, salt: Vec<u8>) -> Result<Device> {
        let o = &entry.options;
        let format = match o.get("format").map(String::as_str).unwrap_or("json") {
            "" | "json" => Format::Json,
            "jsonx" => Format::Jsonx,
            other => return Err(Error::bad(format!("unknown format type {other:?}"))),
        };
        let sink = match entry.kind.as_str() {
            "file" => {
                let path = o
                    .get("file_path")
                    .or_else(|| o.get("path"))
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| Error::bad("file_path is required"))?;
                let mode = match o.get("mode").filter(|m| !m.is_empty()) {
                    Some(m) => u32::from_str_radix(m, 8)
                        .map_err(|_| Error::bad(format!("invalid mode {m:?}")))?,
                    None => 0o600,
                };
                match path.as_str() {
                    "discard" => Sink::Discard,
                    "stdout" => Sink::Stdout,
                    p => Sink::File(FileSink::new(p, mode)),
                }
            }
            "socket" => {
                let address = o
                    .get("address")
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| Error::bad("address is required"))?;
                let kind = match o.get("socket_type").map(String::as_str).unwrap_or("tcp") {
                    "" | "tcp" => SocketKind::Tcp,
                    "udp" => SocketKind::Udp,
                    "unix" => SocketKind::Unix,
                    other => return Err(Error::bad(format!("unsupported socket_type {other:?}"))),
                };
                Sink::Socket(SocketSink::new(address, kind))
            }
            other => return Err(Error::bad(format!("unknown backend type: {other:?}"))),
        };
        Ok(Device {
            format,
            prefix: o.get("prefix").cloned().unwrap_or_default(),
            log_raw: opt_bool(o, "log_raw", false)?,
            hmac_accessor: opt_bool(o, "hmac_accessor", true)?,
            elide_list_responses: opt_bool(o, "elide_list_responses", false)?,
            sink,
            key: format::Keyed::new(&salt),
            entry,
        })
    }

    fn salting(&self) -> Salting<'_> {
        Salting {
            key: &self.key,
            log_raw: self.log_raw,
            hmac_accessor: self.hmac_accessor,
            elide_list_responses: self.elide_list_responses,
        }
    }

    fn line(&self, entry: String) -> Vec<u8> {
        let body = match self.format {
            Format::Json => entry,
            // Rare enough that reading the JSON back is cheaper than a second builder.
            Format::Jsonx => format::jsonx(&serde_json::from_str(&entry).unwrap_or(Value::Null)),
        };
        let mut line = String::with_capacity(self.prefix.len() + body.len() + 1);
        line.push_str(&self.prefix);
        line.push_str(&body);
        line.push('\n');
        line.into_bytes()
    }
}

/// The devices in force and the counters the metrics read.
pub struct Broker {
    /// Replaced whole on enable/disable, so a request clones one `Arc` and never waits.
    devices: RwLock<Arc<Vec<Arc<Device>>>>,
    declared: parking_lot::Mutex<Vec<DeviceEntry>>,
    allow_api_file: AtomicBool,
    lifecycle: tokio::sync::Mutex<()>,
    /// Entries no device could write (each failed a request).
    pub failed_entries: AtomicU64,
    /// Writes that failed on one device.
    pub device_errors: AtomicU64,
    pub entries_written: AtomicU64,
}

impl Default for Broker {
    fn default() -> Self {
        Broker {
            devices: RwLock::new(Arc::new(Vec::new())),
            declared: parking_lot::Mutex::new(Vec::new()),
            allow_api_file: AtomicBool::new(true),
            lifecycle: tokio::sync::Mutex::new(()),
            failed_entries: AtomicU64::new(0),
            device_errors: AtomicU64::new(0),
            entries_written: AtomicU64::new(0),
        }
    }
}

async fn load_salt(storage: &dyn Storage, key: &str) -> Result<Vec<u8>> {
    if let Some(s) = storage.get(key).await? {
        return Ok(s);
    }
    use rand::RngCore;
    let mut salt = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut salt);
    storage.put(key, salt.clone()).await?;
    Ok(salt)
}

async fn load_table(storage: &dyn Storage) -> Result<Vec<DeviceEntry>> {
    match storage.get(TABLE_PATH).await? {
        None => Ok(Vec::new()),
        Some(raw) => serde_json::from_slice(&raw)
            .map_err(|e| Error::internal(format!("corrupt audit table: {e}"))),
    }
}

async fn save_table(storage: &dyn Storage, entries: &[DeviceEntry]) -> Result<()> {
    let raw = serde_json::to_vec(entries).map_err(|e| Error::internal(e.to_string()))?;
    storage.put(TABLE_PATH, raw).await?;
    Ok(())
}

impl Broker {
    pub fn new() -> Arc<Broker> {
        Arc::new(Broker::default())
    }

    /// Devices from the server configuration, enabled at every unseal.
    pub fn set_declared(&self, entries: Vec<DeviceEntry>) {
        *self.declared.lock() = entries
            .into_iter()
            .map(|mut e| {
                e.path = normalize(&e.path);
                e.declared = true;
                e
            })
            .collect();
    }

    /// Whether `sys/audit/:path` may enable `file` devices (a file device writes wherever
    /// the server may write, so operators can keep that to the configuration file).
    pub fn set_api_file_devices_allowed(&self, allowed: bool) {
        self.allow_api_file.store(allowed, Ordering::Relaxed);
    }

    pub fn is_enabled(&self) -> bool {
        !self.devices.read().is_empty()
    }

    pub fn device_count(&self) -> usize {
        self.devices.read().len()
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Device>>> {
        self.devices.read().clone()
    }

    /// Enables the declared devices and the persisted table (at unseal).
    pub async fn restore(&self, storage: &dyn Storage) -> Result<()> {
        let _g = self.lifecycle.lock().await;
        let mut devices = Vec::new();
        let declared = self.declared.lock().clone();
        for entry in declared.into_iter().chain(load_table(storage).await?) {
            if devices
                .iter()
                .any(|d: &Arc<Device>| d.entry.path == entry.path)
            {
                tracing::error!(audit_path = %entry.path, "audit path declared twice; the first wins");
                continue;
            }
            let salt = load_salt(storage, &entry.salt_key()).await?;
            let path = entry.path.clone();
            match Device::build(entry, salt) {
                Ok(d) => devices.push(Arc::new(d)),
                Err(e) => {
                    tracing::error!(audit_path = %path, error = %e, "cannot enable audit device")
                }
            }
        }
        tracing::info!(devices = devices.len(), "audit devices enabled");
        *self.devices.write() = Arc::new(devices);
        Ok(())
    }

    /// Forgets every device (at seal).
    pub fn clear(&self) {
        *self.devices.write() = Arc::new(Vec::new());
    }

    /// Reopens every file (SIGHUP), for log rotation.
    pub fn reopen(&self) {
        for d in self.snapshot().iter() {
            d.sink.reopen();
        }
    }

    pub fn list(&self) -> Vec<DeviceEntry> {
        self.snapshot().iter().map(|d| d.entry.clone()).collect()
    }

    /// `sys/audit/:path` (write).
    pub async fn enable(&self, storage: &dyn Storage, mut entry: DeviceEntry) -> Result<()> {
        let _g = self.lifecycle.lock().await;
        entry.path = normalize(&entry.path);
        if entry.path == "/" {
            return Err(Error::bad("missing path"));
        }
        if entry.kind == "file" && !self.allow_api_file.load(Ordering::Relaxed) {
            return Err(Error::bad(
                "cannot enable a file audit device via the API; declare it in the server configuration",
            ));
        }
        let current = self.snapshot();
        if current.iter().any(|d| d.entry.path == entry.path) {
            return Err(Error::bad("path already in use"));
        }
        entry.uuid = uuid::Uuid::new_v4().to_string();
        entry.declared = false;
        let salt = load_salt(storage, &entry.salt_key()).await?;
        let device = Device::build(entry.clone(), salt)?;
        if let Sink::File(f) = &device.sink {
            f.check()?;
        }
        let mut table = load_table(storage).await?;
        table.push(entry);
        save_table(storage, &table).await?;
        let mut next = current.as_ref().clone();
        next.push(Arc::new(device));
        *self.devices.write() = Arc::new(next);
        Ok(())
    }

    /// `sys/audit/:path` (delete): unknown paths succeed; declared devices stay.
    pub async fn disable(&self, storage: &dyn Storage, path: &str) -> Result<()> {
        let _g = self.lifecycle.lock().await;
        let path = normalize(path);
        let current = self.snapshot();
        let Some(d) = current.iter().find(|d| d.entry.path == path) else {
            return Ok(());
        };
        if d.entry.declared {
            return Err(Error::bad(format!(
                "audit device {path:?} is declared in the server configuration and cannot be disabled through the API"
            )));
        }
        let table: Vec<DeviceEntry> = load_table(storage)
            .await?
            .into_iter()
            .filter(|e| e.path != path)
            .collect();
        save_table(storage, &table).await?;
        storage.delete(&d.entry.salt_key()).await?;
        let next: Vec<Arc<Device>> = current
            .iter()
            .filter(|x| x.entry.path != path)
            .cloned()
            .collect();
        *self.devices.write() = Arc::new(next);
        Ok(())
    }

    /// `sys/audit-hash/:path`: the hash the device would log for `input`.
    pub fn hash(&self, path: &str, input: &str) -> Result<String> {
        let path = normalize(path);
        let devices = self.snapshot();
        let d = devices
            .iter()
            .find(|d| d.entry.path == path)
            .ok_or_else(|| Error::bad(format!("unknown audit backend {path}")))?;
        Ok(d.key.hash(input))
    }

    /// Writes one entry to every device; fails unless at least one wrote it.
    async fn log(&self, devices: &[Arc<Device>], build: impl Fn(&Device) -> String) -> Result<()> {
        if devices.is_empty() {
            return Ok(());
        }
        let mut written = false;
        for d in devices.iter() {
            let line = d.line(build(d));
            match d.sink.write(&line).await {
                Ok(()) => written = true,
                Err(e) => {
                    self.device_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(audit_path = %d.entry.path, error = %e, "audit device failed to write");
                }
            }
        }
        if written {
            self.entries_written.fetch_add(1, Ordering::Relaxed);
            Ok(())
        } else {
            self.failed_entries.fetch_add(1, Ordering::Relaxed);
            Err(Error::internal(FAILED))
        }
    }

    /// Writes the request entry; what it returns lets the response entry reuse the salted
    /// request and auth blocks.
    pub async fn log_request(&self, rec: &Record<'_>, error: Option<&str>) -> Result<Audited> {
        let devices = self.snapshot();
        let parts: Vec<(String, format::Parts)> = devices
            .iter()
            .map(|d| (d.entry.path.clone(), format::parts(&d.salting(), rec)))
            .collect();
        let find = |d: &Device| {
            parts
                .iter()
                .find(|(p, _)| *p == d.entry.path)
                .map(|(_, x)| x)
        };
        self.log(&devices, |d| match find(d) {
            Some(p) => format::entry_json(rec.time, p, None, error.unwrap_or("")),
            None => format::entry_json(
                rec.time,
                &format::parts(&d.salting(), rec),
                None,
                error.unwrap_or(""),
            ),
        })
        .await?;
        Ok(Audited { parts })
    }

    pub async fn log_response(
        &self,
        audited: &Audited,
        rec: &Record<'_>,
        resp: Option<&Response>,
        error: Option<&str>,
    ) -> Result<()> {
        let devices = self.snapshot();
        self.log(&devices, |d| {
            let s = d.salting();
            // A device enabled while the request ran has no prepared blocks.
            let fresh;
            let p = match audited.parts.iter().find(|(p, _)| *p == d.entry.path) {
                Some((_, p)) => p,
                None => {
                    fresh = format::parts(&s, rec);
                    &fresh
                }
            };
            format::entry_json(
                rec.time,
                p,
                Some(format::response_block(&s, resp)),
                error.unwrap_or(""),
            )
        })
        .await
    }

    /// The `sys/audit` listing.
    pub fn listing(&self) -> Map<String, Value> {
        self.list()
            .into_iter()
            .map(|e| {
                let v = json!({
                    "type": e.kind,
                    "description": e.description,
                    "options": e.options,
                    "local": e.local,
                    "path": e.path,
                });
                (e.path, v)
            })
            .collect()
    }
}

/// The request entry's salted blocks, per device, for the response entry.
#[derive(Debug, Default)]
pub struct Audited {
    parts: Vec<(String, format::Parts)>,
}

/// UTC time with nanoseconds, as audit entries carry it.
pub fn now_rfc3339_nano() -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn token_info<'a>(req: &'a Request, token: Option<&'a TokenEntry>) -> TokenInfo<'a> {
    TokenInfo {
        caller: req.caller.as_ref(),
        token_type: token
            .map(|t| {
                if t.token_type.is_empty() {
                    "service"
                } else {
                    t.token_type.as_str()
                }
            })
            .unwrap_or(""),
        token_ttl: token.map(|t| t.creation_ttl).unwrap_or(0),
    }
}

impl Core {
    /// Records the request before its backend runs; `Err` (500) when no device could.
    pub(crate) async fn audit_request(
        &self,
        req: &Request,
        token: Option<&TokenEntry>,
    ) -> Result<Audited> {
        if !self.audit.is_enabled() {
            return Ok(Audited::default());
        }
        let time = now_rfc3339_nano();
        let rec = Record {
            req,
            token: token_info(req, token),
            time: &time,
        };
        self.audit.log_request(&rec, None).await
    }

    /// Records the response (or the error) before it leaves. When it cannot be recorded,
    /// what the response would have handed out is taken back: the lease is revoked, the
    /// token revoked, and the request fails with 500.
    pub(crate) async fn audit_response(
        &self,
        active: &Active,
        audited: &Audited,
        req: &Request,
        token: Option<&TokenEntry>,
        resp: Option<&Response>,
        error: Option<&Error>,
    ) -> Result<()> {
        if !self.audit.is_enabled() {
            return Ok(());
        }
        let time = now_rfc3339_nano();
        let rec = Record {
            req,
            token: token_info(req, token),
            time: &time,
        };
        let msg = error.map(|e| e.messages().join("; "));
        let out = self
            .audit
            .log_response(audited, &rec, resp, msg.as_deref())
            .await;
        if out.is_err()
            && let Some(r) = resp
        {
            if !r.lease_id.is_empty()
                && let Err(e) = active.expiration.revoke(&r.lease_id, true).await
            {
                tracing::error!(lease_id = %r.lease_id, error = %e, "cannot revoke a lease whose issue was not audited");
            }
            if let Some(a) = r.auth.as_ref().filter(|a| !a.client_token.is_empty()) {
                let hash = active.tokens.hash(&a.client_token);
                if let Err(e) = active.tokens.revoke_tree(&hash).await {
                    tracing::error!(accessor = %a.accessor, error = %e, "cannot revoke a token whose issue was not audited");
                }
            }
        }
        out
    }
}
