//! `delete/:path`, `undelete/:path`, `destroy/:path`: act on a list of versions.
//!
//! Delete sets a deletion time (reads then answer 404 with metadata), undelete clears it
//! (or, under `delete_version_after`, sets it that far from now), destroy removes the
//! version's data for good. Versions that do not exist are skipped.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::framework::{Ctx, FieldData, Path, PathHandler, field};
use lessor_core::logical::{Operation, Response};
use lessor_core::{Error, Result};
use lessor_storage::WriteOp;

use super::store::{Config, KeyMeta, State, version_key};

#[derive(Clone, Copy)]
enum Action {
    Delete,
    Undelete,
    Destroy,
}

pub fn delete_path(state: &Arc<State>) -> Path {
    build(
        state,
        "delete",
        Action::Delete,
        "Soft-deletes versions of a secret.",
    )
}

pub fn undelete_path(state: &Arc<State>) -> Path {
    build(
        state,
        "undelete",
        Action::Undelete,
        "Restores soft-deleted versions of a secret.",
    )
}

pub fn destroy_path(state: &Arc<State>) -> Path {
    build(
        state,
        "destroy",
        Action::Destroy,
        "Permanently removes the data of versions of a secret.",
    )
}

fn build(state: &Arc<State>, prefix: &str, action: Action, help: &'static str) -> Path {
    let handler = Versions {
        state: state.clone(),
        action,
    };
    Path::new(&format!("{prefix}/(?P<path>.*)"), Arc::new(handler))
        .fields(vec![
            field::str("path", "Location of the secret."),
            field::list("versions", "The versions to act on."),
        ])
        .ops(&[Operation::Update])
        .help(help)
}

struct Versions {
    state: Arc<State>,
    action: Action,
}

#[async_trait]
impl PathHandler for Versions {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let path = d.string("path");
        let versions = parse_versions(&d.list_or_empty("versions"))?;
        if versions.is_empty() {
            return Err(Error::bad("No version number provided"));
        }

        let _guard = self.state.lock(&path).await;
        let now = self.state.now();
        let Some(mut meta) = KeyMeta::load(ctx.storage, &path).await? else {
            return Ok(None);
        };
        // An undeleted version starts its `delete_version_after` clock again.
        let rearmed = meta.deletion_from(&Config::load(ctx.storage).await?, now);
        let mut ops = Vec::new();
        for n in versions {
            let Some(vm) = meta.versions.get_mut(&n) else {
                continue;
            };
            match self.action {
                Action::Delete if !vm.is_gone(now) => vm.deletion = Some(now),
                Action::Undelete if !vm.destroyed => vm.deletion = rearmed,
                Action::Destroy => {
                    vm.destroyed = true;
                    ops.push(WriteOp::Delete(version_key(&path, n)));
                }
                _ => {}
            }
        }
        ops.push(meta.put_op(&path)?);
        ctx.storage.batch(ops).await?;
        Ok(None)
    }
}

/// Version numbers from the weakly typed list (`[1, 2]`, `["1"]`, `"1,2"`).
fn parse_versions(raw: &[String]) -> Result<Vec<u64>> {
    raw.iter()
        .map(|s| {
            s.trim().parse::<u64>().map_err(|_| {
                Error::bad(format!(
                    "Field validation failed: error converting input {s:?} for field \
                     \"versions\": cannot parse value as 'int'"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_weakly() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_versions(&l(&["1", " 2"])).unwrap(), vec![1, 2]);
        assert!(parse_versions(&l(&["x"])).is_err());
        assert!(parse_versions(&l(&["-1"])).is_err());
    }
}
