//! The backend contract and the path framework.
//!
//! An engine (secrets or auth) declares its paths, each with a pattern, typed fields, the
//! operations it handles and whether it has an existence check, and one handler. The
//! framework matches the path, merges path captures into the data, parses fields once with
//! Vault's weak typing, and calls the handler. Secret types are renewed and revoked through
//! the same trait, with the internal data stored in the lease.

pub mod field;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lessor_storage::Storage;
use regex::Regex;
use serde_json::{Map, Value};

pub use field::{Field, FieldData, FieldType};

use crate::logical::{Operation, Request, Response};
use crate::{Error, Result};

/// What a handler gets besides its fields.
pub struct Ctx<'a> {
    pub req: &'a Request,
    /// Storage scoped to the mount and encrypted by the barrier.
    pub storage: &'a Arc<dyn Storage>,
    pub system: &'a SystemView,
    /// Lease reservations for this request; `None` where nothing may issue secrets.
    pub leases: Option<&'a dyn Reserver>,
}

impl<'a> Ctx<'a> {
    pub fn new(req: &'a Request, storage: &'a Arc<dyn Storage>, system: &'a SystemView) -> Self {
        Ctx {
            req,
            storage,
            system,
            leases: None,
        }
    }

    /// Reserves the lease of a credential before creating it (zero leak): a pending lease
    /// holding `planned` (what revocation needs, e.g. the user name chosen) is durable when
    /// this returns. Put the returned id in `SecretSpec::reservation`. If the handler then
    /// fails, the core revokes the planned credential at once; if the process dies, the
    /// pending lease is revoked after its deadline.
    pub async fn reserve(&self, secret_type: &str, planned: Value) -> Result<String> {
        let leases = self
            .leases
            .ok_or_else(|| Error::internal("this request cannot issue leases"))?;
        leases.reserve(secret_type, planned).await
    }

    /// Revokes, in this request, every lease of this mount under `rel_prefix` (relative to
    /// the mount, e.g. `creds/<role>`): for engines that revoke a role's leases with it.
    pub async fn revoke_prefix(&self, rel_prefix: &str) -> Result<()> {
        let leases = self
            .leases
            .ok_or_else(|| Error::internal("this request cannot revoke leases"))?;
        leases.revoke_prefix(rel_prefix).await
    }
}

/// Request-scoped lease reservations, implemented by the lease manager.
#[async_trait]
pub trait Reserver: Send + Sync {
    async fn reserve(&self, secret_type: &str, planned: Value) -> Result<String>;

    /// Revokes every lease of the request's mount under `rel_prefix`.
    async fn revoke_prefix(&self, _rel_prefix: &str) -> Result<()> {
        Err(Error::internal("this request cannot revoke leases"))
    }
}

/// The mount's effective settings, as a backend may need them.
#[derive(Debug, Clone)]
pub struct SystemView {
    pub default_lease_ttl: Duration,
    pub max_lease_ttl: Duration,
    pub mount_path: String,
}

/// One path handler; its struct lives in the file of its path group.
#[async_trait]
pub trait PathHandler: Send + Sync {
    async fn handle(&self, ctx: &Ctx<'_>, op: Operation, d: &FieldData)
    -> Result<Option<Response>>;

    /// Decides create vs update for writes on paths declared with an existence check.
    async fn exists(&self, _ctx: &Ctx<'_>, _d: &FieldData) -> Result<bool> {
        Ok(false)
    }
}

/// A declared path.
pub struct Path {
    pub pattern: Regex,
    pub fields: Vec<Field>,
    pub operations: Vec<Operation>,
    pub existence_check: bool,
    /// Store whatever keys the request sends (KV): no unknown-field warnings.
    pub any_fields: bool,
    pub help: &'static str,
    pub handler: Arc<dyn PathHandler>,
}

impl Path {
    /// `pattern` is a regex over the path relative to the mount, anchored at both ends; its
    /// named groups become fields.
    pub fn new(pattern: &str, handler: Arc<dyn PathHandler>) -> Self {
        let anchored = format!("^(?:{pattern})$");
        // Patterns are compile-time constants of the engines; a bad one is a programming
        // error caught by every engine's tests, so fall back to a never-matching regex.
        let pattern = Regex::new(&anchored).unwrap_or_else(|e| {
            tracing::error!(error = %e, "invalid path pattern");
            Regex::new("^\u{0}never$").unwrap_or_else(|_| unreachable_regex())
        });
        Path {
            pattern,
            fields: Vec::new(),
            operations: Vec::new(),
            existence_check: false,
            any_fields: false,
            help: "",
            handler,
        }
    }

    pub fn fields(mut self, fields: Vec<Field>) -> Self {
        self.fields = fields;
        self
    }

    pub fn ops(mut self, ops: &[Operation]) -> Self {
        self.operations = ops.to_vec();
        self
    }

    pub fn existence(mut self) -> Self {
        self.existence_check = true;
        self
    }

    pub fn any_fields(mut self) -> Self {
        self.any_fields = true;
        self
    }

    pub fn help(mut self, help: &'static str) -> Self {
        self.help = help;
        self
    }

    /// Handles create as update when the path has no existence check of its own.
    fn supports(&self, op: Operation) -> bool {
        self.operations.contains(&op)
            || (op == Operation::Create && self.operations.contains(&Operation::Update))
    }
}

#[allow(clippy::unwrap_used)]
fn unreachable_regex() -> Regex {
    Regex::new("$^").unwrap()
}

/// Result of renewing a secret: what the backend grants before the core applies limits.
#[derive(Debug, Clone, Default)]
pub struct RenewGrant {
    pub ttl: Duration,
    pub max_ttl: Duration,
    /// Replaces the lease's internal data when set.
    pub internal: Option<Value>,
}

/// What renew and revoke of a secret get.
pub struct LeaseCtx<'a> {
    pub storage: &'a Arc<dyn Storage>,
    pub system: &'a SystemView,
    pub secret_type: &'a str,
    pub internal: &'a Value,
    pub issue_time: time::OffsetDateTime,
    /// When the lease expires, to the millisecond; `None` if it never does, or the secret
    /// has no lease (one revoked because it came back unreserved).
    pub expire_time: Option<time::OffsetDateTime>,
    pub increment: Duration,
}

/// What renewing a login token gets: the token's data as its login stored it.
pub struct AuthRenewCtx<'a> {
    /// The auth mount's storage and settings.
    pub storage: &'a Arc<dyn Storage>,
    pub system: &'a SystemView,
    pub metadata: &'a std::collections::BTreeMap<String, String>,
    /// `AuthSpec::internal` of the login (e.g. the role name).
    pub internal: &'a Map<String, Value>,
    /// The token's policies (sanitized, `default` included when it was added).
    pub policies: &'a [String],
}

/// The terms an auth method renews one of its login tokens on (its role's settings now);
/// zero means unset. The core settles the TTL from them and the auth mount's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthRenewGrant {
    pub ttl: Duration,
    pub max_ttl: Duration,
    pub period: Duration,
}

/// A secrets engine or an auth method.
#[async_trait]
pub trait Backend: Send + Sync {
    fn paths(&self) -> &[Path];

    /// Paths (relative, `*` suffix = prefix) reachable without a token: logins.
    fn unauthenticated_paths(&self) -> &[&'static str] {
        &[]
    }

    /// Paths (relative, `*` suffix = prefix) that need `sudo` besides their capability.
    fn sudo_paths(&self) -> &[&'static str] {
        &[]
    }

    /// Renews a secret this backend issued. Default: not renewable.
    async fn renew(&self, _ctx: &LeaseCtx<'_>) -> Result<RenewGrant> {
        Err(Error::bad("lease is not renewable"))
    }

    /// Revokes a secret this backend issued. Must be idempotent and treat "already gone" as
    /// success.
    async fn revoke(&self, _ctx: &LeaseCtx<'_>) -> Result<()> {
        Ok(())
    }

    /// Renews a token that a login of this method issued: re-reads what the login rests on
    /// (its role) and answers the terms now in force, or an error to refuse the renewal.
    /// Default `None`: the token keeps the terms it was issued with.
    async fn renew_auth(&self, _ctx: &AuthRenewCtx<'_>) -> Result<Option<AuthRenewGrant>> {
        Ok(None)
    }

    /// Called once after mounting (and after unseal, for existing mounts).
    async fn initialize(&self, _storage: &Arc<dyn Storage>) -> Result<()> {
        Ok(())
    }
}

/// A path matched in a backend, with its captures.
pub struct Matched<'b> {
    pub path: &'b Path,
    pub captures: Map<String, Value>,
}

/// Finds the path `rel` in `backend`, or `None`.
pub fn find<'b>(backend: &'b dyn Backend, rel: &str) -> Option<Matched<'b>> {
    // LIST requests carry a trailing `/`; a list path may or may not spell it, but a path
    // that cannot list does not match with it (Vault answers 404 there, not 405).
    find_exact(backend, rel).or_else(|| {
        find_exact(backend, rel.strip_suffix('/')?)
            .filter(|m| m.path.operations.contains(&Operation::List))
    })
}

fn find_exact<'b>(backend: &'b dyn Backend, rel: &str) -> Option<Matched<'b>> {
    backend.paths().iter().find_map(|p| {
        let caps = p.pattern.captures(rel)?;
        let mut captures = Map::new();
        for name in p.pattern.capture_names().flatten() {
            if let Some(m) = caps.name(name) {
                captures.insert(name.to_string(), Value::String(m.as_str().to_string()));
            }
        }
        Some(Matched { path: p, captures })
    })
}

fn merge_captures(req: &Request, m: &Matched<'_>) -> (Map<String, Value>, Vec<String>) {
    let mut data = req.data.clone();
    let mut replaced = Vec::new();
    for (k, v) in &m.captures {
        if let Some(old) = data.get(k)
            && old != v
        {
            replaced.push(k.clone());
        }
        data.insert(k.clone(), v.clone());
    }
    (data, replaced)
}

/// Answers the existence check for a write: `Ok(None)` when the path has none (the write is
/// then an update).
pub async fn existence(backend: &dyn Backend, ctx: &Ctx<'_>) -> Result<Option<bool>> {
    let Some(m) = find(backend, &ctx.req.rel_path) else {
        return Ok(None);
    };
    if !m.path.existence_check {
        return Ok(None);
    }
    let (data, _) = merge_captures(ctx.req, &m);
    let (d, _) = FieldData::parse(&m.path.fields, data)?;
    m.path.handler.exists(ctx, &d).await.map(Some)
}

/// Routes one request inside a backend.
pub async fn dispatch(backend: &dyn Backend, ctx: &Ctx<'_>) -> Result<Option<Response>> {
    let req = ctx.req;
    let Some(m) = find(backend, &req.rel_path) else {
        return Err(Error::NoHandler(format!(
            "no handler for route \"{}\". route entry not found.",
            req.path
        )));
    };
    if !m.path.supports(req.operation) {
        return Err(Error::UnsupportedOperation);
    }
    let (data, replaced) = merge_captures(req, &m);
    let (d, unknown) = FieldData::parse(&m.path.fields, data)?;
    d.check_required(&m.path.fields)?;
    let mut resp = m.path.handler.handle(ctx, req.operation, &d).await?;
    if let Some(r) = resp.as_mut().filter(|r| r.raw.is_none()) {
        if !replaced.is_empty() {
            r.warnings.push(format!(
                "Endpoint replaced the value of these parameters with the values captured from \
                 the endpoint's path: [{}]",
                replaced.join(" ")
            ));
        }
        if !unknown.is_empty() && !m.path.any_fields {
            r.warnings.push(format!(
                "Endpoint ignored these unrecognized parameters: [{}]",
                unknown.join(" ")
            ));
        }
    }
    Ok(resp)
}

/// Matches `rel` against path patterns where a trailing `*` means "this prefix".
pub fn matches_any(patterns: &[&str], rel: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => rel.starts_with(prefix),
        None => rel == *p,
    })
}
