//! `roles/<name>` read/write/delete and `LIST roles`. Writes merge into an existing role:
//! only the fields a request sends change.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use regex::Regex;

use super::ROLE_NAME;
use super::role::TokenRole;
use super::store::TokenStore;
use crate::framework::field::{bool, dur, int, list, str};
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, Response};
use crate::{Error, Result};

static PATH_SUFFIX: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^\w[\w\-.]+\w$").ok());

struct Roles {
    store: Arc<TokenStore>,
}

struct RoleList {
    store: Arc<TokenStore>,
}

pub(super) fn paths(store: &Arc<TokenStore>) -> Vec<Path> {
    vec![
        Path::new(
            "roles/?",
            Arc::new(RoleList {
                store: store.clone(),
            }),
        )
        .ops(&[Operation::List])
        .help("List token roles."),
        Path::new(
            &format!("roles/{ROLE_NAME}"),
            Arc::new(Roles {
                store: store.clone(),
            }),
        )
        .fields(fields())
        .ops(&[
            Operation::Read,
            Operation::Create,
            Operation::Update,
            Operation::Delete,
        ])
        .existence()
        .help("Manage a token role."),
    ]
}

fn fields() -> Vec<crate::framework::Field> {
    vec![
        str("role_name", "Name of the role.").required(),
        list("allowed_policies", "Policies tokens of this role may have."),
        list(
            "disallowed_policies",
            "Policies tokens of this role may not have.",
        ),
        list(
            "allowed_policies_glob",
            "Glob patterns of allowed policies.",
        ),
        list(
            "disallowed_policies_glob",
            "Glob patterns of disallowed policies.",
        ),
        bool("orphan", "Tokens of this role are orphans."),
        bool("renewable", "Tokens of this role can be renewed."),
        str("path_suffix", "Suffix appended to the creation path."),
        list(
            "allowed_entity_aliases",
            "Entity aliases tokens may be created for.",
        ),
        dur("token_period", "Period of the tokens."),
        dur("token_explicit_max_ttl", "Explicit max TTL of the tokens."),
        list("token_bound_cidrs", "CIDRs the tokens may be used from."),
        bool("token_no_default_policy", "Do not add the default policy."),
        int("token_num_uses", "Maximum uses of each token."),
        str("token_type", "Token type (service)."),
        dur("period", "Deprecated: use token_period."),
        dur(
            "explicit_max_ttl",
            "Deprecated: use token_explicit_max_ttl.",
        ),
        list("bound_cidrs", "Deprecated: use token_bound_cidrs."),
    ]
}

/// Applies the fields the request sent to `r`.
fn apply(r: &mut TokenRole, d: &FieldData) -> Result<()> {
    let lists: [(&str, &mut Vec<String>); 7] = [
        ("allowed_policies", &mut r.allowed_policies),
        ("disallowed_policies", &mut r.disallowed_policies),
        ("allowed_policies_glob", &mut r.allowed_policies_glob),
        ("disallowed_policies_glob", &mut r.disallowed_policies_glob),
        ("allowed_entity_aliases", &mut r.allowed_entity_aliases),
        ("token_bound_cidrs", &mut r.token_bound_cidrs),
        ("bound_cidrs", &mut r.bound_cidrs),
    ];
    for (name, slot) in lists {
        if d.is_set(name) {
            let mut v = d.list_or_empty(name);
            if name.contains("policies") {
                v = v.iter().map(|p| p.trim().to_lowercase()).collect();
                v.sort();
                v.dedup();
            }
            *slot = v;
        }
    }
    for (name, slot) in [
        ("orphan", &mut r.orphan),
        ("renewable", &mut r.renewable),
        ("token_no_default_policy", &mut r.token_no_default_policy),
    ] {
        if let Some(b) = d.bool(name) {
            *slot = b;
        }
    }
    for (name, slot) in [
        ("token_period", &mut r.token_period),
        ("token_explicit_max_ttl", &mut r.token_explicit_max_ttl),
        ("period", &mut r.period),
        ("explicit_max_ttl", &mut r.explicit_max_ttl),
    ] {
        if let Some(s) = d.secs(name) {
            *slot = s.max(0);
        }
    }
    if let Some(n) = d.int("token_num_uses") {
        if n < 0 {
            return Err(Error::bad("token_num_uses cannot be negative"));
        }
        r.token_num_uses = n;
    }
    if let Some(s) = d.str("path_suffix") {
        let s = s.trim_matches('/');
        if !s.is_empty() && !PATH_SUFFIX.as_ref().is_some_and(|re| re.is_match(s)) {
            return Err(Error::bad(
                r"given role path suffix contains invalid characters; must match \w[\w-.]+\w",
            ));
        }
        r.path_suffix = s.to_string();
    }
    if let Some(t) = d.str("token_type") {
        r.token_type = match t {
            "" | "default" | "default-service" => "default-service".into(),
            "service" => "service".into(),
            "batch" | "default-batch" => {
                return Err(Error::bad("batch tokens are not supported"));
            }
            _ => return Err(Error::bad("invalid 'token_type' value")),
        };
    }
    Ok(())
}

#[async_trait]
impl PathHandler for Roles {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let name = d.string("role_name");
        match op {
            Operation::Read => match self.store.get_role(&name).await? {
                Some(r) => Ok(Some(Response::data(r.read_data()))),
                None => Err(Error::NotFound),
            },
            Operation::Delete => {
                self.store.delete_role(&name).await?;
                Ok(None)
            }
            _ => {
                let mut r = self
                    .store
                    .get_role(&name)
                    .await?
                    .unwrap_or_else(|| TokenRole {
                        name: name.clone(),
                        ..Default::default()
                    });
                apply(&mut r, d)?;
                self.store.put_role(&r).await?;
                Ok(None)
            }
        }
    }

    async fn exists(&self, _ctx: &Ctx<'_>, d: &FieldData) -> Result<bool> {
        Ok(self.store.get_role(&d.string("role_name")).await?.is_some())
    }
}

#[async_trait]
impl PathHandler for RoleList {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        Response::list(self.store.list_roles().await?)
    }
}
