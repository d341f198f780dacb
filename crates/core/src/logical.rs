//! The request and response every backend sees: an HTTP-free description of one operation.
//!
//! The server turns HTTP into a `Request`; backends answer with a `Response` that may carry a
//! secret (which the core registers as a lease) or an auth block (which the core turns into a
//! token). Backends never see tokens or lease storage.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value};

/// The operation of a request, after method mapping and the existence check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Read,
    Create,
    Update,
    Patch,
    Delete,
    List,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
        }
    }
}

/// What the core knows of the caller, given to backends that need it (display names in
/// generated user names, the parent of a new token, policies for capability checks).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub accessor: String,
    pub display_name: String,
    pub policies: Vec<String>,
    pub is_root: bool,
    pub metadata: BTreeMap<String, String>,
    /// The caller token's own salted id, for backends that link to it (child tokens).
    pub token_id_hash: String,
    pub entity_id: String,
    /// The rule that allowed this request grants `sudo` (or the caller is root).
    pub sudo: bool,
}

/// One logical request.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub operation: Operation,
    /// Full path relative to `/v1/`, e.g. `secret/data/app`.
    pub path: String,
    pub data: Map<String, Value>,
    /// The raw client token, seen only by the core and the token store.
    pub client_token: Option<String>,
    pub remote_addr: Option<SocketAddr>,
    /// Set by the core after authentication.
    pub caller: Option<Caller>,
    /// Set by the router: mount path (with trailing `/`), type and accessor.
    pub mount_point: String,
    pub mount_type: String,
    pub mount_accessor: String,
    /// The path relative to the mount, set by the router.
    pub rel_path: String,
    /// True for a request made through `HEAD`.
    pub head: bool,
}

impl Request {
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Request {
            id: uuid::Uuid::new_v4().to_string(),
            operation,
            path: path.into(),
            data: Map::new(),
            client_token: None,
            remote_addr: None,
            caller: None,
            mount_point: String::new(),
            mount_type: String::new(),
            mount_accessor: String::new(),
            rel_path: String::new(),
            head: false,
        }
    }

    pub fn with_data(mut self, data: Map<String, Value>) -> Self {
        self.data = data;
        self
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.client_token = Some(token.into());
        self
    }
}

/// A secret a backend issues; the core registers it as a lease.
#[derive(Debug, Clone)]
pub struct SecretSpec {
    /// The backend's secret type, used to route renew and revoke back to it.
    pub secret_type: String,
    /// Backend TTL (0 = use the mount default).
    pub ttl: Duration,
    /// Backend max TTL (0 = only the mount/system max applies).
    pub max_ttl: Duration,
    pub renewable: bool,
    /// What the backend needs to renew and revoke; stored encrypted with the lease.
    pub internal: Value,
    /// The lease id `Ctx::reserve` returned before the credential was created: the core
    /// activates that pending lease. A secret without one is refused (and revoked).
    pub reservation: String,
}

/// An auth block from a login or from the token store.
#[derive(Debug, Clone, Default)]
pub struct AuthSpec {
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub display_name: String,
    pub ttl: Duration,
    pub max_ttl: Duration,
    pub explicit_max_ttl: Duration,
    pub period: Duration,
    pub num_uses: i64,
    pub renewable: bool,
    pub no_default_policy: bool,
    pub bound_cidrs: Vec<String>,
    pub token_type: String,
    /// Set once the token exists: the client token and its accessor.
    pub client_token: String,
    pub accessor: String,
    pub orphan: bool,
    /// Lease duration granted, in seconds.
    pub lease_duration: u64,
    pub entity_id: String,
    pub internal: Map<String, Value>,
}

/// A body that is not the Vault envelope: `sys/init`, `sys/health`, `sys/seal-status`, ...
#[derive(Debug, Clone)]
pub struct RawBody {
    pub status: u16,
    pub body: Option<Value>,
    pub content_type: Option<String>,
    pub text: Option<String>,
}

/// One logical response. `Ok(None)` from a handler means "204, no body".
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    pub secret: Option<SecretSpec>,
    pub auth: Option<AuthSpec>,
    pub warnings: Vec<String>,
    /// Status override for envelope replies (202 for queued work, 404 for KV v2 deleted
    /// versions, which answer a full envelope).
    pub status: Option<u16>,
    pub raw: Option<RawBody>,
    /// Filled by the core when a secret became a lease.
    pub lease_id: String,
    pub lease_duration: u64,
    pub renewable: bool,
    /// Copy every key of `data` to the top level too (legacy `sys/` shapes).
    pub legacy_top_level: bool,
    /// Type of the mount that answered (`kv`, `system`, `token`), for the envelope.
    pub mount_type: String,
}

impl Response {
    pub fn data(data: Map<String, Value>) -> Self {
        Response {
            data: Some(data),
            ..Default::default()
        }
    }

    /// `{"keys": [...]}`, or `Error::NotFound` when empty, as Vault answers an empty list.
    pub fn list(keys: Vec<String>) -> crate::Result<Option<Response>> {
        if keys.is_empty() {
            return Err(crate::Error::NotFound);
        }
        let mut m = Map::new();
        m.insert("keys".into(), Value::from(keys));
        Ok(Some(Response::data(m)))
    }

    pub fn raw(status: u16, body: Value) -> Self {
        Response {
            raw: Some(RawBody {
                status,
                body: Some(body),
                content_type: None,
                text: None,
            }),
            ..Default::default()
        }
    }

    pub fn with_warning(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }

    pub fn legacy(mut self) -> Self {
        self.legacy_top_level = true;
        self
    }
}

/// Builds a JSON object from key/value pairs: `obj([("a", json!(1))])`.
pub fn obj<I, K>(pairs: I) -> Map<String, Value>
where
    I: IntoIterator<Item = (K, Value)>,
    K: Into<String>,
{
    pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()
}
