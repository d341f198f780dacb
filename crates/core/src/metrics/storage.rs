//! A `Storage` wrapper that times every call of the layers above the barrier.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use lessor_storage::{HaLock, Result, Storage, WriteOp};

use super::registry::Histogram;

/// Storage operations timed separately.
pub const OPS: [&str; 6] = ["get", "put", "delete", "list", "scan", "batch"];

pub struct StorageTimes {
    pub by_op: [Histogram; 6],
}

impl Default for StorageTimes {
    fn default() -> Self {
        StorageTimes {
            by_op: std::array::from_fn(|_| Histogram::latency()),
        }
    }
}

pub struct Metered {
    inner: Arc<dyn Storage>,
    times: Arc<StorageTimes>,
}

impl Metered {
    pub fn new(inner: Arc<dyn Storage>, times: Arc<StorageTimes>) -> Arc<Metered> {
        Arc::new(Metered { inner, times })
    }

    fn done(&self, op: usize, t0: Instant) {
        if let Some(h) = self.times.by_op.get(op) {
            h.observe(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
}

#[async_trait]
impl Storage for Metered {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let t0 = Instant::now();
        let r = self.inner.get(key).await;
        self.done(0, t0);
        r
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let t0 = Instant::now();
        let r = self.inner.put(key, value).await;
        self.done(1, t0);
        r
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let t0 = Instant::now();
        let r = self.inner.delete(key).await;
        self.done(2, t0);
        r
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let t0 = Instant::now();
        let r = self.inner.list(prefix).await;
        self.done(3, t0);
        r
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let t0 = Instant::now();
        let r = self.inner.scan(prefix, after, limit).await;
        self.done(4, t0);
        r
    }

    async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let t0 = Instant::now();
        let r = self.inner.scan_keys(prefix, after, limit).await;
        self.done(4, t0);
        r
    }

    async fn batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        let t0 = Instant::now();
        let r = self.inner.batch(ops).await;
        self.done(5, t0);
        r
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn ha_lock(&self) -> Option<Arc<dyn HaLock>> {
        self.inner.ha_lock()
    }
}
