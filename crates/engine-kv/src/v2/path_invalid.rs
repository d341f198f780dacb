//! Everything else under a KV v2 mount: the v1-style paths clients hit when they forget the
//! `data/` prefix. Answers 404 with a warning that names the right CLI command.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::Result;
use lessor_core::framework::{Ctx, FieldData, Path, PathHandler};
use lessor_core::logical::{Operation, Response};

pub fn path() -> Path {
    Path::new(".*", Arc::new(Invalid))
        .ops(&[
            Operation::Read,
            Operation::Create,
            Operation::Update,
            Operation::Delete,
            Operation::List,
        ])
        .any_fields()
        .help("Not a KV v2 endpoint: use data/, metadata/, delete/, undelete/, destroy/.")
}

struct Invalid;

#[async_trait]
impl PathHandler for Invalid {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        let command = match op {
            Operation::Create | Operation::Update => "put",
            Operation::Read => "get",
            Operation::List => "list",
            Operation::Delete => "delete",
            Operation::Patch => "patch",
        };
        let mut resp = Response::default().with_warning(format!(
            "Invalid path for a versioned K/V secrets engine. See the API docs for the \
             appropriate API endpoints to use. If using the Vault CLI, use 'vault kv \
             {command}' for this operation."
        ));
        resp.status = Some(404);
        Ok(Some(resp))
    }
}
