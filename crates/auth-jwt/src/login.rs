//! `login`: a role and a JWT → a token. Every rejection of the token is a 400 saying what
//! failed; a client address outside the role's token CIDRs is a 403.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_auth_common::{check_cidrs, display_name};
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response};
use lessor_core::{Error, Result};
use serde_json::json;

use crate::{State, claims, config, role};

struct Login(Arc<State>);

pub fn path(state: &Arc<State>) -> Path {
    Path::new("login", Arc::new(Login(state.clone())))
        .fields(vec![
            field::str(
                "role",
                "The role to log in with (default: the config's default_role).",
            ),
            field::str("jwt", "The signed JWT."),
        ])
        .ops(&[Operation::Update])
        .help("Logs in with a signed JWT.")
}

#[async_trait]
impl PathHandler for Login {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let cfg = config::get(ctx.storage)
            .await?
            .ok_or_else(|| Error::bad("could not load configuration"))?;
        let name = match d.str("role").map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => r.to_lowercase(),
            None if !cfg.default_role.is_empty() => cfg.default_role.to_lowercase(),
            None => return Err(Error::bad("missing role")),
        };
        let role = role::get(ctx.storage, &name)
            .await?
            .ok_or_else(|| Error::bad(format!("role {name:?} could not be found")))?;
        if role.role_type == "oidc" {
            return Err(Error::bad("role with oidc role_type is not allowed"));
        }
        if !check_cidrs(&role.token.token_bound_cidrs, ctx.req.remote_addr) {
            return Err(Error::PermissionDeniedMsg(
                "request originated from invalid CIDR".into(),
            ));
        }
        let jwt = d.string("jwt");
        if jwt.is_empty() {
            return Err(Error::bad("missing token"));
        }
        let token_claims = self.0.keys.verify(&cfg, &jwt).await?;
        let ok = claims::validate(&role, &cfg, &token_claims, self.0.clock.now_unix())?;

        let mut metadata = ok.metadata;
        metadata.insert("role".into(), name.clone());
        let mut auth = role
            .token
            .auth_spec(display_name(&ctx.req.mount_point, &ok.user), metadata);
        auth.internal.insert("role".into(), json!(name));
        auth.internal.insert("alias".into(), json!(ok.user));
        auth.internal.insert("groups".into(), json!(ok.groups));
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }
}
