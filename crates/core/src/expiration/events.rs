//! Lease events: what the lease manager tells the world as leases come and go.
//!
//! The lease manager calls `LeaseEvents::emit` at each step of a lease's life. Two kinds of
//! listener hear it:
//!
//! - **Observers** are called inline, in order, and must be cheap and non-blocking (the
//!   lease-count quotas keep their counters this way). They see every event, including the
//!   internal `reserved` step that subscribers never see.
//! - **Subscribers** (`subscribe`) read a bounded broadcast. A subscriber that falls behind
//!   by more than the buffer is dropped with a final `Lagged`: the lease manager never
//!   waits for a reader. A subscription can also announce `expiring-soon` a chosen time
//!   before each matching lease expires; it snapshots the matching leases from storage when
//!   it starts, then follows issue, renew and revoke events, with a timer of its own.
//!
//! Events carry the lease id, mount and times, never secret data or the engine's internal
//! revocation data.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use lessor_storage::Storage;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::broadcast;

use super::{ID_PREFIX, INDEX_PREFIX, LeaseEntry, LeaseKind, LeaseState, expiry_in_force};
use crate::clock::Clock;
use crate::{Error, Result};

/// Events a subscriber may fall behind by before it is dropped.
pub const BUFFER: usize = 4096;
/// Leases one subscription times for `expiring-soon` (about 100 bytes each). A snapshot
/// over more is refused; a subscription that grows past it is dropped as lagged.
pub const MAX_TRACKED: usize = 100_000;
/// Revocations remembered to drop a repeated `revoked` of the same lease (a token lease is
/// forgotten both by its token's revocation and by the caller that revoked the token).
const RECENT_REVOKED: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A lease was reserved before its credential exists (internal: observers only).
    Reserved,
    Issued,
    Renewed,
    /// Sent by a subscription `before` a lease expires.
    ExpiringSoon,
    Revoked,
    /// A revocation attempt failed; it will be retried.
    Failed,
    /// Out of revocation attempts.
    Irrevocable,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Reserved => "reserved",
            EventKind::Issued => "issued",
            EventKind::Renewed => "renewed",
            EventKind::ExpiringSoon => "expiring-soon",
            EventKind::Revoked => "revoked",
            EventKind::Failed => "failed",
            EventKind::Irrevocable => "irrevocable",
        }
    }
}

/// One event. Times are Unix seconds; `data_json` renders them as RFC 3339.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseEvent {
    pub kind: EventKind,
    pub lease_id: String,
    /// Route path of the issuing mount (`test/`, `auth/token/`).
    pub mount: String,
    /// A service token's lease rather than a secret's.
    pub token: bool,
    pub time: i64,
    /// 0 = never.
    pub expire_time: i64,
    /// Revocation attempts so far (`failed`, `irrevocable`).
    pub attempt: Option<u32>,
    /// The last revocation error (`failed`, `irrevocable`).
    pub error: Option<String>,
}

impl LeaseEvent {
    /// The event `kind` of lease `e` at `now`.
    pub fn of(kind: EventKind, e: &LeaseEntry, now: i64) -> Self {
        let failure = matches!(kind, EventKind::Failed | EventKind::Irrevocable);
        LeaseEvent {
            kind,
            lease_id: e.id.clone(),
            mount: e.mount.clone(),
            token: e.kind == LeaseKind::Token,
            time: now,
            expire_time: e.expire_time,
            attempt: failure.then_some(e.attempts),
            error: failure.then(|| e.last_error.clone()),
        }
    }

    /// A token lease written: `issued` when the token is created, `renewed` once it has
    /// been renewed (told by the record itself, not by the schedule, which fills in the
    /// background after an unseal).
    pub fn upsert(e: &LeaseEntry, now: i64) -> Self {
        let kind = if e.last_renewal > 0 {
            EventKind::Renewed
        } else {
            EventKind::Issued
        };
        Self::of(kind, e, now)
    }

    /// Seconds left at the event's time (0 once expired or when it never expires).
    pub fn ttl(&self) -> i64 {
        if self.expire_time > 0 {
            (self.expire_time - self.time).max(0)
        } else {
            0
        }
    }

    /// The `data:` of the event on the wire.
    pub fn data_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "kind": self.kind.as_str(),
            "lease_id": self.lease_id,
            "mount": self.mount,
            "time": crate::clock::rfc3339(self.time),
            "expire_time": if self.expire_time > 0 {
                serde_json::Value::String(crate::clock::rfc3339(self.expire_time))
            } else {
                serde_json::Value::Null
            },
            "ttl": self.ttl(),
        });
        if let Some(o) = v.as_object_mut() {
            if let Some(a) = self.attempt {
                o.insert("attempt".into(), a.into());
            }
            if let Some(e) = &self.error {
                o.insert("error".into(), e.clone().into());
            }
        }
        v
    }
}

/// Called inline for every event; must not block.
pub trait LeaseObserver: Send + Sync {
    fn observe(&self, ev: &LeaseEvent);
}

#[derive(Default)]
struct Recent {
    set: HashSet<Arc<str>, foldhash::fast::RandomState>,
    order: VecDeque<Arc<str>>,
}

impl Recent {
    /// True the first time `id` is seen within the window.
    fn first(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= RECENT_REVOKED
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        let id: Arc<str> = id.into();
        self.set.insert(id.clone());
        self.order.push_back(id);
        true
    }

    /// A reused id (a token re-created with the same custom id) is live again.
    fn forget(&mut self, id: &str) {
        if self.set.remove(id) {
            self.order.retain(|o| &**o != id);
        }
    }
}

/// The lease manager's event hub.
pub struct LeaseEvents {
    tx: broadcast::Sender<Arc<LeaseEvent>>,
    observers: RwLock<Vec<Arc<dyn LeaseObserver>>>,
    recent: Mutex<Recent>,
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
}

impl LeaseEvents {
    /// `storage` is the lease manager's (`sys/expire/`), read for subscription snapshots.
    pub fn new(storage: Arc<dyn Storage>, clock: Arc<dyn Clock>) -> Arc<Self> {
        let (tx, _) = broadcast::channel(BUFFER);
        Arc::new(LeaseEvents {
            tx,
            observers: RwLock::new(Vec::new()),
            recent: Mutex::new(Recent::default()),
            storage,
            clock,
        })
    }

    /// Adds an observer; it hears every event from now on.
    pub fn observe(&self, o: Arc<dyn LeaseObserver>) {
        self.observers.write().push(o);
    }

    /// Publishes one event: observers first, then subscribers. Never waits.
    pub fn emit(&self, ev: LeaseEvent) {
        match ev.kind {
            EventKind::Revoked if !self.recent.lock().first(&ev.lease_id) => return,
            EventKind::Reserved | EventKind::Issued => self.recent.lock().forget(&ev.lease_id),
            _ => {}
        }
        for o in self.observers.read().iter() {
            o.observe(&ev);
        }
        if ev.kind != EventKind::Reserved && self.tx.receiver_count() > 0 {
            // An error only means nobody listens any more.
            let _ = self.tx.send(Arc::new(ev));
        }
    }

    /// A failed revocation: `failed`, then `irrevocable` when it was the last attempt.
    pub fn emit_failure(&self, e: &LeaseEntry, now: i64) {
        self.emit(LeaseEvent::of(EventKind::Failed, e, now));
        if e.state == LeaseState::Irrevocable {
            self.emit(LeaseEvent::of(EventKind::Irrevocable, e, now));
        }
    }

    /// Subscribes to the events of leases whose id starts with `prefix`; with `before`, the
    /// subscription also announces `expiring-soon` that long before each matching lease
    /// expires, leases issued before it started included.
    pub async fn subscribe(&self, prefix: &str, before: Option<Duration>) -> Result<Subscription> {
        // Subscribe first, snapshot second: a change racing the snapshot is then seen as
        // an event, and applying an event twice is harmless.
        let rx = self.tx.subscribe();
        let mut sub = Subscription {
            rx,
            prefix: prefix.trim_start_matches('/').to_string(),
            before: before.map(|d| d.as_secs() as i64),
            clock: self.clock.clone(),
            soon: BTreeSet::new(),
            tracked: HashMap::new(),
            max_tracked: MAX_TRACKED,
            overflow: false,
            done: false,
        };
        if sub.before.is_some() {
            self.snapshot(&mut sub).await?;
        }
        Ok(sub)
    }

    async fn snapshot(&self, sub: &mut Subscription) -> Result<()> {
        let base = format!("{ID_PREFIX}{}", sub.prefix);
        let mut after: Option<String> = None;
        loop {
            let page = self.storage.scan(&base, after.as_deref(), 1000).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, raw) in page {
                if let Ok(e) = serde_json::from_slice::<LeaseEntry>(&raw)
                    && e.state == LeaseState::Active
                {
                    let expires = expiry_in_force(&*self.storage, INDEX_PREFIX, &e).await;
                    sub.track(&e.id, &e.mount, e.kind == LeaseKind::Token, expires);
                }
            }
            if sub.overflow {
                return Err(Error::bad(format!(
                    "more than {MAX_TRACKED} leases under prefix {:?}: narrow the prefix to use \"before\"",
                    sub.prefix
                )));
            }
        }
        Ok(())
    }
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Event(Arc<LeaseEvent>),
    /// The subscriber fell behind and is dropped; nothing follows.
    Lagged,
}

struct Tracked {
    expire: i64,
    mount: String,
    token: bool,
}

/// One subscriber's view: filtered events and its own `expiring-soon` timer.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<LeaseEvent>>,
    prefix: String,
    /// Seconds before expiry to announce `expiring-soon`.
    before: Option<i64>,
    clock: Arc<dyn Clock>,
    /// (announce at, lease id), earliest first.
    soon: BTreeSet<(i64, String)>,
    tracked: HashMap<String, Tracked>,
    max_tracked: usize,
    /// More leases to time than `max_tracked`: the subscription ends as lagged.
    overflow: bool,
    done: bool,
}

impl Subscription {
    fn matches(&self, id: &str) -> bool {
        id.starts_with(&self.prefix)
    }

    fn untrack(&mut self, id: &str) {
        if let (Some(t), Some(before)) = (self.tracked.remove(id), self.before) {
            self.soon.remove(&(t.expire - before, id.to_string()));
        }
    }

    fn track(&mut self, id: &str, mount: &str, token: bool, expire: i64) {
        let Some(before) = self.before else { return };
        self.untrack(id);
        if expire <= 0 {
            return;
        }
        if self.tracked.len() >= self.max_tracked {
            self.overflow = true;
            return;
        }
        self.soon.insert((expire - before, id.to_string()));
        self.tracked.insert(
            id.to_string(),
            Tracked {
                expire,
                mount: mount.to_string(),
                token,
            },
        );
    }

    /// Updates the timer from an event of a matching lease.
    fn follow(&mut self, ev: &LeaseEvent) {
        match ev.kind {
            EventKind::Issued | EventKind::Renewed => {
                self.track(&ev.lease_id, &ev.mount, ev.token, ev.expire_time)
            }
            EventKind::Revoked | EventKind::Failed | EventKind::Irrevocable => {
                self.untrack(&ev.lease_id)
            }
            EventKind::Reserved | EventKind::ExpiringSoon => {}
        }
    }

    /// The next `expiring-soon` due at `now`, if any.
    fn due(&mut self, now: i64) -> Option<Arc<LeaseEvent>> {
        let (at, _) = self.soon.first()?;
        if *at > now {
            return None;
        }
        let (_, id) = self.soon.pop_first()?;
        let t = self.tracked.remove(&id)?;
        Some(Arc::new(LeaseEvent {
            kind: EventKind::ExpiringSoon,
            lease_id: id,
            mount: t.mount,
            token: t.token,
            time: now,
            expire_time: t.expire,
            attempt: None,
            error: None,
        }))
    }

    /// The next item available now, without waiting: pending events first (so the timer
    /// knows of every lease issued, renewed or revoked so far), then a due `expiring-soon`.
    /// `None` when nothing is ready or the subscription is over.
    pub fn try_next(&mut self) -> Option<Item> {
        if self.done {
            return None;
        }
        if self.overflow {
            self.done = true;
            return Some(Item::Lagged);
        }
        loop {
            match self.rx.try_recv() {
                Ok(ev) => {
                    if !self.matches(&ev.lease_id) {
                        continue;
                    }
                    self.follow(&ev);
                    return Some(Item::Event(ev));
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.done = true;
                    return Some(Item::Lagged);
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Closed) => {
                    // The lease manager is gone (sealed): the stream ends.
                    self.done = true;
                    return None;
                }
            }
        }
        let now = self.clock.now_unix();
        self.due(now).map(Item::Event)
    }

    /// The next item, waiting for it; `None` once the lease manager is gone (sealed) or
    /// after `Lagged`. Cancel-safe (a keep-alive timeout may drop it): nothing is lost.
    pub async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.try_next() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            // Wake for the next announcement; re-read the clock at least every second
            // (a test's manual clock moves without waking anyone).
            let wait_ms = match self.soon.first() {
                Some((at, _)) => (at * 1000 - self.clock.now_ms()).clamp(1, 1000),
                None => 1000,
            };
            tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(ev) => {
                        if self.matches(&ev.lease_id) {
                            self.follow(&ev);
                            return Some(Item::Event(ev));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.done = true;
                        return Some(Item::Lagged);
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.done = true;
                        return None;
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn entry(id: &str, expire: i64) -> LeaseEntry {
        LeaseEntry {
            id: id.into(),
            kind: LeaseKind::Secret,
            mount: "test/".into(),
            mount_accessor: String::new(),
            secret_type: "dummy".into(),
            internal: serde_json::json!({"resource": "never in an event"}),
            token_hash: String::new(),
            issue_time: 100,
            expire_time: expire,
            expire_ms: 0,
            last_renewal: 0,
            renewable: true,
            state: LeaseState::Active,
            attempts: 0,
            last_error: String::new(),
            max_ttl: 0,
        }
    }

    fn hub() -> (Arc<LeaseEvents>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(100));
        let storage = Arc::new(lessor_storage::inmem::InMem::new());
        (LeaseEvents::new(storage, clock.clone()), clock)
    }

    #[tokio::test]
    async fn filters_by_prefix_and_hides_reservations() {
        let (hub, _) = hub();
        let mut sub = hub.subscribe("test/creds/a", None).await.unwrap();
        hub.emit(LeaseEvent::of(
            EventKind::Reserved,
            &entry("test/creds/a/1", 400),
            100,
        ));
        hub.emit(LeaseEvent::of(
            EventKind::Issued,
            &entry("test/creds/b/1", 400),
            100,
        ));
        hub.emit(LeaseEvent::of(
            EventKind::Issued,
            &entry("test/creds/a/1", 400),
            100,
        ));
        let Some(Item::Event(ev)) = sub.try_next() else {
            panic!("an event")
        };
        assert_eq!(
            (ev.kind, ev.lease_id.as_str()),
            (EventKind::Issued, "test/creds/a/1")
        );
        assert!(!ev.data_json().to_string().contains("never in an event"));
        assert_eq!(sub.try_next(), None);
    }

    #[tokio::test]
    async fn repeated_revocation_is_told_once() {
        let (hub, _) = hub();
        let mut sub = hub.subscribe("", None).await.unwrap();
        let e = entry("auth/token/create/h1", 400);
        hub.emit(LeaseEvent::of(EventKind::Revoked, &e, 100));
        hub.emit(LeaseEvent::of(EventKind::Revoked, &e, 100));
        assert!(matches!(sub.try_next(), Some(Item::Event(_))));
        assert_eq!(sub.try_next(), None);
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_dropped_not_waited_for() {
        let (hub, _) = hub();
        let mut sub = hub.subscribe("", None).await.unwrap();
        for i in 0..BUFFER + 10 {
            hub.emit(LeaseEvent::of(
                EventKind::Issued,
                &entry(&format!("test/x/{i}"), 400),
                100,
            ));
        }
        assert_eq!(sub.try_next(), Some(Item::Lagged));
        assert_eq!(sub.try_next(), None);
        assert_eq!(sub.next().await, None);
    }

    #[tokio::test]
    async fn a_subscription_with_too_many_leases_to_time_is_dropped() {
        let (hub, _) = hub();
        let mut sub = hub
            .subscribe("", Some(Duration::from_secs(30)))
            .await
            .unwrap();
        sub.max_tracked = 2;
        for i in 0..3 {
            hub.emit(LeaseEvent::of(
                EventKind::Issued,
                &entry(&format!("test/{i}"), 400),
                100,
            ));
        }
        for _ in 0..3 {
            assert!(matches!(sub.try_next(), Some(Item::Event(e)) if e.kind == EventKind::Issued));
        }
        assert_eq!(sub.try_next(), Some(Item::Lagged));
        assert_eq!(sub.try_next(), None);
    }

    #[tokio::test]
    async fn expiring_soon_follows_renewals_and_revocations() {
        let (hub, clock) = hub();
        let mut sub = hub
            .subscribe("", Some(Duration::from_secs(30)))
            .await
            .unwrap();
        hub.emit(LeaseEvent::of(
            EventKind::Issued,
            &entry("test/a", 200),
            100,
        ));
        hub.emit(LeaseEvent::of(
            EventKind::Issued,
            &entry("test/b", 200),
            100,
        ));
        assert!(matches!(sub.try_next(), Some(Item::Event(_))));
        assert!(matches!(sub.try_next(), Some(Item::Event(_))));
        hub.emit(LeaseEvent::of(
            EventKind::Revoked,
            &entry("test/b", 200),
            150,
        ));
        hub.emit(LeaseEvent::of(
            EventKind::Renewed,
            &entry("test/a", 300),
            150,
        ));
        clock.advance(100); // now 200: a would have been due at 170, is now due at 270
        assert!(matches!(sub.try_next(), Some(Item::Event(e)) if e.kind == EventKind::Revoked));
        assert!(matches!(sub.try_next(), Some(Item::Event(e)) if e.kind == EventKind::Renewed));
        assert_eq!(sub.try_next(), None);
        clock.advance(70);
        let Some(Item::Event(ev)) = sub.try_next() else {
            panic!("expiring-soon")
        };
        assert_eq!(
            (ev.kind, ev.lease_id.as_str(), ev.ttl()),
            (EventKind::ExpiringSoon, "test/a", 30)
        );
        assert_eq!(sub.try_next(), None, "announced once");
    }
}
