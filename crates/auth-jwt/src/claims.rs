//! Claim rules of a login, after the signature is known good: issuer, time claims with the
//! role's leeways, audiences, subject, bound claims, and the user and mapped claims.
//! Claim names starting with `/` are JSON pointers into nested claims.

use std::collections::BTreeMap;

use lessor_auth_common::glob_match;
use lessor_core::{Error, Result};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::role::{CLOCK_SKEW_DEFAULT, EXP_NBF_DEFAULT, JwtRole, effective_leeway};

/// A 400 `error validating claims: ...`.
fn claims_error(msg: impl std::fmt::Display) -> Error {
    Error::bad(format!("error validating claims: {msg}"))
}

/// A claim by name, or by JSON pointer when the name starts with `/`.
pub fn get_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if name.starts_with('/') {
        let root = claims.get(name.trim_start_matches('/').split('/').next()?)?;
        let rest: String = name
            .trim_start_matches('/')
            .split_once('/')
            .map(|(_, r)| format!("/{r}"))
            .unwrap_or_default();
        return if rest.is_empty() {
            Some(root)
        } else {
            root.pointer(&rest)
        };
    }
    claims.get(name)
}

/// A scalar claim as text (strings as they are, numbers and booleans printed).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// What a valid token yields for the login.
#[derive(Debug)]
pub struct Accepted {
    pub user: String,
    pub metadata: BTreeMap<String, String>,
    pub groups: Vec<String>,
}

pub fn validate(
    role: &JwtRole,
    cfg: &Config,
    claims: &Map<String, Value>,
    now: i64,
) -> Result<Accepted> {
    let expected_iss = cfg.expected_issuer();
    if !expected_iss.is_empty() && claims.get("iss").and_then(Value::as_str) != Some(expected_iss) {
        return Err(claims_error("invalid issuer (iss) claim"));
    }
    check_times(role, claims, now)?;
    check_audience(role, claims)?;
    if !role.bound_subject.is_empty()
        && claims.get("sub").and_then(Value::as_str) != Some(role.bound_subject.as_str())
    {
        return Err(claims_error("sub claim does not match bound subject"));
    }
    check_bound_claims(role, claims)?;

    let user = get_claim(claims, &role.user_claim)
        .and_then(scalar)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::bad(format!("claim {:?} not found in token", role.user_claim)))?;
    let mut metadata = BTreeMap::new();
    for (claim, key) in &role.claim_mappings {
        if let Some(v) = get_claim(claims, claim).and_then(scalar) {
            metadata.insert(key.clone(), v);
        }
    }
    let groups = if role.groups_claim.is_empty() {
        Vec::new()
    } else {
        match get_claim(claims, &role.groups_claim) {
            Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => {
                return Err(Error::bad(format!(
                    "{:?} claim not found in token",
                    role.groups_claim
                )));
            }
        }
    };
    Ok(Accepted {
        user,
        metadata,
        groups,
    })
}

fn check_times(role: &JwtRole, claims: &Map<String, Value>, now: i64) -> Result<()> {
    let skew = effective_leeway(role.clock_skew_leeway, CLOCK_SKEW_DEFAULT);
    let exp_leeway = effective_leeway(role.expiration_leeway, EXP_NBF_DEFAULT);
    let nbf_leeway = effective_leeway(role.not_before_leeway, EXP_NBF_DEFAULT);
    if let Some(exp) = claims.get("exp") {
        let exp = as_i64(exp).ok_or_else(|| claims_error("exp claim is not a number"))?;
        if now > exp.saturating_add(skew).saturating_add(exp_leeway) {
            return Err(claims_error("token is expired (exp)"));
        }
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = as_i64(nbf).ok_or_else(|| claims_error("nbf claim is not a number"))?;
        if now.saturating_add(skew).saturating_add(nbf_leeway) < nbf {
            return Err(claims_error("token is not valid yet (nbf)"));
        }
    }
    if let Some(iat) = claims.get("iat") {
        let iat = as_i64(iat).ok_or_else(|| claims_error("iat claim is not a number"))?;
        if now.saturating_add(skew) < iat {
            return Err(claims_error("token issued in the future (iat)"));
        }
    }
    Ok(())
}

fn check_audience(role: &JwtRole, claims: &Map<String, Value>) -> Result<()> {
    let aud: Vec<String> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
        _ => Vec::new(),
    };
    if role.bound_audiences.is_empty() {
        if !aud.is_empty() {
            return Err(Error::bad(
                "audience claim found in JWT but no audiences bound to the role",
            ));
        }
        return Ok(());
    }
    if !aud.iter().any(|a| role.bound_audiences.contains(a)) {
        return Err(claims_error(
            "invalid audience (aud) claim: audience claim does not match any expected audience",
        ));
    }
    Ok(())
}

fn check_bound_claims(role: &JwtRole, claims: &Map<String, Value>) -> Result<()> {
    let glob = role.bound_claims_type == "glob";
    for (name, expected) in &role.bound_claims {
        let wanted: Vec<String> = match expected {
            Value::Array(items) => items.iter().filter_map(scalar).collect(),
            other => scalar(other).into_iter().collect(),
        };
        let actual: Vec<String> = match get_claim(claims, name) {
            None | Some(Value::Null) => {
                return Err(claims_error(format!("claim {name:?} is missing")));
            }
            Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
            Some(v) => scalar(v).into_iter().collect(),
        };
        let matched = actual.iter().any(|a| {
            wanted
                .iter()
                .any(|w| if glob { glob_match(w, a) } else { w == a })
        });
        if !matched {
            return Err(claims_error(format!(
                "claim {name:?} does not match any associated bound claim values"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role() -> JwtRole {
        JwtRole {
            role_type: "jwt".into(),
            user_claim: "sub".into(),
            bound_audiences: vec!["api".into()],
            ..JwtRole::default()
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn leeways() {
        let cfg = Config::default();
        let now = 1_000_000;
        let ok = |r: &JwtRole, c: Value| validate(r, &cfg, &claims(c), now).is_ok();
        let mut r = role();
        // exp within skew (60) + leeway (150) is accepted, past it is not.
        assert!(ok(&r, json!({"sub": "u", "aud": "api", "exp": now - 200})));
        assert!(!ok(&r, json!({"sub": "u", "aud": "api", "exp": now - 211})));
        r.expiration_leeway = -1;
        assert!(!ok(&r, json!({"sub": "u", "aud": "api", "exp": now - 61})));
        r.clock_skew_leeway = -1;
        assert!(!ok(&r, json!({"sub": "u", "aud": "api", "exp": now - 1})));
        assert!(!ok(&r, json!({"sub": "u", "aud": "api", "iat": now + 5})));
        let r = role();
        assert!(ok(&r, json!({"sub": "u", "aud": "api", "nbf": now + 200})));
        assert!(!ok(&r, json!({"sub": "u", "aud": "api", "nbf": now + 300})));
    }

    #[test]
    fn bound_claims_and_pointers() {
        let cfg = Config::default();
        let mut r = role();
        r.bound_claims = claims(json!({"/org/team": ["blue", "red"], "env": "prod"}));
        let c = json!({"sub": "u", "aud": ["x", "api"], "org": {"team": "red"}, "env": "prod"});
        assert!(validate(&r, &cfg, &claims(c), 0).is_ok());
        let c = json!({"sub": "u", "aud": "api", "org": {"team": "green"}, "env": "prod"});
        let e = validate(&r, &cfg, &claims(c), 0).unwrap_err().to_string();
        assert!(
            e.contains("does not match any associated bound claim values"),
            "{e}"
        );
        r.bound_claims_type = "glob".into();
        r.bound_claims = claims(json!({"env": "pr*"}));
        let c = json!({"sub": "u", "aud": "api", "env": "prod"});
        assert!(validate(&r, &cfg, &claims(c), 0).is_ok());
        let e = validate(&r, &cfg, &claims(json!({"sub": "u", "aud": "api"})), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is missing"), "{e}");
    }

    #[test]
    fn user_audience_and_mappings() {
        let cfg = Config::default();
        let mut r = role();
        r.claim_mappings = [("email".to_string(), "mail".to_string())].into();
        let a = validate(
            &r,
            &cfg,
            &claims(json!({"sub": "u", "aud": "api", "email": "e@x"})),
            0,
        )
        .unwrap();
        assert_eq!(a.user, "u");
        assert_eq!(a.metadata.get("mail").map(String::as_str), Some("e@x"));
        let e = validate(&r, &cfg, &claims(json!({"aud": "api"})), 0).unwrap_err();
        assert_eq!(e.to_string(), "claim \"sub\" not found in token");
        r.bound_audiences.clear();
        let e = validate(&r, &cfg, &claims(json!({"sub": "u", "aud": "api"})), 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "audience claim found in JWT but no audiences bound to the role"
        );
    }
}
