//! Drives a KV backend the way the router does: a hand-built request, the mount's storage,
//! the framework's dispatch (and existence check).

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lessor_core::framework::{self, Backend, Ctx, SystemView};
use lessor_core::logical::{Operation, Request, Response};
use lessor_core::{Error, Result};
use lessor_storage::inmem::InMem;
use lessor_storage::{Storage, WriteOp};
use serde_json::{Map, Value, json};

/// The mount default lease TTL of these tests (Vault's untuned 768h).
pub const DEFAULT_TTL: u64 = 2_764_800;

pub struct Mount {
    pub backend: Arc<dyn Backend>,
    pub storage: Arc<dyn Storage>,
    pub system: SystemView,
}

/// What a request answered, reduced to what a client sees.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub data: Value,
    pub warnings: Vec<String>,
    pub lease_duration: u64,
    pub error: String,
}

impl Mount {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self::with_storage(backend, Arc::new(InMem::new()))
    }

    pub fn with_storage(backend: Arc<dyn Backend>, storage: Arc<dyn Storage>) -> Self {
        Mount {
            backend,
            storage,
            system: SystemView {
                default_lease_ttl: Duration::from_secs(DEFAULT_TTL),
                max_lease_ttl: Duration::from_secs(DEFAULT_TTL),
                mount_path: "secret/".into(),
            },
        }
    }

    pub async fn call(&self, op: Operation, rel: &str, data: Value) -> Result<Option<Response>> {
        let mut req = Request::new(op, format!("secret/{rel}"));
        req.rel_path = rel.to_string();
        req.mount_point = "secret/".into();
        req.mount_type = "kv".into();
        req.data = match data {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let ctx = Ctx {
            req: &req,
            storage: &self.storage,
            system: &self.system,
            leases: None,
        };
        // Writes go through the existence check first, as in the router.
        if matches!(op, Operation::Create | Operation::Update) {
            let exists = framework::existence(self.backend.as_ref(), &ctx).await?;
            req.operation = match exists {
                Some(false) => Operation::Create,
                _ => Operation::Update,
            };
            let ctx = Ctx {
                req: &req,
                storage: &self.storage,
                system: &self.system,
                leases: None,
            };
            return framework::dispatch(self.backend.as_ref(), &ctx).await;
        }
        framework::dispatch(self.backend.as_ref(), &ctx).await
    }

    /// The request as a client sees it: status, data, warnings.
    pub async fn req(&self, op: Operation, rel: &str, data: Value) -> Reply {
        match self.call(op, rel, data).await {
            Ok(None) => Reply {
                status: 204,
                data: Value::Null,
                warnings: Vec::new(),
                lease_duration: 0,
                error: String::new(),
            },
            Ok(Some(r)) => Reply {
                status: r
                    .raw
                    .as_ref()
                    .map_or(r.status.unwrap_or(200), |raw| raw.status),
                data: r.data.map(Value::Object).unwrap_or(Value::Null),
                warnings: r.warnings,
                lease_duration: r.lease_duration,
                error: String::new(),
            },
            Err(e) => Reply {
                status: e.status(),
                data: Value::Null,
                warnings: Vec::new(),
                lease_duration: 0,
                error: e.messages().join("|"),
            },
        }
    }

    pub async fn read(&self, rel: &str) -> Reply {
        self.req(Operation::Read, rel, json!({})).await
    }

    pub async fn write(&self, rel: &str, data: Value) -> Reply {
        self.req(Operation::Update, rel, data).await
    }

    pub async fn list(&self, rel: &str) -> Reply {
        self.req(Operation::List, rel, json!({})).await
    }

    pub async fn delete(&self, rel: &str) -> Reply {
        self.req(Operation::Delete, rel, json!({})).await
    }

    pub async fn patch(&self, rel: &str, data: Value) -> Reply {
        self.req(Operation::Patch, rel, data).await
    }
}

/// A clock tests move by hand, in nanoseconds.
#[derive(Clone)]
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn new() -> Self {
        // 2024-01-01T00:00:00.5Z: a fraction, to see it printed.
        TestClock(Arc::new(AtomicI64::new(1_704_067_200_500_000_000)))
    }

    pub fn advance_secs(&self, s: i64) {
        self.0.fetch_add(s * 1_000_000_000, Ordering::SeqCst);
    }

    /// Moves a little every time it is read, like a real clock.
    pub fn as_clock(&self) -> lessor_engine_kv::v2::Clock {
        let c = self.0.clone();
        Arc::new(move || c.fetch_add(1_000, Ordering::SeqCst))
    }
}

pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::NotFound)
}

/// In-memory storage that yields to the scheduler before every call, so concurrent
/// requests interleave at each storage access as they would on a real backend.
#[derive(Default)]
pub struct Yielding(pub InMem);

#[async_trait]
impl Storage for Yielding {
    async fn get(&self, key: &str) -> lessor_storage::Result<Option<Vec<u8>>> {
        tokio::task::yield_now().await;
        self.0.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> lessor_storage::Result<()> {
        tokio::task::yield_now().await;
        self.0.put(key, value).await
    }
    async fn delete(&self, key: &str) -> lessor_storage::Result<()> {
        tokio::task::yield_now().await;
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &str) -> lessor_storage::Result<Vec<String>> {
        tokio::task::yield_now().await;
        self.0.list(prefix).await
    }
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> lessor_storage::Result<Vec<(String, Vec<u8>)>> {
        tokio::task::yield_now().await;
        self.0.scan(prefix, after, limit).await
    }
    async fn batch(&self, ops: Vec<WriteOp>) -> lessor_storage::Result<()> {
        tokio::task::yield_now().await;
        self.0.batch(ops).await
    }
    fn kind(&self) -> &'static str {
        "yielding-inmem"
    }
}
