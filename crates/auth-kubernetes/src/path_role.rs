//! `role/` (LIST) and `role/<name>`: which service accounts (names and namespaces, `*` and
//! globs allowed) may log in, the audience their tokens must be valid for, and the token
//! fields.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_auth_common::{TokenFields, delete, get_json, glob_match, put_json, token_fields};
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response};
use lessor_core::{Error, Result};
use lessor_storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const NAME: &str = r"(?P<name>\w(?:[\w\-.]*\w)?)";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct K8sRole {
    pub bound_service_account_names: Vec<String>,
    pub bound_service_account_namespaces: Vec<String>,
    /// Stored and read back; namespace labels cannot be looked up without the cluster's
    /// namespace API, so a selector alone authorizes no namespace.
    pub bound_service_account_namespace_selector: String,
    pub audience: String,
    pub alias_name_source: String,
    #[serde(flatten)]
    pub token: TokenFields,
}

impl Default for K8sRole {
    fn default() -> Self {
        K8sRole {
            bound_service_account_names: Vec::new(),
            bound_service_account_namespaces: Vec::new(),
            bound_service_account_namespace_selector: String::new(),
            audience: String::new(),
            alias_name_source: "serviceaccount_uid".into(),
            token: TokenFields::default(),
        }
    }
}

fn any_matches(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, value))
}

impl K8sRole {
    pub fn allows_name(&self, name: &str) -> bool {
        any_matches(&self.bound_service_account_names, name)
    }

    pub fn allows_namespace(&self, ns: &str) -> bool {
        any_matches(&self.bound_service_account_namespaces, ns)
    }

    fn read_data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "bound_service_account_names".into(),
            json!(self.bound_service_account_names),
        );
        m.insert(
            "bound_service_account_namespaces".into(),
            json!(self.bound_service_account_namespaces),
        );
        m.insert(
            "bound_service_account_namespace_selector".into(),
            json!(self.bound_service_account_namespace_selector),
        );
        m.insert("audience".into(), json!(self.audience));
        m.insert("alias_name_source".into(), json!(self.alias_name_source));
        self.token.read_into(&mut m);
        m
    }
}

fn key(name: &str) -> String {
    format!("role/{name}")
}

pub async fn get(s: &Arc<dyn Storage>, name: &str) -> Result<Option<K8sRole>> {
    get_json(s, &key(name)).await
}

struct List;
struct RolePath;

pub fn paths() -> Vec<Path> {
    let mut fields = vec![
        field::str("name", "Name of the role.").required(),
        field::list(
            "bound_service_account_names",
            "Service-account names allowed (`*` = any; globs).",
        ),
        field::list(
            "bound_service_account_namespaces",
            "Namespaces allowed (`*` = any; globs).",
        ),
        field::str(
            "bound_service_account_namespace_selector",
            "A label selector of namespaces (stored; not evaluated).",
        ),
        field::str("audience", "The audience the JWT must be valid for."),
        field::str(
            "alias_name_source",
            "serviceaccount_uid (default) or serviceaccount_name.",
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
                let r = get(ctx.storage, &name).await?.ok_or(Error::NotFound)?;
                Ok(Some(Response::data(r.read_data())))
            }
            Operation::Delete => {
                delete(ctx.storage, &key(&name)).await?;
                Ok(None)
            }
            _ => {
                let mut r = get(ctx.storage, &name).await?.unwrap_or_default();
                update(&mut r, d)?;
                put_json(ctx.storage, &key(&name), &r).await?;
                Ok(None)
            }
        }
    }

    async fn exists(&self, ctx: &Ctx<'_>, d: &FieldData) -> Result<bool> {
        Ok(get(ctx.storage, &d.string("name").to_lowercase())
            .await?
            .is_some())
    }
}

fn update(r: &mut K8sRole, d: &FieldData) -> Result<()> {
    if let Some(v) = d.list("bound_service_account_names") {
        r.bound_service_account_names = v.to_vec();
    }
    if let Some(v) = d.list("bound_service_account_namespaces") {
        r.bound_service_account_namespaces = v.to_vec();
    }
    if let Some(v) = d.str("bound_service_account_namespace_selector") {
        r.bound_service_account_namespace_selector = v.to_string();
    }
    if let Some(v) = d.str("audience") {
        r.audience = v.to_string();
    }
    if let Some(v) = d.str("alias_name_source") {
        r.alias_name_source = match v {
            "" | "serviceaccount_uid" => "serviceaccount_uid".into(),
            "serviceaccount_name" => "serviceaccount_name".into(),
            other => {
                return Err(Error::bad(format!(
                    "invalid alias_name_source {other:?}: must be serviceaccount_uid or \
                     serviceaccount_name"
                )));
            }
        };
    }
    r.token.update(d)?;
    if r.bound_service_account_names.is_empty() {
        return Err(Error::bad(
            "\"bound_service_account_names\" can not be empty",
        ));
    }
    if r.bound_service_account_namespaces.is_empty()
        && r.bound_service_account_namespace_selector.is_empty()
    {
        return Err(Error::bad(
            "\"bound_service_account_namespaces\" can not be empty",
        ));
    }
    let star = |l: &[String]| l.len() == 1 && l[0] == "*";
    if star(&r.bound_service_account_names) && star(&r.bound_service_account_namespaces) {
        return Err(Error::bad(
            "service_account_names and service_account_namespaces can not both be \"*\"",
        ));
    }
    Ok(())
}
