//! One lease-count quota as stored, and which paths it covers.

use serde::{Deserialize, Serialize};

/// The `type` of every quota here.
pub const TYPE: &str = "lease-count";

/// A persisted rule: at most `max_leases` live leases under `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseCountRule {
    pub name: String,
    /// A mount or a path below one, without leading or trailing `/`; "" = global.
    pub path: String,
    pub max_leases: i64,
}

/// `/aws/creds/` -> `aws/creds`: the form rules are stored and compared in.
pub fn normalize(path: &str) -> String {
    path.trim_matches('/').to_string()
}

impl LeaseCountRule {
    /// True when `path` (a request path or a lease id) is at or below the rule's path.
    /// Whole segments only: a rule on `test/creds/a` does not cover `test/creds/ab`.
    pub fn covers(&self, path: &str) -> bool {
        if self.path.is_empty() {
            return true;
        }
        let path = path.trim_start_matches('/');
        match path.strip_prefix(&self.path) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str) -> LeaseCountRule {
        LeaseCountRule {
            name: "q".into(),
            path: normalize(path),
            max_leases: 1,
        }
    }

    #[test]
    fn covers_whole_segments() {
        assert!(rule("").covers("anything/at/all"));
        assert!(rule("test/").covers("test/creds/role/abc"));
        assert!(rule("/test").covers("test"));
        assert!(rule("test/creds/a").covers("test/creds/a/x1"));
        assert!(!rule("test/creds/a").covers("test/creds/ab/x1"));
        assert!(!rule("test").covers("testing/creds"));
    }
}
