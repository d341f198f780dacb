//! How far revocation is behind in a burst, so the bookkeeping can wait for it.
//!
//! Revoking a due lease is the engine's call (the credential goes upstream) followed by the
//! lease's durable removal. On two cores a burst of a hundred thousand leases is CPU-bound,
//! and the removals (tombstones the storage writer inserts, the read cache's invalidations)
//! were about half of its CPU, taken from the revocations still waiting. So while many due
//! leases wait to be revoked, revoked leases keep their records, and their claims, for a
//! while: a crash meanwhile revokes them again, which every engine accepts. They wait
//! when revocation has fallen behind, and from the start of a burst the scheduler sees
//! coming (many leases due this second and the next). The wait is
//! bounded in leases held and in time, so a slow upstream that keeps a backlog for long
//! does not hold the bookkeeping with it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Due leases taken from the schedule and not yet revoked above which removals start to
/// wait: about 10 ms of a burst of 100k a second, well above what a steady flow keeps in
/// flight.
const BEHIND: usize = 1024;
/// ... and at or below which they go again: revocation has caught up. Between the two the
/// last state holds, so the writer does not start each time a burst's queue dips and take
/// the CPU it would need to catch up.
const CAUGHT_UP: usize = 128;
/// Leases due from now to the end of the next second above which a burst is coming, and
/// removals wait from its start until no more than `CAUGHT_UP` are left: a burst spread
/// over its second is revoked about as fast as it comes due until late in the second, so
/// `BEHIND` alone let the writer take one of the two cores through most of it. About 8k
/// expiries a second, far above a steady flow.
const BURST: usize = 16_384;
/// Revoked leases whose removals may wait, in all (about 1 KiB each while they wait).
const HOLD_MAX: usize = 131_072;
/// How long one group of revoked leases may wait for its removal.
pub(super) const HOLD_FOR: Duration = Duration::from_secs(2);
/// How often a waiting group looks again.
pub(super) const HOLD_POLL: Duration = Duration::from_millis(5);

#[derive(Default)]
pub(super) struct Backlog {
    /// Due leases taken from the schedule whose revocation has not finished.
    due: AtomicUsize,
    /// Removals wait (since `due` passed `BEHIND`, until it is back to `CAUGHT_UP`).
    waiting: AtomicBool,
    /// A burst is coming due (since more than `BURST` were due shortly, until no more than
    /// `CAUGHT_UP` are): removals wait for it too.
    burst: AtomicBool,
    /// Revoked leases whose removal is waiting.
    held: AtomicUsize,
    /// Revoked leases whose removal waited, since start.
    deferred: AtomicU64,
}

/// Sets `flag` once `n` is above `start` and clears it once `n` is back to `CAUGHT_UP`;
/// between the two the last state holds. Returns the state. Written only when it changes:
/// it is asked once or twice per group of revocations and on every scheduler pass.
fn latch(flag: &AtomicBool, n: usize, start: usize) -> bool {
    let was = flag.load(Ordering::Relaxed);
    let on = (was || n > start) && n > CAUGHT_UP;
    if on != was {
        flag.store(on, Ordering::Relaxed);
    }
    on
}

impl Backlog {
    pub(super) fn taken(&self, n: usize) {
        self.due.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn revoked(&self) {
        self.due.fetch_sub(1, Ordering::Relaxed);
    }

    /// True while removals should wait for the revocations.
    pub(super) fn behind(&self) -> bool {
        let due = self.due.load(Ordering::Relaxed);
        let waiting = latch(&self.waiting, due, BEHIND);
        (waiting || self.burst.load(Ordering::Relaxed)) && self.room()
    }

    /// The scheduler saw `n` leases due now and shortly. The burst lasts until it has
    /// passed, not only until fewer than `BURST` are left: letting the removals go while
    /// its last leases come due made those the late ones.
    pub(super) fn ahead(&self, n: usize) {
        latch(&self.burst, n, BURST);
    }

    fn room(&self) -> bool {
        self.held.load(Ordering::Relaxed) < HOLD_MAX
    }

    /// `n` revoked leases joined a stream's removals (counted as deferred if they wait).
    pub(super) fn hold(&self, n: usize) {
        if self.behind() {
            self.deferred.fetch_add(n as u64, Ordering::Relaxed);
        }
        self.held.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` leases' removals went to the writer.
    pub(super) fn release(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }

    pub(super) fn deferred(&self) -> u64 {
        self.deferred.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_wait_through_a_burst_seen_coming_and_go_once_it_has_passed() {
        let b = Backlog::default();
        b.ahead(BURST);
        assert!(!b.behind(), "a steady flow's removals go at once");
        b.ahead(BURST + 1);
        assert!(b.behind(), "a burst coming: removals wait from its start");
        b.hold(HOLD_MAX);
        assert!(!b.behind(), "never more than HOLD_MAX held");
        b.release(HOLD_MAX);
        assert!(b.behind());
        b.ahead(CAUGHT_UP + 1);
        assert!(b.behind(), "its last leases still coming due");
        b.ahead(CAUGHT_UP);
        assert!(!b.behind(), "the burst has passed");
        b.ahead(BURST);
        assert!(!b.behind(), "and only a burst starts it again");
    }

    #[test]
    fn removals_wait_while_revocation_is_behind_until_it_has_caught_up() {
        let b = Backlog::default();
        b.taken(BEHIND);
        assert!(!b.behind());
        b.taken(1);
        assert!(b.behind());
        for _ in 0..(BEHIND + 1 - CAUGHT_UP - 1) {
            b.revoked();
        }
        assert!(b.behind(), "above CAUGHT_UP it still waits");
        b.revoked();
        assert!(!b.behind(), "caught up");
    }
}
