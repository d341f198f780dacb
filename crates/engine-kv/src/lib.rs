//! KV secrets engine, versions 1 and 2.
//!
//! Version 1 stores each secret as one object under its own path and never versions it.
//! Version 2 keeps a metadata record per secret and every version under a key of its own,
//! with check-and-set, soft delete, destroy and per-secret limits. Neither issues leases:
//! a KV read is a plain read, so the core never registers anything for it.
//!
//! The core maps the mount types `kv`, `kv-v1` and `kv-v2` to `kv` plus `options.version`,
//! and asks [`factory`] for the backend.

use std::collections::BTreeMap;
use std::sync::Arc;

use lessor_core::framework::Backend;
use lessor_core::{Error, Result};

mod merge_patch;
pub mod v1;
pub mod v2;

/// Builds the KV backend for a mount's `options`: version 1 when `version` is absent, empty
/// or `"1"`, version 2 when it is `"2"`.
pub fn factory(options: &BTreeMap<String, String>) -> Result<Arc<dyn Backend>> {
    match options.get("version").map(|v| v.trim()) {
        None | Some("") | Some("1") => Ok(Arc::new(v1::KvV1::new())),
        Some("2") => Ok(Arc::new(v2::KvV2::new())),
        Some(other) => Err(Error::bad(format!(
            "unsupported KV version \"{other}\"; expected \"1\" or \"2\""
        ))),
    }
}

/// The error Vault gives for a write to a folder (a path ending in `/`, or the mount root).
fn reject_folder_write(path: &str) -> Result<()> {
    if path.is_empty() || path.ends_with('/') {
        return Err(Error::bad("cannot write to a path ending in '/'"));
    }
    Ok(())
}

/// Folder prefix for a list: `""` stays the root, anything else ends with `/`.
fn list_prefix(path: &str) -> String {
    if path.is_empty() || path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factory_picks_the_version() {
        let opts = |v: Option<&str>| {
            let mut m = BTreeMap::new();
            if let Some(v) = v {
                m.insert("version".to_string(), v.to_string());
            }
            m
        };
        for v in [None, Some("1"), Some("")] {
            let b = factory(&opts(v)).unwrap();
            assert_eq!(b.paths().len(), 1, "{v:?}");
        }
        assert!(factory(&opts(Some("2"))).unwrap().paths().len() > 1);
        let e = factory(&opts(Some("3"))).err().unwrap();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn folder_helpers() {
        assert!(reject_folder_write("a/").is_err());
        assert!(reject_folder_write("").is_err());
        assert!(reject_folder_write("a/b").is_ok());
        assert_eq!(list_prefix(""), "");
        assert_eq!(list_prefix("a"), "a/");
        assert_eq!(list_prefix("a/"), "a/");
    }
}
