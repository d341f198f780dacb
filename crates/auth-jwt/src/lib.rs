//! The JWT auth method: a workload presents a JWT signed by an issuer the mount trusts
//! (static PEM keys, a JWKS URL, or an OIDC provider's discovery document) and gets a token
//! with the settings of the role whose bindings its claims satisfy.
//!
//! Signatures are checked by `jsonwebtoken` (RustCrypto backend); every claim rule (issuer,
//! audiences, times with the role's leeways, subject, bound claims) is ours, so each failure
//! says plainly what did not match. Remote keys are cached and fetched again when a token
//! names a key id the cache does not know (key rotation). The browser OIDC flow is not
//! served.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lessor_auth_common::renewing_role;
use lessor_core::Error;
use lessor_core::Result;
use lessor_core::clock::{Clock, SystemClock};
use lessor_core::framework::{AuthRenewCtx, AuthRenewGrant, Backend, Path};
use lessor_core::mounts::MountEntry;

mod claims;
mod config;
mod keys;
mod login;
mod path_config;
mod path_role;
mod role;

/// What the path handlers of one mount share.
pub(crate) struct State {
    pub keys: keys::KeyCache,
    pub clock: Arc<dyn Clock>,
}

pub struct Jwt {
    paths: Vec<Path>,
}

impl Jwt {
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A backend whose token time checks follow `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::with_options(clock, keys::MIN_REFETCH)
    }

    /// Also sets how soon after a key-set fetch an unknown key id may trigger another
    /// (tests of key rotation use 0).
    pub fn with_options(clock: Arc<dyn Clock>, min_refetch: Duration) -> Self {
        let state = Arc::new(State {
            keys: keys::KeyCache::new(min_refetch),
            clock,
        });
        let mut paths = vec![login::path(&state), path_config::path(&state)];
        paths.extend(path_role::paths());
        Jwt { paths }
    }
}

impl Default for Jwt {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Backend for Jwt {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn unauthenticated_paths(&self) -> &[&'static str] {
        &["login"]
    }

    /// Renewal re-reads the role: gone → refused; its token settings now apply.
    async fn renew_auth(&self, ctx: &AuthRenewCtx<'_>) -> Result<Option<AuthRenewGrant>> {
        let Some(name) = renewing_role(ctx, "role") else {
            return Ok(None);
        };
        let role = role::get(ctx.storage, &name)
            .await?
            .ok_or_else(|| Error::bad("role could not be found"))?;
        role.token.renew_grant(ctx.policies).map(Some)
    }
}

/// Builds the backend of a `jwt` (or `oidc`) mount.
pub fn factory(_entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(Jwt::new()))
}
