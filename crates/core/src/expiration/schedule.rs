//! The in-memory expiry index: lease ids ordered by expiry time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// The leases due in one second. Many leases share a second (a burst of issuance, a restore
/// of a million), so the ordered map holds one entry per second, not per lease: inserts and
/// removals hash the id instead of comparing long ids in a tree.
type Bucket = HashSet<Arc<str>, RandomState>;

struct Inner {
    by_time: BTreeMap<i64, Bucket>,
    by_id: HashMap<Arc<str>, i64, RandomState>,
    /// When the scheduler next wakes by itself (Unix ms; `i64::MAX` until it first plans a
    /// sleep, so every insert wakes it). Only a lease due before then needs to wake it:
    /// waking it for every issuance and renewal cost a thread wake-up each.
    wakes_at_ms: i64,
    /// Leases queued to be revoked before their expiry (an asynchronous revoke, a retry):
    /// when they come due they are revoked whatever their record's expiry says. Empty
    /// almost always.
    forced: HashSet<Arc<str>, RandomState>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            by_time: BTreeMap::new(),
            by_id: HashMap::default(),
            wakes_at_ms: i64::MAX,
            forced: HashSet::default(),
        }
    }
}

impl Inner {
    fn insert(&mut self, id: &str, expire_at: i64) {
        let key: Arc<str> = match self.by_id.get_key_value(id) {
            Some((k, old)) => {
                let (k, old) = (k.clone(), *old);
                self.unbucket(&k, old);
                k
            }
            None => Arc::from(id),
        };
        self.by_id.insert(key.clone(), expire_at);
        self.by_time.entry(expire_at).or_default().insert(key);
    }

    fn unbucket(&mut self, id: &Arc<str>, at: i64) {
        if let Some(bucket) = self.by_time.get_mut(&at) {
            bucket.remove(id);
            if bucket.is_empty() {
                self.by_time.remove(&at);
            }
        }
    }
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
        self.insert_with(id, expire_at, false);
    }

    /// Queues a lease to be revoked at `at` even if its record says it expires later.
    pub fn insert_forced(&self, id: &str, at: i64) {
        self.insert_with(id, at, true);
    }

    /// Whether a lease taken as due was queued by `insert_forced`; forgets that it was.
    pub fn take_forced(&self, id: &str) -> bool {
        let mut g = self.inner.lock();
        // Empty almost always: no hashing of the id then.
        !g.forced.is_empty() && g.forced.remove(id)
    }

    fn insert_with(&self, id: &str, expire_at: i64, forced: bool) {
        let mut g = self.inner.lock();
        g.insert(id, expire_at);
        if forced && let Some((k, _)) = g.by_id.get_key_value(id) {
            let k = k.clone();
            g.forced.insert(k);
        }
        // Read under the lock the scheduler plans its sleep under: an insert either comes
        // before the plan (which then sees it) or sees the plan. A wake-up sent before the
        // scheduler waits is kept for it (`Notify` stores one).
        let sooner = expire_at.saturating_mul(1000) < g.wakes_at_ms;
        drop(g);
        if sooner {
            self.notify.notify_one();
        }
    }

    /// Inserts a page of the restore under one lock. An id already scheduled keeps its
    /// time: it was put there since unseal (a renewal, a retry), which is newer than the
    /// index the page was read from.
    pub fn restore_many<'a>(&self, items: impl IntoIterator<Item = (&'a str, i64)>) {
        let mut g = self.inner.lock();
        for (id, expire_at) in items {
            if !g.by_id.contains_key(id) {
                g.insert(id, expire_at);
            }
        }
        drop(g);
        self.notify.notify_one();
    }

    pub fn remove(&self, id: &str) {
        let mut g = self.inner.lock();
        if let Some((k, t)) = g.by_id.remove_entry(id) {
            g.unbucket(&k, t);
        }
        if !g.forced.is_empty() {
            g.forced.remove(id);
        }
    }

    /// Takes up to `max` leases due at `now`, earliest second first.
    pub fn pop_due(&self, now: i64, max: usize) -> Vec<String> {
        let mut g = self.inner.lock();
        let Inner { by_time, by_id, .. } = &mut *g;
        let mut out = Vec::new();
        while out.len() < max {
            let Some(mut first) = by_time.first_entry() else {
                break;
            };
            if *first.key() > now {
                break;
            }
            let bucket = first.get_mut();
            let take: Vec<Arc<str>> = bucket.iter().take(max - out.len()).cloned().collect();
            for id in take {
                bucket.remove(&id);
                by_id.remove(&id);
                out.push(id.to_string());
            }
            if bucket.is_empty() {
                first.remove();
            }
        }
        out
    }

    /// Up to `max` leases due in the seconds `from..=to`, earliest first, left scheduled.
    pub fn due_between(&self, from: i64, to: i64, max: usize) -> Vec<(i64, String)> {
        if from > to {
            return Vec::new();
        }
        let g = self.inner.lock();
        g.by_time
            .range(from..=to)
            .flat_map(|(t, bucket)| bucket.iter().map(move |id| (*t, id.to_string())))
            .take(max)
            .collect()
    }

    pub fn next_due(&self) -> Option<i64> {
        self.inner.lock().by_time.first_key_value().map(|(t, _)| *t)
    }

    /// How long the scheduler sleeps from `now_ms` (Unix ms): until the next lease is due,
    /// at least 1 ms and at most `longest`. Records the wake time, so inserts due later do
    /// not wake it.
    pub fn plan_sleep(&self, now_ms: i64, longest: Duration) -> Duration {
        let longest_ms = i64::try_from(longest.as_millis()).unwrap_or(i64::MAX);
        let mut g = self.inner.lock();
        let wait_ms = match g.by_time.first_key_value() {
            Some((t, _)) => t
                .saturating_mul(1000)
                .saturating_sub(now_ms)
                .clamp(1, longest_ms),
            None => longest_ms,
        };
        g.wakes_at_ms = now_ms.saturating_add(wait_ms);
        Duration::from_millis(wait_ms.max(0) as u64)
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
        g.wakes_at_ms = i64::MAX;
    }

    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forced_entry_is_told_once_and_forgotten_with_its_lease() {
        let s = Schedule::new();
        s.insert("a", 10);
        s.insert_forced("b", 10);
        assert_eq!(s.pop_due(10, 10).len(), 2);
        assert!(!s.take_forced("a"));
        assert!(s.take_forced("b"));
        assert!(!s.take_forced("b"), "told once");
        s.insert_forced("c", 20);
        s.remove("c");
        assert!(!s.take_forced("c"), "removed with its lease");
    }

    /// Whether a wake-up is waiting for the scheduler.
    fn woken(s: &Schedule) -> bool {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let fut = s.notified();
        let mut fut = std::pin::pin!(fut);
        matches!(
            fut.as_mut().poll(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(())
        )
    }

    #[test]
    fn only_a_lease_due_before_the_planned_wake_up_wakes_the_scheduler() {
        let s = Schedule::new();
        // Before any plan every insert wakes it.
        s.insert("a", 100);
        assert!(woken(&s));
        // Planned at t = 50 s: sleeps until "a" is due, 50 s on (capped at 60 s).
        let wait = s.plan_sleep(50_000, Duration::from_secs(60));
        assert_eq!(wait, Duration::from_secs(50));
        s.insert("later", 200);
        s.insert("same", 100);
        assert!(!woken(&s), "due at or after the wake-up: no wake-up");
        s.insert("sooner", 70);
        assert!(woken(&s));
        // Nothing scheduled: it sleeps the longest, and a lease due within it wakes it.
        s.clear();
        assert_eq!(
            s.plan_sleep(50_000, Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        s.insert("x", 51);
        assert!(!woken(&s));
        s.insert("y", 50);
        assert!(woken(&s));
    }

    #[test]
    fn due_between_peeks_in_order_and_leaves_the_leases_scheduled() {
        let s = Schedule::new();
        for (id, t) in [("a", 12), ("b", 10), ("c", 11), ("d", 13), ("e", 9)] {
            s.insert(id, t);
        }
        let peek = s.due_between(10, 12, 10);
        assert_eq!(
            peek,
            vec![(10, "b".into()), (11, "c".into()), (12, "a".into())]
        );
        assert_eq!(s.due_between(10, 12, 2).len(), 2);
        assert!(s.due_between(12, 11, 10).is_empty());
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn orders_and_moves() {
        let s = Schedule::new();
        s.insert("a", 30);
        s.insert("b", 10);
        s.insert("c", 20);
        s.insert("a", 5);
        assert_eq!(s.pop_due(15, 10), vec!["a", "b"]);
        assert_eq!(s.expiry_of("c"), Some(20));
        assert_eq!(s.next_due(), Some(20));
        s.remove("c");
        assert!(s.is_empty());
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_crowded_second_is_taken_in_parts_and_moves_are_clean() {
        let s = Schedule::new();
        let ids: Vec<String> = (0..1000).map(|i| format!("x/{i}")).collect();
        s.insert("late", 9);
        s.restore_many(ids.iter().map(|id| (id.as_str(), 7)));
        // A restored page does not move what was scheduled since unseal.
        s.restore_many([("late", 7)]);
        // Moving a lease out of the crowded second leaves no trace there.
        s.insert("x/0", 9);
        assert_eq!(s.len(), 1001);
        let first = s.pop_due(8, 600);
        assert_eq!(first.len(), 600);
        let rest = s.pop_due(8, 600);
        assert_eq!(rest.len(), 399, "x/0 moved to second 9");
        assert!(
            !first
                .iter()
                .chain(&rest)
                .any(|id| id == "x/0" || id == "late")
        );
        assert_eq!(s.next_due(), Some(9));
        let mut last = s.pop_due(9, 10);
        last.sort();
        assert_eq!(last, vec!["late", "x/0"]);
        assert!(s.is_empty());
    }
}
