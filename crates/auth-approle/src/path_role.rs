//! `role/` (LIST), `role/<name>` (read, write, delete) and `role/<name>/role-id`.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_auth_common::{parse_cidrs, token_fields};
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response, obj};
use lessor_core::{Error, Result};
use serde_json::json;

use crate::role::{self, Role};
use crate::{ROLE_NAME, State, secret_id};

#[derive(Clone, Copy)]
enum Kind {
    List,
    Role,
    RoleId,
}

struct Handler {
    state: Arc<State>,
    kind: Kind,
}

pub fn paths(state: &Arc<State>) -> Vec<Path> {
    let h = |kind| {
        Arc::new(Handler {
            state: state.clone(),
            kind,
        })
    };
    let name = || field::str("role_name", "Name of the role.").required();
    let mut role_fields = vec![
        name(),
        field::bool("bind_secret_id", "Require a secret id at login.").default(json!(true)),
        field::list(
            "secret_id_bound_cidrs",
            "CIDR blocks logins with a secret id of this role may come from.",
        ),
        field::int(
            "secret_id_num_uses",
            "Uses of each secret id (0 = unlimited).",
        ),
        field::dur(
            "secret_id_ttl",
            "TTL of each secret id (0 = never expires).",
        ),
        field::bool(
            "local_secret_ids",
            "Secret ids are local to this cluster (set at creation only).",
        ),
        field::str(
            "role_id",
            "A custom role id (a UUID is generated otherwise).",
        ),
    ];
    role_fields.extend(token_fields::fields());
    vec![
        Path::new("role/?", h(Kind::List))
            .ops(&[Operation::List])
            .help("Lists the roles."),
        Path::new(&format!("role/{ROLE_NAME}"), h(Kind::Role))
            .fields(role_fields)
            .ops(&[
                Operation::Read,
                Operation::Create,
                Operation::Update,
                Operation::Delete,
            ])
            .existence()
            .help("Manages a role."),
        Path::new(&format!("role/{ROLE_NAME}/role-id"), h(Kind::RoleId))
            .fields(vec![name(), field::str("role_id", "The role id.")])
            .ops(&[Operation::Read, Operation::Update])
            .help("Reads or sets the role id of a role."),
    ]
}

/// Role names are case-insensitive.
pub fn role_name(d: &FieldData) -> String {
    d.string("role_name").to_lowercase()
}

#[async_trait]
impl PathHandler for Handler {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let s = ctx.storage;
        match (self.kind, op) {
            (Kind::List, _) => Response::list(s.list("role/").await?),
            (Kind::Role, Operation::Read) => {
                let r = role::get(s, &role_name(d)).await?.ok_or(Error::NotFound)?;
                Ok(Some(Response::data(r.read_data())))
            }
            (Kind::Role, Operation::Delete) => {
                let name = role_name(d);
                if let Some(r) = role::get(s, &name).await? {
                    let _g = self.state.lock.lock().await;
                    let dir = secret_id::role_dir(s, &self.state.salt, &name).await?;
                    secret_id::remove_all(s, &self.state.salt, &dir).await?;
                    role::remove(s, &self.state.salt, &r).await?;
                }
                Ok(None)
            }
            (Kind::Role, _) => self.write_role(ctx, d).await,
            (Kind::RoleId, Operation::Read) => {
                let r = role::get(s, &role_name(d)).await?.ok_or(Error::NotFound)?;
                Ok(Some(Response::data(obj([("role_id", json!(r.role_id))]))))
            }
            (Kind::RoleId, _) => {
                let mut r = role::get(s, &role_name(d))
                    .await?
                    .ok_or_else(|| Error::bad("role does not exist"))?;
                let new_id = d.string("role_id");
                if new_id.trim().is_empty() {
                    return Err(Error::bad("missing role_id"));
                }
                self.check_role_id_free(ctx, &new_id, &r.name).await?;
                let old = std::mem::replace(&mut r.role_id, new_id);
                role::put(s, &self.state.salt, &r, &old).await?;
                Ok(None)
            }
        }
    }

    async fn exists(&self, ctx: &Ctx<'_>, d: &FieldData) -> Result<bool> {
        Ok(role::get(ctx.storage, &role_name(d)).await?.is_some())
    }
}

impl Handler {
    async fn write_role(&self, ctx: &Ctx<'_>, d: &FieldData) -> Result<Option<Response>> {
        let s = ctx.storage;
        let name = role_name(d);
        let existing = role::get(s, &name).await?;
        let creating = existing.is_none();
        let mut r = existing.unwrap_or_else(|| Role {
            name: name.clone(),
            ..Role::default()
        });
        let old_role_id = r.role_id.clone();

        if let Some(b) = d.bool("bind_secret_id") {
            r.bind_secret_id = b;
        } else if creating {
            r.bind_secret_id = true;
        }
        if let Some(c) = d.list("secret_id_bound_cidrs") {
            parse_cidrs(c)?;
            r.secret_id_bound_cidrs = c.to_vec();
        }
        if let Some(n) = d.int("secret_id_num_uses") {
            if n < 0 {
                return Err(Error::bad("secret_id_num_uses cannot be negative"));
            }
            r.secret_id_num_uses = n;
        }
        if let Some(t) = d.secs("secret_id_ttl") {
            r.secret_id_ttl = t;
        }
        if let Some(l) = d.bool("local_secret_ids") {
            if !creating && l != r.local_secret_ids {
                return Err(Error::bad(
                    "local_secret_ids can only be modified during role creation",
                ));
            }
            r.local_secret_ids = l;
        }
        r.token.update(d)?;

        match d.str("role_id").map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => r.role_id = id.to_string(),
            None if creating => r.role_id = uuid::Uuid::new_v4().to_string(),
            None => {}
        }
        if r.role_id != old_role_id {
            self.check_role_id_free(ctx, &r.role_id, &r.name).await?;
        }

        if !r.bind_secret_id
            && r.secret_id_bound_cidrs.is_empty()
            && r.token.token_bound_cidrs.is_empty()
        {
            return Err(Error::bad(
                "at least one constraint should be enabled on the role",
            ));
        }
        role::put(s, &self.state.salt, &r, &old_role_id).await?;
        Ok(None)
    }

    async fn check_role_id_free(&self, ctx: &Ctx<'_>, role_id: &str, name: &str) -> Result<()> {
        match role::name_by_role_id(ctx.storage, &self.state.salt, role_id).await? {
            Some(owner) if owner != name => Err(Error::bad("role_id already in use")),
            _ => Ok(()),
        }
    }
}

/// The role a path names, or the 400 Vault gives for a missing one.
pub async fn must_get(ctx: &Ctx<'_>, d: &FieldData) -> Result<Role> {
    let name = role_name(d);
    role::get(ctx.storage, &name)
        .await?
        .ok_or_else(|| Error::bad(format!("role \"{name}\" does not exist")))
}
