//! The AppRole auth method: machines log in with a role id (which names the role) and a
//! secret id (a credential generated for that role, with its own uses, TTL and CIDR
//! bindings).
//!
//! Secret ids are never stored: each is kept as an HMAC under a per-mount salt, found by
//! that HMAC and compared again in constant time. A login consumes one use of its secret
//! id under the mount's lock, so two concurrent logins cannot spend the same last use.
//!
//! Storage layout (inside the mount's encrypted view):
//! `salt`, `role/<name>`, `role_id/<hmac(role id)>`,
//! `secret_id/<hmac(role name)>/<hmac(secret id)>`, `accessor/<hmac(accessor)>`.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_auth_common::renewing_role;
use lessor_core::Error;
use lessor_core::Result;
use lessor_core::clock::{Clock, SystemClock};
use lessor_core::framework::{AuthRenewCtx, AuthRenewGrant, Backend, Path};
use lessor_core::mounts::MountEntry;
use lessor_storage::Storage;

mod login;
mod path_role;
mod path_secret_id;
mod path_tidy;
mod role;
mod salt;
mod secret_id;

use salt::Salt;

/// Role names as AppRole allows them.
const ROLE_NAME: &str = r"(?P<role_name>\w(?:[\w\-.@]*\w)?)";

/// What every path handler of one mount shares.
pub(crate) struct State {
    pub salt: Salt,
    pub clock: Arc<dyn Clock>,
    /// Serializes the read-modify-write of secret-id entries (login uses, destroy, tidy).
    pub lock: tokio::sync::Mutex<()>,
}

pub struct AppRole {
    state: Arc<State>,
    paths: Vec<Path>,
}

impl AppRole {
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A backend whose secret-id expiry follows `clock` (tests move it by hand).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let state = Arc::new(State {
            salt: Salt::default(),
            clock,
            lock: tokio::sync::Mutex::new(()),
        });
        let mut paths = vec![login::path(&state)];
        paths.extend(path_role::paths(&state));
        paths.extend(path_secret_id::paths(&state));
        paths.push(path_tidy::path(&state));
        AppRole { state, paths }
    }
}

impl Default for AppRole {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Backend for AppRole {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn unauthenticated_paths(&self) -> &[&'static str] {
        &["login"]
    }

    async fn initialize(&self, storage: &Arc<dyn Storage>) -> Result<()> {
        self.state.salt.load(storage).await.map(|_| ())
    }

    /// Renewal re-reads the role: gone → refused; its token settings now apply.
    async fn renew_auth(&self, ctx: &AuthRenewCtx<'_>) -> Result<Option<AuthRenewGrant>> {
        let Some(name) = renewing_role(ctx, "role_name") else {
            return Ok(None);
        };
        let role = role::get(ctx.storage, &name)
            .await?
            .ok_or_else(|| Error::bad(format!("role {name:?} does not exist during renewal")))?;
        role.token.renew_grant(ctx.policies).map(Some)
    }
}

/// Builds the backend of an `approle` mount.
pub fn factory(_entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(AppRole::new()))
}
