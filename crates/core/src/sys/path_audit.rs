//! `sys/audit` (list), `sys/audit/:path` (enable, disable) and `sys/audit-hash/:path`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::SysRef;
use crate::audit::DeviceEntry;
use crate::framework::field;
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response, obj};
use crate::{Error, Result};

pub(super) fn paths(s: &SysRef) -> Vec<Path> {
    vec![
        Path::new("audit/?", Arc::new(List(s.clone()))).ops(&[Operation::Read]),
        Path::new("audit/(?P<path>.+)", Arc::new(Device(s.clone())))
            .fields(vec![
                field::str("path", "Mount path of the device."),
                field::str("type", "Device type: file or socket."),
                field::str("description", "Free text."),
                field::kv("options", "Device options (string map)."),
                field::bool("local", "Not replicated (accepted for compatibility)."),
            ])
            .ops(&[Operation::Update, Operation::Delete]),
        Path::new("audit-hash/(?P<path>.+)", Arc::new(Hash(s.clone())))
            .fields(vec![
                field::str("path", "Mount path of the device."),
                field::str("input", "The value to hash."),
            ])
            .ops(&[Operation::Update]),
    ]
}

struct List(SysRef);

#[async_trait]
impl PathHandler for List {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        let core = self.0.core()?;
        Ok(Some(Response::data(core.audit.listing()).legacy()))
    }
}

struct Device(SysRef);

#[async_trait]
impl PathHandler for Device {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let (core, active) = self.0.active()?;
        let path = d.string("path");
        if op == Operation::Delete {
            core.audit.disable(active.storage.as_ref(), &path).await?;
            return Ok(None);
        }
        let kind = d.string("type");
        if kind.is_empty() {
            return Err(Error::bad("type is required"));
        }
        let mut entry =
            DeviceEntry::new(&path, &kind, d.kv("options").cloned().unwrap_or_default());
        entry.description = d.string("description");
        entry.local = d.bool("local").unwrap_or(false);
        core.audit.enable(active.storage.as_ref(), entry).await?;
        Ok(None)
    }
}

struct Hash(SysRef);

#[async_trait]
impl PathHandler for Hash {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let core = self.0.core()?;
        let input = d.string("input");
        if input.is_empty() {
            return Err(Error::bad("the \"input\" parameter is empty"));
        }
        let hash = core.audit.hash(&d.string("path"), &input)?;
        Ok(Some(Response::data(obj([("hash", json!(hash))])).legacy()))
    }
}
