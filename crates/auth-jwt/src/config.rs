//! The mount's configuration: where verification keys come from, the issuer to expect,
//! the algorithms allowed, and the default role.

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use lessor_auth_common::{get_json, put_json};
use lessor_core::{Error, Result};
use lessor_storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const KEY: &str = "config";

/// The algorithms a token may be signed with when the config names none.
pub const DEFAULT_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA", "PS256", "PS384", "PS512",
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub oidc_discovery_url: String,
    pub oidc_discovery_ca_pem: String,
    pub oidc_client_id: String,
    /// Kept for the OIDC flow; never read back.
    pub oidc_client_secret: String,
    pub jwks_url: String,
    pub jwks_ca_pem: String,
    pub jwt_validation_pubkeys: Vec<String>,
    pub jwt_supported_algs: Vec<String>,
    pub bound_issuer: String,
    pub default_role: String,
    pub provider_config: Map<String, Value>,
    /// The issuer the discovery document announced (it must equal the discovery URL).
    pub discovered_issuer: String,
}

impl Config {
    pub fn read_data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("oidc_discovery_url".into(), json!(self.oidc_discovery_url));
        m.insert(
            "oidc_discovery_ca_pem".into(),
            json!(self.oidc_discovery_ca_pem),
        );
        m.insert("oidc_client_id".into(), json!(self.oidc_client_id));
        m.insert("jwks_url".into(), json!(self.jwks_url));
        m.insert("jwks_ca_pem".into(), json!(self.jwks_ca_pem));
        m.insert(
            "jwt_validation_pubkeys".into(),
            json!(self.jwt_validation_pubkeys),
        );
        m.insert("jwt_supported_algs".into(), json!(self.jwt_supported_algs));
        m.insert("bound_issuer".into(), json!(self.bound_issuer));
        m.insert("default_role".into(), json!(self.default_role));
        m.insert("provider_config".into(), json!(self.provider_config));
        m.insert("namespace_in_state".into(), json!(false));
        m
    }

    /// The algorithms tokens may use.
    pub fn algorithms(&self) -> Result<Vec<Algorithm>> {
        let names: Vec<&str> = if self.jwt_supported_algs.is_empty() {
            DEFAULT_ALGS.to_vec()
        } else {
            self.jwt_supported_algs.iter().map(String::as_str).collect()
        };
        names
            .into_iter()
            .map(|n| match n.parse::<Algorithm>() {
                Ok(a) if !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => {
                    Ok(a)
                }
                _ => Err(Error::bad(format!("invalid jwt_supported_algs: {n}"))),
            })
            .collect()
    }

    /// The issuer tokens must carry (empty = any): only `bound_issuer` binds it, with
    /// discovery too, as Vault does.
    pub fn expected_issuer(&self) -> &str {
        &self.bound_issuer
    }
}

pub async fn get(s: &Arc<dyn Storage>) -> Result<Option<Config>> {
    get_json(s, KEY).await
}

pub async fn put(s: &Arc<dyn Storage>, c: &Config) -> Result<()> {
    put_json(s, KEY, c).await
}
