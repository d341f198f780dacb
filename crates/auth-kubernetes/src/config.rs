//! `config`: the cluster's API address and CA, the reviewer JWT (write-only), and the keys
//! and issuer used to check service-account JWTs locally.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_auth_common::{get_json, put_json};
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response};
use lessor_core::{Error, Result};
use lessor_storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::sa::valid_pem_key;

const KEY: &str = "config";

/// Where a pod finds its own CA and token, used when the config gives none.
const LOCAL_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
const LOCAL_JWT: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub kubernetes_host: String,
    pub kubernetes_ca_cert: String,
    /// Never read back.
    pub token_reviewer_jwt: String,
    pub pem_keys: Vec<String>,
    pub disable_local_ca_jwt: bool,
    pub issuer: String,
    pub disable_iss_validation: bool,
}

impl Config {
    fn read_data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("kubernetes_host".into(), json!(self.kubernetes_host));
        m.insert("kubernetes_ca_cert".into(), json!(self.kubernetes_ca_cert));
        m.insert("pem_keys".into(), json!(self.pem_keys));
        m.insert(
            "disable_local_ca_jwt".into(),
            json!(self.disable_local_ca_jwt),
        );
        m.insert("issuer".into(), json!(self.issuer));
        m.insert(
            "disable_iss_validation".into(),
            json!(self.disable_iss_validation),
        );
        m.insert(
            "token_reviewer_jwt_set".into(),
            json!(!self.token_reviewer_jwt.is_empty()),
        );
        m
    }

    /// The CA and reviewer JWT to use: the configured ones, else (unless disabled) the
    /// pod's own, when lessor runs inside the cluster.
    pub async fn effective_ca_and_jwt(&self) -> (String, String) {
        let mut ca = self.kubernetes_ca_cert.clone();
        let mut jwt = self.token_reviewer_jwt.clone();
        if !self.disable_local_ca_jwt {
            if ca.is_empty() {
                ca = tokio::fs::read_to_string(LOCAL_CA)
                    .await
                    .unwrap_or_default();
            }
            if jwt.is_empty() {
                jwt = tokio::fs::read_to_string(LOCAL_JWT)
                    .await
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
            }
        }
        (ca, jwt)
    }
}

pub async fn get(s: &Arc<dyn Storage>) -> Result<Option<Config>> {
    get_json(s, KEY).await
}

struct ConfigPath;

pub fn path() -> Path {
    Path::new("config", Arc::new(ConfigPath))
        .fields(vec![
            field::str(
                "kubernetes_host",
                "URL of the Kubernetes API server (required on write).",
            ),
            field::str(
                "kubernetes_ca_cert",
                "PEM CA certificate(s) of the API server.",
            ),
            field::str(
                "token_reviewer_jwt",
                "JWT the TokenReview calls are made with.",
            ),
            field::list(
                "pem_keys",
                "PEM public keys that verify service-account JWTs.",
            ),
            field::bool(
                "disable_local_ca_jwt",
                "Do not fall back to the pod's own CA and token.",
            ),
            field::str(
                "issuer",
                "Deprecated: the issuer service-account JWTs must carry.",
            ),
            field::bool(
                "disable_iss_validation",
                "Do not check the issuer (default).",
            )
            .default(json!(true)),
        ])
        .ops(&[Operation::Read, Operation::Update])
        .help("Configures access to the Kubernetes API.")
}

#[async_trait]
impl PathHandler for ConfigPath {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        if op == Operation::Read {
            let c = get(ctx.storage).await?.ok_or(Error::NotFound)?;
            return Ok(Some(Response::data(c.read_data())));
        }
        let host = d.string("kubernetes_host");
        if host.trim().is_empty() {
            return Err(Error::bad("no host provided"));
        }
        let pem_keys = d.list_or_empty("pem_keys");
        if let Some(i) = pem_keys.iter().position(|p| !valid_pem_key(p)) {
            return Err(Error::bad(format!(
                "error parsing pem_keys entry {i}: not a PEM RSA, EC or Ed25519 public key"
            )));
        }
        let ca = d.string("kubernetes_ca_cert");
        let disable_local_ca_jwt = d.bool("disable_local_ca_jwt").unwrap_or(false);
        if ca.trim().is_empty() && disable_local_ca_jwt {
            return Err(Error::bad(
                "kubernetes_ca_cert must be given when disable_local_ca_jwt is true",
            ));
        }
        if !ca.trim().is_empty() {
            lessor_auth_common::http::client(&ca)?;
        }
        let c = Config {
            kubernetes_host: host.trim().trim_end_matches('/').to_string(),
            kubernetes_ca_cert: ca,
            token_reviewer_jwt: d.string("token_reviewer_jwt"),
            pem_keys,
            disable_local_ca_jwt,
            issuer: d.string("issuer"),
            disable_iss_validation: d.bool("disable_iss_validation").unwrap_or(true),
        };
        put_json(ctx.storage, KEY, &c).await?;
        Ok(None)
    }
}
