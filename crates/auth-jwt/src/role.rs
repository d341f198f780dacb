//! The JWT role record: which tokens it accepts (audiences, subject, bound claims, leeways)
//! and what the login token gets (token fields, claims copied into metadata).

use std::collections::BTreeMap;
use std::sync::Arc;

use lessor_auth_common::{TokenFields, get_json};
use lessor_core::Result;
use lessor_storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Defaults a leeway of 0 stands for.
pub const CLOCK_SKEW_DEFAULT: i64 = 60;
pub const EXP_NBF_DEFAULT: i64 = 150;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JwtRole {
    pub role_type: String,
    pub bound_audiences: Vec<String>,
    pub user_claim: String,
    pub bound_subject: String,
    pub bound_claims: Map<String, Value>,
    pub bound_claims_type: String,
    pub claim_mappings: BTreeMap<String, String>,
    pub groups_claim: String,
    pub allowed_redirect_uris: Vec<String>,
    pub oidc_scopes: Vec<String>,
    pub clock_skew_leeway: i64,
    pub expiration_leeway: i64,
    pub not_before_leeway: i64,
    #[serde(flatten)]
    pub token: TokenFields,
}

impl Default for JwtRole {
    fn default() -> Self {
        JwtRole {
            role_type: "oidc".into(),
            bound_audiences: Vec::new(),
            user_claim: String::new(),
            bound_subject: String::new(),
            bound_claims: Map::new(),
            bound_claims_type: "string".into(),
            claim_mappings: BTreeMap::new(),
            groups_claim: String::new(),
            allowed_redirect_uris: Vec::new(),
            oidc_scopes: Vec::new(),
            clock_skew_leeway: CLOCK_SKEW_DEFAULT,
            expiration_leeway: EXP_NBF_DEFAULT,
            not_before_leeway: EXP_NBF_DEFAULT,
            token: TokenFields::default(),
        }
    }
}

/// A leeway as applied: 0 = the default, negative = none.
pub fn effective_leeway(v: i64, default: i64) -> i64 {
    match v {
        0 => default,
        v if v < 0 => 0,
        v => v,
    }
}

impl JwtRole {
    pub fn read_data(&self) -> Map<String, Value> {
        let or_null = |m: Value, empty: bool| if empty { Value::Null } else { m };
        let mut m = Map::new();
        m.insert("role_type".into(), json!(self.role_type));
        m.insert("bound_audiences".into(), json!(self.bound_audiences));
        m.insert("user_claim".into(), json!(self.user_claim));
        m.insert("user_claim_json_pointer".into(), json!(false));
        m.insert("bound_subject".into(), json!(self.bound_subject));
        m.insert(
            "bound_claims".into(),
            or_null(json!(self.bound_claims), self.bound_claims.is_empty()),
        );
        m.insert("bound_claims_type".into(), json!(self.bound_claims_type));
        m.insert(
            "claim_mappings".into(),
            or_null(json!(self.claim_mappings), self.claim_mappings.is_empty()),
        );
        m.insert("groups_claim".into(), json!(self.groups_claim));
        m.insert(
            "allowed_redirect_uris".into(),
            json!(self.allowed_redirect_uris),
        );
        m.insert("oidc_scopes".into(), json!(self.oidc_scopes));
        m.insert("clock_skew_leeway".into(), json!(self.clock_skew_leeway));
        m.insert("expiration_leeway".into(), json!(self.expiration_leeway));
        m.insert("not_before_leeway".into(), json!(self.not_before_leeway));
        m.insert("verbose_oidc_logging".into(), json!(false));
        m.insert("max_age".into(), json!(0));
        self.token.read_into(&mut m);
        m
    }
}

pub fn key(name: &str) -> String {
    format!("role/{name}")
}

pub async fn get(s: &Arc<dyn Storage>, name: &str) -> Result<Option<JwtRole>> {
    get_json(s, &key(name)).await
}
