//! `login`: role id + secret id → a token with the role's settings.
//!
//! Every failure that could tell an attacker which half was wrong answers the same 400
//! `invalid role or secret ID`. A secret id's uses are spent under the mount's lock; a spent
//! or expired one is deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use lessor_auth_common::{check_cidrs, display_name};
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response};
use lessor_core::{Error, Result};
use serde_json::json;

use crate::salt::ct_eq;
use crate::secret_id::{self, SecretIdEntry};
use crate::{State, role};

const INVALID: &str = "invalid role or secret ID";

struct Login(Arc<State>);

pub fn path(state: &Arc<State>) -> Path {
    Path::new("login", Arc::new(Login(state.clone())))
        .fields(vec![
            field::str("role_id", "The role id of the role."),
            field::str("secret_id", "A secret id of the role."),
        ])
        .ops(&[Operation::Update])
        .help("Logs in with a role id and a secret id.")
}

#[async_trait]
impl PathHandler for Login {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let state = &self.0;
        let s = ctx.storage;
        let role_id = d.string("role_id");
        if role_id.trim().is_empty() {
            return Err(Error::bad("missing role_id"));
        }
        let name = role::name_by_role_id(s, &state.salt, &role_id)
            .await?
            .ok_or_else(|| Error::bad(INVALID))?;
        let role = role::get(s, &name)
            .await?
            .filter(|r| ct_eq(&r.role_id, &role_id))
            .ok_or_else(|| Error::bad(INVALID))?;

        let mut metadata = BTreeMap::new();
        let mut token_cidrs = role.token.token_bound_cidrs.clone();
        let mut accessor = String::new();
        if role.bind_secret_id {
            let secret = d.string("secret_id");
            if secret.is_empty() {
                return Err(Error::bad("missing secret_id"));
            }
            let entry = self.consume(ctx, &role.name, &secret).await?;
            if !check_cidrs(&entry.cidr_list, ctx.req.remote_addr) {
                return Err(Error::bad(
                    "source address unauthorized through CIDR restrictions on the secret ID",
                ));
            }
            if !entry.token_bound_cidrs.is_empty() {
                token_cidrs = entry.token_bound_cidrs.clone();
            }
            metadata = entry.metadata;
            accessor = entry.accessor;
        }
        if !check_cidrs(&role.secret_id_bound_cidrs, ctx.req.remote_addr) {
            return Err(Error::bad(
                "source address unauthorized through CIDR restrictions on the role",
            ));
        }
        metadata.insert("role_name".into(), role.name.clone());

        let mut auth = role
            .token
            .auth_spec(display_name(&ctx.req.mount_point, ""), metadata);
        auth.bound_cidrs = token_cidrs;
        auth.internal
            .insert("role_name".into(), json!(role.name.clone()));
        auth.internal
            .insert("secret_id_accessor".into(), json!(accessor));
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }
}

impl Login {
    /// Finds the secret id, checks it, and spends one use of it.
    async fn consume(&self, ctx: &Ctx<'_>, role: &str, secret: &str) -> Result<SecretIdEntry> {
        let state = &self.0;
        let s = ctx.storage;
        let dir = secret_id::role_dir(s, &state.salt, role).await?;
        let hmac = state.salt.hash(s, secret).await?;
        let _g = state.lock.lock().await;
        let mut entry = secret_id::get(s, &dir, &hmac)
            .await?
            .filter(|e| ct_eq(&e.secret_id_hmac, &hmac))
            .ok_or_else(|| Error::bad(INVALID))?;
        let now = state.clock.now_unix();
        if entry.expired(now) {
            secret_id::remove(s, &state.salt, &dir, &entry).await?;
            return Err(Error::bad(INVALID));
        }
        match entry.num_uses {
            0 => {}
            1 => secret_id::remove(s, &state.salt, &dir, &entry).await?,
            _ => {
                entry.num_uses -= 1;
                entry.last_updated_time = now;
                secret_id::update(s, &dir, &entry).await?;
            }
        }
        Ok(entry)
    }
}
