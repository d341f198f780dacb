//! Login tokens after their login: renewal asks the auth method that issued the token
//! again (its role may have changed or gone), under that auth mount's TTL limits; and a
//! count of failed logins per auth mount, for telemetry.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::entry::TokenEntry;
use super::params::TtlLimits;
use crate::expiration::{SystemTtls, system_view};
use crate::framework::AuthRenewCtx;
use crate::mounts::{Router, Table};
use crate::{Error, Result};

/// The terms a login token is renewed on: the auth mount's limits and the role's settings
/// now (seconds; 0 = unset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginTerms {
    pub limits: TtlLimits,
    pub ttl: i64,
    pub max_ttl: i64,
    pub period: i64,
}

/// Decides the terms of renewing a login token; installed in the store by the core.
#[async_trait]
pub trait LoginRenewer: Send + Sync {
    /// `None` for a token no login issued (or issued before mounts were recorded).
    async fn login_terms(&self, entry: &TokenEntry) -> Result<Option<LoginTerms>>;
}

/// The core's renewer: finds the issuing auth mount by accessor in the router and calls its
/// backend's `renew_auth`.
pub struct RouterRenewer {
    // Weak: the router holds the token backend, which holds the store, which holds this.
    router: Weak<Router>,
    system: SystemTtls,
}

impl RouterRenewer {
    pub fn new(router: &Arc<Router>, system: SystemTtls) -> Arc<Self> {
        Arc::new(RouterRenewer {
            router: Arc::downgrade(router),
            system,
        })
    }
}

#[async_trait]
impl LoginRenewer for RouterRenewer {
    async fn login_terms(&self, entry: &TokenEntry) -> Result<Option<LoginTerms>> {
        if entry.mount_accessor.is_empty() {
            return Ok(None);
        }
        let router = self.router.upgrade().ok_or(Error::Sealed)?;
        let mounted = router
            .entries(Table::Auth)
            .into_iter()
            .find(|e| e.accessor == entry.mount_accessor)
            .and_then(|e| router.get(&e.route_path()))
            .ok_or_else(|| {
                Error::bad("the auth method that issued this token is no longer mounted")
            })?;
        let system = system_view(&mounted, self.system);
        let ctx = AuthRenewCtx {
            storage: &mounted.storage,
            system: &system,
            metadata: &entry.meta,
            internal: &entry.internal,
            policies: &entry.policies,
        };
        // Worded as Vault words a renewal its auth method refused.
        let grant = mounted
            .backend
            .renew_auth(&ctx)
            .await
            .map_err(|e| match e {
                Error::BadRequest(m) => Error::bad(format!("failed to renew entry: {m}")),
                other => other,
            })?;
        let secs = |d: std::time::Duration| d.as_secs() as i64;
        let (ttl, max_ttl, period) = match grant {
            Some(g) => (secs(g.ttl), secs(g.max_ttl), secs(g.period)),
            None => (entry.creation_ttl, entry.max_ttl, entry.period),
        };
        Ok(Some(LoginTerms {
            limits: TtlLimits::from(&system),
            ttl,
            max_ttl,
            period,
        }))
    }
}

/// Failed logins per auth mount (keyed by route path, e.g. `auth/approle/`), counted by the
/// core when a request to a mount's unauthenticated path fails. Process-wide: one server
/// runs one core.
#[derive(Debug, Default)]
pub struct LoginFailures {
    counts: Mutex<BTreeMap<String, LoginFailureCount>>,
}

/// One auth mount's count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginFailureCount {
    /// The mount's type (`approle`, `jwt`, `kubernetes`, ...).
    pub kind: String,
    pub failures: u64,
}

impl LoginFailures {
    pub fn record(&self, mount: &str, kind: &str) {
        let mut counts = self.counts.lock();
        let c = counts.entry(mount.to_string()).or_default();
        if c.kind.is_empty() {
            c.kind = kind.to_string();
        }
        c.failures += 1;
    }

    /// Every mount's count so far, by route path.
    pub fn snapshot(&self) -> BTreeMap<String, LoginFailureCount> {
        self.counts.lock().clone()
    }

    /// One mount's failures (0 if none).
    pub fn get(&self, mount: &str) -> u64 {
        self.counts.lock().get(mount).map_or(0, |c| c.failures)
    }
}

/// The process-wide failed-login counters.
pub fn login_failures() -> &'static LoginFailures {
    static FAILURES: OnceLock<LoginFailures> = OnceLock::new();
    FAILURES.get_or_init(LoginFailures::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_mount() {
        let f = LoginFailures::default();
        f.record("auth/approle/", "approle");
        f.record("auth/approle/", "approle");
        f.record("auth/jwt/", "jwt");
        assert_eq!(f.get("auth/approle/"), 2);
        assert_eq!(f.get("auth/none/"), 0);
        let snap = f.snapshot();
        assert_eq!(snap["auth/jwt/"].kind, "jwt");
        assert_eq!(snap["auth/jwt/"].failures, 1);
    }
}
