//! `config`: the mount-wide defaults of KV v2 (`max_versions`, `cas_required`,
//! `delete_version_after`). A write changes only the fields it sends.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::framework::{Ctx, FieldData, FieldType, Path, PathHandler, field};
use lessor_core::logical::{Operation, Response, obj};
use lessor_core::{Error, Result};
use serde_json::json;

use super::store::{Config, State, go_duration};

pub fn path(state: &Arc<State>) -> Path {
    Path::new("config", Arc::new(ConfigHandler(state.clone())))
        .fields(vec![
            field::int(
                "max_versions",
                "Versions kept per secret; 0 means the default of 10.",
            ),
            field::bool(
                "cas_required",
                "Require the cas option on every data write.",
            ),
            field::Field::new(
                "delete_version_after",
                FieldType::SignedDuration,
                "Soft-delete each new version this long after it is written; 0 disables.",
            ),
        ])
        .ops(&[Operation::Read, Operation::Update])
        .help("Configures the defaults of the KV v2 backend.")
}

struct ConfigHandler(Arc<State>);

/// Lock name for the config record; no secret path can start with a NUL.
const CONFIG_LOCK: &str = "\0config";

#[async_trait]
impl PathHandler for ConfigHandler {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let _guard = self.0.lock(CONFIG_LOCK).await;
        let mut cfg = Config::load(ctx.storage).await?;
        if op == Operation::Read {
            return Ok(Some(Response::data(obj([
                ("cas_required", json!(cfg.cas_required)),
                (
                    "delete_version_after",
                    go_duration(cfg.delete_version_after),
                ),
                ("max_versions", json!(cfg.max_versions)),
            ]))));
        }
        if let Some(m) = d.int("max_versions") {
            cfg.max_versions =
                u64::try_from(m).map_err(|_| Error::bad("max_versions must not be negative"))?;
        }
        if let Some(c) = d.bool("cas_required") {
            cfg.cas_required = c;
        }
        if let Some(s) = d.secs("delete_version_after") {
            // A negative value turns the feature off, as 0 does.
            cfg.delete_version_after = s.max(0);
        }
        cfg.save(ctx.storage).await?;
        Ok(None)
    }
}
