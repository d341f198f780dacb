//! The in-memory expiry index: lease ids ordered by expiry time, to the millisecond.
//!
//! Leases are kept in one bucket per second (a hash set), so the ordered map holds one
//! entry per second, not per lease: a burst of issuance or a restore of a million shares a
//! few thousand entries. Each lease's millisecond lives in `by_id`. When a second comes its
//! bucket is moved into `near`, a heap ordered by the millisecond, and leases are taken from
//! there at their own millisecond (seconds already wholly past, a backlog, are taken straight
//! from their buckets): a lease issued at 12.345 s with a TTL of 10 s is
//! revoked at 22.345 s, neither at 22.000 s (early) nor at 23.000 s (late).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// The leases due in one second.
type Bucket = HashSet<Arc<str>, RandomState>;

/// A lease in `near`: ordered by its millisecond only (ties in any order).
struct Due(i64, Arc<str>);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

fn second(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

struct Inner {
    /// Seconds after `near_through`, each with its leases.
    by_time: BTreeMap<i64, Bucket>,
    /// Every scheduled lease and when it is due (Unix ms): the truth `near` is read against.
    by_id: HashMap<Arc<str>, i64, RandomState>,
    /// The leases of the seconds up to `near_through` (in practice the current one),
    /// earliest first. A lease moved or
    /// removed while here leaves its entry behind; an entry counts only while `by_id` still
    /// has the lease at that millisecond (stale ones are dropped as they come up, within a
    /// second, since every second here has come).
    near: BinaryHeap<Reverse<Due>>,
    near_through: i64,
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
            near: BinaryHeap::new(),
            near_through: i64::MIN,
            wakes_at_ms: i64::MAX,
            forced: HashSet::default(),
        }
    }
}

impl Inner {
    fn insert(&mut self, id: &str, at_ms: i64) {
        let key: Arc<str> = match self.by_id.get_key_value(id) {
            Some((k, old)) => {
                let (k, old) = (k.clone(), *old);
                self.unbucket(&k, old);
                k
            }
            None => Arc::from(id),
        };
        self.by_id.insert(key.clone(), at_ms);
        self.place(key, at_ms);
    }

    /// Schedules a lease not scheduled yet; one already there keeps its time. The id is
    /// hashed once for `by_id` (a restore inserts a million; looking it up first, then
    /// inserting, hashed it twice or three times).
    fn insert_new(&mut self, id: &str, at_ms: i64) {
        use std::collections::hash_map::Entry;
        let Entry::Vacant(slot) = self.by_id.entry(Arc::from(id)) else {
            return;
        };
        let key = slot.key().clone();
        slot.insert(at_ms);
        self.place(key, at_ms);
    }

    /// Puts a lease `by_id` already holds at `at_ms` into its second's bucket, or into
    /// `near` if that second is already open.
    fn place(&mut self, key: Arc<str>, at_ms: i64) {
        if second(at_ms) <= self.near_through {
            self.near.push(Reverse(Due(at_ms, key)));
        } else {
            self.by_time.entry(second(at_ms)).or_default().insert(key);
        }
    }

    /// Takes a lease out of its second's bucket (one in `near` is left to go stale there).
    fn unbucket(&mut self, id: &Arc<str>, at_ms: i64) {
        let s = second(at_ms);
        if s <= self.near_through {
            return;
        }
        if let Some(bucket) = self.by_time.get_mut(&s) {
            bucket.remove(id);
            if bucket.is_empty() {
                self.by_time.remove(&s);
            }
        }
    }

    /// Opens second `now_s`: its leases move into `near`, ordered by millisecond. Only once
    /// every earlier second has been taken, so `near` holds at most the current second (and
    /// stale entries).
    fn open(&mut self, now_s: i64) {
        if now_s <= self.near_through {
            return;
        }
        if let Some(first) = self.by_time.first_entry()
            && *first.key() == now_s
        {
            let bucket = first.remove();
            self.near.reserve(bucket.len());
            for id in bucket {
                let at = self.by_id.get(&id).copied().unwrap_or(i64::MIN);
                self.near.push(Reverse(Due(at, id)));
            }
        }
        self.near_through = now_s;
    }

    /// Takes from `near`, earliest first, what is due at `now_ms`.
    fn take_near(&mut self, now_ms: i64, max: usize, out: &mut Vec<String>) {
        use std::collections::hash_map::Entry;
        while out.len() < max {
            match self.near.peek() {
                Some(Reverse(Due(at, _))) if *at <= now_ms => {}
                _ => return,
            }
            let Some(Reverse(Due(at, id))) = self.near.pop() else {
                return;
            };
            // One lookup: the entry is live only if the lease is still due at `at`.
            if let Entry::Occupied(live) = self.by_id.entry(id)
                && *live.get() == at
            {
                out.push(live.remove_entry().0.to_string());
            }
        }
    }

    /// Takes from the seconds wholly before `now_s`, a part of a crowded one at a time:
    /// every lease in them is due, so they need no ordering by millisecond. (A backlog, such
    /// as a restore after downtime, is never heaped all at once under the lock.)
    fn take_past(&mut self, now_s: i64, max: usize, out: &mut Vec<String>) {
        let Inner { by_time, by_id, .. } = self;
        while out.len() < max {
            let Some(mut first) = by_time.first_entry() else {
                return;
            };
            if *first.key() >= now_s {
                return;
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
    }

    /// Drops stale entries off the top of `near`; the earliest live one's millisecond.
    fn near_first(&mut self) -> Option<i64> {
        while let Some(Reverse(Due(at, id))) = self.near.peek() {
            if self.by_id.get(id) == Some(at) {
                return Some(*at);
            }
            self.near.pop();
        }
        None
    }

    /// When the earliest lease is due (Unix ms).
    fn first_due(&mut self) -> Option<i64> {
        let near = self.near_first();
        let later = self.by_time.first_key_value().map(|(s, _)| {
            // The bucket's own earliest millisecond is known only once it is opened: its
            // second's start is when to look.
            s.saturating_mul(1000)
        });
        match (near, later) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Leases by expiry. Inserting an id already present moves it. Times are Unix ms.
#[derive(Default)]
pub struct Schedule {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl Schedule {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, id: &str, at_ms: i64) {
        self.insert_with(id, at_ms, false);
    }

    /// Queues a lease to be revoked at `at_ms` even if its record says it expires later.
    pub fn insert_forced(&self, id: &str, at_ms: i64) {
        self.insert_with(id, at_ms, true);
    }

    /// Whether a lease taken as due was queued by `insert_forced`; forgets that it was.
    pub fn take_forced(&self, id: &str) -> bool {
        let mut g = self.inner.lock();
        // Empty almost always: no hashing of the id then.
        !g.forced.is_empty() && g.forced.remove(id)
    }

    fn insert_with(&self, id: &str, at_ms: i64, forced: bool) {
        let mut g = self.inner.lock();
        g.insert(id, at_ms);
        if forced && let Some((k, _)) = g.by_id.get_key_value(id) {
            let k = k.clone();
            g.forced.insert(k);
        }
        // Read under the lock the scheduler plans its sleep under: an insert either comes
        // before the plan (which then sees it) or sees the plan. A wake-up sent before the
        // scheduler waits is kept for it (`Notify` stores one).
        let sooner = at_ms < g.wakes_at_ms;
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
        for (id, at_ms) in items {
            g.insert_new(id, at_ms);
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

    /// Takes up to `max` leases due at `now_ms`, earliest first.
    pub fn pop_due(&self, now_ms: i64, max: usize) -> Vec<String> {
        let now_s = second(now_ms);
        let mut g = self.inner.lock();
        let mut out = Vec::new();
        // Opened seconds come before the ones still in buckets.
        g.take_near(now_ms, max, &mut out);
        g.take_past(now_s, max, &mut out);
        if out.len() < max && g.by_time.first_key_value().is_none_or(|(s, _)| *s >= now_s) {
            g.open(now_s);
            g.take_near(now_ms, max, &mut out);
        }
        out
    }

    /// Up to `max` leases due in the seconds `from..=to`, earliest second first, left
    /// scheduled: what is read ahead. Seconds already opened (come due) are not looked in.
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

    /// When the earliest lease is due (Unix ms).
    pub fn next_due(&self) -> Option<i64> {
        self.inner.lock().first_due()
    }

    /// How long the scheduler sleeps from `now_ms` (Unix ms): until the next lease is due,
    /// at least 1 ms and at most `longest`. Records the wake time, so inserts due later do
    /// not wake it.
    pub fn plan_sleep(&self, now_ms: i64, longest: Duration) -> Duration {
        let longest_ms = i64::try_from(longest.as_millis()).unwrap_or(i64::MAX);
        let mut g = self.inner.lock();
        let wait_ms = match g.first_due() {
            Some(t) => t.saturating_sub(now_ms).clamp(1, longest_ms),
            None => longest_ms,
        };
        g.wakes_at_ms = now_ms.saturating_add(wait_ms);
        Duration::from_millis(wait_ms.max(0) as u64)
    }

    pub fn expiry_of(&self, id: &str) -> Option<i64> {
        self.inner.lock().by_id.get(id).copied()
    }

    /// Leases due from `now_ms` to the end of the next second (counting, in the current
    /// second, entries left behind by a move): what tells a burst coming.
    pub fn due_soon(&self, now_ms: i64) -> usize {
        let s = second(now_ms);
        let g = self.inner.lock();
        let bucket = |s: i64| g.by_time.get(&s).map_or(0, HashSet::len);
        g.near.len() + bucket(s) + bucket(s + 1)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        *self.inner.lock() = Inner::default();
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
        s.insert("a", 10_000);
        s.insert_forced("b", 10_000);
        assert_eq!(s.pop_due(10_000, 10).len(), 2);
        assert!(!s.take_forced("a"));
        assert!(s.take_forced("b"));
        assert!(!s.take_forced("b"), "told once");
        s.insert_forced("c", 20_000);
        s.remove("c");
        assert!(!s.take_forced("c"), "removed with its lease");
    }

    #[test]
    fn due_soon_counts_this_second_and_the_next_only() {
        let s = Schedule::new();
        s.insert("early", 9_500);
        for (i, at) in [10_100, 10_900, 11_000, 11_999, 12_000].iter().enumerate() {
            s.insert(&format!("l{i}"), *at);
        }
        assert_eq!(s.due_soon(10_000), 4, "10.1, 10.9, 11.0 and 11.999 s");
        // Once second 10 is opened its leases are counted in `near` until taken.
        assert_eq!(s.pop_due(10_100, 10), vec!["early", "l0"]);
        assert_eq!(s.due_soon(10_100), 3);
        assert_eq!(
            s.due_soon(11_000),
            4,
            "10.9 s still due, 11.0, 11.999 and 12.0 s"
        );
        s.remove("l4");
        assert_eq!(s.due_soon(11_000), 3);
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
        s.insert("a", 100_000);
        assert!(woken(&s));
        // Planned at t = 50 s: sleeps until "a"'s second comes, 50 s on (capped at 60 s).
        let wait = s.plan_sleep(50_000, Duration::from_secs(60));
        assert_eq!(wait, Duration::from_secs(50));
        s.insert("later", 200_000);
        s.insert("same", 100_000);
        assert!(!woken(&s), "due at or after the wake-up: no wake-up");
        s.insert("sooner", 70_000);
        assert!(woken(&s));
        // Nothing scheduled: it sleeps the longest, and a lease due within it wakes it.
        s.clear();
        assert_eq!(
            s.plan_sleep(50_000, Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        s.insert("x", 51_000);
        assert!(!woken(&s));
        s.insert("y", 50_999);
        assert!(woken(&s));
    }

    #[test]
    fn due_between_peeks_in_order_and_leaves_the_leases_scheduled() {
        let s = Schedule::new();
        for (id, t) in [("a", 12), ("b", 10), ("c", 11), ("d", 13), ("e", 9)] {
            s.insert(id, t * 1000 + 500);
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
        s.insert("a", 30_000);
        s.insert("b", 10_000);
        s.insert("c", 20_000);
        s.insert("a", 5_000);
        assert_eq!(s.pop_due(15_000, 10), vec!["a", "b"]);
        assert_eq!(s.expiry_of("c"), Some(20_000));
        assert_eq!(s.next_due(), Some(20_000));
        s.remove("c");
        assert!(s.is_empty());
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_lease_is_taken_at_its_millisecond_not_at_its_second() {
        let s = Schedule::new();
        s.insert("late", 10_900);
        s.insert("early", 10_100);
        s.insert("mid", 10_450);
        // The second has come, but no lease in it is due yet: none is taken early.
        assert!(s.pop_due(10_000, 10).is_empty());
        assert_eq!(s.next_due(), Some(10_100));
        assert_eq!(
            s.plan_sleep(10_000, Duration::from_secs(1)),
            Duration::from_millis(100)
        );
        assert_eq!(s.pop_due(10_100, 10), vec!["early"]);
        assert_eq!(s.pop_due(10_899, 10), vec!["mid"]);
        // Inserted into the opened second: still in order with what is there.
        s.insert("now", 10_899);
        s.insert("soon", 10_950);
        assert_eq!(s.pop_due(10_900, 10), vec!["now", "late"]);
        assert_eq!(s.next_due(), Some(10_950));
        assert_eq!(s.pop_due(11_000, 10), vec!["soon"]);
        assert!(s.is_empty());
    }

    #[test]
    fn a_backlog_is_taken_earliest_second_first_and_the_current_one_by_millisecond() {
        let s = Schedule::new();
        for (id, at) in [("d", 7_900), ("c", 7_100), ("b", 6_200), ("a", 5_500)] {
            s.insert(id, at);
        }
        assert_eq!(s.pop_due(7_500, 1), vec!["a"]);
        assert_eq!(s.pop_due(7_500, 10), vec!["b", "c"]);
        assert_eq!(s.next_due(), Some(7_900));
        assert_eq!(s.pop_due(7_899, 10), Vec::<String>::new());
        assert_eq!(s.pop_due(7_900, 10), vec!["d"]);
    }

    #[test]
    fn a_lease_moved_or_removed_in_an_opened_second_leaves_nothing_due() {
        let s = Schedule::new();
        for id in ["moved", "removed", "twice", "stays"] {
            s.insert(id, 20_200);
        }
        assert!(s.pop_due(20_000, 10).is_empty(), "opens second 20");
        s.insert("moved", 25_000);
        s.remove("removed");
        s.insert("twice", 20_300);
        s.insert("twice", 20_300);
        assert_eq!(s.len(), 3);
        assert_eq!(s.next_due(), Some(20_200));
        assert_eq!(s.pop_due(20_250, 10), vec!["stays"]);
        assert_eq!(s.next_due(), Some(20_300));
        assert_eq!(s.pop_due(20_999, 10), vec!["twice"], "taken once");
        assert_eq!(s.next_due(), Some(25_000));
        assert_eq!(s.pop_due(25_000, 10), vec!["moved"]);
        assert!(s.is_empty());
        assert_eq!(s.next_due(), None);
    }

    /// A restore page read late may hold leases of a second the scheduler has already
    /// opened: they go to `near` and come due at their own millisecond.
    #[test]
    fn a_restored_lease_in_an_opened_second_is_due_at_its_millisecond() {
        let s = Schedule::new();
        s.insert("early", 30_100);
        assert_eq!(s.pop_due(30_100, 10), vec!["early"], "opens second 30");
        s.restore_many([("a", 30_700), ("b", 30_400), ("later", 31_000)]);
        assert_eq!(s.next_due(), Some(30_400));
        assert_eq!(s.pop_due(30_500, 10), vec!["b"]);
        assert_eq!(s.pop_due(30_999, 10), vec!["a"]);
        assert_eq!(s.pop_due(31_000, 10), vec!["later"]);
        assert!(s.is_empty());
    }

    #[test]
    fn a_crowded_second_is_taken_in_parts_and_moves_are_clean() {
        let s = Schedule::new();
        let ids: Vec<String> = (0..1000).map(|i| format!("x/{i}")).collect();
        s.insert("late", 9_000);
        s.restore_many(ids.iter().map(|id| (id.as_str(), 7_000)));
        // A restored page does not move what was scheduled since unseal.
        s.restore_many([("late", 7_000)]);
        // Moving a lease out of the crowded second leaves no trace there.
        s.insert("x/0", 9_000);
        assert_eq!(s.len(), 1001);
        let first = s.pop_due(8_000, 600);
        assert_eq!(first.len(), 600);
        let rest = s.pop_due(8_000, 600);
        assert_eq!(rest.len(), 399, "x/0 moved to second 9");
        assert!(
            !first
                .iter()
                .chain(&rest)
                .any(|id| id == "x/0" || id == "late")
        );
        assert_eq!(s.next_due(), Some(9_000));
        let mut last = s.pop_due(9_000, 10);
        last.sort();
        assert_eq!(last, vec!["late", "x/0"]);
        assert!(s.is_empty());
    }
}
