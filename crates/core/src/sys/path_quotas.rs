//! `sys/quotas/lease-count[/:name]`: create, read, delete and list lease-count quotas.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::SysRef;
use crate::framework::field;
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response, obj};
use crate::quota::{self, LeaseCountRule};
use crate::{Error, Result};

pub(super) fn paths(s: &SysRef) -> Vec<Path> {
    vec![
        Path::new("quotas/lease-count/?", Arc::new(ListQuotas(s.clone()))).ops(&[Operation::List]),
        Path::new(
            "quotas/lease-count/(?P<name>[^/]+)",
            Arc::new(OneQuota(s.clone())),
        )
        .fields(vec![
            field::str("name", "The name of the quota."),
            field::str(
                "path",
                "A mount or a path below one; empty for a global quota.",
            ),
            field::int(
                "max_leases",
                "Maximum number of leases allowed by the quota.",
            ),
            field::str("type", "The quota type: lease-count."),
            field::bool(
                "inheritable",
                "Accepted for compatibility; quotas here are global.",
            ),
            field::str(
                "role",
                "Accepted for compatibility; login roles are not scoped.",
            ),
        ])
        .ops(&[Operation::Read, Operation::Update, Operation::Delete])
        .help("Lease-count quotas: at most max_leases live leases under a path."),
    ]
}

struct ListQuotas(SysRef);

#[async_trait]
impl PathHandler for ListQuotas {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        let (_, active) = self.0.active()?;
        Response::list(active.quotas.names())
    }
}

struct OneQuota(SysRef);

#[async_trait]
impl PathHandler for OneQuota {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let (_, active) = self.0.active()?;
        let name = d.string("name");
        match op {
            Operation::Read => {
                let (rule, counter) = active.quotas.get(&name).ok_or(Error::NotFound)?;
                Ok(Some(Response::data(obj([
                    ("name", json!(rule.name)),
                    ("path", json!(display_path(&rule.path, &active))),
                    ("type", json!(quota::TYPE)),
                    ("max_leases", json!(rule.max_leases)),
                    ("counter", json!(counter)),
                    ("inheritable", json!(rule.path.is_empty())),
                    ("role", json!("")),
                ]))))
            }
            Operation::Delete => {
                active.quotas.delete(&name).await?;
                Ok(None)
            }
            _ => {
                if let Some(t) = d.str("type").filter(|t| !t.is_empty() && *t != quota::TYPE) {
                    return Err(Error::bad(format!("unsupported quota type {t:?}")));
                }
                let existing = active.quotas.get(&name).map(|(r, _)| r);
                let max_leases = match d.int("max_leases") {
                    Some(n) => n,
                    None => existing.as_ref().map_or(0, |r| r.max_leases),
                };
                if max_leases <= 0 {
                    return Err(Error::bad("max_leases must be greater than 0"));
                }
                let path = match d.str("path") {
                    Some(p) => quota::normalize(p),
                    None => existing.map(|r| r.path).unwrap_or_default(),
                };
                if !path.is_empty() && active.router.matching(&format!("{path}/")).is_none() {
                    return Err(Error::bad(format!("invalid mount path {path:?}")));
                }
                active
                    .quotas
                    .put(LeaseCountRule {
                        name,
                        path,
                        max_leases,
                    })
                    .await?;
                Ok(None)
            }
        }
    }
}

/// A rule on a whole mount reads back as the mount's path (`test/`), as Vault shows it.
fn display_path(path: &str, active: &crate::core::Active) -> String {
    match active.router.get(&format!("{path}/")) {
        Some(_) => format!("{path}/"),
        None => path.to_string(),
    }
}
