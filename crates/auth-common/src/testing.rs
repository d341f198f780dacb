//! Drives an auth backend the way the router does, for the method crates' tests: a
//! hand-built request on `auth/<mount>/`, the mount's in-memory storage, the existence
//! check, then the framework's dispatch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lessor_core::Result;
use lessor_core::framework::{self, AuthRenewCtx, AuthRenewGrant, Backend, Ctx, SystemView};
use lessor_core::logical::{AuthSpec, Operation, Request, Response};
use lessor_storage::Storage;
use lessor_storage::inmem::InMem;
use serde_json::{Map, Value};

/// One mounted backend with its own storage.
pub struct Mount {
    pub backend: Arc<dyn Backend>,
    pub storage: Arc<dyn Storage>,
    pub system: SystemView,
    /// `auth/<path>/`.
    pub mount_point: String,
    pub kind: String,
}

/// What a request answered, as a client sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub data: Value,
    pub auth: Option<AuthSpec>,
    pub warnings: Vec<String>,
    pub error: String,
}

impl Mount {
    /// Mounts `backend` at `auth/<path>/` and runs its initialization.
    pub async fn new(backend: Arc<dyn Backend>, path: &str, kind: &str) -> Result<Self> {
        let storage: Arc<dyn Storage> = Arc::new(InMem::new());
        backend.initialize(&storage).await?;
        Ok(Mount {
            backend,
            storage,
            system: SystemView {
                default_lease_ttl: Duration::from_secs(2_764_800),
                max_lease_ttl: Duration::from_secs(2_764_800),
                mount_path: format!("auth/{path}/"),
            },
            mount_point: format!("auth/{path}/"),
            kind: kind.into(),
        })
    }

    pub async fn call(
        &self,
        op: Operation,
        rel: &str,
        data: Value,
        remote: Option<SocketAddr>,
    ) -> Result<Option<Response>> {
        let mut req = Request::new(op, format!("{}{rel}", self.mount_point));
        req.rel_path = rel.to_string();
        req.mount_point = self.mount_point.clone();
        req.mount_type = self.kind.clone();
        req.remote_addr = remote;
        req.data = match data {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if op == Operation::Update {
            let ctx = Ctx::new(&req, &self.storage, &self.system);
            if framework::existence(self.backend.as_ref(), &ctx).await? == Some(false) {
                req.operation = Operation::Create;
            }
        }
        let ctx = Ctx::new(&req, &self.storage, &self.system);
        framework::dispatch(self.backend.as_ref(), &ctx).await
    }

    pub async fn req(&self, op: Operation, rel: &str, data: Value) -> Reply {
        self.req_from(op, rel, data, "127.0.0.1:40000").await
    }

    /// The request from the client address `remote`.
    pub async fn req_from(&self, op: Operation, rel: &str, data: Value, remote: &str) -> Reply {
        let remote = remote.parse().ok();
        match self.call(op, rel, data, remote).await {
            Ok(None) => Reply {
                status: 204,
                data: Value::Null,
                auth: None,
                warnings: Vec::new(),
                error: String::new(),
            },
            Ok(Some(r)) => Reply {
                status: r.status.unwrap_or(200),
                data: r.data.map(Value::Object).unwrap_or(Value::Null),
                auth: r.auth,
                warnings: r.warnings,
                error: String::new(),
            },
            Err(e) => Reply {
                status: e.status(),
                data: Value::Null,
                auth: None,
                warnings: Vec::new(),
                error: e.messages().join("|"),
            },
        }
    }

    /// Renews a token a login issued with `auth` (as the core would: the token holds the
    /// login's policies with `default` added).
    pub async fn renew_auth(&self, auth: &AuthSpec) -> Result<Option<AuthRenewGrant>> {
        let mut policies = auth.policies.clone();
        policies.push("default".into());
        let ctx = AuthRenewCtx {
            storage: &self.storage,
            system: &self.system,
            metadata: &auth.metadata,
            internal: &auth.internal,
            policies: &policies,
        };
        self.backend.renew_auth(&ctx).await
    }

    pub async fn read(&self, rel: &str) -> Reply {
        self.req(Operation::Read, rel, Value::Null).await
    }

    pub async fn write(&self, rel: &str, data: Value) -> Reply {
        self.req(Operation::Update, rel, data).await
    }

    pub async fn list(&self, rel: &str) -> Reply {
        self.req(Operation::List, rel, Value::Null).await
    }

    pub async fn delete(&self, rel: &str) -> Reply {
        self.req(Operation::Delete, rel, Value::Null).await
    }
}
