//! The `token_*` fields every auth role carries (AppRole, JWT, Kubernetes): declared once,
//! parsed once, stored in the role, read back with durations as integer seconds, and turned
//! into the auth block of a login. The core settles the TTLs from these values; nothing
//! here does TTL arithmetic.

use std::collections::BTreeMap;
use std::time::Duration;

use lessor_core::framework::field::{self, Field, FieldData};
use lessor_core::framework::{AuthRenewCtx, AuthRenewGrant};
use lessor_core::logical::AuthSpec;
use lessor_core::token::sanitize_policies;
use lessor_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::cidr::parse_cidrs;

/// The token settings of a role. Durations in whole seconds; 0 = unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenFields {
    pub token_policies: Vec<String>,
    pub token_ttl: i64,
    pub token_max_ttl: i64,
    pub token_period: i64,
    pub token_explicit_max_ttl: i64,
    pub token_num_uses: i64,
    pub token_bound_cidrs: Vec<String>,
    /// `default` or `service` (the core issues service tokens only).
    pub token_type: String,
    pub token_no_default_policy: bool,
    /// The role was written with the legacy `policies` / `period` names: read them back too.
    pub legacy_policies: bool,
    pub legacy_period: bool,
    pub legacy_ttl: bool,
    pub legacy_max_ttl: bool,
}

/// The field declarations, to append to a role path's own fields.
pub fn fields() -> Vec<Field> {
    vec![
        field::list("token_policies", "Policies of the tokens issued."),
        field::list("policies", "Deprecated: use token_policies."),
        field::dur("token_ttl", "Default TTL of the tokens issued."),
        field::dur("token_max_ttl", "Max TTL of the tokens issued."),
        field::dur("ttl", "Deprecated: use token_ttl."),
        field::dur("max_ttl", "Deprecated: use token_max_ttl."),
        field::dur(
            "token_period",
            "Period of the tokens issued (periodic tokens).",
        ),
        field::dur("period", "Deprecated: use token_period."),
        field::dur(
            "token_explicit_max_ttl",
            "Hard max TTL of the tokens issued, even through renewals.",
        ),
        field::int(
            "token_num_uses",
            "Uses of the tokens issued (0 = unlimited).",
        ),
        field::list(
            "token_bound_cidrs",
            "CIDR blocks the tokens issued may be used from.",
        ),
        field::str(
            "token_type",
            "Type of the tokens issued: default or service.",
        ),
        field::bool(
            "token_no_default_policy",
            "Do not add the default policy to the tokens issued.",
        ),
    ]
}

impl TokenFields {
    /// Applies the fields the request supplied; unset fields keep their stored value.
    pub fn update(&mut self, d: &FieldData) -> Result<()> {
        if let Some(p) = d.list("token_policies") {
            self.token_policies = p.to_vec();
            self.legacy_policies = false;
        } else if let Some(p) = d.list("policies") {
            self.token_policies = p.to_vec();
            self.legacy_policies = true;
        }
        if let Some(s) = d.secs("token_period") {
            self.token_period = s;
            self.legacy_period = false;
        } else if let Some(s) = d.secs("period") {
            self.token_period = s;
            self.legacy_period = true;
        }
        // The legacy name applies only when the current one is absent, and is read back.
        let with_legacy = |name: &str, legacy: &str, slot: &mut i64, flag: &mut bool| {
            if let Some(s) = d.secs(name) {
                *slot = s;
                *flag = false;
            } else if let Some(s) = d.secs(legacy) {
                *slot = s;
                *flag = true;
            }
        };
        with_legacy(
            "token_ttl",
            "ttl",
            &mut self.token_ttl,
            &mut self.legacy_ttl,
        );
        with_legacy(
            "token_max_ttl",
            "max_ttl",
            &mut self.token_max_ttl,
            &mut self.legacy_max_ttl,
        );
        if let Some(s) = d.secs("token_explicit_max_ttl") {
            self.token_explicit_max_ttl = s;
        }
        if let Some(n) = d.int("token_num_uses") {
            if n < 0 {
                return Err(Error::bad("'token_num_uses' cannot be negative"));
            }
            self.token_num_uses = n;
        }
        if let Some(c) = d.list("token_bound_cidrs") {
            parse_cidrs(c)?;
            self.token_bound_cidrs = c.to_vec();
        }
        if let Some(b) = d.bool("token_no_default_policy") {
            self.token_no_default_policy = b;
        }
        if let Some(t) = d.str("token_type") {
            self.token_type = match t.trim() {
                "" | "default" => "default".into(),
                "service" | "default-service" => "service".into(),
                "batch" | "default-batch" => {
                    return Err(Error::bad("batch tokens are not supported"));
                }
                _ => return Err(Error::bad("invalid 'token_type' value")),
            };
        }
        if self.token_type.is_empty() {
            self.token_type = "default".into();
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(Error::bad(
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ));
        }
        Ok(())
    }

    /// Adds the read-back form of the fields to a role's data.
    pub fn read_into(&self, m: &mut Map<String, Value>) {
        m.insert("token_policies".into(), json!(self.token_policies));
        m.insert("token_ttl".into(), json!(self.token_ttl));
        m.insert("token_max_ttl".into(), json!(self.token_max_ttl));
        m.insert("token_period".into(), json!(self.token_period));
        m.insert(
            "token_explicit_max_ttl".into(),
            json!(self.token_explicit_max_ttl),
        );
        m.insert("token_num_uses".into(), json!(self.token_num_uses));
        m.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        let ty = if self.token_type.is_empty() {
            "default"
        } else {
            &self.token_type
        };
        m.insert("token_type".into(), json!(ty));
        m.insert(
            "token_no_default_policy".into(),
            json!(self.token_no_default_policy),
        );
        if self.legacy_policies {
            m.insert("policies".into(), json!(self.token_policies));
        }
        if self.legacy_period {
            m.insert("period".into(), json!(self.token_period));
        }
        if self.legacy_ttl {
            m.insert("ttl".into(), json!(self.token_ttl));
        }
        if self.legacy_max_ttl {
            m.insert("max_ttl".into(), json!(self.token_max_ttl));
        }
    }

    /// The auth block of a login through a role with these settings.
    pub fn auth_spec(&self, display_name: String, metadata: BTreeMap<String, String>) -> AuthSpec {
        let secs = |s: i64| Duration::from_secs(s.max(0) as u64);
        AuthSpec {
            policies: self.token_policies.clone(),
            token_policies: self.token_policies.clone(),
            metadata,
            display_name,
            ttl: secs(self.token_ttl),
            max_ttl: secs(self.token_max_ttl),
            explicit_max_ttl: secs(self.token_explicit_max_ttl),
            period: secs(self.token_period),
            num_uses: self.token_num_uses,
            renewable: true,
            no_default_policy: self.token_no_default_policy,
            bound_cidrs: self.token_bound_cidrs.clone(),
            token_type: "service".into(),
            orphan: true,
            ..Default::default()
        }
    }
}

/// Vault's wording when a login token's role now grants other policies.
pub const POLICIES_CHANGED: &str = "policies have changed, not renewing";

impl TokenFields {
    /// The terms of renewing a login token whose role has these settings now. Refused
    /// when the role's policies are no longer the token's (`default` aside).
    pub fn renew_grant(&self, token_policies: &[String]) -> Result<AuthRenewGrant> {
        let without_default = |p: &[String]| {
            let mut v = sanitize_policies(p, false);
            v.retain(|p| p != "default");
            v
        };
        if without_default(&self.token_policies) != without_default(token_policies) {
            return Err(Error::bad(POLICIES_CHANGED));
        }
        let secs = |s: i64| Duration::from_secs(s.max(0) as u64);
        Ok(AuthRenewGrant {
            ttl: secs(self.token_ttl),
            max_ttl: secs(self.token_max_ttl),
            period: secs(self.token_period),
        })
    }
}

/// The role name a login stored under `key` of its internal data, for `renew_auth`.
/// `None` when the token carries none (nothing to re-read: it keeps its terms).
pub fn renewing_role(ctx: &AuthRenewCtx<'_>, key: &str) -> Option<String> {
    ctx.internal
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<FieldData> {
        let (d, _) = FieldData::parse(&fields(), v.as_object().cloned().unwrap_or_default())?;
        Ok(d)
    }

    #[test]
    fn parse_store_read() {
        let mut t = TokenFields::default();
        t.update(
            &parse(
                json!({"token_policies": "a,b", "token_ttl": "1h", "token_max_ttl": 7200,
                "token_num_uses": "3", "token_bound_cidrs": ["127.0.0.1/32"],
                "token_no_default_policy": "true"}),
            )
            .unwrap(),
        )
        .unwrap();
        let mut m = Map::new();
        t.read_into(&mut m);
        assert_eq!(m["token_policies"], json!(["a", "b"]));
        assert_eq!(m["token_ttl"], json!(3600));
        assert_eq!(m["token_max_ttl"], json!(7200));
        assert_eq!(m["token_num_uses"], json!(3));
        assert_eq!(m["token_type"], json!("default"));
        assert!(m.get("policies").is_none());
        let a = t.auth_spec("approle".into(), BTreeMap::new());
        assert_eq!(a.ttl, Duration::from_secs(3600));
        assert!(a.no_default_policy && a.renewable);
        assert_eq!(a.num_uses, 3);
    }

    #[test]
    fn renewal_terms() {
        let mut t = TokenFields::default();
        t.update(
            &parse(json!({"token_policies": "b,a", "token_ttl": 60, "token_max_ttl": 120, "token_period": 0}))
                .unwrap(),
        )
        .unwrap();
        let held = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let g = t.renew_grant(&held(&["a", "b", "default"])).unwrap();
        assert_eq!(g.ttl, Duration::from_secs(60));
        assert_eq!(g.max_ttl, Duration::from_secs(120));
        let e = t.renew_grant(&held(&["a", "default"])).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.to_string(), POLICIES_CHANGED);
    }

    #[test]
    fn legacy_names_and_errors() {
        let mut t = TokenFields::default();
        t.update(&parse(json!({"policies": ["x"], "period": "1m", "ttl": "2m"})).unwrap())
            .unwrap();
        let mut m = Map::new();
        t.read_into(&mut m);
        assert_eq!(m["ttl"], json!(120));
        assert_eq!(m["token_ttl"], json!(120));
        assert!(m.get("max_ttl").is_none());
        assert_eq!(m["policies"], json!(["x"]));
        assert_eq!(m["token_period"], json!(60));
        assert_eq!(m["period"], json!(60));
        for bad in [
            json!({"token_ttl": 10, "token_max_ttl": 5}),
            json!({"token_num_uses": -1}),
            json!({"token_type": "batch"}),
            json!({"token_type": "weird"}),
            json!({"token_bound_cidrs": "nope"}),
        ] {
            let e = TokenFields::default()
                .update(&parse(bad.clone()).unwrap())
                .unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
        }
    }
}
