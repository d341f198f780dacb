//! `sys/key-status`, `sys/rotate`, `sys/seal`, `sys/step-down`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::SysRef;
use crate::Result;
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response, obj};

pub(super) fn paths(s: &SysRef) -> Vec<Path> {
    vec![
        Path::new("key-status", Arc::new(KeyStatus { s: s.clone() })).ops(&[Operation::Read]),
        // `rotate/keyring` is the newer spelling (`bao operator rotate` uses it).
        Path::new("rotate(?:/keyring)?", Arc::new(Rotate { s: s.clone() }))
            .ops(&[Operation::Update]),
        Path::new("seal", Arc::new(SealNow { s: s.clone() })).ops(&[Operation::Update]),
        Path::new("step-down", Arc::new(StepDown)).ops(&[Operation::Update]),
    ]
}

struct KeyStatus {
    s: SysRef,
}

#[async_trait]
impl PathHandler for KeyStatus {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        let core = self.s.core()?;
        let ks = core.barrier.key_status()?;
        let data = obj([
            ("term", json!(ks.term)),
            ("install_time", json!(ks.install_time)),
            ("encryptions", json!(ks.encryptions)),
        ]);
        Ok(Some(Response::data(data).legacy()))
    }
}

struct Rotate {
    s: SysRef,
}

#[async_trait]
impl PathHandler for Rotate {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        self.s.core()?.barrier.rotate().await?;
        Ok(None)
    }
}

struct SealNow {
    s: SysRef,
}

#[async_trait]
impl PathHandler for SealNow {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        // This request keeps its own handle on the unsealed state, so it completes.
        self.s.core()?.seal_now().await;
        Ok(None)
    }
}

struct StepDown;

#[async_trait]
impl PathHandler for StepDown {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        // A single node is always the active one: nothing to step down from.
        Ok(None)
    }
}
