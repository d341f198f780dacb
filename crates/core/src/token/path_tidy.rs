//! `tidy`: cleans the store's indexes in the background and answers 202 at once.

use std::sync::Arc;

use async_trait::async_trait;

use super::store::TokenStore;
use crate::Result;
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response};

pub(super) const TIDY_STARTED: &str = "Tidy operation successfully started. Any information from \
                                       the operation will be printed to Vault's server logs.";

struct Tidy {
    store: Arc<TokenStore>,
}

pub(super) fn paths(store: &Arc<TokenStore>) -> Vec<Path> {
    vec![
        Path::new(
            "tidy",
            Arc::new(Tidy {
                store: store.clone(),
            }),
        )
        .ops(&[Operation::Update])
        .help("Remove dangling token index entries."),
    ]
}

#[async_trait]
impl PathHandler for Tidy {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        let store = self.store.clone();
        tokio::spawn(async move {
            match store.tidy().await {
                Ok(r) => tracing::info!(
                    dangling_accessors = r.dangling_accessors,
                    dangling_links = r.dangling_links,
                    revoked = r.revoked,
                    "token tidy finished"
                ),
                Err(e) => tracing::warn!(error = %e, "token tidy failed"),
            }
        });
        let mut resp = Response::default().with_warning(TIDY_STARTED);
        resp.status = Some(202);
        Ok(Some(resp))
    }
}
