//! Token roles: named presets for `auth/token/create/<role>` that bound the policies a
//! token may get, make it an orphan or periodic, and extend its path. Stored in the token
//! store's own view under `roles/`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::entry::glob_match;
use super::store::{TokenStore, min_nonzero};
use crate::{Error, Result};

const ROLE_PREFIX: &str = "roles/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenRole {
    pub name: String,
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub allowed_policies_glob: Vec<String>,
    pub disallowed_policies_glob: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub path_suffix: String,
    pub allowed_entity_aliases: Vec<String>,
    pub token_period: i64,
    pub token_explicit_max_ttl: i64,
    pub token_bound_cidrs: Vec<String>,
    pub token_no_default_policy: bool,
    pub token_num_uses: i64,
    /// `default-service` or `service` (batch tokens are not issued).
    pub token_type: String,
    /// Legacy spellings, kept as written and read back under their own names.
    pub period: i64,
    pub explicit_max_ttl: i64,
    pub bound_cidrs: Vec<String>,
}

impl Default for TokenRole {
    fn default() -> Self {
        TokenRole {
            name: String::new(),
            allowed_policies: Vec::new(),
            disallowed_policies: Vec::new(),
            allowed_policies_glob: Vec::new(),
            disallowed_policies_glob: Vec::new(),
            orphan: false,
            renewable: true,
            path_suffix: String::new(),
            allowed_entity_aliases: Vec::new(),
            token_period: 0,
            token_explicit_max_ttl: 0,
            token_bound_cidrs: Vec::new(),
            token_no_default_policy: false,
            token_num_uses: 0,
            token_type: "default-service".into(),
            period: 0,
            explicit_max_ttl: 0,
            bound_cidrs: Vec::new(),
        }
    }
}

impl TokenRole {
    pub fn effective_period(&self) -> i64 {
        if self.token_period > 0 {
            self.token_period
        } else {
            self.period.max(0)
        }
    }

    pub fn effective_explicit_max_ttl(&self) -> i64 {
        min_nonzero(self.token_explicit_max_ttl, self.explicit_max_ttl)
    }

    pub fn effective_bound_cidrs(&self) -> Vec<String> {
        if self.token_bound_cidrs.is_empty() {
            self.bound_cidrs.clone()
        } else {
            self.token_bound_cidrs.clone()
        }
    }

    /// True when the role restricts policies at all (then the parent's policies do not
    /// bound the child's).
    pub fn restricts_policies(&self) -> bool {
        !(self.allowed_policies.is_empty()
            && self.disallowed_policies.is_empty()
            && self.allowed_policies_glob.is_empty()
            && self.disallowed_policies_glob.is_empty())
    }

    pub fn allows(&self, policy: &str) -> bool {
        self.allowed_policies.iter().any(|p| p == policy)
            || self
                .allowed_policies_glob
                .iter()
                .any(|g| glob_match(g, policy))
    }

    pub fn disallows(&self, policy: &str) -> bool {
        self.disallowed_policies.iter().any(|p| p == policy)
            || self
                .disallowed_policies_glob
                .iter()
                .any(|g| glob_match(g, policy))
    }

    pub fn allows_entity_alias(&self, alias: &str) -> bool {
        self.allowed_entity_aliases
            .iter()
            .any(|g| glob_match(&g.to_lowercase(), &alias.to_lowercase()))
    }

    /// The data of `GET auth/token/roles/<name>`.
    pub fn read_data(&self) -> Map<String, Value> {
        let aliases = if self.allowed_entity_aliases.is_empty() {
            Value::Null
        } else {
            json!(self.allowed_entity_aliases)
        };
        let mut d = Map::new();
        d.insert("name".into(), json!(self.name));
        d.insert("allowed_policies".into(), json!(self.allowed_policies));
        d.insert(
            "disallowed_policies".into(),
            json!(self.disallowed_policies),
        );
        d.insert(
            "allowed_policies_glob".into(),
            json!(self.allowed_policies_glob),
        );
        d.insert(
            "disallowed_policies_glob".into(),
            json!(self.disallowed_policies_glob),
        );
        d.insert("allowed_entity_aliases".into(), aliases);
        d.insert("orphan".into(), json!(self.orphan));
        d.insert("renewable".into(), json!(self.renewable));
        d.insert("path_suffix".into(), json!(self.path_suffix));
        d.insert("period".into(), json!(self.period));
        d.insert("explicit_max_ttl".into(), json!(self.explicit_max_ttl));
        d.insert("token_period".into(), json!(self.token_period));
        d.insert(
            "token_explicit_max_ttl".into(),
            json!(self.token_explicit_max_ttl),
        );
        d.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        d.insert(
            "token_no_default_policy".into(),
            json!(self.token_no_default_policy),
        );
        d.insert("token_num_uses".into(), json!(self.token_num_uses));
        d.insert("token_type".into(), json!(self.token_type));
        if !self.bound_cidrs.is_empty() {
            d.insert("bound_cidrs".into(), json!(self.bound_cidrs));
        }
        d
    }
}

fn role_key(name: &str) -> Result<String> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::bad("invalid role name"));
    }
    Ok(format!("{ROLE_PREFIX}{name}"))
}

impl TokenStore {
    pub async fn get_role(&self, name: &str) -> Result<Option<TokenRole>> {
        let Ok(key) = role_key(name) else {
            return Ok(None);
        };
        match self.storage().get(&key).await? {
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::internal(format!("decoding token role: {e}"))),
            None => Ok(None),
        }
    }

    pub async fn put_role(&self, role: &TokenRole) -> Result<()> {
        let b = serde_json::to_vec(role)
            .map_err(|e| Error::internal(format!("encoding token role: {e}")))?;
        self.storage().put(&role_key(&role.name)?, b).await?;
        Ok(())
    }

    pub async fn delete_role(&self, name: &str) -> Result<()> {
        self.storage().delete(&role_key(name)?).await?;
        Ok(())
    }

    pub async fn list_roles(&self) -> Result<Vec<String>> {
        Ok(self
            .storage()
            .list(ROLE_PREFIX)
            .await?
            .into_iter()
            .filter(|n| !n.ends_with('/'))
            .collect())
    }
}
