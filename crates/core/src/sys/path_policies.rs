//! `sys/policy[/:name]` (legacy shapes) and `sys/policies/acl[/:name]`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::SysRef;
use crate::framework::field;
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response, obj};
use crate::{Error, Result};

pub(super) fn paths(s: &SysRef) -> Vec<Path> {
    let one = |legacy: bool| {
        Arc::new(OnePolicy {
            s: s.clone(),
            legacy,
        })
    };
    let list = |legacy: bool| {
        Arc::new(ListPolicies {
            s: s.clone(),
            legacy,
        })
    };
    let fields = || {
        vec![
            field::str("name", "Policy name."),
            field::str("policy", "Policy text (HCL or JSON)."),
            field::str("rules", "Legacy name of policy."),
        ]
    };
    vec![
        Path::new("policy", list(true)).ops(&[Operation::Read, Operation::List]),
        Path::new("policy/(?P<name>.+)", one(true))
            .fields(fields())
            .ops(&[Operation::Read, Operation::Update, Operation::Delete]),
        Path::new("policies/acl/?", list(false)).ops(&[Operation::List]),
        Path::new("policies/acl/(?P<name>.+)", one(false))
            .fields(fields())
            .ops(&[Operation::Read, Operation::Update, Operation::Delete]),
    ]
}

struct ListPolicies {
    s: SysRef,
    legacy: bool,
}

#[async_trait]
impl PathHandler for ListPolicies {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        let (_, active) = self.s.active()?;
        let names = active.policies.list().await?;
        if self.legacy {
            let data = obj([("keys", json!(names)), ("policies", json!(names))]);
            return Ok(Some(Response::data(data).legacy()));
        }
        Response::list(names)
    }
}

struct OnePolicy {
    s: SysRef,
    legacy: bool,
}

#[async_trait]
impl PathHandler for OnePolicy {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let (_, active) = self.s.active()?;
        let name = d.string("name");
        match op {
            Operation::Read => {
                let p = active.policies.get(&name).await?.ok_or(Error::NotFound)?;
                let key = if self.legacy { "rules" } else { "policy" };
                let data = obj([("name", json!(p.name)), (key, json!(p.raw))]);
                let r = Response::data(data);
                Ok(Some(if self.legacy { r.legacy() } else { r }))
            }
            Operation::Delete => {
                active.policies.delete(&name).await?;
                Ok(None)
            }
            _ => {
                let text = d
                    .str("policy")
                    .filter(|t| !t.is_empty())
                    .or_else(|| d.str("rules"));
                active.policies.set(&name, text.unwrap_or_default()).await?;
                Ok(None)
            }
        }
    }
}
