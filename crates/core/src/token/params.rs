//! What it takes to mint a token, independent of who asks: `auth/token/create*` fills it
//! from its fields and role, a login fills it from the backend's `AuthSpec`. The TTL is
//! settled here, through `ttl::calculate`, before the store writes anything.

use std::collections::BTreeMap;

use crate::Result;
use crate::framework::SystemView;
use crate::logical::AuthSpec;
use crate::ttl::{TtlInput, calculate};

/// The effective default and max TTL of the mount a token is created or renewed through,
/// in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtlLimits {
    pub default: i64,
    pub max: i64,
}

impl From<&SystemView> for TtlLimits {
    fn from(s: &SystemView) -> Self {
        TtlLimits {
            default: s.default_lease_ttl.as_secs() as i64,
            max: s.max_lease_ttl.as_secs() as i64,
        }
    }
}

/// Inputs of `TokenStore::create`. Durations are whole seconds.
#[derive(Debug, Clone, Default)]
pub struct CreateParams {
    /// A caller-chosen token (root/sudo only, checked by the caller); `None` = random.
    pub id: Option<String>,
    pub policies: Vec<String>,
    /// Add `default` to `policies` (the store sanitizes: lower-case, sorted, root alone).
    pub add_default_policy: bool,
    pub meta: BTreeMap<String, String>,
    /// Final display name (see `entry::display_name` for the token store's form).
    pub display_name: String,
    pub path: String,
    /// The parent's `id_hash`; empty for an orphan.
    pub parent: String,
    /// Requested or backend TTL; after `apply_ttl`, the TTL granted (0 = never expires).
    pub ttl: i64,
    /// Backend max TTL (a role's `token_max_ttl`); 0 = only the mount max.
    pub max_ttl: i64,
    pub explicit_max_ttl: i64,
    pub period: i64,
    pub num_uses: i64,
    pub renewable: bool,
    pub role: String,
    pub bound_cidrs: Vec<String>,
    pub entity_id: String,
    /// The issuing auth mount's accessor and the login's internal data (login tokens).
    pub mount_accessor: String,
    pub internal: serde_json::Map<String, serde_json::Value>,
}

impl CreateParams {
    /// Parameters for the token of a login: an orphan carrying the backend's auth block,
    /// created at `path` (e.g. `auth/approle/login`).
    pub fn from_auth(auth: &AuthSpec, path: &str) -> Self {
        let policies = if auth.token_policies.is_empty() {
            auth.policies.clone()
        } else {
            auth.token_policies.clone()
        };
        CreateParams {
            id: None,
            policies,
            add_default_policy: !auth.no_default_policy,
            meta: auth.metadata.clone(),
            display_name: auth.display_name.clone(),
            path: path.to_string(),
            parent: String::new(),
            ttl: auth.ttl.as_secs() as i64,
            max_ttl: auth.max_ttl.as_secs() as i64,
            explicit_max_ttl: auth.explicit_max_ttl.as_secs() as i64,
            period: auth.period.as_secs() as i64,
            num_uses: auth.num_uses.max(0),
            renewable: auth.renewable,
            role: String::new(),
            bound_cidrs: auth.bound_cidrs.clone(),
            entity_id: auth.entity_id.clone(),
            mount_accessor: String::new(),
            internal: auth.internal.clone(),
        }
    }

    /// Settles `ttl` against the mount's limits and returns the cap warning, if any. A
    /// root token asked for without TTL or period never expires (TTL 0).
    pub fn apply_ttl(&mut self, limits: TtlLimits, now: i64) -> Result<Option<String>> {
        let root = self
            .policies
            .iter()
            .any(|p| p.trim().eq_ignore_ascii_case("root"));
        if root && self.ttl == 0 && self.period == 0 {
            return Ok(None);
        }
        let granted = calculate(TtlInput {
            increment: 0,
            backend_ttl: self.ttl,
            backend_max: self.max_ttl,
            explicit_max: self.explicit_max_ttl,
            period: self.period,
            mount_default: limits.default,
            mount_max: limits.max,
            start: now,
            now,
        })?;
        self.ttl = granted.ttl;
        Ok(granted.warning)
    }
}
