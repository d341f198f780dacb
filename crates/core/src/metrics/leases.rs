//! The lease and token census a scrape reports: one pass over the lease records (and the
//! token ids), reused for a while so frequent scrapes cost one scan per interval. The pass
//! grows with the lease count, so the interval grows with it (`reuse_for`): a census never
//! takes more than a twentieth of one core, however many leases there are.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lessor_storage::Storage;

use super::registry::HistogramData;
use crate::Result;
use crate::expiration::{LeaseEntry, LeaseState, expiry_in_force};

const LEASE_PREFIX: &str = "sys/expire/id/";
const INDEX_PREFIX: &str = "sys/expire/idx/";
const TOKEN_PREFIX: &str = "sys/token/id/";
const PAGE: usize = 1000;
/// A census is reused at least this long.
pub const CACHE_FOR: Duration = Duration::from_secs(5);
/// ... and at least this many times as long as it took to take.
const REUSE_FACTOR: u32 = 20;
/// Bounds (seconds until expiry) of the expiry histogram.
pub const EXPIRY_BOUNDS: &[f64] = &[
    60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0, 604800.0, 2592000.0,
];

#[derive(Debug, Clone, Default)]
pub struct Census {
    /// (mount, state) -> count; state is `active`, `pending` or `irrevocable`.
    pub by_mount_state: BTreeMap<(String, &'static str), u64>,
    /// Leases whose revocation failed at least once and is being retried, by mount.
    pub retrying: BTreeMap<String, u64>,
    /// Failed revocation attempts recorded on live leases.
    pub failed_attempts: u64,
    pub total: u64,
    pub irrevocable: u64,
    pub expiry: HistogramData,
    pub tokens: u64,
    pub taken: Option<Instant>,
    /// How long the pass took.
    pub took: Duration,
}

impl Census {
    /// Whether this census may still be served.
    pub fn fresh(&self) -> bool {
        self.taken
            .is_some_and(|t| t.elapsed() < reuse_for(self.took))
    }
}

/// How long a census that took `took` is reused.
pub fn reuse_for(took: Duration) -> Duration {
    CACHE_FOR.max(took.saturating_mul(REUSE_FACTOR))
}

fn state_name(s: LeaseState) -> &'static str {
    match s {
        LeaseState::Pending => "pending",
        LeaseState::Active => "active",
        LeaseState::Irrevocable => "irrevocable",
    }
}

/// Scans the lease records and token ids through the barrier.
pub async fn take(storage: &dyn Storage, now: i64) -> Result<Census> {
    let started = Instant::now();
    let mut c = Census {
        expiry: HistogramData {
            bounds: EXPIRY_BOUNDS.to_vec(),
            counts: vec![0; EXPIRY_BOUNDS.len()],
            ..Default::default()
        },
        ..Default::default()
    };
    let mut after: Option<String> = None;
    loop {
        let page = storage.scan(LEASE_PREFIX, after.as_deref(), PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (_, raw) in page {
            let Ok(e) = serde_json::from_slice::<LeaseEntry>(&raw) else {
                continue;
            };
            c.total += 1;
            *c.by_mount_state
                .entry((e.mount.clone(), state_name(e.state)))
                .or_default() += 1;
            if e.state == LeaseState::Irrevocable {
                c.irrevocable += 1;
            } else if e.attempts > 0 {
                *c.retrying.entry(e.mount.clone()).or_default() += 1;
            }
            c.failed_attempts += u64::from(e.attempts);
            let expires = expiry_in_force(storage, INDEX_PREFIX, &e).await;
            if e.state != LeaseState::Irrevocable && expires > 0 {
                let left = (expires - now).max(0) as f64;
                c.expiry.count += 1;
                c.expiry.sum += left;
                if let Some(i) = EXPIRY_BOUNDS.iter().position(|b| left <= *b)
                    && let Some(n) = c.expiry.counts.get_mut(i)
                {
                    *n += 1;
                }
            }
        }
    }
    let mut after: Option<String> = None;
    loop {
        let keys = storage
            .scan_keys(TOKEN_PREFIX, after.as_deref(), PAGE)
            .await?;
        let Some(last) = keys.last() else { break };
        after = Some(last.clone());
        c.tokens += keys.len() as u64;
    }
    c.taken = Some(Instant::now());
    c.took = started.elapsed();
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_census_is_reused_longer() {
        assert_eq!(reuse_for(Duration::from_millis(20)), CACHE_FOR);
        assert_eq!(reuse_for(Duration::from_secs(2)), Duration::from_secs(40));
        let c = Census {
            taken: Some(Instant::now()),
            took: Duration::from_secs(1),
            ..Default::default()
        };
        assert!(c.fresh());
        assert!(!Census::default().fresh(), "never taken");
    }
}
