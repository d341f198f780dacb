//! `login`: role + service-account JWT → a token, once the bindings hold and the cluster's
//! TokenReview confirms the JWT.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use lessor_auth_common::{check_cidrs, display_name};
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response};
use lessor_core::{Error, Result};
use serde_json::json;

use crate::review::{Review, confirm};
use crate::{config, path_role, sa};

struct Login;

pub fn path() -> Path {
    Path::new("login", Arc::new(Login))
        .fields(vec![
            field::str("role", "The role to log in with."),
            field::str("jwt", "The service-account JWT."),
        ])
        .ops(&[Operation::Update])
        .help("Logs in with a Kubernetes service-account JWT.")
}

#[async_trait]
impl PathHandler for Login {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let name = d.string("role").trim().to_lowercase();
        if name.is_empty() {
            return Err(Error::bad("missing role"));
        }
        let jwt = d.string("jwt");
        if jwt.is_empty() {
            return Err(Error::bad("missing jwt"));
        }
        let role = path_role::get(ctx.storage, &name)
            .await?
            .ok_or_else(|| Error::bad(format!("invalid role name {name:?}")))?;
        if !check_cidrs(&role.token.token_bound_cidrs, ctx.req.remote_addr) {
            return Err(Error::PermissionDeniedMsg(
                "request originated from invalid CIDR".into(),
            ));
        }
        let cfg = config::get(ctx.storage)
            .await?
            .ok_or_else(|| Error::bad("could not load backend configuration"))?;
        let account = sa::parse(&jwt, &cfg)?;
        if !role.allows_name(&account.name) {
            return Err(Error::PermissionDeniedMsg(
                "service account name not authorized".into(),
            ));
        }
        if !role.allows_namespace(&account.namespace) {
            return Err(Error::PermissionDeniedMsg(
                "namespace not authorized".into(),
            ));
        }
        let (ca, reviewer) = cfg.effective_ca_and_jwt().await;
        let bearer = if reviewer.is_empty() { &jwt } else { &reviewer };
        confirm(
            &Review {
                host: &cfg.kubernetes_host,
                ca_pem: &ca,
                bearer,
                jwt: &jwt,
                audience: &role.audience,
            },
            &account,
        )
        .await?;

        let metadata = BTreeMap::from([
            ("role".to_string(), name.clone()),
            ("service_account_name".into(), account.name.clone()),
            (
                "service_account_namespace".into(),
                account.namespace.clone(),
            ),
            ("service_account_uid".into(), account.uid.clone()),
            (
                "service_account_secret_name".into(),
                account.secret_name.clone(),
            ),
        ]);
        let detail = format!("{}-{}", account.namespace, account.name);
        let mut auth = role
            .token
            .auth_spec(display_name(&ctx.req.mount_point, &detail), metadata);
        let alias = if role.alias_name_source == "serviceaccount_name" {
            format!("{}/{}", account.namespace, account.name)
        } else {
            account.uid.clone()
        };
        auth.internal.insert("role".into(), json!(name));
        auth.internal.insert("alias".into(), json!(alias));
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }
}
