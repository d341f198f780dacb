//! What every login method shares: the common `token_*` role fields (parsed, stored, read
//! back and turned into the auth block in one place), CIDR checks against the client
//! address, display names, JSON records in the mount's storage, and a harness that drives
//! a backend through the framework's dispatch in tests.

pub mod cidr;
#[cfg(feature = "http")]
pub mod http;
pub mod record;
pub mod testing;
pub mod token_fields;

pub use cidr::{check_cidrs, parse_cidrs};
pub use record::{delete, get_json, put_json};
pub use token_fields::{TokenFields, renewing_role};

/// A login token's display name: the mount path without `auth/`, `/` turned into `-`, then
/// the method's detail (`approle`, `jwt-alice`, `kubernetes-ns-sa`).
pub fn display_name(mount_point: &str, detail: &str) -> String {
    let source = mount_point
        .strip_prefix("auth/")
        .unwrap_or(mount_point)
        .replace('/', "-");
    let full = format!("{source}{detail}");
    full.strip_suffix('-').unwrap_or(&full).to_string()
}

/// `*` glob matching (any run of characters; no other metacharacters), as bound claims
/// and service-account bindings use it.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if parts.len() == 1 {
        return pattern == value;
    }
    if value.len() < first.len() + last.len() || !value.starts_with(first) {
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
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("team-*", "team-a"));
        assert!(!glob_match("team-*", "other"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("auth/approle/", ""), "approle");
        assert_eq!(display_name("auth/jwt/", "alice"), "jwt-alice");
        assert_eq!(display_name("auth/team/k8s/", "ns-sa"), "team-k8s-ns-sa");
    }
}
