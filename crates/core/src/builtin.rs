//! The mounts every server has (`sys/`, `cubbyhole/`, `identity/`, `auth/token/`) and the
//! small built-in backends behind `cubbyhole/` and `identity/`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::framework::{Backend, Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response};
use crate::mounts::{MountEntry, Table};
use crate::{Error, Result};

/// The mount table a fresh server starts with.
pub fn default_mounts(table: Table, dev: bool) -> Vec<MountEntry> {
    let mk = |path: &str, kind: &str, desc: &str| {
        let mut e = MountEntry::new(table, path, kind);
        e.description = desc.to_string();
        e
    };
    match table {
        Table::Mounts => {
            let mut cubby = mk("cubbyhole", "cubbyhole", "per-token private secret storage");
            cubby.local = true;
            let mut v = vec![
                cubby,
                mk("identity", "identity", "identity store"),
                mk(
                    "sys",
                    "system",
                    "system endpoints used for control, policy and debugging",
                ),
            ];
            if dev {
                let mut kv = mk("secret", "kv", "key/value secret storage");
                kv.options.insert("version".into(), "2".into());
                v.push(kv);
            }
            v
        }
        Table::Auth => vec![mk("token", "token", "token based credentials")],
    }
}

/// Per-token private storage: each token sees only its own folder, and it goes with it.
struct Cubbyhole {
    paths: Vec<Path>,
}

struct CubbyPath;

fn cubby_key(ctx: &Ctx<'_>, d: &FieldData) -> Result<String> {
    let owner = ctx
        .req
        .caller
        .as_ref()
        .map(|c| c.token_id_hash.as_str())
        .unwrap_or_default();
    if owner.is_empty() {
        return Err(Error::PermissionDenied);
    }
    Ok(format!(
        "{owner}/{}",
        d.raw
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
    ))
}

#[async_trait]
impl PathHandler for CubbyPath {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let key = cubby_key(ctx, d)?;
        match op {
            Operation::Read => {
                let raw = ctx.storage.get(&key).await?.ok_or(Error::NotFound)?;
                let data =
                    serde_json::from_slice(&raw).map_err(|e| Error::internal(e.to_string()))?;
                Ok(Some(Response::data(data)))
            }
            Operation::Create | Operation::Update => {
                let mut data = d.raw.clone();
                data.remove("path");
                if data.is_empty() {
                    return Err(Error::bad("missing data fields"));
                }
                let raw = serde_json::to_vec(&data).map_err(|e| Error::internal(e.to_string()))?;
                ctx.storage.put(&key, raw).await?;
                Ok(None)
            }
            Operation::Delete => {
                ctx.storage.delete(&key).await?;
                Ok(None)
            }
            Operation::List => {
                let prefix = if key.ends_with('/') {
                    key
                } else {
                    format!("{key}/")
                };
                Response::list(ctx.storage.list(&prefix).await?)
            }
            Operation::Patch => Err(Error::UnsupportedOperation),
        }
    }

    async fn exists(&self, ctx: &Ctx<'_>, d: &FieldData) -> Result<bool> {
        Ok(ctx.storage.get(&cubby_key(ctx, d)?).await?.is_some())
    }
}

impl Backend for Cubbyhole {
    fn paths(&self) -> &[Path] {
        &self.paths
    }
}

pub fn cubbyhole() -> Arc<dyn Backend> {
    let path = Path::new("(?P<path>.*)", Arc::new(CubbyPath))
        .ops(&[
            Operation::Read,
            Operation::Create,
            Operation::Update,
            Operation::Delete,
            Operation::List,
        ])
        .existence()
        .any_fields()
        .help("Per-token private storage.");
    Arc::new(Cubbyhole { paths: vec![path] })
}

/// `identity/`: present in the mount table as in Vault; no entity API yet.
struct Identity;

impl Backend for Identity {
    fn paths(&self) -> &[Path] {
        &[]
    }
}

pub fn identity() -> Arc<dyn Backend> {
    Arc::new(Identity)
}
