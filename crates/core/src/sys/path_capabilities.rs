//! `sys/capabilities`, `sys/capabilities-self`, `sys/capabilities-accessor`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::SysRef;
use crate::framework::field;
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response};
use crate::{Error, Result};

#[derive(Clone, Copy)]
enum Whose {
    Token,
    SelfToken,
    Accessor,
}

pub(super) fn paths(s: &SysRef) -> Vec<Path> {
    let mk = |whose| {
        Arc::new(Capabilities {
            s: s.clone(),
            whose,
        })
    };
    let fields = || {
        vec![
            field::str("token", "Token to check."),
            field::str("accessor", "Accessor of the token to check."),
            field::list("paths", "Paths to check."),
            field::list("path", "Legacy single path."),
        ]
    };
    vec![
        Path::new("capabilities", mk(Whose::Token))
            .fields(fields())
            .ops(&[Operation::Update]),
        Path::new("capabilities-self", mk(Whose::SelfToken))
            .fields(fields())
            .ops(&[Operation::Update]),
        Path::new("capabilities-accessor", mk(Whose::Accessor))
            .fields(fields())
            .ops(&[Operation::Update]),
    ]
}

struct Capabilities {
    s: SysRef,
    whose: Whose,
}

#[async_trait]
impl PathHandler for Capabilities {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let (_, active) = self.s.active()?;
        let mut paths = d.list_or_empty("paths");
        if paths.is_empty() {
            paths = d.list_or_empty("path");
        }
        if paths.is_empty() {
            return Err(Error::bad("missing paths"));
        }
        let entry = match self.whose {
            Whose::SelfToken => match ctx.req.client_token.as_deref() {
                Some(t) => active.tokens.resolve(t).await?,
                None => None,
            },
            Whose::Token => {
                let t = d
                    .str("token")
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| Error::bad("missing token"))?;
                active.tokens.resolve(t).await?
            }
            Whose::Accessor => {
                let a = d
                    .str("accessor")
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| Error::bad("missing accessor"))?;
                active.tokens.lookup_accessor(a).await?
            }
        };
        let entry = entry.ok_or_else(|| Error::bad("invalid token"))?;
        let acl = active.policies.acl(&entry.policies).await?;
        let mut data = Map::new();
        for p in &paths {
            let caps = acl.capabilities(p.trim_start_matches('/'));
            data.insert(p.clone(), json!(caps));
        }
        if paths.len() == 1
            && let Some(v) = data.get(&paths[0]).cloned()
        {
            data.insert("capabilities".into(), v);
        }
        let mut r = Response::data(data);
        r.legacy_top_level = true;
        let _ = Value::Null;
        Ok(Some(r))
    }
}
