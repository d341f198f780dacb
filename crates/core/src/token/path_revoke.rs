//! `revoke`, `revoke-self`, `revoke-accessor` (the token and its descendants) and
//! `revoke-orphan` (the token alone; its children become orphans; sudo).

use std::sync::Arc;

use async_trait::async_trait;

use super::store::TokenStore;
use super::{caller_of, self_entry};
use crate::framework::field::str;
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response};
use crate::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    SelfToken,
    Accessor,
    Orphan,
}

struct Revoke {
    store: Arc<TokenStore>,
    kind: Kind,
}

pub(super) fn paths(store: &Arc<TokenStore>) -> Vec<Path> {
    let h = |kind| {
        Arc::new(Revoke {
            store: store.clone(),
            kind,
        })
    };
    vec![
        Path::new("revoke", h(Kind::Token))
            .fields(vec![str("token", "Token to revoke.")])
            .ops(&[Operation::Update])
            .help("Revoke a token and its children."),
        Path::new("revoke-self", h(Kind::SelfToken))
            .ops(&[Operation::Update])
            .help("Revoke the caller's token and its children."),
        Path::new("revoke-accessor", h(Kind::Accessor))
            .fields(vec![str("accessor", "Accessor of the token to revoke.")])
            .ops(&[Operation::Update])
            .help("Revoke a token by its accessor."),
        Path::new("revoke-orphan", h(Kind::Orphan))
            .fields(vec![str("token", "Token to revoke.")])
            .ops(&[Operation::Update])
            .help("Revoke a token, leaving its children as orphans (sudo)."),
    ]
}

fn token_field(d: &FieldData) -> Result<String> {
    let token = d.string("token");
    if token.is_empty() {
        return Err(Error::bad("missing token ID"));
    }
    Ok(token)
}

#[async_trait]
impl PathHandler for Revoke {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        match self.kind {
            Kind::Token => {
                // An unknown token is already revoked: success.
                if let Some(e) = self.store.resolve(&token_field(d)?).await? {
                    self.store.revoke_tree(&e.id_hash).await?;
                }
            }
            Kind::SelfToken => {
                let (_, e) = self_entry(&self.store, ctx).await?;
                self.store.revoke_tree(&e.id_hash).await?;
            }
            Kind::Accessor => match self.store.lookup_accessor(&d.string("accessor")).await? {
                Some(e) => self.store.revoke_tree(&e.id_hash).await?,
                None => {
                    return Ok(Some(
                        Response::default().with_warning("No token found with this accessor"),
                    ));
                }
            },
            Kind::Orphan => {
                let caller = caller_of(ctx)?;
                if !(caller.sudo || caller.is_root) {
                    return Err(Error::bad(
                        "root or sudo privileges required to revoke and orphan",
                    ));
                }
                let token = token_field(d)?;
                let e = self
                    .store
                    .resolve(&token)
                    .await?
                    .ok_or_else(|| Error::bad("token to revoke not found"))?;
                self.store.revoke_orphan(&e.id_hash).await?;
            }
        }
        Ok(None)
    }
}
