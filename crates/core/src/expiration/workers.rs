//! The bounded pool of revocation workers: at most `global` revocations at once, and at most
//! `per_mount` for any one mount, so a slow upstream cannot starve the others. A task
//! takes its mount's permit before a global one: a backlog on one mount then holds at most
//! `per_mount` global permits.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Workers {
    global: Arc<Semaphore>,
    per_mount: Mutex<HashMap<String, Arc<Semaphore>, foldhash::fast::RandomState>>,
    per_mount_limit: usize,
}

/// Held while one revocation runs.
pub struct Permit {
    _mount: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

impl Workers {
    pub fn new(global: usize, per_mount: usize) -> Self {
        Workers {
            global: Arc::new(Semaphore::new(global.max(1))),
            per_mount: Mutex::new(HashMap::default()),
            per_mount_limit: per_mount.max(1),
        }
    }

    fn mount_semaphore(&self, mount: &str) -> Arc<Semaphore> {
        let mut map = self.per_mount.lock();
        // Looked up by `&str` first: the name is copied only the first time a mount is seen.
        if let Some(s) = map.get(mount) {
            return s.clone();
        }
        let s = Arc::new(Semaphore::new(self.per_mount_limit));
        map.insert(mount.to_string(), s.clone());
        s
    }

    /// Waits for a slot for `mount`. `None` only if the pool was closed.
    pub async fn acquire(&self, mount: &str) -> Option<Permit> {
        let m = self.mount_semaphore(mount).acquire_owned().await.ok()?;
        let g = self.global.clone().acquire_owned().await.ok()?;
        Some(Permit {
            _mount: m,
            _global: g,
        })
    }

    /// Revocations running right now.
    pub fn busy(&self, global: usize) -> usize {
        global.saturating_sub(self.global.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn slow_mount_does_not_starve_others() {
        let w = Arc::new(Workers::new(4, 2));
        // Mount "slow/" takes its two permits and holds them.
        let a = w.acquire("slow/").await.unwrap();
        let b = w.acquire("slow/").await.unwrap();
        // A third for "slow/" waits, but "fast/" still gets through at once.
        let waiting = {
            let w = w.clone();
            tokio::spawn(async move { w.acquire("slow/").await.map(|_| ()) })
        };
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let _p = w.acquire("fast/").await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
        }
        assert_eq!(done.load(Ordering::SeqCst), 2);
        assert!(!waiting.is_finished());
        drop((a, b));
        waiting.await.unwrap().unwrap();
    }
}
