//! Secret-id entries and their storage. An entry is filed under the HMACs of its role name
//! and of the secret id itself; its accessor (a public handle for listing, lookup and
//! destroy) has an index of its own pointing back to the entry.

use std::collections::BTreeMap;
use std::sync::Arc;

use lessor_auth_common::{delete, get_json, put_json};
use lessor_core::Result;
use lessor_core::clock::rfc3339;
use lessor_storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::salt::Salt;

/// Vault prints a secret id that never expires with Go's zero time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretIdEntry {
    /// HMAC of the secret id, compared in constant time at login.
    pub secret_id_hmac: String,
    pub accessor: String,
    /// Uses left; 0 = unlimited.
    pub num_uses: i64,
    pub ttl: i64,
    pub creation_time: i64,
    /// Unix seconds; 0 = never.
    pub expiration_time: i64,
    pub last_updated_time: i64,
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
}

impl SecretIdEntry {
    pub fn expired(&self, now: i64) -> bool {
        self.expiration_time != 0 && now >= self.expiration_time
    }

    /// The data of a secret-id lookup.
    pub fn lookup_data(&self) -> Map<String, Value> {
        let expiration = if self.expiration_time == 0 {
            ZERO_TIME.to_string()
        } else {
            rfc3339(self.expiration_time)
        };
        let mut m = Map::new();
        m.insert("cidr_list".into(), json!(self.cidr_list));
        m.insert("creation_time".into(), json!(rfc3339(self.creation_time)));
        m.insert("expiration_time".into(), json!(expiration));
        m.insert(
            "last_updated_time".into(),
            json!(rfc3339(self.last_updated_time)),
        );
        m.insert("metadata".into(), json!(self.metadata));
        m.insert("secret_id_accessor".into(), json!(self.accessor));
        m.insert("secret_id_num_uses".into(), json!(self.num_uses));
        m.insert("secret_id_ttl".into(), json!(self.ttl));
        m.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        m
    }
}

#[derive(Serialize, Deserialize)]
pub struct AccessorIndex {
    pub role_hmac: String,
    pub secret_id_hmac: String,
}

/// Where one role's secret ids live.
pub async fn role_dir(s: &Arc<dyn Storage>, salt: &Salt, role: &str) -> Result<String> {
    Ok(format!("secret_id/{}/", salt.hash(s, role).await?))
}

fn accessor_key(accessor_hmac: &str) -> String {
    format!("accessor/{accessor_hmac}")
}

pub async fn get(s: &Arc<dyn Storage>, dir: &str, hmac: &str) -> Result<Option<SecretIdEntry>> {
    get_json(s, &format!("{dir}{hmac}")).await
}

/// Writes a new entry and its accessor index.
pub async fn create(s: &Arc<dyn Storage>, salt: &Salt, dir: &str, e: &SecretIdEntry) -> Result<()> {
    let index = AccessorIndex {
        role_hmac: dir
            .trim_start_matches("secret_id/")
            .trim_end_matches('/')
            .to_string(),
        secret_id_hmac: e.secret_id_hmac.clone(),
    };
    put_json(s, &accessor_key(&salt.hash(s, &e.accessor).await?), &index).await?;
    update(s, dir, e).await
}

pub async fn update(s: &Arc<dyn Storage>, dir: &str, e: &SecretIdEntry) -> Result<()> {
    put_json(s, &format!("{dir}{}", e.secret_id_hmac), e).await
}

/// Deletes an entry and its accessor index.
pub async fn remove(s: &Arc<dyn Storage>, salt: &Salt, dir: &str, e: &SecretIdEntry) -> Result<()> {
    delete(s, &accessor_key(&salt.hash(s, &e.accessor).await?)).await?;
    delete(s, &format!("{dir}{}", e.secret_id_hmac)).await
}

/// The entry an accessor points at, within `dir` (the accessor must belong to that role).
pub async fn by_accessor(
    s: &Arc<dyn Storage>,
    salt: &Salt,
    dir: &str,
    accessor: &str,
) -> Result<Option<SecretIdEntry>> {
    let key = accessor_key(&salt.hash(s, accessor).await?);
    let Some(index) = get_json::<AccessorIndex>(s, &key).await? else {
        return Ok(None);
    };
    if format!("secret_id/{}/", index.role_hmac) != dir {
        return Ok(None);
    }
    get(s, dir, &index.secret_id_hmac).await
}

/// Every entry of one role directory.
pub async fn all_in(s: &Arc<dyn Storage>, dir: &str) -> Result<Vec<SecretIdEntry>> {
    let mut out = Vec::new();
    for k in s.list(dir).await? {
        if let Some(e) = get(s, dir, &k).await? {
            out.push(e);
        }
    }
    Ok(out)
}

/// Deletes every secret id of one role (the role is being deleted).
pub async fn remove_all(s: &Arc<dyn Storage>, salt: &Salt, dir: &str) -> Result<()> {
    for e in all_in(s, dir).await? {
        remove(s, salt, dir, &e).await?;
    }
    Ok(())
}
