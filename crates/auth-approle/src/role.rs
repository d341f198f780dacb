//! The AppRole role record and its storage: the role by name, and the index from the HMAC
//! of its role id back to the name.

use std::sync::Arc;

use lessor_auth_common::{TokenFields, delete, get_json, put_json};
use lessor_core::Result;
use lessor_storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::salt::Salt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub name: String,
    pub role_id: String,
    pub bind_secret_id: bool,
    pub secret_id_bound_cidrs: Vec<String>,
    pub secret_id_num_uses: i64,
    pub secret_id_ttl: i64,
    pub local_secret_ids: bool,
    #[serde(flatten)]
    pub token: TokenFields,
}

impl Default for Role {
    fn default() -> Self {
        Role {
            name: String::new(),
            role_id: String::new(),
            bind_secret_id: true,
            secret_id_bound_cidrs: Vec::new(),
            secret_id_num_uses: 0,
            secret_id_ttl: 0,
            local_secret_ids: false,
            token: TokenFields::default(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RoleIdIndex {
    name: String,
}

impl Role {
    /// The data of `GET role/<name>`.
    pub fn read_data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("bind_secret_id".into(), json!(self.bind_secret_id));
        m.insert(
            "secret_id_bound_cidrs".into(),
            json!(self.secret_id_bound_cidrs),
        );
        m.insert("secret_id_num_uses".into(), json!(self.secret_id_num_uses));
        m.insert("secret_id_ttl".into(), json!(self.secret_id_ttl));
        m.insert("local_secret_ids".into(), json!(self.local_secret_ids));
        self.token.read_into(&mut m);
        m
    }
}

pub fn role_key(name: &str) -> String {
    format!("role/{name}")
}

pub async fn get(s: &Arc<dyn Storage>, name: &str) -> Result<Option<Role>> {
    get_json(s, &role_key(name)).await
}

/// Writes the role and moves its role-id index when the role id changed.
pub async fn put(s: &Arc<dyn Storage>, salt: &Salt, role: &Role, old_role_id: &str) -> Result<()> {
    if !old_role_id.is_empty() && old_role_id != role.role_id {
        delete(s, &index_key(s, salt, old_role_id).await?).await?;
    }
    put_json(
        s,
        &index_key(s, salt, &role.role_id).await?,
        &RoleIdIndex {
            name: role.name.clone(),
        },
    )
    .await?;
    put_json(s, &role_key(&role.name), role).await
}

pub async fn remove(s: &Arc<dyn Storage>, salt: &Salt, role: &Role) -> Result<()> {
    delete(s, &index_key(s, salt, &role.role_id).await?).await?;
    delete(s, &role_key(&role.name)).await
}

/// The name of the role whose role id is `role_id`, if any.
pub async fn name_by_role_id(
    s: &Arc<dyn Storage>,
    salt: &Salt,
    role_id: &str,
) -> Result<Option<String>> {
    Ok(
        get_json::<RoleIdIndex>(s, &index_key(s, salt, role_id).await?)
            .await?
            .map(|i| i.name),
    )
}

async fn index_key(s: &Arc<dyn Storage>, salt: &Salt, role_id: &str) -> Result<String> {
    Ok(format!("role_id/{}", salt.hash(s, role_id).await?))
}
