//! The in-memory expiry index: lease ids ordered by expiry time.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    by_time: BTreeSet<(i64, Arc<str>)>,
    by_id: HashMap<Arc<str>, i64>,
}

/// Leases by expiry. Inserting an id already present moves it.
#[derive(Default)]
pub struct Schedule {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl Schedule {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, id: &str, expire_at: i64) {
        let mut g = self.inner.lock();
        let key: Arc<str> = match g.by_id.get_key_value(id) {
            Some((k, old)) => {
                let (k, old) = (k.clone(), *old);
                g.by_time.remove(&(old, k.clone()));
                k
            }
            None => Arc::from(id),
        };
        g.by_id.insert(key.clone(), expire_at);
        g.by_time.insert((expire_at, key));
        drop(g);
        self.notify.notify_one();
    }

    pub fn remove(&self, id: &str) {
        let mut g = self.inner.lock();
        if let Some((k, t)) = g.by_id.remove_entry(id) {
            g.by_time.remove(&(t, k));
        }
    }

    /// Takes up to `max` leases due at `now`.
    pub fn pop_due(&self, now: i64, max: usize) -> Vec<String> {
        let mut g = self.inner.lock();
        let mut out = Vec::new();
        while out.len() < max {
            let Some((t, _)) = g.by_time.first() else {
                break;
            };
            if *t > now {
                break;
            }
            if let Some((_, id)) = g.by_time.pop_first() {
                g.by_id.remove(&id);
                out.push(id.to_string());
            }
        }
        out
    }

    pub fn next_due(&self) -> Option<i64> {
        self.inner.lock().by_time.first().map(|(t, _)| *t)
    }

    pub fn expiry_of(&self, id: &str) -> Option<i64> {
        self.inner.lock().by_id.get(id).copied()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        let mut g = self.inner.lock();
        g.by_time.clear();
        g.by_id.clear();
    }

    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_moves() {
        let s = Schedule::new();
        s.insert("a", 30);
        s.insert("b", 10);
        s.insert("c", 20);
        s.insert("a", 5);
        assert_eq!(s.pop_due(15, 10), vec!["a", "b"]);
        assert_eq!(s.next_due(), Some(20));
        s.remove("c");
        assert!(s.is_empty());
    }
}
