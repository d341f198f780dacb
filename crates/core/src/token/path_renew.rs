//! `renew`, `renew-self` and `renew-accessor`: each answers the auth block with the TTL
//! just granted.

use std::sync::Arc;

use async_trait::async_trait;

use super::params::TtlLimits;
use super::store::TokenStore;
use super::{INVALID_ACCESSOR, self_entry};
use crate::framework::field::{dur, str};
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response};
use crate::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    SelfToken,
    Accessor,
}

struct Renew {
    store: Arc<TokenStore>,
    kind: Kind,
}

pub(super) fn paths(store: &Arc<TokenStore>) -> Vec<Path> {
    let h = |kind| {
        Arc::new(Renew {
            store: store.clone(),
            kind,
        })
    };
    let increment = || dur("increment", "Requested extension, counted from now.");
    vec![
        Path::new("renew", h(Kind::Token))
            .fields(vec![str("token", "Token to renew."), increment()])
            .ops(&[Operation::Update])
            .help("Renew a token."),
        Path::new("renew-self", h(Kind::SelfToken))
            .fields(vec![str("token", "Ignored."), increment()])
            .ops(&[Operation::Update])
            .help("Renew the caller's token."),
        Path::new("renew-accessor", h(Kind::Accessor))
            .fields(vec![
                str("accessor", "Accessor of the token to renew."),
                increment(),
            ])
            .ops(&[Operation::Update])
            .help("Renew a token by its accessor."),
    ]
}

#[async_trait]
impl PathHandler for Renew {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        // (client token to echo, id hash)
        let (token, id_hash) = match self.kind {
            Kind::Token => {
                let token = d.string("token");
                if token.is_empty() {
                    return Err(Error::bad("missing token ID"));
                }
                let e = self
                    .store
                    .resolve(&token)
                    .await?
                    .ok_or_else(|| Error::bad("token not found"))?;
                (token, e.id_hash)
            }
            Kind::SelfToken => {
                let (token, e) = self_entry(&self.store, ctx).await?;
                (token, e.id_hash)
            }
            Kind::Accessor => {
                let e = self
                    .store
                    .lookup_accessor(&d.string("accessor"))
                    .await?
                    .ok_or_else(|| Error::bad(INVALID_ACCESSOR))?;
                (String::new(), e.id_hash)
            }
        };
        let increment = d.secs("increment").unwrap_or(0);
        let r = self
            .store
            .renew(&id_hash, increment, TtlLimits::from(ctx.system))
            .await?;
        let mut resp = Response {
            auth: Some(r.entry.auth(&token, r.ttl)),
            ..Default::default()
        };
        resp.warnings.extend(r.warning);
        Ok(Some(resp))
    }
}
