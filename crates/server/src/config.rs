//! The server configuration file, in Vault's shape (HCL or JSON):
//!
//! ```hcl
//! storage "file" { path = "/var/lib/lessor" }   # `backend` is the old name of `storage`
//! listener "tcp" { address = "127.0.0.1:8200"  tls_disable = true }
//! default_lease_ttl = "768h"
//! max_lease_ttl     = "768h"
//! api_addr = "http://127.0.0.1:8200"
//! audit "file" "file" { options { file_path = "/var/log/lessor/audit.log" } }
//! unsafe_allow_api_audit_creation = true   # false: file devices only from this file
//! telemetry { metrics_address = "127.0.0.1:9102" }   # unauthenticated metrics listener
//! cache_size = 131072   # entries in the storage read cache; disable_cache = true turns it off
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// Default body limit: 32 MiB, as Vault.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    pub kind: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    pub address: String,
    pub tls_disable: bool,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub max_request_size: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            address: "127.0.0.1:8200".into(),
            tls_disable: false,
            tls_cert_file: None,
            tls_key_file: None,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub storage: Option<StorageConfig>,
    pub listeners: Vec<ListenerConfig>,
    pub default_lease_ttl: Option<i64>,
    pub max_lease_ttl: Option<i64>,
    pub api_addr: Option<String>,
    pub cluster_name: Option<String>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub ui: bool,
    /// Seconds a lease reservation may stay pending before its planned credential is
    /// revoked (default 300); tests of crash recovery shorten it.
    pub pending_lease_deadline: Option<i64>,
    /// Audit devices declared here: enabled at unseal, not removable through the API.
    pub audit: Vec<AuditDeviceConfig>,
    /// Whether `sys/audit/:path` may enable `file` devices (default true).
    pub unsafe_allow_api_audit_creation: Option<bool>,
    pub telemetry: TelemetryConfig,
    /// Entries in the physical read cache (Vault's `cache_size`; default 131072).
    pub cache_size: Option<usize>,
    /// Vault's `disable_cache`: every read goes to the storage backend.
    pub disable_cache: bool,
}

/// `audit "<type>" "<path>" { description = "..." options { ... } }`, or
/// `audit "<type>" { path = "..." options = { ... } }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditDeviceConfig {
    pub kind: String,
    pub path: String,
    pub description: String,
    pub options: BTreeMap<String, String>,
}

/// `telemetry { metrics_address = "127.0.0.1:9102" }`: an unauthenticated listener serving
/// `/metrics` (Prometheus text) and `/v1/sys/metrics` (`?format=prometheus` or JSON).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetryConfig {
    pub metrics_address: Option<String>,
}

fn audit_device(
    kind: &str,
    path: Option<&str>,
    body: &serde_json::Map<String, Value>,
) -> Result<AuditDeviceConfig, String> {
    let path = path
        .map(str::to_string)
        .or_else(|| body.get("path").and_then(as_string))
        .unwrap_or_else(|| kind.to_string());
    let mut options = BTreeMap::new();
    for block in ["options", "config"] {
        match body.get(block) {
            None => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    options.insert(
                        k.clone(),
                        as_string(v)
                            .ok_or_else(|| format!("audit {path}: option {k} must be a string"))?,
                    );
                }
            }
            Some(Value::Array(items)) => {
                for i in items {
                    if let Value::Object(m) = i {
                        for (k, v) in m {
                            options.insert(
                                k.clone(),
                                as_string(v).ok_or_else(|| {
                                    format!("audit {path}: option {k} must be a string")
                                })?,
                            );
                        }
                    }
                }
            }
            Some(_) => return Err(format!("audit {path}: {block} must be a block")),
        }
    }
    // `file_path` may also sit at the top of the block.
    if let Some(fp) = body.get("file_path").and_then(as_string) {
        options.entry("file_path".into()).or_insert(fp);
    }
    Ok(AuditDeviceConfig {
        kind: kind.to_string(),
        path,
        description: body
            .get("description")
            .and_then(as_string)
            .unwrap_or_default(),
        options,
    })
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn as_bool(v: Option<&Value>) -> Result<bool, String> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" | "" => Ok(false),
            other => Err(format!("invalid boolean {other:?}")),
        },
        Some(Value::Number(n)) => Ok(n.as_i64() != Some(0)),
        Some(other) => Err(format!("invalid boolean {other}")),
    }
}

/// A non-negative whole number, written as one or as a string (Vault takes both).
fn count(v: &Value) -> Result<usize, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("expected a non-negative whole number, got {v}"))
}

fn duration(v: &Value, key: &str) -> Result<i64, String> {
    lessor_core::duration::parse_value(v, false).map_err(|e| format!("{key}: {e}"))
}

/// Blocks such as `storage "file" { ... }` decode to `{"file": {...}}`, sometimes wrapped in
/// a list (repeated blocks, or JSON written that way). Yields `(label, body)` pairs.
fn labelled_blocks(v: &Value) -> Vec<(String, serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    match v {
        Value::Array(items) => {
            for i in items {
                out.extend(labelled_blocks(i));
            }
        }
        Value::Object(m) => {
            for (label, body) in m {
                match body {
                    Value::Object(b) => out.push((label.clone(), b.clone())),
                    Value::Array(bodies) => {
                        for b in bodies {
                            if let Value::Object(b) = b {
                                out.push((label.clone(), b.clone()));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    out
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("error loading configuration from {}: {e}", path.display()))?;
        Self::parse(&text)
    }

    /// Parses HCL or JSON text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let value: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| format!("error parsing JSON config: {e}"))?
        } else {
            parse_hcl(text)?
        };
        let root = value.as_object().ok_or("config must be an object")?;
        let mut cfg = Config::default();
        for key in ["storage", "backend"] {
            if let Some(v) = root.get(key)
                && let Some((kind, body)) = labelled_blocks(v).into_iter().next()
            {
                let options = body
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), as_string(v)?)))
                    .collect();
                cfg.storage = Some(StorageConfig { kind, options });
            }
        }
        if let Some(v) = root.get("listener") {
            for (kind, body) in labelled_blocks(v) {
                if kind != "tcp" {
                    return Err(format!("unsupported listener type {kind:?}"));
                }
                let mut l = ListenerConfig::default();
                if let Some(a) = body.get("address").and_then(as_string) {
                    l.address = a;
                }
                l.tls_disable =
                    as_bool(body.get("tls_disable")).map_err(|e| format!("tls_disable: {e}"))?;
                l.tls_cert_file = body.get("tls_cert_file").and_then(as_string);
                l.tls_key_file = body.get("tls_key_file").and_then(as_string);
                if let Some(v) = body.get("max_request_size") {
                    let n = as_string(v)
                        .and_then(|s| s.parse::<i64>().ok())
                        .ok_or("max_request_size must be an integer")?;
                    // Vault: 0 means the default; negative disables the limit.
                    l.max_request_size = match n {
                        0 => DEFAULT_MAX_REQUEST_SIZE,
                        n if n < 0 => usize::MAX,
                        n => n as usize,
                    };
                }
                if !l.tls_disable && (l.tls_cert_file.is_none() || l.tls_key_file.is_none()) {
                    return Err("listener: tls_cert_file and tls_key_file are required unless tls_disable is set".into());
                }
                cfg.listeners.push(l);
            }
        }
        if let Some(v) = root.get("default_lease_ttl") {
            cfg.default_lease_ttl = Some(duration(v, "default_lease_ttl")?);
        }
        if let Some(v) = root.get("max_lease_ttl") {
            cfg.max_lease_ttl = Some(duration(v, "max_lease_ttl")?);
        }
        cfg.api_addr = root.get("api_addr").and_then(as_string);
        cfg.cluster_name = root.get("cluster_name").and_then(as_string);
        cfg.log_level = root.get("log_level").and_then(as_string);
        cfg.log_format = root.get("log_format").and_then(as_string);
        cfg.ui = as_bool(root.get("ui")).map_err(|e| format!("ui: {e}"))?;
        if let Some(v) = root.get("audit") {
            for (kind, body) in labelled_blocks(v) {
                let flat = ["path", "options", "file_path", "description"]
                    .iter()
                    .any(|k| body.contains_key(*k));
                if flat {
                    cfg.audit.push(audit_device(&kind, None, &body)?);
                } else {
                    for (path, inner) in body {
                        let Value::Object(inner) = inner else {
                            return Err(format!("audit {kind:?} {path:?}: expected a block"));
                        };
                        cfg.audit.push(audit_device(&kind, Some(&path), &inner)?);
                    }
                }
            }
        }
        if root.contains_key("unsafe_allow_api_audit_creation") {
            cfg.unsafe_allow_api_audit_creation = Some(
                as_bool(root.get("unsafe_allow_api_audit_creation"))
                    .map_err(|e| format!("unsafe_allow_api_audit_creation: {e}"))?,
            );
        }
        if let Some(v) = root.get("telemetry") {
            let blocks: Vec<&Value> = match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for b in blocks {
                if let Some(a) = b.get("metrics_address").and_then(as_string) {
                    cfg.telemetry.metrics_address = Some(a);
                }
            }
        }
        if let Some(v) = root.get("cache_size") {
            cfg.cache_size = Some(count(v).map_err(|e| format!("cache_size: {e}"))?);
        }
        cfg.disable_cache =
            as_bool(root.get("disable_cache")).map_err(|e| format!("disable_cache: {e}"))?;
        if let Some(v) = root.get("pending_lease_deadline") {
            cfg.pending_lease_deadline = Some(duration(v, "pending_lease_deadline")?);
        }
        Ok(cfg)
    }
}

/// Parses HCL. Vault's parser is HCL1, which also takes several attributes on one line
/// (`listener "tcp" { address = "..." tls_disable = true }`, common in existing configs);
/// HCL2 needs a newline between them. When strict parsing fails, one retry splits such lines.
fn parse_hcl(text: &str) -> Result<Value, String> {
    match hcl::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(first) => hcl::from_str(&split_inline_attributes(text))
            .map_err(|_| format!("error parsing HCL config: {first}")),
    }
}

/// Rewrites one-line blocks with several attributes into HCL2's multi-line form: a newline
/// after `{`, before `}`, and before each `name =` that follows a value on the same line.
/// Only used after strict parsing failed.
fn split_inline_attributes(text: &str) -> String {
    static RES: std::sync::OnceLock<Option<[regex::Regex; 3]>> = std::sync::OnceLock::new();
    let res = RES.get_or_init(|| {
        Some([
            regex::Regex::new(r#"("[^"\n]*"|\b[0-9]+|\btrue|\bfalse|\])[ \t]+([A-Za-z_][A-Za-z0-9_-]*[ \t]*=[^=])"#).ok()?,
            regex::Regex::new(r#"\{[ \t]*([A-Za-z_][A-Za-z0-9_-]*[ \t]*=)"#).ok()?,
            regex::Regex::new(r#"("|\b[0-9]+|\btrue|\bfalse|\])[ \t]*\}"#).ok()?,
        ])
    });
    match res {
        Some([attrs, open, close]) => {
            let t = attrs.replace_all(text, "$1\n$2");
            let t = open.replace_all(&t, "{\n$1");
            close.replace_all(&t, "$1\n}").into_owned()
        }
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hcl_with_backend_alias() {
        let c = Config::parse(
            r#"
            backend "file" { path = "/tmp/x" }
            listener "tcp" {
              address = "127.0.0.1:8300"
              tls_disable = "true"
              max_request_size = 1024
            }
            default_lease_ttl = "1h"
            max_lease_ttl = "24h"
            disable_mlock = true
            ui = true
            "#,
        )
        .unwrap();
        let s = c.storage.unwrap();
        assert_eq!(s.kind, "file");
        assert_eq!(s.options["path"], "/tmp/x");
        assert_eq!(c.listeners[0].address, "127.0.0.1:8300");
        assert!(c.listeners[0].tls_disable);
        assert_eq!(c.listeners[0].max_request_size, 1024);
        assert_eq!(c.default_lease_ttl, Some(3600));
        assert_eq!(c.max_lease_ttl, Some(86400));
        assert!(c.ui);
    }

    #[test]
    fn parses_json() {
        let c = Config::parse(
            r#"{"storage": {"inmem": {}}, "listener": [{"tcp": {"address": "127.0.0.1:1", "tls_disable": 1}}]}"#,
        )
        .unwrap();
        assert_eq!(c.storage.unwrap().kind, "inmem");
        assert!(c.listeners[0].tls_disable);
    }

    #[test]
    fn parses_audit_devices_and_telemetry() {
        let c = Config::parse(
            r#"
            audit "file" "to-file" {
              description = "main"
              options { file_path = "/tmp/a.log" mode = "0640" }
            }
            audit "socket" {
              path = "sock/"
              options = { address = "127.0.0.1:9" socket_type = "udp" }
            }
            unsafe_allow_api_audit_creation = false
            telemetry { metrics_address = "127.0.0.1:9102" }
            "#,
        )
        .unwrap();
        assert_eq!(c.audit.len(), 2);
        assert_eq!(c.audit[0].path, "to-file");
        assert_eq!(c.audit[0].kind, "file");
        assert_eq!(c.audit[0].description, "main");
        assert_eq!(c.audit[0].options["mode"], "0640");
        assert_eq!(c.audit[1].path, "sock/");
        assert_eq!(c.audit[1].options["socket_type"], "udp");
        assert_eq!(c.unsafe_allow_api_audit_creation, Some(false));
        assert_eq!(
            c.telemetry.metrics_address.as_deref(),
            Some("127.0.0.1:9102")
        );
    }

    #[test]
    fn cache_settings() {
        let c = Config::parse("cache_size = \"1000\"\ndisable_cache = true").unwrap();
        assert_eq!((c.cache_size, c.disable_cache), (Some(1000), true));
        let c = Config::parse("cache_size = 5").unwrap();
        assert_eq!((c.cache_size, c.disable_cache), (Some(5), false));
        let c = Config::parse("").unwrap();
        assert_eq!((c.cache_size, c.disable_cache), (None, false));
        for bad in [
            "cache_size = -1",
            "cache_size = \"many\"",
            "disable_cache = \"perhaps\"",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hcl1_one_line_blocks() {
        let c = Config::parse(
            r#"storage "file" { path = "/tmp/x" }
listener "tcp" { address = "127.0.0.1:8300" tls_disable = true max_request_size = 1024 }"#,
        )
        .unwrap();
        assert_eq!(c.listeners[0].address, "127.0.0.1:8300");
        assert!(c.listeners[0].tls_disable);
        assert_eq!(c.listeners[0].max_request_size, 1024);
        // A string holding `x = y` is left alone.
        let c = Config::parse(r#"storage "file" { path = "/tmp/a b = c" }"#).unwrap();
        assert_eq!(c.storage.unwrap().options["path"], "/tmp/a b = c");
    }

    #[test]
    fn tls_needs_files() {
        assert!(Config::parse(r#"listener "tcp" { address = "127.0.0.1:1" }"#).is_err());
    }
}
