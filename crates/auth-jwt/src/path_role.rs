//! `role/` (LIST) and `role/<name>` (read, write, delete).

use std::sync::Arc;

use async_trait::async_trait;
use lessor_auth_common::{delete, put_json, token_fields};
use lessor_core::framework::field::{self, Field, FieldData, FieldType};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response};
use lessor_core::{Error, Result};
use serde_json::Value;

use crate::role::{self, JwtRole};

const NAME: &str = r"(?P<name>\w(?:[\w\-.]*\w)?)";

struct List;
struct RolePath;

pub fn paths() -> Vec<Path> {
    let mut fields = vec![
        field::str("name", "Name of the role.").required(),
        field::str("role_type", "jwt or oidc (the default)."),
        field::list("bound_audiences", "Audiences a token must carry one of."),
        field::str("user_claim", "The claim naming the user (the alias)."),
        field::str("bound_subject", "The subject a token must carry."),
        field::map(
            "bound_claims",
            "Claims a token must carry, with allowed values.",
        ),
        field::str(
            "bound_claims_type",
            "How bound claim values match: string or glob.",
        ),
        field::map("claim_mappings", "Claims copied into the token's metadata."),
        field::str("groups_claim", "The claim listing the user's groups."),
        field::list("allowed_redirect_uris", "Redirect URIs of the OIDC flow."),
        field::list("oidc_scopes", "Scopes of the OIDC flow."),
        Field::new(
            "clock_skew_leeway",
            FieldType::SignedDuration,
            "Clock skew allowed on time claims (0 = 60s, -1 = none).",
        ),
        Field::new(
            "expiration_leeway",
            FieldType::SignedDuration,
            "Leeway past exp (0 = 150s, -1 = none).",
        ),
        Field::new(
            "not_before_leeway",
            FieldType::SignedDuration,
            "Leeway before nbf (0 = 150s, -1 = none).",
        ),
    ];
    fields.extend(token_fields::fields());
    vec![
        Path::new("role/?", Arc::new(List))
            .ops(&[Operation::List])
            .help("Lists the roles."),
        Path::new(&format!("role/{NAME}"), Arc::new(RolePath))
            .fields(fields)
            .ops(&[
                Operation::Read,
                Operation::Create,
                Operation::Update,
                Operation::Delete,
            ])
            .existence()
            .help("Manages a role."),
    ]
}

#[async_trait]
impl PathHandler for List {
    async fn handle(&self, ctx: &Ctx<'_>, _: Operation, _: &FieldData) -> Result<Option<Response>> {
        Response::list(ctx.storage.list("role/").await?)
    }
}

#[async_trait]
impl PathHandler for RolePath {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let name = d.string("name").to_lowercase();
        match op {
            Operation::Read => {
                let r = role::get(ctx.storage, &name)
                    .await?
                    .ok_or(Error::NotFound)?;
                Ok(Some(Response::data(r.read_data())))
            }
            Operation::Delete => {
                delete(ctx.storage, &role::key(&name)).await?;
                Ok(None)
            }
            _ => {
                let mut r = role::get(ctx.storage, &name).await?.unwrap_or_default();
                update(&mut r, d)?;
                put_json(ctx.storage, &role::key(&name), &r).await?;
                Ok(None)
            }
        }
    }

    async fn exists(&self, ctx: &Ctx<'_>, d: &FieldData) -> Result<bool> {
        Ok(role::get(ctx.storage, &d.string("name").to_lowercase())
            .await?
            .is_some())
    }
}

fn update(r: &mut JwtRole, d: &FieldData) -> Result<()> {
    if let Some(t) = d.str("role_type") {
        r.role_type = match t.trim() {
            "" | "oidc" => "oidc".into(),
            "jwt" => "jwt".into(),
            _ => return Err(Error::bad("invalid 'role_type': must be 'jwt' or 'oidc'")),
        };
    }
    let set_str = |name: &str, slot: &mut String| {
        if let Some(v) = d.str(name) {
            *slot = v.to_string();
        }
    };
    set_str("user_claim", &mut r.user_claim);
    set_str("bound_subject", &mut r.bound_subject);
    set_str("groups_claim", &mut r.groups_claim);
    let set_list = |name: &str, slot: &mut Vec<String>| {
        if let Some(v) = d.list(name) {
            *slot = v.to_vec();
        }
    };
    set_list("bound_audiences", &mut r.bound_audiences);
    set_list("allowed_redirect_uris", &mut r.allowed_redirect_uris);
    set_list("oidc_scopes", &mut r.oidc_scopes);
    if let Some(m) = d.map("bound_claims") {
        r.bound_claims = m.clone();
    }
    if let Some(t) = d.str("bound_claims_type") {
        r.bound_claims_type = match t.trim() {
            "" | "string" => "string".into(),
            "glob" => "glob".into(),
            other => {
                return Err(Error::bad(format!(
                    "invalid 'bound_claims_type': {other:?}"
                )));
            }
        };
    }
    if let Some(m) = d.map("claim_mappings") {
        r.claim_mappings = m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(Error::bad("claim_mappings values must be strings")),
            })
            .collect::<Result<_>>()?;
        let mut targets: Vec<&String> = r.claim_mappings.values().collect();
        targets.sort();
        if targets.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::bad(
                "multiple keys are mapped to the same metadata key",
            ));
        }
    }
    for (name, slot) in [
        ("clock_skew_leeway", &mut r.clock_skew_leeway),
        ("expiration_leeway", &mut r.expiration_leeway),
        ("not_before_leeway", &mut r.not_before_leeway),
    ] {
        if let Some(s) = d.secs(name) {
            *slot = s;
        }
    }
    r.token.update(d)?;
    validate(r)
}

fn validate(r: &JwtRole) -> Result<()> {
    if r.user_claim.is_empty() {
        return Err(Error::bad("a user claim must be defined on the role"));
    }
    for (claim, v) in &r.bound_claims {
        let values: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let ok = values.iter().all(|v| match v {
            Value::String(_) => true,
            Value::Number(_) | Value::Bool(_) => r.bound_claims_type == "string",
            _ => false,
        });
        if !ok {
            return Err(Error::bad(format!(
                "bound claim {claim:?} must be a string, or a list of strings{}",
                if r.bound_claims_type == "glob" {
                    " for glob matching"
                } else {
                    ""
                }
            )));
        }
    }
    match r.role_type.as_str() {
        "jwt" => {
            if r.bound_audiences.is_empty()
                && r.bound_subject.is_empty()
                && r.bound_claims.is_empty()
                && r.token.token_bound_cidrs.is_empty()
            {
                return Err(Error::bad(
                    "must have at least one bound constraint when creating/updating a role",
                ));
            }
        }
        _ => {
            if r.allowed_redirect_uris.is_empty() {
                return Err(Error::bad(
                    "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified.",
                ));
            }
        }
    }
    Ok(())
}
