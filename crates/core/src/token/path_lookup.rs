//! `lookup`, `lookup-self`, `lookup-accessor` and `LIST accessors`.

use std::sync::Arc;

use async_trait::async_trait;

use super::store::TokenStore;
use super::{INVALID_ACCESSOR, caller_of, self_entry};
use crate::framework::field::str;
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response};
use crate::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    SelfToken,
    Accessor,
    ListAccessors,
}

struct Lookup {
    store: Arc<TokenStore>,
    kind: Kind,
}

pub(super) fn paths(store: &Arc<TokenStore>) -> Vec<Path> {
    let h = |kind| {
        Arc::new(Lookup {
            store: store.clone(),
            kind,
        })
    };
    vec![
        Path::new("lookup", h(Kind::Token))
            .fields(vec![str(
                "token",
                "Token to look up; the caller's when absent.",
            )])
            .ops(&[Operation::Read, Operation::Update])
            .help("Look up a token."),
        Path::new("lookup-self", h(Kind::SelfToken))
            .fields(vec![str("token", "Ignored.")])
            .ops(&[Operation::Read, Operation::Update])
            .help("Look up the caller's token."),
        Path::new("lookup-accessor", h(Kind::Accessor))
            .fields(vec![str("accessor", "Accessor of the token to look up.")])
            .ops(&[Operation::Update])
            .help("Look up a token by its accessor."),
        Path::new("accessors/?", h(Kind::ListAccessors))
            .ops(&[Operation::List])
            .help("List the accessors of every token (sudo)."),
    ]
}

#[async_trait]
impl PathHandler for Lookup {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let now = self.store.now_ms();
        let caller = caller_of(ctx)?;
        let data = match self.kind {
            Kind::Token => {
                let given = d.string("token");
                if given.is_empty() {
                    let (token, e) = self_entry(&self.store, ctx).await?;
                    e.lookup_data(&token, now)
                } else {
                    // Vault answers an unknown token with 403 `bad token`.
                    let e = self
                        .store
                        .resolve(&given)
                        .await?
                        .ok_or(Error::PermissionDenied)?;
                    e.lookup_data(&given, now)
                }
            }
            Kind::SelfToken => {
                let (token, e) = self_entry(&self.store, ctx).await?;
                e.lookup_data(&token, now)
            }
            Kind::Accessor => {
                let e = self
                    .store
                    .lookup_accessor(&d.string("accessor"))
                    .await?
                    .ok_or_else(|| Error::bad(INVALID_ACCESSOR))?;
                e.lookup_data("", now)
            }
            Kind::ListAccessors => {
                if !(caller.sudo || caller.is_root) {
                    return Err(Error::PermissionDenied);
                }
                return Response::list(self.store.list_accessors().await?);
            }
        };
        Ok(Some(Response::data(data)))
    }
}
