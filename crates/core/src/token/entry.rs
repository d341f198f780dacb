//! The persisted token record and the shapes it is shown in: the lookup data, the auth block
//! of create and renew replies, and the caller the core derives from it.
//!
//! The token itself is never part of the record: `id_hash` is its salted HMAC, so a copy of
//! the storage does not hand out working tokens.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clock::{is_zero_ms, join_ms, rfc3339, rfc3339_ms, seconds_left, split_ms};
use crate::logical::{AuthSpec, Caller};

/// `num_uses` of a token whose last use is in progress: it resolves no more, and the core
/// revokes it once the request is done.
pub const LAST_USE: i64 = -1;

/// Policies that are internal to the server and never assigned to a token.
pub const NON_ASSIGNABLE: &[&str] = &["response-wrapping", "control-group"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenEntry {
    /// Salted hash of the token (`h` + hex HMAC-SHA256), the key of everything stored.
    pub id_hash: String,
    pub accessor: String,
    /// The parent's `id_hash`; empty for orphans.
    pub parent: String,
    /// Sorted, deduplicated; `["root"]` alone for root tokens.
    pub policies: Vec<String>,
    /// Creation path (`auth/token/create[/<role>[/<suffix>]]`, a login path); token leases
    /// are `<path>/<id_hash>`.
    pub path: String,
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    /// 0 = unlimited; `LAST_USE` while the last allowed request runs.
    pub num_uses: i64,
    /// Unix seconds.
    pub creation_time: i64,
    /// TTL granted at creation, in seconds (0 = never expires).
    pub creation_ttl: i64,
    /// Unix seconds; 0 = never expires.
    pub expire_time: i64,
    /// Milliseconds past `expire_time` (0-999): a TTL counts from the millisecond the token
    /// was created or renewed. Records written before it was kept read as 0.
    #[serde(skip_serializing_if = "is_zero_ms")]
    pub expire_ms: u16,
    pub explicit_max_ttl: i64,
    /// The backend's max TTL at creation (a login role's `token_max_ttl`), in seconds;
    /// renewals stay within it. 0 = only the mount max.
    pub max_ttl: i64,
    pub period: i64,
    pub renewable: bool,
    pub role: String,
    #[serde(rename = "type")]
    pub token_type: String,
    pub orphan: bool,
    pub bound_cidrs: Vec<String>,
    pub entity_id: String,
    /// Unix seconds of the last renewal; 0 = never renewed.
    pub last_renewal: i64,
    /// For a login token: the accessor of the auth mount that issued it (renewal asks that
    /// mount's backend again, under that mount's TTL limits). Empty otherwise.
    pub mount_accessor: String,
    /// For a login token: the login's internal data (the role name), kept for renewal and
    /// never shown.
    pub internal: Map<String, Value>,
}

impl TokenEntry {
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// When it expires (Unix ms; 0 = never).
    pub fn expires_at_ms(&self) -> i64 {
        join_ms(self.expire_time, self.expire_ms)
    }

    pub fn set_expiry_ms(&mut self, at_ms: i64) {
        (self.expire_time, self.expire_ms) = split_ms(at_ms);
    }

    /// Expired at `now_ms` (Unix ms): from its expiry's millisecond on, never before.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expire_time > 0 && self.expires_at_ms() <= now_ms
    }

    /// True once `use_token` handed out the last allowed use: revoke after the request.
    pub fn last_use_pending(&self) -> bool {
        self.num_uses == LAST_USE
    }

    /// Seconds left at `now_ms` as lookups show them (`clock::seconds_left`); 0 for tokens
    /// that never expire, and for expired ones.
    pub fn ttl_remaining(&self, now_ms: i64) -> i64 {
        // Never expiring, its expiry is 0: no seconds left.
        seconds_left(self.expires_at_ms(), now_ms)
    }

    /// What a request made with this token knows of its caller. `sudo` is left to the ACL.
    pub fn caller(&self) -> Caller {
        Caller {
            accessor: self.accessor.clone(),
            display_name: self.display_name.clone(),
            policies: self.policies.clone(),
            is_root: self.is_root(),
            metadata: self.meta.clone(),
            token_id_hash: self.id_hash.clone(),
            entity_id: self.entity_id.clone(),
            sudo: self.is_root(),
        }
    }

    /// The auth block of create and renew replies. `client_token` is empty for accessor
    /// renewals; `lease_duration` is the TTL just granted.
    pub fn auth(&self, client_token: &str, lease_duration: i64) -> AuthSpec {
        let lease_duration = lease_duration.max(0);
        AuthSpec {
            policies: self.policies.clone(),
            token_policies: self.policies.clone(),
            metadata: self.meta.clone(),
            display_name: self.display_name.clone(),
            ttl: Duration::from_secs(lease_duration as u64),
            max_ttl: Duration::ZERO,
            explicit_max_ttl: Duration::from_secs(self.explicit_max_ttl.max(0) as u64),
            period: Duration::from_secs(self.period.max(0) as u64),
            num_uses: self.num_uses.max(0),
            renewable: self.renewable && lease_duration > 0,
            no_default_policy: false,
            bound_cidrs: self.bound_cidrs.clone(),
            token_type: "service".into(),
            client_token: client_token.to_string(),
            accessor: self.accessor.clone(),
            orphan: self.parent.is_empty(),
            lease_duration: lease_duration as u64,
            entity_id: self.entity_id.clone(),
            internal: Map::new(),
        }
    }

    /// The data of `lookup*` at `now_ms` (Unix ms); `id` is the token as the caller gave it
    /// (empty for `lookup-accessor`).
    pub fn lookup_data(&self, id: &str, now_ms: i64) -> Map<String, Value> {
        let meta = if self.meta.is_empty() {
            Value::Null
        } else {
            json!(self.meta)
        };
        let mut d = Map::new();
        d.insert("id".into(), json!(id));
        d.insert("accessor".into(), json!(self.accessor));
        d.insert("policies".into(), json!(self.policies));
        d.insert("path".into(), json!(self.path));
        d.insert("meta".into(), meta);
        d.insert("display_name".into(), json!(self.display_name));
        d.insert("num_uses".into(), json!(self.num_uses));
        d.insert("orphan".into(), json!(self.parent.is_empty()));
        d.insert("creation_time".into(), json!(self.creation_time));
        d.insert("creation_ttl".into(), json!(self.creation_ttl));
        let expire = if self.expire_time > 0 {
            json!(rfc3339_ms(self.expires_at_ms()))
        } else {
            Value::Null
        };
        d.insert("expire_time".into(), expire);
        d.insert("issue_time".into(), json!(rfc3339(self.creation_time)));
        d.insert("ttl".into(), json!(self.ttl_remaining(now_ms)));
        d.insert("explicit_max_ttl".into(), json!(self.explicit_max_ttl));
        d.insert("entity_id".into(), json!(self.entity_id));
        d.insert("type".into(), json!("service"));
        d.insert(
            "renewable".into(),
            json!(self.renewable && self.expire_time > 0),
        );
        if self.last_renewal > 0 {
            d.insert("last_renewal".into(), json!(rfc3339(self.last_renewal)));
            d.insert("last_renewal_time".into(), json!(self.last_renewal));
        }
        if self.period > 0 {
            d.insert("period".into(), json!(self.period));
        }
        if !self.role.is_empty() {
            d.insert("role".into(), json!(self.role));
        }
        if !self.bound_cidrs.is_empty() {
            d.insert("bound_cidrs".into(), json!(self.bound_cidrs));
        }
        d
    }
}

/// `token`, or `token-<name>` with every character outside `[a-zA-Z0-9-]` turned into `-`
/// and one trailing `-` dropped.
pub fn display_name(requested: &str) -> String {
    if requested.is_empty() {
        return "token".into();
    }
    let full: String = format!("token-{requested}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    full.strip_suffix('-').unwrap_or(&full).to_string()
}

/// Trims and lower-cases policy names, drops empty ones, collapses to `["root"]` when root
/// is present, adds `default` when asked, and sorts without duplicates.
pub fn sanitize_policies(policies: &[String], add_default: bool) -> Vec<String> {
    let mut out: Vec<String> = policies
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if out.iter().any(|p| p == "root") {
        return vec!["root".into()];
    }
    if add_default && !out.iter().any(|p| p == "default") {
        out.push("default".into());
    }
    out.sort();
    out.dedup();
    out
}

/// `*` glob matching as Vault's policy globs use it (no other metacharacters).
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || value.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &value[first.len()..];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        assert_eq!(display_name(""), "token");
        assert_eq!(display_name("my app!_x-"), "token-my-app--x");
        assert_eq!(display_name("ci"), "token-ci");
    }

    #[test]
    fn policies_sanitized() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sanitize_policies(&p(&["B", " a", "", "a"]), true),
            p(&["a", "b", "default"])
        );
        assert_eq!(sanitize_policies(&p(&["a", "root"]), true), p(&["root"]));
        assert_eq!(sanitize_policies(&p(&[]), false), Vec::<String>::new());
    }

    #[test]
    fn globs() {
        assert!(glob_match("x*", "xyz"));
        assert!(glob_match("*-ro", "app-ro"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c", "ab"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }
}
