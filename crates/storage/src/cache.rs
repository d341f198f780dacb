//! The physical read cache (Vault's `cache_size` / `disable_cache`): recently read entries,
//! still barrier ciphertext, kept in memory in front of a backend, so hot keys (tokens,
//! policies, KV reads) do not go to the storage engine. On `file` that also keeps them away
//! from the engine's own locks, which a flush holds for milliseconds: readers then wait out
//! a revoke-prefix or an expiry burst without stalling.
//!
//! Only reads fill it; a write removes the keys it names once the backend has applied it.
//! A read that missed and raced a write would otherwise put back the value the write just
//! replaced, so each shard counts its invalidations and a read's result is kept only if
//! none happened in its shard while it read. Negative answers (no such key) are cached too.
//!
//! Replacement is CLOCK (second chance): an entry read since the hand last passed survives
//! one more turn. Large values are not cached; they would push out many small hot ones.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use foldhash::fast::RandomState;
use parking_lot::Mutex;

use crate::{HaLock, Result, Storage, StorageError, WriteOp};

/// Vault's default `cache_size`, in entries.
pub const DEFAULT_CACHE_SIZE: usize = 131_072;
/// Values above this many bytes are read through, never kept.
const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Bytes the cache may hold per entry of its size, on average: entries are counted, as in
/// Vault, and their bytes bounded too, so large values cannot make it grow without bound
/// (128 MiB at the default size).
const BYTES_PER_ENTRY: usize = 1024;
const SHARDS: usize = 64;

/// What the cache holds for a key: its value, or that it has none.
type Entry = Option<Arc<[u8]>>;

struct Slot {
    key: Arc<str>,
    value: Entry,
    /// Read since the clock hand last passed.
    referenced: bool,
}

impl Slot {
    fn bytes(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, |v| v.len())
    }
}

/// What one shard may hold.
#[derive(Debug, Clone, Copy)]
struct Limits {
    entries: usize,
    bytes: usize,
}

#[derive(Default)]
struct Shard {
    index: HashMap<Arc<str>, usize, RandomState>,
    slots: Vec<Slot>,
    /// Key and value bytes held.
    bytes: usize,
    hand: usize,
    /// Invalidations so far; a read that saw another count keeps nothing.
    version: u64,
}

impl Shard {
    fn get(&mut self, key: &str) -> Option<Entry> {
        let i = *self.index.get(key)?;
        let slot = &mut self.slots[i];
        slot.referenced = true;
        Some(slot.value.clone())
    }

    fn insert(&mut self, key: &str, value: Entry, limits: Limits) {
        match self.index.get(key) {
            Some(&i) => {
                let slot = &mut self.slots[i];
                self.bytes -= slot.bytes();
                slot.value = value;
                self.bytes += slot.bytes();
            }
            None => {
                let key: Arc<str> = key.into();
                let slot = Slot {
                    key: key.clone(),
                    value,
                    referenced: false,
                };
                self.bytes += slot.bytes();
                self.index.insert(key, self.slots.len());
                self.slots.push(slot);
            }
        }
        while self.slots.len() > limits.entries || self.bytes > limits.bytes {
            self.evict_one();
        }
    }

    /// Evicts the first entry under the hand not read since it last passed; those read get
    /// a second chance, so a full turn finds one.
    fn evict_one(&mut self) {
        while !self.slots.is_empty() {
            let hand = self.hand % self.slots.len();
            if std::mem::take(&mut self.slots[hand].referenced) {
                self.hand = hand + 1;
                continue;
            }
            // The last entry moves into the hand's place and is looked at next.
            self.hand = hand;
            self.remove_at(hand);
            return;
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(i) = self.index.remove(key) {
            self.unslot(i);
        }
    }

    fn remove_at(&mut self, i: usize) {
        self.index.remove(&self.slots[i].key);
        self.unslot(i);
    }

    /// Takes out slot `i`, whose key has left the index; the last slot moves into its place.
    /// (Two hashes of a key per removal, not three: a write's invalidations are most of
    /// what an expiry burst asks of the cache.)
    fn unslot(&mut self, i: usize) {
        let slot = self.slots.swap_remove(i);
        self.bytes -= slot.bytes();
        if let Some(moved) = self.slots.get(i)
            && let Some(at) = self.index.get_mut(&moved.key)
        {
            *at = i;
        }
    }
}

/// Counters for `sys/metrics` and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

/// A backend behind a read cache of at most `size` entries.
pub struct Cached {
    inner: Arc<dyn Storage>,
    memory: Arc<Memory>,
}

/// The cached entries, shared with the tasks that write.
struct Memory {
    shards: Box<[Mutex<Shard>]>,
    per_shard: Limits,
    hasher: RandomState,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Memory {
    fn shard(&self, key: &str) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(key);
        // The high bits pick the shard; a map's buckets come from the low bits.
        &self.shards[(h >> 58) as usize % SHARDS]
    }

    /// Drops the keys a write named, after the backend applied it (or failed: then what it
    /// holds is unknown, and dropping is still right).
    fn invalidate<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        for key in keys {
            let mut shard = self.shard(key).lock();
            shard.version += 1;
            shard.remove(key);
        }
    }
}

impl Cached {
    /// Wraps `inner`, or returns it unwrapped when `size` is 0 or when it is shared between
    /// nodes (it has an HA lock): another node's writes would not invalidate this cache.
    pub fn wrap(inner: Arc<dyn Storage>, size: usize) -> Arc<dyn Storage> {
        if size == 0 || inner.ha_lock().is_some() {
            return inner;
        }
        Arc::new(Self::new(inner, size))
    }

    pub fn new(inner: Arc<dyn Storage>, size: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        let memory = Memory {
            shards,
            per_shard: Limits {
                entries: size.div_ceil(SHARDS).max(1),
                bytes: size
                    .saturating_mul(BYTES_PER_ENTRY)
                    .div_ceil(SHARDS)
                    .max(MAX_VALUE_BYTES + 1024),
            },
            hasher: RandomState::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        };
        Cached {
            inner,
            memory: Arc::new(memory),
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.memory.hits.load(Ordering::Relaxed),
            misses: self.memory.misses.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl Storage for Cached {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let memory = &self.memory;
        let shard = memory.shard(key);
        let version = {
            let mut g = shard.lock();
            if let Some(entry) = g.get(key) {
                memory.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(entry.map(|v| v.to_vec()));
            }
            g.version
        };
        memory.misses.fetch_add(1, Ordering::Relaxed);
        let value = self.inner.get(key).await?;
        if value.as_ref().is_none_or(|v| v.len() <= MAX_VALUE_BYTES) {
            let mut g = shard.lock();
            if g.version == version {
                g.insert(key, value.as_deref().map(Arc::from), memory.per_shard);
            }
        }
        Ok(value)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.batch(vec![WriteOp::Put(key.to_string(), value)]).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.batch(vec![WriteOp::Delete(key.to_string())]).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix).await
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.scan(prefix, after, limit).await
    }

    async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.inner.scan_keys(prefix, after, limit).await
    }

    /// Every write goes through here: the write, then dropping the keys it names, on a
    /// task of its own. A caller that stops waiting does not stop the write (the file
    /// backend's writer thread applies it regardless), so it must not stop the invalidation
    /// either, or the cache would keep the value the write replaced.
    async fn batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        // The keys outlive the ops, which the backend takes.
        let keys: Vec<String> = ops.iter().map(|op| op.key().to_string()).collect();
        let (inner, memory) = (self.inner.clone(), self.memory.clone());
        tokio::spawn(async move {
            let out = inner.batch(ops).await;
            memory.invalidate(keys.iter().map(String::as_str));
            out
        })
        .await
        .map_err(|e| StorageError::Io(format!("storage write task: {e}")))?
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn ha_lock(&self) -> Option<Arc<dyn HaLock>> {
        self.inner.ha_lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inmem::InMem;
    use std::sync::atomic::AtomicBool;
    use tokio::sync::Notify;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        crate::conformance::run_all(|| Arc::new(Cached::new(Arc::new(InMem::new()), 64))).await;
        // So small that every suite step evicts.
        crate::conformance::run_all(|| Arc::new(Cached::new(Arc::new(InMem::new()), 1))).await;
    }

    #[tokio::test]
    async fn a_second_read_is_served_from_memory_and_a_write_is_seen_at_once() {
        let inner: Arc<dyn Storage> = Arc::new(InMem::new());
        let c = Cached::new(inner.clone(), 16);
        c.put("a", b"1".to_vec()).await.unwrap();
        assert_eq!(c.get("a").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(c.get("a").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(c.get("none").await.unwrap(), None);
        assert_eq!(c.get("none").await.unwrap(), None);
        assert_eq!(c.stats(), CacheStats { hits: 2, misses: 2 });
        // Served from memory: the backend changed under it is not seen...
        inner.put("a", b"behind".to_vec()).await.unwrap();
        assert_eq!(c.get("a").await.unwrap(), Some(b"1".to_vec()));
        // ...but every write through the cache is, put, batch and delete alike.
        c.batch(vec![
            WriteOp::Put("a".into(), b"2".to_vec()),
            WriteOp::Put("none".into(), b"3".to_vec()),
        ])
        .await
        .unwrap();
        assert_eq!(c.get("a").await.unwrap(), Some(b"2".to_vec()));
        assert_eq!(c.get("none").await.unwrap(), Some(b"3".to_vec()));
        c.delete("a").await.unwrap();
        assert_eq!(c.get("a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn large_values_are_read_through() {
        let c = Cached::new(Arc::new(InMem::new()), 16);
        c.put("big", vec![7; MAX_VALUE_BYTES + 1]).await.unwrap();
        c.get("big").await.unwrap();
        c.get("big").await.unwrap();
        assert_eq!(c.stats().hits, 0);
    }

    const ROOMY: Limits = Limits {
        entries: 3,
        bytes: usize::MAX,
    };

    #[test]
    fn the_clock_keeps_a_recently_read_entry_and_evicts_one_not_read() {
        let mut s = Shard::default();
        for k in ["a", "b", "c"] {
            s.insert(k, None, ROOMY);
        }
        assert!(s.get("a").is_some());
        s.insert("d", None, ROOMY);
        // "a" was read, so it had a second chance; "b" was the first not read.
        assert!(s.get("a").is_some());
        assert!(s.get("b").is_none());
        assert!(s.get("c").is_some() && s.get("d").is_some());
        s.remove("a");
        s.remove("zzz");
        assert!(s.get("a").is_none());
        assert!(s.get("c").is_some() && s.get("d").is_some());
        assert_eq!(s.slots.len(), s.index.len());
        assert_eq!(s.bytes, 2);
    }

    #[test]
    fn bytes_are_bounded_as_well_as_entries() {
        let limits = Limits {
            entries: 100,
            bytes: 250,
        };
        let mut s = Shard::default();
        let value = |n: usize| Some(Arc::from(vec![0u8; n]));
        for k in ["a", "b"] {
            s.insert(k, value(99), limits);
        }
        assert_eq!(s.bytes, 200);
        // A third would pass the bound: the oldest not read goes.
        s.insert("c", value(99), limits);
        assert_eq!((s.slots.len(), s.bytes), (2, 200));
        assert!(s.get("a").is_none());
        // Replacing a value accounts for the difference.
        s.insert("b", value(9), limits);
        assert_eq!(s.bytes, 110);
        assert_eq!(s.slots.len(), s.index.len());
    }

    /// A backend with two gates a test can close, to play a race in the order that would
    /// leave a stale entry. `hold_read`: the next `get` reads, says so (`reached`), then
    /// waits to be let go (`release`). `defer_writes`: a write says so and is applied by a
    /// task of its own once let go, whether or not its caller still waits, as the file
    /// backend's writer thread applies it.
    #[derive(Default)]
    struct Gated {
        inner: Arc<InMem>,
        hold_read: AtomicBool,
        defer_writes: AtomicBool,
        reached: Arc<Notify>,
        release: Arc<Notify>,
    }

    #[async_trait]
    impl Storage for Gated {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
            let v = self.inner.get(key).await?;
            if self.hold_read.swap(false, Ordering::SeqCst) {
                self.reached.notify_one();
                self.release.notified().await;
            }
            Ok(v)
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
            self.batch(vec![WriteOp::Put(key.into(), value)]).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.batch(vec![WriteOp::Delete(key.into())]).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>> {
            self.inner.list(prefix).await
        }
        async fn scan(
            &self,
            prefix: &str,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<(String, Vec<u8>)>> {
            self.inner.scan(prefix, after, limit).await
        }
        async fn batch(&self, ops: Vec<WriteOp>) -> Result<()> {
            if !self.defer_writes.load(Ordering::SeqCst) {
                return self.inner.batch(ops).await;
            }
            let (inner, release) = (self.inner.clone(), self.release.clone());
            let applied = tokio::spawn(async move {
                release.notified().await;
                inner.batch(ops).await
            });
            self.reached.notify_one();
            applied.await.unwrap()
        }
        fn kind(&self) -> &'static str {
            "gated"
        }
    }

    #[tokio::test]
    async fn a_write_whose_caller_stopped_waiting_still_empties_its_entry() {
        let backend = Arc::new(Gated {
            defer_writes: true.into(),
            ..Gated::default()
        });
        backend.inner.put("k", b"old".to_vec()).await.unwrap();
        let c = Arc::new(Cached::new(backend.clone(), 16));
        assert_eq!(c.get("k").await.unwrap(), Some(b"old".to_vec()));
        let caller = {
            let c = c.clone();
            tokio::spawn(async move { c.put("k", b"new".to_vec()).await })
        };
        // The write is with the backend; its caller goes away; then the backend applies it.
        backend.reached.notified().await;
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        backend.release.notify_one();
        while backend.inner.get("k").await.unwrap() != Some(b"new".to_vec()) {
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
        assert_eq!(c.get("k").await.unwrap(), Some(b"new".to_vec()));
    }

    #[tokio::test]
    async fn a_read_that_raced_a_write_does_not_cache_the_old_value() {
        let backend = Arc::new(Gated::default());
        backend.put("k", b"old".to_vec()).await.unwrap();
        let c = Arc::new(Cached::new(backend.clone(), 16));
        backend.hold_read.store(true, Ordering::SeqCst);
        let reader = {
            let c = c.clone();
            tokio::spawn(async move { c.get("k").await.unwrap() })
        };
        // The reader has the old value in hand; the write lands before it can keep it.
        backend.reached.notified().await;
        c.put("k", b"new".to_vec()).await.unwrap();
        backend.release.notify_one();
        assert_eq!(reader.await.unwrap(), Some(b"old".to_vec()));
        assert_eq!(c.get("k").await.unwrap(), Some(b"new".to_vec()));
    }
}
