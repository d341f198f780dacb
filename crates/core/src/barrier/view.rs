//! A prefix view of a storage: what an engine, the token store or the lease manager gets, so
//! each sees only its own subtree (`logical/<uuid>/`, `sys/token/`, ...) and cannot name a key
//! outside it.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_storage::{HaLock, Result, Storage, StorageError, WriteOp};

pub struct View {
    inner: Arc<dyn Storage>,
    prefix: String,
}

impl View {
    pub fn new(inner: Arc<dyn Storage>, prefix: impl Into<String>) -> Arc<View> {
        Arc::new(View {
            inner,
            prefix: prefix.into(),
        })
    }

    /// The prefix of this view within its inner storage.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The storage this view is a subtree of.
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    /// Whether `other` is the very storage below this view: writes of two views over the
    /// same storage can then share one atomic batch (see `joining`).
    fn is_over(&self, other: &Arc<dyn Storage>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.inner), Arc::as_ptr(other))
    }

    /// `ops` ready to join one atomic batch in `root` with another view's writes: named in
    /// `root`'s keys when this view is over `root`; otherwise committed here, on their own,
    /// and nothing is left to join.
    pub async fn joining(
        &self,
        root: &Arc<dyn Storage>,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOp>> {
        if self.is_over(root) {
            return self.absolute(ops);
        }
        if !ops.is_empty() {
            self.inner.batch(self.absolute(ops)?).await?;
        }
        Ok(Vec::new())
    }

    /// `ops` with their keys named in the inner storage, to be batched there together with
    /// writes of another view over it.
    pub fn absolute(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOp>> {
        ops.into_iter()
            .map(|op| {
                Ok(match op {
                    WriteOp::Put(k, v) => WriteOp::Put(self.full(&k)?, v),
                    WriteOp::Delete(k) => WriteOp::Delete(self.full(&k)?),
                })
            })
            .collect()
    }

    /// A view of a subtree of this view; keys are prefixed by both.
    pub fn sub(self: &Arc<Self>, prefix: &str) -> Arc<View> {
        View::new(self.clone(), prefix.to_string())
    }

    /// The full key in the inner storage. `..` is refused so a key cannot climb out of the
    /// view in a backend that interprets paths.
    fn full(&self, key: &str) -> Result<String> {
        if key.contains("..") {
            return Err(StorageError::InvalidKey("key cannot contain '..'".into()));
        }
        Ok(format!("{}{}", self.prefix, key))
    }

    fn strip(&self, key: String) -> Result<String> {
        match key.strip_prefix(&self.prefix) {
            Some(rest) => Ok(rest.to_string()),
            None => Err(StorageError::Io(
                "view: inner storage returned a key outside the view".into(),
            )),
        }
    }
}

#[async_trait]
impl Storage for View {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(&self.full(key)?).await
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.inner.put(&self.full(key)?, value).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(&self.full(key)?).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        // Names below a prefix are already relative to it: nothing to strip.
        self.inner.list(&self.full(prefix)?).await
    }

    async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let after = after.map(|a| format!("{}{}", self.prefix, a));
        let keys = self
            .inner
            .scan_keys(&self.full(prefix)?, after.as_deref(), limit)
            .await?;
        keys.into_iter().map(|k| self.strip(k)).collect()
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let after = after.map(|a| format!("{}{}", self.prefix, a));
        let rows = self
            .inner
            .scan(&self.full(prefix)?, after.as_deref(), limit)
            .await?;
        rows.into_iter()
            .map(|(k, v)| Ok((self.strip(k)?, v)))
            .collect()
    }

    async fn batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.inner.batch(self.absolute(ops)?).await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn ha_lock(&self) -> Option<Arc<dyn HaLock>> {
        self.inner.ha_lock()
    }
}
