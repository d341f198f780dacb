//! Lease-count quotas: at most `max_leases` live leases under a path (a mount, a path below
//! one, or everything).
//!
//! - **Which rule applies.** The most specific: of the rules covering a request path, the
//!   one with the longest path (ties: the first name). A mount's rule thus overrides the
//!   global one, as in Vault.
//! - **What counts.** Every lease recorded under the rule's path, whatever rule was in force
//!   when it was issued: secrets from their reservation (a pending lease is a lease),
//!   irrevocable ones until forced out, and service tokens with a TTL (their lease ids sit
//!   under the login or `auth/token/create` path, so a rule on `auth/token` or on a login
//!   mount limits them). Tokens without a TTL and the root token's own requests are not
//!   leases and never count; the root token is exempt from the check itself.
//! - **When it is checked.** Before anything is created: a secret at its reservation (the
//!   engine reserves before its first external call), a token before the token-creating
//!   request runs. Over the limit the request fails with 429 and Vault's message.
//! - **Counting is cheap.** Counters live in memory and follow the lease manager's events
//!   (`reserved`/token `issued` add one, `revoked` takes one away). They are rebuilt at
//!   unseal, and for a new rule at its creation, by one pass over the lease records under
//!   the rule's path (lease index keys only, no body decrypted); no request ever scans.
//!   A request admitted but not yet reserved holds a slot, so concurrent requests cannot
//!   overshoot the limit. A new rule's first count may miss the leases issued or revoked
//!   while it is being taken; the count is exact again after the next unseal.
//!
//! Rules are stored through the barrier under `sys/quotas/lease-count/<name>`.

mod rule;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use lessor_storage::Storage;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

pub use rule::{LeaseCountRule, TYPE, normalize};

use crate::expiration::{EventKind, LeaseEvent, LeaseObserver, RequestLeases};
use crate::framework::Reserver;
use crate::{Error, Result};

const RULE_PREFIX: &str = "lease-count/";
/// Where the lease manager keeps lease records (keys `id/<lease id>` in its view).
const LEASE_ID_PREFIX: &str = "id/";

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    leases: i64,
    /// Requests admitted whose lease is not recorded yet.
    inflight: i64,
}

struct Live {
    rule: LeaseCountRule,
    counts: Mutex<Counts>,
}

impl Live {
    fn new(rule: LeaseCountRule, leases: i64) -> Self {
        Live {
            rule,
            counts: Mutex::new(Counts {
                leases,
                inflight: 0,
            }),
        }
    }
}

/// The rules in force and their counters.
pub struct LeaseQuotas {
    /// `sys/quotas/` through the barrier.
    storage: Arc<dyn Storage>,
    /// The lease manager's `sys/expire/`, read (keys only) to initialise counters.
    leases: Arc<dyn Storage>,
    rules: RwLock<BTreeMap<String, Arc<Live>>>,
}

/// A slot held by an admitted request until its lease is recorded (or it gives up).
pub struct Admission(Option<Arc<Live>>);

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(live) = self.0.take() {
            let mut c = live.counts.lock();
            c.inflight = (c.inflight - 1).max(0);
        }
    }
}

fn exceeded(path: &str) -> Error {
    Error::QuotaExceeded(format!(
        "1 error occurred:\n\t* request path {path:?}: lease count quota exceeded\n\n"
    ))
}

impl LeaseQuotas {
    pub fn new(storage: Arc<dyn Storage>, leases: Arc<dyn Storage>) -> Arc<Self> {
        Arc::new(LeaseQuotas {
            storage,
            leases,
            rules: RwLock::new(BTreeMap::new()),
        })
    }

    /// Loads the rules and counts the leases under each: at unseal, before the scheduler
    /// runs and before any request is served.
    pub async fn restore(&self) -> Result<usize> {
        let mut rules = Vec::new();
        for name in self.storage.list(RULE_PREFIX).await? {
            if let Some(rule) = self.load(&name).await? {
                rules.push(rule);
            }
        }
        // Each rule counts only the leases under its path: no rules, no scan.
        let mut live = Vec::with_capacity(rules.len());
        for rule in rules {
            let n = self.count(&rule).await?;
            live.push(Live::new(rule, n));
        }
        let mut map = self.rules.write();
        map.clear();
        map.extend(live.into_iter().map(|l| (l.rule.name.clone(), Arc::new(l))));
        Ok(map.len())
    }

    async fn load(&self, name: &str) -> Result<Option<LeaseCountRule>> {
        let Some(raw) = self.storage.get(&format!("{RULE_PREFIX}{name}")).await? else {
            return Ok(None);
        };
        match serde_json::from_slice(&raw) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::error!(quota = %name, error = %e, "unreadable lease-count quota skipped");
                Ok(None)
            }
        }
    }

    /// How many leases `rule` covers now, from the lease record keys under its path.
    async fn count(&self, rule: &LeaseCountRule) -> Result<i64> {
        let mut n = 0;
        let base = format!("{LEASE_ID_PREFIX}{}", rule.path);
        let mut after: Option<String> = None;
        loop {
            // Keys only: no lease body is decrypted to count it.
            let page = self.leases.scan_keys(&base, after.as_deref(), 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            let under = |key: &&String| rule.covers(&key[LEASE_ID_PREFIX.len()..]);
            n += page.iter().filter(under).count() as i64;
        }
        Ok(n)
    }

    /// Creates or replaces a rule, durably, and counts the leases it covers now.
    pub async fn put(&self, rule: LeaseCountRule) -> Result<()> {
        let raw = serde_json::to_vec(&rule).map_err(|e| Error::internal(e.to_string()))?;
        let n = self.count(&rule).await?;
        self.storage
            .put(&format!("{RULE_PREFIX}{}", rule.name), raw)
            .await?;
        let live = Live::new(rule, n);
        self.rules
            .write()
            .insert(live.rule.name.clone(), Arc::new(live));
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        self.storage.delete(&format!("{RULE_PREFIX}{name}")).await?;
        self.rules.write().remove(name);
        Ok(())
    }

    /// A rule and its current lease count.
    pub fn get(&self, name: &str) -> Option<(LeaseCountRule, i64)> {
        let live = self.rules.read().get(name).cloned()?;
        let n = live.counts.lock().leases;
        Some((live.rule.clone(), n))
    }

    pub fn names(&self) -> Vec<String> {
        self.rules.read().keys().cloned().collect()
    }

    /// The rule in force for `path`: the most specific one covering it.
    fn applicable(&self, path: &str) -> Option<Arc<Live>> {
        self.rules
            .read()
            .values()
            .filter(|l| l.rule.covers(path))
            .max_by(|a, b| {
                a.rule
                    .path
                    .len()
                    .cmp(&b.rule.path.len())
                    .then_with(|| b.rule.name.cmp(&a.rule.name))
            })
            .cloned()
    }

    /// Admits one lease to be created by a request on `path`, or refuses it with 429.
    /// `exempt` (the root token) always passes. Hold the admission until the lease is
    /// recorded.
    pub fn admit(&self, path: &str, exempt: bool) -> Result<Admission> {
        if exempt {
            return Ok(Admission(None));
        }
        let Some(live) = self.applicable(path) else {
            return Ok(Admission(None));
        };
        {
            let mut c = live.counts.lock();
            if c.leases + c.inflight >= live.rule.max_leases {
                return Err(exceeded(path.trim_start_matches('/')));
            }
            c.inflight += 1;
        }
        Ok(Admission(Some(live)))
    }

    /// Admits a request that creates a token, if it does: a login on an auth method (a path
    /// it serves without a token) or `auth/token/create*`. Other requests pass.
    pub fn admit_token_request(
        &self,
        mount_kind: &str,
        auth_mount: bool,
        login: bool,
        req: &crate::logical::Request,
        exempt: bool,
    ) -> Result<Admission> {
        let writes = matches!(
            req.operation,
            crate::logical::Operation::Update | crate::logical::Operation::Create
        );
        let creates = auth_mount
            && writes
            && (login || (mount_kind == "token" && req.rel_path.starts_with("create")));
        if creates {
            self.admit(&req.path, exempt)
        } else {
            Ok(Admission(None))
        }
    }

    fn adjust(&self, lease_id: &str, delta: i64) {
        for live in self.rules.read().values() {
            if live.rule.covers(lease_id) {
                let mut c = live.counts.lock();
                c.leases = (c.leases + delta).max(0);
            }
        }
    }
}

impl LeaseObserver for LeaseQuotas {
    fn observe(&self, ev: &LeaseEvent) {
        match ev.kind {
            EventKind::Reserved => self.adjust(&ev.lease_id, 1),
            // A secret was counted at its reservation; a token has none.
            EventKind::Issued if ev.token => self.adjust(&ev.lease_id, 1),
            EventKind::Revoked => self.adjust(&ev.lease_id, -1),
            _ => {}
        }
    }
}

/// The request's reservations, each admitted by the quota in force first.
pub struct GatedLeases<'a> {
    pub inner: &'a RequestLeases,
    pub quotas: &'a LeaseQuotas,
    pub exempt: bool,
}

#[async_trait]
impl Reserver for GatedLeases<'_> {
    async fn reserve(&self, secret_type: &str, planned: Value) -> Result<String> {
        let _slot = self.quotas.admit(&self.inner.request_path, self.exempt)?;
        self.inner.reserve(secret_type, planned).await
    }

    async fn revoke_prefix(&self, rel_prefix: &str) -> Result<()> {
        self.inner.revoke_prefix(rel_prefix).await
    }
}
