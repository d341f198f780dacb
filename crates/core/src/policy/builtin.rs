//! The policies that exist without anyone writing them.
//!
//! * `root`: never stored, cannot be changed or deleted; holding it grants everything.
//! * `default`: written at first unseal if absent; operators may edit it but not delete it.
//!   Its rules let any token manage itself (lookup/renew/revoke), use its cubbyhole, wrap and
//!   unwrap responses, renew and look up leases, and use the hashing and random tools.
//! * `response-wrapping`: attached to wrapping tokens only; immutable and never listed.

pub const ROOT_POLICY: &str = "root";
pub const DEFAULT_POLICY: &str = "default";
pub const RESPONSE_WRAPPING_POLICY: &str = "response-wrapping";

/// Policies an operator may not write.
pub const IMMUTABLE_POLICIES: [&str; 2] = [ROOT_POLICY, RESPONSE_WRAPPING_POLICY];

pub const DEFAULT_POLICY_TEXT: &str = r#"
# Every token may read its own token entry.
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Every token may extend or end its own life.
path "auth/token/renew-self" {
    capabilities = ["update"]
}
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Every token may ask what it is allowed to do.
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Identity lookups of the token's own entity (templated; apply only to tokens with an entity).
path "identity/entity/id/{{identity.entity.id}}" {
    capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
    capabilities = ["read"]
}

# The UI's view of this token's effective policy.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Lease renewal and lookup by lease id (the id itself is the secret that grants access).
path "sys/renew" {
    capabilities = ["update"]
}
path "sys/leases/renew" {
    capabilities = ["update"]
}
path "sys/leases/lookup" {
    capabilities = ["update"]
}

# The token's private cubbyhole.
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Response wrapping: wrap values, inspect and unwrap wrapping tokens.
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

# Stateless helper tools.
path "sys/tools/hash" {
    capabilities = ["update"]
}
path "sys/tools/hash/*" {
    capabilities = ["update"]
}
path "sys/tools/random" {
    capabilities = ["update"]
}
path "sys/tools/random/*" {
    capabilities = ["update"]
}

# OIDC provider authorization requests.
path "identity/oidc/provider/+/authorize" {
    capabilities = ["read", "update"]
}
"#;

pub const RESPONSE_WRAPPING_POLICY_TEXT: &str = r#"
path "cubbyhole/response" {
    capabilities = ["create", "read"]
}

path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}
"#;
