//! Restore at unseal, and quarantine of unreadable records.
//!
//! The schedule is rebuilt from the compact index (`idx/`), page by page; bodies are only
//! read when a lease is due. A record that cannot be read is quarantined and reported:
//! never a reason to seal or to stop.

use std::sync::atomic::{AtomicU8, Ordering};

use lessor_storage::WriteOp;
use serde_json::json;
use tokio::sync::mpsc;

use super::{Expiration, INDEX_PREFIX, IndexEntry, LeaseState, QUARANTINE_PREFIX};
use crate::Result;

const PAGE: usize = 2000;
/// Pages the reader may be ahead of the restore loop (so a slow insertion does not stop
/// the reading).
const READ_AHEAD: usize = 4;

type IndexPage = lessor_storage::Result<Vec<(String, Vec<u8>)>>;

/// Whether any quarantine marker may exist. Removing a lease would otherwise also delete
/// its (almost never present) marker: one more write for the storage writer per revoked
/// lease. Markers are rare, so one look at unseal decides, and any quarantine since then
/// turns the deletes back on for good.
#[derive(Default)]
pub(super) struct Markers(AtomicU8);

/// Not looked yet: assume markers may exist.
const MARKERS_UNKNOWN: u8 = 0;
const MARKERS_NONE: u8 = 1;
const MARKERS_MAYBE: u8 = 2;

impl Markers {
    /// True when removing a lease must also delete its quarantine marker.
    pub(super) fn may_exist(&self) -> bool {
        self.0.load(Ordering::Acquire) != MARKERS_NONE
    }

    /// Called before a marker is written.
    fn written(&self) {
        self.0.store(MARKERS_MAYBE, Ordering::Release);
    }

    /// Storage held no marker when looked at. Loses to a quarantine that ran meanwhile.
    fn none_found(&self) {
        let _ = self.0.compare_exchange(
            MARKERS_UNKNOWN,
            MARKERS_NONE,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

impl Expiration {
    /// Looks once whether storage holds quarantine markers (see [`Markers`]).
    async fn look_for_markers(&self) {
        match self.storage.scan_keys(QUARANTINE_PREFIX, None, 1).await {
            Ok(keys) if keys.is_empty() => self.markers.none_found(),
            Ok(_) => self.markers.written(),
            // Unknown stays unknown: removals keep deleting markers.
            Err(err) => tracing::warn!(error = %err, "cannot list quarantined leases"),
        }
    }

    /// Rebuilds the schedule from the index. Returns how many leases were scheduled.
    ///
    /// Two halves of the work overlap, each on a thread of its own: a reader task reads
    /// and decrypts pages ahead while this one decodes them and puts them in the schedule,
    /// about a second of CPU each for a million leases on two cores. (Reading and decoding
    /// here while a third thread inserted left one thread with most of the work; three
    /// busy threads on two cores took 1.6-1.8 s, the two halves 1.3-1.5 s.)
    pub async fn restore(&self) -> Result<usize> {
        self.look_for_markers().await;
        let mut n = 0;
        let mut pages = self.read_index(None);
        while let Some((from, read)) = pages.recv().await {
            let page = match read {
                Ok(page) => page,
                Err(err) => {
                    // One bad value fails a whole page: walk its keys one by one instead,
                    // then read on after them (the reader stopped at the error).
                    tracing::warn!(error = %err, "lease index page unreadable; reading it key by key");
                    let (page, next) = self.index_page_by_key(from.as_deref()).await?;
                    if next.is_some() {
                        pages = self.read_index(next);
                    }
                    page
                }
            };
            let retry = (self.clock.now_unix() + super::IRREVOCABLE_RETRY_SECS) * 1000;
            let mut due = Vec::with_capacity(page.len());
            let mut corrupt = Vec::new();
            for (key, raw) in page {
                match serde_json::from_slice::<IndexEntry>(&raw) {
                    Ok(ix) if ix.s == LeaseState::Irrevocable => due.push((key, retry)),
                    Ok(ix) if ix.e > 0 => {
                        due.push((key, ix.at_ms()));
                        n += 1;
                    }
                    Ok(_) => {}
                    Err(err) => corrupt.push((key, err)),
                }
            }
            for (key, err) in corrupt {
                let id = &key[INDEX_PREFIX.len()..];
                self.quarantine(id, &format!("corrupt index entry: {err}"))
                    .await;
            }
            // One lock per page: the schedule is shared with the requests being served.
            self.schedule.restore_many(
                due.iter()
                    .map(|(key, at)| (&key[INDEX_PREFIX.len()..], *at)),
            );
        }
        Ok(n)
    }

    /// Reads (and decrypts) the index page by page from after `after`, on a task of its
    /// own, a few pages ahead of the caller. Each page comes with the key it was read
    /// after. The task stops after the last page, after a page it could not read, or when
    /// the receiver is dropped.
    fn read_index(&self, after: Option<String>) -> mpsc::Receiver<(Option<String>, IndexPage)> {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let storage = self.storage.clone();
        crate::background::spawn(async move {
            let mut after = after;
            loop {
                let read = storage.scan(INDEX_PREFIX, after.as_deref(), PAGE).await;
                let next = match &read {
                    Ok(page) if page.len() == PAGE => page.last().map(|(k, _)| k.clone()),
                    _ => None,
                };
                if tx.send((after, read)).await.is_err() || next.is_none() {
                    return;
                }
                after = next;
            }
        });
        rx
    }

    /// Reads the page of the index after `after` one key at a time, quarantining the
    /// entries that cannot be read. Returns the readable entries and, unless this was the
    /// last page, the key to read on after.
    async fn index_page_by_key(
        &self,
        after: Option<&str>,
    ) -> Result<(Vec<(String, Vec<u8>)>, Option<String>)> {
        let keys = self.storage.scan_keys(INDEX_PREFIX, after, PAGE).await?;
        let next = match keys.last() {
            Some(last) if keys.len() == PAGE => Some(last.clone()),
            _ => None,
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match self.storage.get(&key).await {
                Ok(Some(v)) => out.push((key, v)),
                Ok(None) => {}
                Err(err) => {
                    let id = key[INDEX_PREFIX.len()..].to_string();
                    self.quarantine(&id, &format!("unreadable index entry: {err}"))
                        .await;
                }
            }
        }
        Ok((out, next))
    }

    /// Sets a lease aside: unscheduled, its record kept, the reason listed.
    pub async fn quarantine(&self, id: &str, reason: &str) {
        tracing::error!(lease_id = %id, reason = %reason, "lease record quarantined");
        self.schedule.remove(id);
        self.markers.written();
        let marker =
            json!({"reason": reason, "time": crate::clock::rfc3339(self.clock.now_unix())});
        let raw = serde_json::to_vec(&marker).unwrap_or_default();
        let ops = vec![
            WriteOp::Put(format!("{QUARANTINE_PREFIX}{id}"), raw),
            // The index would only bring it back at the next unseal.
            WriteOp::Delete(format!("{INDEX_PREFIX}{id}")),
        ];
        if let Err(err) = self.storage.batch(ops).await {
            tracing::error!(lease_id = %id, error = %err, "cannot record quarantine");
        }
    }

    /// Quarantined lease ids with their reasons.
    pub async fn quarantined(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .storage
                .scan(QUARANTINE_PREFIX, after.as_deref(), PAGE)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (k, v) in page {
                let reason = serde_json::from_slice(&v).unwrap_or(serde_json::Value::Null);
                out.push((k[QUARANTINE_PREFIX.len()..].to_string(), reason));
            }
        }
        Ok(out)
    }

    /// Drops a quarantined lease (its record, index entry and marker): for an operator who
    /// has dealt with the credential by hand. Returns false if it was not quarantined.
    pub async fn forget_quarantined(&self, id: &str) -> Result<bool> {
        if self
            .storage
            .get(&format!("{QUARANTINE_PREFIX}{id}"))
            .await?
            .is_none()
        {
            return Ok(false);
        }
        let ops = vec![
            WriteOp::Delete(format!("{}{id}", super::ID_PREFIX)),
            WriteOp::Delete(format!("{INDEX_PREFIX}{id}")),
            WriteOp::Delete(format!("{QUARANTINE_PREFIX}{id}")),
        ];
        self.storage.batch(ops).await?;
        self.schedule.remove(id);
        tracing::warn!(lease_id = %id, "quarantined lease dropped by an operator");
        Ok(true)
    }
}
