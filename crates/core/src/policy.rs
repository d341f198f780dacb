//! ACL policies: parsing policy text, compiling a token's policies into an `Acl`, and the
//! store of named policies.
//!
//! The flow: an operator writes HCL/JSON text (`PolicyStore::set`), which is parsed once into
//! a `Policy` (`parse`); a request's token names its policies, and `PolicyStore::acl` returns
//! the compiled `Acl` for that set (cached until any policy changes); the core asks the `Acl`
//! whether the request's capabilities are granted (`Acl::check`), and whether the matched rule
//! grants `sudo` for root-protected paths.
//!
//! Matching follows Vault exactly, because policies are shared with existing deployments:
//! an exact rule wins; otherwise the most specific wildcard rule decides alone (see `acl`).

mod acl;
mod builtin;
mod capabilities;
mod params;
mod parse;
mod store;

pub use acl::{Acl, Decision};
pub use builtin::{
    DEFAULT_POLICY, DEFAULT_POLICY_TEXT, IMMUTABLE_POLICIES, RESPONSE_WRAPPING_POLICY,
    RESPONSE_WRAPPING_POLICY_TEXT, ROOT_POLICY,
};
pub use capabilities::Capabilities;
pub use parse::{PathRule, Permissions, Policy, decode_policy_text, parse_policy};
pub use store::{PolicyStore, sanitize_name};

#[cfg(test)]
mod tests;
