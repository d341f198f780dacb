//! `sys/leases/events`: the access check and parameters of the lease event stream.
//!
//! The HTTP layer serves `GET /v1/sys/leases/events` as Server-Sent Events. It first runs
//! this read through the core, so the stream gets the same token resolution, ACL check
//! (`read` on `sys/leases/events`) and field parsing as any request; the answer carries the
//! parsed `prefix` and `before` (seconds) the stream then uses.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::SysRef;
use crate::Result;
use crate::framework::field;
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response, obj};

pub(super) fn paths(s: &SysRef) -> Vec<Path> {
    vec![
        Path::new("leases/events", Arc::new(Events(s.clone())))
            .fields(vec![
                field::str("prefix", "Only leases whose id starts with this."),
                field::dur(
                    "before",
                    "Announce expiring-soon this long before each expiry.",
                ),
            ])
            .ops(&[Operation::Read])
            .help("Lease events as Server-Sent Events (text/event-stream)."),
    ]
}

struct Events(SysRef);

#[async_trait]
impl PathHandler for Events {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        self.0.active()?;
        Ok(Some(Response::data(obj([
            ("prefix", json!(d.string("prefix").trim_start_matches('/'))),
            ("before", json!(d.secs("before").filter(|s| *s > 0))),
        ]))))
    }
}
