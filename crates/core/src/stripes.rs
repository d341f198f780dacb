//! Striped async locks: one of a fixed set of mutexes per key, so read-modify-write of
//! one record (a token, a KV secret) is serialized without a lock per record in memory.

use tokio::sync::{Mutex, MutexGuard};

pub struct Stripes {
    locks: Vec<Mutex<()>>,
}

impl Stripes {
    pub fn new(n: usize) -> Self {
        Stripes {
            locks: (0..n.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Holds the stripe of `key` until the guard drops. Keys sharing a stripe wait for each
    /// other; nothing ever holds two stripes of one set, so there is no lock order to keep.
    pub async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        let i = key
            .bytes()
            .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
        self.locks[i % self.locks.len()].lock().await
    }
}
