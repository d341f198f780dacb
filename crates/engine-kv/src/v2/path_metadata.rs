//! `metadata/:path`: list secrets, read and change a secret's metadata (limits and
//! `custom_metadata`), and delete a secret with its whole history.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::framework::{Ctx, FieldData, Path, PathHandler, field};
use lessor_core::logical::{Operation, Response, obj};
use lessor_core::{Error, Result};
use lessor_storage::WriteOp;
use serde_json::{Map, Value, json};

use super::store::{
    KeyMeta, State, deletion_string, go_duration, meta_key, rfc3339_nano, versions_prefix,
};
use crate::{list_prefix, reject_folder_write};

const MAX_CUSTOM_KEYS: usize = 64;
const MAX_CUSTOM_KEY_LEN: usize = 128;
const MAX_CUSTOM_VALUE_LEN: usize = 512;
/// Keys fetched per storage page when deleting a secret's versions.
const PAGE: usize = 1000;

pub fn path(state: &Arc<State>) -> Path {
    Path::new("metadata/(?P<path>.*)", Arc::new(Metadata(state.clone())))
        .fields(vec![
            field::str("path", "Location of the secret."),
            field::int(
                "max_versions",
                "Versions kept for this secret; 0 means the mount's setting.",
            ),
            field::bool(
                "cas_required",
                "Require the cas option on every data write of this secret.",
            ),
            field::dur(
                "delete_version_after",
                "Soft-delete each new version this long after it is written; capped by the \
                 mount's setting.",
            ),
            field::map(
                "custom_metadata",
                "Free-form string pairs kept with the secret (not versioned).",
            ),
        ])
        .ops(&[
            Operation::Read,
            Operation::Create,
            Operation::Update,
            Operation::Patch,
            Operation::Delete,
            Operation::List,
        ])
        .existence()
        .help("Lists secrets and manages the metadata and history of each.")
}

struct Metadata(Arc<State>);

#[async_trait]
impl PathHandler for Metadata {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let path = d.string("path");
        match op {
            Operation::List => {
                Response::list(ctx.storage.list(&meta_key(&list_prefix(&path))).await?)
            }
            Operation::Read => match KeyMeta::load(ctx.storage, &path).await? {
                Some(meta) => Ok(Some(Response::data(render(&meta)))),
                None => Err(Error::NotFound),
            },
            Operation::Create | Operation::Update => self.write(ctx, &path, d, false).await,
            Operation::Patch => self.write(ctx, &path, d, true).await,
            Operation::Delete => self.delete(ctx, &path).await,
        }
    }

    async fn exists(&self, ctx: &Ctx<'_>, d: &FieldData) -> Result<bool> {
        Ok(KeyMeta::load(ctx.storage, &d.string("path"))
            .await?
            .is_some())
    }
}

impl Metadata {
    /// Sets the fields the request sends; a write creates the record, a patch needs it and
    /// merges `custom_metadata` key by key (`null` removes a key).
    async fn write(
        &self,
        ctx: &Ctx<'_>,
        path: &str,
        d: &FieldData,
        patch: bool,
    ) -> Result<Option<Response>> {
        reject_folder_write(path)?;
        let _guard = self.0.lock(path).await;
        let now = self.0.now();
        let mut meta = match KeyMeta::load(ctx.storage, path).await? {
            Some(m) => m,
            None if patch => return Ok(Some(super::patch_target_missing())),
            None => KeyMeta::new(now),
        };
        if let Some(m) = d.int("max_versions") {
            meta.max_versions =
                u64::try_from(m).map_err(|_| Error::bad("max_versions must not be negative"))?;
        }
        if let Some(c) = d.bool("cas_required") {
            meta.cas_required = c;
        }
        if let Some(s) = d.secs("delete_version_after") {
            meta.delete_version_after = s;
        }
        if let Some(input) = d.map("custom_metadata") {
            let mut custom = if patch {
                meta.custom_metadata.take().unwrap_or_default()
            } else {
                BTreeMap::new()
            };
            for (k, v) in input {
                match v {
                    Value::Null if patch => {
                        custom.remove(k);
                    }
                    other => {
                        custom.insert(k.clone(), custom_value(k, other)?);
                    }
                }
            }
            validate_custom(&custom)?;
            meta.custom_metadata = Some(custom);
        }
        meta.updated = now;
        meta.save(ctx.storage, path).await?;
        Ok(None)
    }

    /// Removes the metadata and every version, in one batch.
    async fn delete(&self, ctx: &Ctx<'_>, path: &str) -> Result<Option<Response>> {
        let _guard = self.0.lock(path).await;
        let prefix = versions_prefix(path);
        let mut ops = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = ctx.storage.scan(&prefix, after.as_deref(), PAGE).await?;
            let full = page.len() == PAGE;
            after = page.last().map(|(k, _)| k.clone());
            ops.extend(page.into_iter().map(|(k, _)| WriteOp::Delete(k)));
            if !full {
                break;
            }
        }
        ops.push(WriteOp::Delete(meta_key(path)));
        ctx.storage.batch(ops).await?;
        Ok(None)
    }
}

/// The metadata read response, keys in the order Vault prints them.
fn render(meta: &KeyMeta) -> Map<String, Value> {
    // Go prints map keys sorted as strings ("1", "10", "2").
    let versions: BTreeMap<String, Value> = meta
        .versions
        .iter()
        .map(|(n, vm)| {
            let v = json!({
                "created_time": rfc3339_nano(vm.created),
                "deletion_time": deletion_string(vm.deletion),
                "destroyed": vm.destroyed,
            });
            (n.to_string(), v)
        })
        .collect();
    obj([
        ("cas_required", json!(meta.cas_required)),
        ("created_time", json!(rfc3339_nano(meta.created))),
        ("current_version", json!(meta.current_version)),
        ("custom_metadata", meta.custom_json()),
        (
            "delete_version_after",
            go_duration(meta.delete_version_after),
        ),
        ("max_versions", json!(meta.max_versions)),
        ("oldest_version", json!(meta.oldest_version)),
        ("updated_time", json!(rfc3339_nano(meta.updated))),
        ("versions", json!(versions)),
    ])
}

/// Custom metadata values are strings; numbers and bools are taken as their text.
fn custom_value(key: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(Error::bad(format!(
            "custom_metadata validation failed: value of key {key:?} is not a string"
        ))),
    }
}

/// Vault's limits on custom metadata, all violations reported at once.
fn validate_custom(custom: &BTreeMap<String, String>) -> Result<()> {
    let mut errs = Vec::new();
    if custom.len() > MAX_CUSTOM_KEYS {
        errs.push(format!(
            "payload must contain at most {MAX_CUSTOM_KEYS} keys, provided keyCount={}",
            custom.len()
        ));
    }
    for (k, v) in custom {
        if k.is_empty() || k.len() > MAX_CUSTOM_KEY_LEN {
            errs.push(format!(
                "length of key {k:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_KEY_LEN}",
                k.len()
            ));
        }
        if v.len() > MAX_CUSTOM_VALUE_LEN {
            errs.push(format!(
                "length of value for key {k:?} is {} but must be <= {MAX_CUSTOM_VALUE_LEN}",
                v.len()
            ));
        }
        if k.chars().any(char::is_control) {
            errs.push(format!("key {k:?} contains unprintable characters"));
        }
        if v.chars().any(char::is_control) {
            errs.push(format!(
                "value for key {k:?} contains unprintable characters"
            ));
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    // Go's multierror wording, which Vault returns as the one error string.
    let noun = if errs.len() == 1 { "error" } else { "errors" };
    let mut msg = format!("{} {noun} occurred:\n", errs.len());
    for e in errs {
        msg.push_str(&format!("\t* {e}\n"));
    }
    msg.push('\n');
    Err(Error::bad(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_metadata_limits() {
        let mut m = BTreeMap::new();
        m.insert("ok".to_string(), "v".to_string());
        assert!(validate_custom(&m).is_ok());
        m.insert("k".repeat(129), "v".repeat(513));
        let e = validate_custom(&m).unwrap_err().to_string();
        assert!(
            e.starts_with("2 errors occurred:\n\t* length of key"),
            "{e}"
        );
        let many: BTreeMap<_, _> = (0..65).map(|i| (i.to_string(), String::new())).collect();
        assert!(validate_custom(&many).is_err());
    }
}
