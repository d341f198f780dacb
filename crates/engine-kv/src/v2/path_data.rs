//! `data/:path`: read a version, write a new one (with check-and-set), patch the current
//! one (JSON merge patch), soft-delete the current one.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::framework::{Ctx, FieldData, Path, PathHandler, field};
use lessor_core::logical::{Operation, Response, obj};
use lessor_core::{Error, Result};
use serde_json::{Map, Value};

use super::store::{Cas, Config, KeyMeta, Lookup, State, StoredVersion, lookup};
use crate::{merge_patch, reject_folder_write};

pub fn path(state: &Arc<State>) -> Path {
    Path::new("data/(?P<path>.*)", Arc::new(Data(state.clone())))
        .fields(vec![
            field::str("path", "Location of the secret."),
            field::int("version", "Version to read; 0 or absent means the latest."),
            field::map("data", "The secret's contents."),
            field::map(
                "options",
                "Write options; \"cas\" is the version the write expects to replace \
                 (0 = create only).",
            ),
        ])
        .ops(&[
            Operation::Read,
            Operation::Create,
            Operation::Update,
            Operation::Patch,
            Operation::Delete,
        ])
        .existence()
        .help("Reads, writes, patches and soft-deletes versions of a secret.")
}

struct Data(Arc<State>);

#[async_trait]
impl PathHandler for Data {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let path = d.string("path");
        match op {
            Operation::Read => self.read(ctx, &path, d.int("version").unwrap_or(0)).await,
            Operation::Create | Operation::Update => self.write(ctx, &path, d, false).await,
            Operation::Patch => self.write(ctx, &path, d, true).await,
            Operation::Delete => self.delete_latest(ctx, &path).await,
            Operation::List => Err(Error::UnsupportedOperation),
        }
    }

    async fn exists(&self, ctx: &Ctx<'_>, d: &FieldData) -> Result<bool> {
        Ok(KeyMeta::load(ctx.storage, &d.string("path"))
            .await?
            .is_some())
    }
}

impl Data {
    async fn read(&self, ctx: &Ctx<'_>, path: &str, version: i64) -> Result<Option<Response>> {
        match lookup(ctx.storage, path, version, self.0.now()).await? {
            Lookup::Missing => Err(Error::NotFound),
            Lookup::Gone { meta, n, vm } => Ok(Some(gone(obj([
                ("data", Value::Null),
                ("metadata", Value::Object(meta.version_json(n, &vm))),
            ])))),
            Lookup::Live { meta, n, vm, data } => Ok(Some(Response::data(obj([
                ("data", Value::Object(data)),
                ("metadata", Value::Object(meta.version_json(n, &vm))),
            ])))),
        }
    }

    /// A write, or with `patch` a merge patch of the current version; both add a version.
    async fn write(
        &self,
        ctx: &Ctx<'_>,
        path: &str,
        d: &FieldData,
        patch: bool,
    ) -> Result<Option<Response>> {
        reject_folder_write(path)?;
        // Fail before taking the lock when there is nothing to write.
        let Some(input) = d.map("data") else {
            return Err(Error::bad("no data provided"));
        };
        let cas = Cas::from_options(d.map("options"))?;

        let _guard = self.0.lock(path).await;
        let cfg = Config::load(ctx.storage).await?;
        let now = self.0.now();
        let existing = KeyMeta::load(ctx.storage, path).await?;
        if patch && existing.is_none() {
            return Ok(Some(super::patch_target_missing()));
        }
        let mut meta = existing.unwrap_or_else(|| KeyMeta::new(now));
        meta.check_cas(&cfg, cas)?;

        let data = if patch {
            let n = meta.current_version;
            let Some(vm) = meta.versions.get(&n).cloned() else {
                return Ok(Some(super::patch_target_missing()));
            };
            if vm.is_gone(now) {
                return Ok(Some(gone(meta.version_json(n, &vm))));
            }
            let Some(current) = StoredVersion::load(ctx.storage, path, n).await? else {
                return Err(Error::internal("could not find version data"));
            };
            let mut data = current.data;
            merge_patch::merge_object(&mut data, input);
            data
        } else {
            input.clone()
        };

        let ops = meta.add_version(path, &cfg, now, &data)?;
        ctx.storage.batch(ops).await?;
        let n = meta.current_version;
        let vm = meta.versions.get(&n).cloned().unwrap_or_default();
        Ok(Some(Response::data(meta.version_json(n, &vm))))
    }

    /// Soft-deletes the current version; a no-op when it is already gone.
    async fn delete_latest(&self, ctx: &Ctx<'_>, path: &str) -> Result<Option<Response>> {
        let _guard = self.0.lock(path).await;
        let now = self.0.now();
        let Some(mut meta) = KeyMeta::load(ctx.storage, path).await? else {
            return Ok(None);
        };
        let n = meta.current_version;
        let Some(vm) = meta.versions.get_mut(&n) else {
            return Ok(None);
        };
        if vm.is_gone(now) {
            return Ok(None);
        }
        vm.deletion = Some(now);
        meta.save(ctx.storage, path).await?;
        Ok(None)
    }
}

/// A deleted or destroyed version: 404, but with the whole envelope so clients can tell it
/// from a secret that never existed.
pub(super) fn gone(data: Map<String, Value>) -> Response {
    Response {
        status: Some(404),
        ..Response::data(data)
    }
}
