//! The service account a JWT claims to be, read from its claims in either layout: legacy
//! secret-based tokens (`kubernetes.io/serviceaccount/...` keys) or projected tokens (a
//! nested `kubernetes.io` object). The signature is checked here only when the config has
//! `pem_keys`; otherwise the TokenReview call is what proves the token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lessor_core::{Error, Result};
use serde_json::{Map, Value};

use crate::config::Config;

/// The issuer of legacy service-account tokens.
const DEFAULT_ISSUER: &str = "kubernetes/serviceaccount";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccount {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub secret_name: String,
}

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::bad(format!("error validating token: {msg}"))
}

fn keys_of(pem: &str) -> Vec<DecodingKey> {
    let b = pem.as_bytes();
    [
        DecodingKey::from_rsa_pem(b).ok(),
        DecodingKey::from_ec_pem(b).ok(),
        DecodingKey::from_ed_pem(b).ok(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub fn valid_pem_key(pem: &str) -> bool {
    !keys_of(pem).is_empty()
}

/// The claims of `jwt`, signature-checked against `pem_keys` when there are any.
fn claims(jwt: &str, pem_keys: &[String]) -> Result<Map<String, Value>> {
    let mut parts = jwt.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed JWT"));
    };
    if pem_keys.is_empty() {
        let raw = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| bad("malformed JWT"))?;
        return serde_json::from_slice(&raw).map_err(|_| bad("malformed JWT claims"));
    }
    let header = jsonwebtoken::decode_header(jwt).map_err(bad)?;
    if matches!(
        header.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(bad("unsupported signing algorithm"));
    }
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    for pem in pem_keys {
        for key in keys_of(pem) {
            if let Ok(t) = jsonwebtoken::decode::<Map<String, Value>>(jwt, &key, &v) {
                return Ok(t.claims);
            }
        }
    }
    Err(bad("no pem_keys entry verifies the signature"))
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Parses (and, with `pem_keys`, verifies) `jwt` into the service account it names.
pub fn parse(jwt: &str, cfg: &Config) -> Result<ServiceAccount> {
    let c = claims(jwt, &cfg.pem_keys)?;
    if !cfg.disable_iss_validation {
        let want = if cfg.issuer.is_empty() {
            DEFAULT_ISSUER
        } else {
            &cfg.issuer
        };
        if c.get("iss").and_then(Value::as_str) != Some(want) {
            return Err(bad("invalid issuer (iss) claim"));
        }
    }
    let sa = match c.get("kubernetes.io") {
        Some(projected) => ServiceAccount {
            namespace: text(projected.get("namespace")),
            name: text(projected.pointer("/serviceaccount/name")),
            uid: text(projected.pointer("/serviceaccount/uid")),
            secret_name: String::new(),
        },
        None => ServiceAccount {
            namespace: text(c.get("kubernetes.io/serviceaccount/namespace")),
            name: text(c.get("kubernetes.io/serviceaccount/service-account.name")),
            uid: text(c.get("kubernetes.io/serviceaccount/service-account.uid")),
            secret_name: text(c.get("kubernetes.io/serviceaccount/secret.name")),
        },
    };
    if sa.name.is_empty() || sa.namespace.is_empty() {
        return Err(bad("the JWT names no service account"));
    }
    Ok(sa)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unsigned(claims: Value) -> String {
        let e = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.sig", e(&json!({"alg": "RS256"})), e(&claims))
    }

    #[test]
    fn both_claim_layouts() {
        let cfg = Config {
            disable_iss_validation: true,
            ..Config::default()
        };
        let legacy = unsigned(json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": "ns",
            "kubernetes.io/serviceaccount/service-account.name": "sa",
            "kubernetes.io/serviceaccount/service-account.uid": "u1",
            "kubernetes.io/serviceaccount/secret.name": "sa-token-x"}));
        let sa = parse(&legacy, &cfg).unwrap();
        assert_eq!(
            (sa.namespace.as_str(), sa.name.as_str(), sa.uid.as_str()),
            ("ns", "sa", "u1")
        );
        assert_eq!(sa.secret_name, "sa-token-x");
        let projected = unsigned(json!({"iss": "https://k8s",
            "kubernetes.io": {"namespace": "ns2", "serviceaccount": {"name": "sa2", "uid": "u2"}}}));
        let sa = parse(&projected, &cfg).unwrap();
        assert_eq!((sa.namespace.as_str(), sa.name.as_str()), ("ns2", "sa2"));

        let strict = Config {
            disable_iss_validation: false,
            ..Config::default()
        };
        assert!(parse(&legacy, &strict).is_ok());
        assert!(parse(&projected, &strict).is_err());
        assert!(parse("x.y", &cfg).is_err());
        assert!(parse(&unsigned(json!({"sub": "x"})), &cfg).is_err());
    }
}
