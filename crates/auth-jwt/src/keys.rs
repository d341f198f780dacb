//! Signature verification: the token's header is checked first (no `none`, only allowed
//! algorithms), then its signature against the configured keys. Remote key sets are cached
//! per mount and fetched again once when a token names a key id the cache lacks, which is
//! how a key rotated at the issuer is picked up.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use lessor_auth_common::http;
use lessor_core::{Error, Result};
use serde_json::{Map, Value};

use crate::config::Config;

/// A 400 `error validating token: ...`.
pub fn token_error(msg: impl std::fmt::Display) -> Error {
    Error::bad(format!("error validating token: {msg}"))
}

/// The remote key set last fetched, and where from.
struct Cached {
    /// The configured URL (JWKS or discovery) the set belongs to.
    source: String,
    set: JwkSet,
    fetched: Instant,
}

/// How soon after a fetch a token with an unknown key id may cause another one: without a
/// floor, every forged `kid` would make the mount call the issuer.
pub const MIN_REFETCH: Duration = Duration::from_secs(5);

pub struct KeyCache {
    cached: parking_lot::Mutex<Option<Cached>>,
    min_refetch: Duration,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::new(MIN_REFETCH)
    }
}

/// The parts of a JOSE header we need, read before any verification.
struct Header {
    alg: Algorithm,
    kid: Option<String>,
}

fn read_header(jwt: &str) -> Result<Header> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(token_error(
            "malformed JWT: expected three dot-separated parts",
        ));
    };
    let raw = URL_SAFE_NO_PAD
        .decode(h.trim_end_matches('='))
        .map_err(|_| token_error("malformed JWT header"))?;
    let v: Map<String, Value> =
        serde_json::from_slice(&raw).map_err(|_| token_error("malformed JWT header"))?;
    let alg = v.get("alg").and_then(Value::as_str).unwrap_or_default();
    if alg.eq_ignore_ascii_case("none") || alg.is_empty() {
        return Err(token_error(
            "unsigned tokens (alg \"none\") are not accepted",
        ));
    }
    let alg = alg
        .parse::<Algorithm>()
        .map_err(|_| token_error(format!("unsupported signing algorithm {alg:?}")))?;
    let kid = v.get("kid").and_then(Value::as_str).map(String::from);
    Ok(Header { alg, kid })
}

fn decode_with(
    jwt: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> std::result::Result<Map<String, Value>, String> {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v.leeway = 0;
    jsonwebtoken::decode::<Map<String, Value>>(jwt, key, &v)
        .map(|t| t.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => "signature is invalid".to_string(),
            ErrorKind::InvalidAlgorithm => "the key does not match the signing algorithm".into(),
            ErrorKind::InvalidKeyFormat => "the key is not valid for the algorithm".into(),
            _ => e.to_string(),
        })
}

/// Parses a PEM public key for the algorithm family `family`.
pub fn pem_key(pem: &str, family: AlgorithmFamily) -> Option<DecodingKey> {
    let b = pem.as_bytes();
    match family {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(b).ok(),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(b).ok(),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(b).ok(),
        AlgorithmFamily::Hmac => None,
    }
}

/// True when `pem` is a public key of any supported kind.
pub fn valid_pem_key(pem: &str) -> bool {
    [
        AlgorithmFamily::Rsa,
        AlgorithmFamily::Ec,
        AlgorithmFamily::Ed,
    ]
    .into_iter()
    .any(|f| pem_key(pem, f).is_some())
}

/// Fetches and parses a JWKS document.
pub async fn fetch_jwks(url: &str, ca_pem: &str) -> std::result::Result<JwkSet, String> {
    let client = http::client(ca_pem).map_err(|e| e.to_string())?;
    let v = http::get_json(&client, url).await?;
    let set: JwkSet =
        serde_json::from_value(v).map_err(|e| format!("parsing the JWKS of {url}: {e}"))?;
    if set.keys.is_empty() {
        return Err(format!("the JWKS of {url} has no keys"));
    }
    Ok(set)
}

/// Fetches the discovery document of `issuer_url`: its issuer (which must be that URL) and
/// its JWKS URL.
pub async fn discover(
    issuer_url: &str,
    ca_pem: &str,
) -> std::result::Result<(String, String), String> {
    let client = http::client(ca_pem).map_err(|e| e.to_string())?;
    let base = issuer_url.trim_end_matches('/');
    let doc = http::get_json(&client, &format!("{base}/.well-known/openid-configuration")).await?;
    let issuer = doc
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if issuer.trim_end_matches('/') != base {
        return Err(format!(
            "issuer did not match the issuer returned by provider, expected {base:?} got {issuer:?}"
        ));
    }
    if jwks_uri.is_empty() {
        return Err("the discovery document has no jwks_uri".into());
    }
    Ok((issuer.to_string(), jwks_uri.to_string()))
}

impl KeyCache {
    pub fn new(min_refetch: Duration) -> Self {
        KeyCache {
            cached: parking_lot::Mutex::new(None),
            min_refetch,
        }
    }

    pub fn clear(&self) {
        *self.cached.lock() = None;
    }

    /// Verifies the signature of `jwt` and returns its claims (not yet validated).
    pub async fn verify(&self, cfg: &Config, jwt: &str) -> Result<Map<String, Value>> {
        let h = read_header(jwt)?;
        if !cfg.algorithms()?.contains(&h.alg) {
            return Err(token_error(format!(
                "signing algorithm {:?} is not allowed by the configuration",
                h.alg
            )));
        }
        let family = h.alg.family();
        if !cfg.jwt_validation_pubkeys.is_empty() {
            let keys: Vec<DecodingKey> = cfg
                .jwt_validation_pubkeys
                .iter()
                .filter_map(|p| pem_key(p, family))
                .collect();
            return try_keys(jwt, h.alg, &keys);
        }
        let mut set = self.remote_set(cfg, false).await?;
        let mut refetched = false;
        loop {
            let keys: Vec<DecodingKey> = set
                .keys
                .iter()
                .filter(|k| h.kid.is_none() || k.common.key_id == h.kid)
                .filter_map(|k| DecodingKey::from_jwk(k).ok())
                .collect();
            if !keys.is_empty() {
                let result = try_keys(jwt, h.alg, &keys);
                if result.is_ok() || h.kid.is_some() || refetched {
                    return result;
                }
            } else if refetched {
                return Err(match &h.kid {
                    Some(kid) => token_error(format!("no key with id {kid:?} in the key set")),
                    None => token_error("no key of the key set fits the signing algorithm"),
                });
            }
            // An unknown key id (or no key that verifies) may mean the issuer rotated its
            // keys: fetch the set once more.
            set = self.remote_set(cfg, true).await?;
            refetched = true;
        }
    }

    /// The remote key set of `cfg`, from the cache unless `refresh` or the config changed.
    async fn remote_set(&self, cfg: &Config, refresh: bool) -> Result<JwkSet> {
        let source = if cfg.jwks_url.is_empty() {
            &cfg.oidc_discovery_url
        } else {
            &cfg.jwks_url
        };
        if source.is_empty() {
            return Err(token_error("the auth method is not configured"));
        }
        if let Some(c) = self.cached.lock().as_ref().filter(|c| &c.source == source)
            && (!refresh || c.fetched.elapsed() < self.min_refetch)
        {
            return Ok(c.set.clone());
        }
        let fetched = if cfg.jwks_url.is_empty() {
            match discover(&cfg.oidc_discovery_url, &cfg.oidc_discovery_ca_pem).await {
                Ok((_, jwks)) => fetch_jwks(&jwks, &cfg.oidc_discovery_ca_pem).await,
                Err(e) => Err(e),
            }
        } else {
            fetch_jwks(&cfg.jwks_url, &cfg.jwks_ca_pem).await
        };
        let set = fetched.map_err(|e| {
            tracing::warn!(error = %e, "fetching the JWT verification keys failed");
            token_error(format!("fetching keys: {e}"))
        })?;
        *self.cached.lock() = Some(Cached {
            source: source.clone(),
            set: set.clone(),
            fetched: Instant::now(),
        });
        Ok(set)
    }
}

fn try_keys(jwt: &str, alg: Algorithm, keys: &[DecodingKey]) -> Result<Map<String, Value>> {
    let mut last = String::from("no key of the configuration fits the signing algorithm");
    for k in keys {
        match decode_with(jwt, k, alg) {
            Ok(c) => return Ok(c),
            Err(e) => last = e,
        }
    }
    Err(token_error(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn headers() {
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
        let e = read_header(&none).err().unwrap();
        assert!(e.to_string().contains("alg \"none\""), "{e}");
        assert!(read_header("a.b").is_err());
        assert!(read_header(&format!("{}.e.s", b64(r#"{"alg":"XX1"}"#))).is_err());
        let h = read_header(&format!("{}.e.s", b64(r#"{"alg":"ES256","kid":"k1"}"#))).unwrap();
        assert_eq!(h.alg, Algorithm::ES256);
        assert_eq!(h.kid.as_deref(), Some("k1"));
    }
}
