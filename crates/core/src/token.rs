//! Service tokens: the store that mints, resolves, renews and revokes them, and the
//! `auth/token/` backend in front of it.
//!
//! Tokens are stored only as salted hashes; each token with a TTL is also a lease, kept by
//! the lease manager through `TokenLeaseHooks`, so expiry and revocation of a token reach
//! the secrets it created. One file per path group, as the other backends.

pub mod cidr;
mod entry;
mod login;
mod params;
mod path_create;
mod path_lookup;
mod path_renew;
mod path_revoke;
mod path_roles;
mod path_tidy;
mod role;
mod store;

#[cfg(test)]
mod login_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use entry::{LAST_USE, TokenEntry, display_name, sanitize_policies};
pub use login::{
    LoginFailureCount, LoginFailures, LoginRenewer, LoginTerms, RouterRenewer, login_failures,
};
pub use params::{CreateParams, TtlLimits};
pub use role::TokenRole;
pub use store::{LeaseWrites, Renewed, TidyReport, TokenLeaseChange, TokenLeaseHooks, TokenStore};

use crate::framework::{Backend, Ctx, Path};
use crate::logical::Caller;
use crate::{Error, Result};

/// Role names as Vault's generic name pattern allows them.
const ROLE_NAME: &str = r"(?P<role_name>\w(?:[\w\-.]*\w)?)";

/// Vault's wording for an unknown accessor (a one-item multi-error).
const INVALID_ACCESSOR: &str = "1 error occurred:\n\t* invalid accessor\n\n";

struct TokenBackend {
    paths: Vec<Path>,
}

impl Backend for TokenBackend {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    /// As Vault's root paths of the token store: bare `revoke-orphan` reaches its handler,
    /// which answers the missing privilege itself.
    fn sudo_paths(&self) -> &[&'static str] {
        &["accessors*", "revoke-orphan/*"]
    }
}

/// The backend mounted at `auth/token/`.
pub fn backend(store: Arc<TokenStore>) -> Arc<dyn Backend> {
    let mut paths = Vec::new();
    paths.extend(path_create::paths(&store));
    paths.extend(path_lookup::paths(&store));
    paths.extend(path_renew::paths(&store));
    paths.extend(path_revoke::paths(&store));
    paths.extend(path_roles::paths(&store));
    paths.extend(path_tidy::paths(&store));
    Arc::new(TokenBackend { paths })
}

/// The authenticated caller; every token path needs one.
fn caller_of<'a>(ctx: &'a Ctx<'_>) -> Result<&'a Caller> {
    ctx.req.caller.as_ref().ok_or(Error::PermissionDenied)
}

/// The caller's own token and entry (for the `-self` paths). The entry is read as stored,
/// so a token in its last use can still look itself up or revoke itself.
async fn self_entry(store: &TokenStore, ctx: &Ctx<'_>) -> Result<(String, TokenEntry)> {
    let caller = caller_of(ctx)?;
    let token = ctx.req.client_token.clone().unwrap_or_default();
    let hash = if caller.token_id_hash.is_empty() {
        store.hash(&token)
    } else {
        caller.token_id_hash.clone()
    };
    match store.lookup_hash(&hash).await? {
        Some(e) if !e.is_expired(store.now_ms()) => Ok((token, e)),
        _ => Err(Error::InvalidToken),
    }
}
