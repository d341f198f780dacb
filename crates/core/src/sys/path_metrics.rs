//! `sys/metrics`: the telemetry of this node, for a token with `read` on it.

use std::sync::Arc;

use async_trait::async_trait;

use super::SysRef;
use crate::Result;
use crate::framework::field;
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, RawBody, Response};
use crate::metrics::{PROMETHEUS_CONTENT_TYPE, Rendered, wants_prometheus};

pub(super) fn paths(s: &SysRef) -> Vec<Path> {
    vec![
        Path::new("metrics", Arc::new(Metrics(s.clone())))
            .fields(vec![field::str(
                "format",
                "`prometheus` for Prometheus text; JSON otherwise.",
            )])
            .ops(&[Operation::Read]),
    ]
}

struct Metrics(SysRef);

#[async_trait]
impl PathHandler for Metrics {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let core = self.0.core()?;
        let prometheus = wants_prometheus(&d.string("format"))?;
        let raw = match core.metrics.render(&core, prometheus).await? {
            Rendered::Text(text) => RawBody {
                status: 200,
                body: None,
                content_type: Some(PROMETHEUS_CONTENT_TYPE.to_string()),
                text: Some(text),
            },
            Rendered::Json(v) => RawBody {
                status: 200,
                body: Some(v),
                content_type: None,
                text: None,
            },
        };
        Ok(Some(Response {
            raw: Some(raw),
            ..Default::default()
        }))
    }
}
