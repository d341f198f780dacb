//! The Kubernetes auth method: a pod logs in with its service-account JWT. The JWT's
//! service-account claims must satisfy the role's name and namespace bindings, and the
//! cluster's TokenReview API must confirm the token (as that same service account, and for
//! the role's audience) before a token is issued.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_auth_common::renewing_role;
use lessor_core::Error;
use lessor_core::Result;
use lessor_core::framework::{AuthRenewCtx, AuthRenewGrant, Backend, Path};
use lessor_core::mounts::MountEntry;

mod config;
mod login;
mod path_role;
mod review;
mod sa;

pub struct Kubernetes {
    paths: Vec<Path>,
}

impl Kubernetes {
    pub fn new() -> Self {
        let mut paths = vec![login::path(), config::path()];
        paths.extend(path_role::paths());
        Kubernetes { paths }
    }
}

impl Default for Kubernetes {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Backend for Kubernetes {
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
        let role = path_role::get(ctx.storage, &name)
            .await?
            .ok_or_else(|| Error::bad(format!("role {name} does not exist during renewal")))?;
        role.token.renew_grant(ctx.policies).map(Some)
    }
}

/// Builds the backend of a `kubernetes` mount.
pub fn factory(_entry: &MountEntry) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(Kubernetes::new()))
}
