//! The storage an engine writes through while it revokes a lease. Its writes are held back
//! and committed in the same durable batch as the lease's removal: one commit per
//! revocation instead of two, and never a lease gone while the engine's own record of the
//! credential stays (nor the reverse). A crash before that commit loses both, and the
//! lease, still recorded, is revoked again: revocation is idempotent.
//!
//! The engine reads its own held writes back. A listing or scan cannot merge them cheaply,
//! so it commits them first and then reads through: holding back is a saving, never a
//! different answer.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_storage::{HaLock, Result, Storage, WriteOp};
use parking_lot::Mutex;

use crate::barrier::View;

pub(super) struct Staged {
    mount: Arc<View>,
    held: Mutex<Vec<WriteOp>>,
}

impl Staged {
    pub(super) fn over(mount: &Arc<View>) -> Arc<Staged> {
        Arc::new(Staged {
            mount: mount.clone(),
            held: Mutex::new(Vec::new()),
        })
    }

    /// The held writes, named in `root`'s keys to be batched with the lease's removal; if
    /// the mount is not a view of `root` they are committed here, on their own.
    pub(super) async fn for_root(&self, root: &Arc<dyn Storage>) -> Result<Vec<WriteOp>> {
        let held = std::mem::take(&mut *self.held.lock());
        self.mount.joining(root, held).await
    }

    /// Commits the held writes through the mount's view.
    pub(super) async fn commit(&self) -> Result<()> {
        let held = std::mem::take(&mut *self.held.lock());
        if held.is_empty() {
            return Ok(());
        }
        self.mount.batch(held).await
    }
}

#[async_trait]
impl Storage for Staged {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let held = self
            .held
            .lock()
            .iter()
            .rev()
            .find(|op| op.key() == key)
            .map(|op| match op {
                WriteOp::Put(_, v) => Some(v.clone()),
                WriteOp::Delete(_) => None,
            });
        match held {
            Some(v) => Ok(v),
            None => self.mount.get(key).await,
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.held.lock().push(WriteOp::Put(key.to_string(), value));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.held.lock().push(WriteOp::Delete(key.to_string()));
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.commit().await?;
        self.mount.list(prefix).await
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        self.commit().await?;
        self.mount.scan(prefix, after, limit).await
    }

    async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.commit().await?;
        self.mount.scan_keys(prefix, after, limit).await
    }

    async fn batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.held.lock().extend(ops);
        Ok(())
    }

    fn kind(&self) -> &'static str {
        self.mount.kind()
    }

    fn ha_lock(&self) -> Option<Arc<dyn HaLock>> {
        self.mount.ha_lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lessor_storage::inmem::InMem;

    fn setup() -> (Arc<dyn Storage>, Arc<View>, Arc<Staged>) {
        let root: Arc<dyn Storage> = Arc::new(InMem::new());
        let mount = View::new(root.clone(), "logical/m/");
        let staged = Staged::over(&mount);
        (root, mount, staged)
    }

    #[tokio::test]
    async fn held_writes_are_read_back_and_reach_the_root_only_when_taken() {
        let (root, mount, staged) = setup();
        mount.put("a", b"old".to_vec()).await.unwrap();
        staged.put("b", b"new".to_vec()).await.unwrap();
        staged.delete("a").await.unwrap();
        assert_eq!(staged.get("a").await.unwrap(), None);
        assert_eq!(staged.get("b").await.unwrap(), Some(b"new".to_vec()));
        // Nothing is written until the lease manager takes the writes.
        assert_eq!(mount.get("a").await.unwrap(), Some(b"old".to_vec()));
        assert_eq!(mount.get("b").await.unwrap(), None);
        let ops = staged.for_root(&root).await.unwrap();
        let keys: Vec<&str> = ops.iter().map(WriteOp::key).collect();
        assert_eq!(keys, ["logical/m/b", "logical/m/a"]);
        root.batch(ops).await.unwrap();
        assert_eq!(mount.get("a").await.unwrap(), None);
        assert_eq!(mount.get("b").await.unwrap(), Some(b"new".to_vec()));
    }

    #[tokio::test]
    async fn a_listing_commits_the_held_writes_first() {
        let (_root, mount, staged) = setup();
        staged.put("x/1", b"v".to_vec()).await.unwrap();
        assert_eq!(staged.list("x/").await.unwrap(), ["1"]);
        assert_eq!(mount.get("x/1").await.unwrap(), Some(b"v".to_vec()));
    }

    #[tokio::test]
    async fn over_another_root_the_writes_commit_on_their_own() {
        let (_root, mount, staged) = setup();
        staged.put("k", b"v".to_vec()).await.unwrap();
        let other: Arc<dyn Storage> = Arc::new(InMem::new());
        assert!(staged.for_root(&other).await.unwrap().is_empty());
        assert_eq!(mount.get("k").await.unwrap(), Some(b"v".to_vec()));
    }
}
