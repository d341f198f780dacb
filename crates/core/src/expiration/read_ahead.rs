//! Reading ahead: the records of leases due in the next few seconds are read before they
//! are due, so the storage read cache holds them when they are. Revoking a due lease starts
//! with reading its record; for a burst of leases due together, read one by one from the
//! storage engine at that moment, the reads were about two fifths of the background
//! thread's time. Read ahead, the revocations of the burst start sooner and end sooner.
//!
//! Nothing depends on it: a record changed since it was read ahead is fresh again (a write
//! empties its cache entry), and one evicted or never read is read when due, as without it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use tokio::task::JoinHandle;

use super::{Expiration, ID_PREFIX};

/// How far ahead of its second a lease's record is read.
pub const AHEAD_MS: i64 = 3_000;
/// Reads in flight while reading ahead: enough to overlap them, few enough to leave the
/// background thread to a revocation that comes due meanwhile.
const IN_FLIGHT: usize = 16;

#[derive(Default)]
pub(super) struct ReadAhead {
    /// Most records read ahead for the seconds one wake-up of the scheduler reaches; 0
    /// turns reading ahead off (no read cache to fill).
    limit: AtomicUsize,
    /// The last second whose leases were read ahead.
    through: AtomicI64,
}

impl Expiration {
    /// Sets how many lease records may be read ahead at a time: part of the read cache's
    /// room, so they do not push each other out; 0 when there is no read cache.
    pub fn set_read_ahead(&self, limit: usize) {
        self.read_ahead.limit.store(limit, Ordering::Relaxed);
    }

    /// Starts reading the records of leases due in the seconds after now, up to
    /// `AHEAD_MS` on, that were not read ahead yet. The task answers how many it read.
    pub fn read_ahead(self: &Arc<Self>) -> Option<JoinHandle<usize>> {
        let limit = self.read_ahead.limit.load(Ordering::Relaxed);
        if limit == 0 {
            return None;
        }
        let now_ms = self.clock.now_ms();
        let to = now_ms.saturating_add(AHEAD_MS) / 1000;
        let from = (now_ms / 1000 + 1).max(self.read_ahead.through.load(Ordering::Relaxed) + 1);
        if from > to {
            return None;
        }
        self.read_ahead.through.store(to, Ordering::Relaxed);
        let due = self.schedule.due_between(from, to, limit);
        if due.is_empty() {
            return None;
        }
        let this = self.clone();
        Some(crate::background::spawn(async move {
            this.read_records(due).await
        }))
    }

    /// Reads each record whose second has not come yet (once it has, its revocation is
    /// reading it anyway).
    async fn read_records(&self, due: Vec<(i64, String)>) -> usize {
        use futures_util::StreamExt;
        futures_util::stream::iter(due)
            .map(|(at, id)| async move {
                if self.clock.now_ms() >= at.saturating_mul(1000) {
                    return 0;
                }
                // Only the read matters: it fills the cache. A failure is left to the
                // revocation, which reads again and reports it.
                let read = self.storage.get(&format!("{ID_PREFIX}{id}")).await;
                usize::from(matches!(read, Ok(Some(_))))
            })
            .buffer_unordered(IN_FLIGHT)
            .fold(0, |n, read| async move { n + read })
            .await
    }
}
