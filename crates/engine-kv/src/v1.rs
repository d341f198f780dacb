//! KV version 1: each secret is one JSON object stored under its own path in the mount.
//!
//! A read carries no lease, but it still reports a `lease_duration`: the secret's own `ttl`
//! (or legacy `lease`) key when it parses as a duration, else the mount's default lease TTL.
//! Clients use that number as a refresh hint; the `ttl` key stays in the data.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::duration;
use lessor_core::framework::{Backend, Ctx, FieldData, Path, PathHandler, field};
use lessor_core::logical::{Operation, Response};
use lessor_core::{Error, Result};
use serde_json::{Map, Value};

use crate::{list_prefix, reject_folder_write};

const HELP: &str = "Pass-through secret storage: read, write, delete and list arbitrary JSON \
                    objects. A \"ttl\" key sets the lease duration reported on read.";

/// The KV v1 backend: one catch-all path.
pub struct KvV1 {
    paths: Vec<Path>,
}

impl KvV1 {
    pub fn new() -> Self {
        let path = Path::new(r"(?P<path>.*)", Arc::new(Secrets))
            .fields(vec![field::str("path", "Location of the secret.")])
            .ops(&[
                Operation::Read,
                Operation::Create,
                Operation::Update,
                Operation::Delete,
                Operation::List,
            ])
            .existence()
            .any_fields()
            .help(HELP);
        KvV1 { paths: vec![path] }
    }
}

impl Default for KvV1 {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Backend for KvV1 {
    fn paths(&self) -> &[Path] {
        &self.paths
    }
}

struct Secrets;

#[async_trait]
impl PathHandler for Secrets {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let path = d.string("path");
        match op {
            Operation::Read => read(ctx, &path).await,
            Operation::Create | Operation::Update => write(ctx, &path).await,
            Operation::Delete => {
                if !path.is_empty() {
                    ctx.storage.delete(&path).await?;
                }
                Ok(None)
            }
            Operation::List => Response::list(ctx.storage.list(&list_prefix(&path)).await?),
            Operation::Patch => Err(Error::UnsupportedOperation),
        }
    }

    async fn exists(&self, ctx: &Ctx<'_>, d: &FieldData) -> Result<bool> {
        let path = d.string("path");
        Ok(!path.is_empty() && ctx.storage.get(&path).await?.is_some())
    }
}

async fn read(ctx: &Ctx<'_>, path: &str) -> Result<Option<Response>> {
    if path.is_empty() {
        return Err(Error::NotFound);
    }
    let Some(raw) = ctx.storage.get(path).await? else {
        return Err(Error::NotFound);
    };
    let data: Map<String, Value> = serde_json::from_slice(&raw)
        .map_err(|e| Error::internal(format!("json decoding failed: {e}")))?;
    let lease_duration = lease_hint(&data).unwrap_or(ctx.system.default_lease_ttl.as_secs());
    Ok(Some(Response {
        lease_duration,
        ..Response::data(data)
    }))
}

/// Stores the request body as sent: the path capture is not part of the secret.
async fn write(ctx: &Ctx<'_>, path: &str) -> Result<Option<Response>> {
    reject_folder_write(path)?;
    if ctx.req.data.is_empty() {
        return Err(Error::bad("missing data fields"));
    }
    let buf = serde_json::to_vec(&ctx.req.data)
        .map_err(|e| Error::internal(format!("json encoding failed: {e}")))?;
    ctx.storage.put(path, buf).await?;
    Ok(None)
}

/// The `ttl` key, else the legacy `lease` key, when it parses as a duration.
fn lease_hint(data: &Map<String, Value>) -> Option<u64> {
    let raw = data.get("ttl").or_else(|| data.get("lease"))?;
    let secs = duration::parse_value(raw, false).ok()?;
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lease_hint_parses_ttl_then_lease() {
        let m = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(lease_hint(&m(json!({"ttl": "1h"}))), Some(3600));
        assert_eq!(lease_hint(&m(json!({"ttl": 90}))), Some(90));
        assert_eq!(lease_hint(&m(json!({"ttl": "0"}))), Some(0));
        assert_eq!(lease_hint(&m(json!({"lease": "30m"}))), Some(1800));
        assert_eq!(lease_hint(&m(json!({"ttl": "bogus"}))), None);
        // A `ttl` key that does not parse hides `lease`, as in Vault.
        assert_eq!(lease_hint(&m(json!({"ttl": "x", "lease": "1m"}))), None);
        assert_eq!(lease_hint(&m(json!({"x": 1}))), None);
    }
}
