//! `tidy/secret-id`: deletes expired secret ids and accessor indexes whose entry is gone.
//! Runs to completion before answering (Vault answers 202 and tidies in the background;
//! the reply keeps Vault's status and warning).

use std::sync::Arc;

use async_trait::async_trait;
use lessor_auth_common::{delete, get_json};
use lessor_core::Result;
use lessor_core::framework::field::FieldData;
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response};

use crate::State;
use crate::secret_id::{self, AccessorIndex};

struct Tidy(Arc<State>);

pub fn path(state: &Arc<State>) -> Path {
    Path::new("tidy/secret-id", Arc::new(Tidy(state.clone())))
        .ops(&[Operation::Update])
        .help("Deletes expired secret ids.")
}

#[async_trait]
impl PathHandler for Tidy {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        let state = &self.0;
        let s = ctx.storage;
        let _g = state.lock.lock().await;
        let now = state.clock.now_unix();
        let mut removed = 0usize;
        for role_dir in s.list("secret_id/").await? {
            let dir = format!("secret_id/{}/", role_dir.trim_end_matches('/'));
            for e in secret_id::all_in(s, &dir).await? {
                if e.expired(now) {
                    secret_id::remove(s, &state.salt, &dir, &e).await?;
                    removed += 1;
                }
            }
        }
        for key in s.list("accessor/").await? {
            let key = format!("accessor/{key}");
            if let Some(i) = get_json::<AccessorIndex>(s, &key).await? {
                let dir = format!("secret_id/{}/", i.role_hmac);
                if secret_id::get(s, &dir, &i.secret_id_hmac).await?.is_none() {
                    delete(s, &key).await?;
                }
            }
        }
        tracing::info!(removed, "approle secret-id tidy done");
        let mut r = Response::default().with_warning(
            "Tidy operation successfully started. Any information from the operation will be \
             printed to the server's log.",
        );
        r.status = Some(202);
        Ok(Some(r))
    }
}
