//! Time, from a clock tests can drive. Persisted times are Unix seconds, UTC.

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    fn now_unix(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

fn wall_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Wall-clock time read once, then advanced by the monotonic clock: a jump of the wall
/// clock (an operator's `date -s`, a VM resumed) cannot revoke every lease at once or
/// freeze the queue. Jumps are detected and logged; small drift (NTP slewing) is followed.
pub struct MonotonicClock {
    anchor: parking_lot::Mutex<(i64, std::time::Instant)>,
}

/// The plain wall clock (for components that only stamp times).
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        wall_ms()
    }
}

/// Wall and monotonic time may drift this much before it counts as a jump.
const JUMP_MS: i64 = 2000;

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock { anchor: parking_lot::Mutex::new((wall_ms(), std::time::Instant::now())) }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> i64 {
        let mut a = self.anchor.lock();
        let mono = a.0 + a.1.elapsed().as_millis() as i64;
        let wall = wall_ms();
        let skew = wall - mono;
        if skew.abs() <= JUMP_MS {
            // Follow slow drift by re-anchoring on the wall clock.
            if skew.abs() > 100 {
                *a = (wall, std::time::Instant::now());
                return wall;
            }
        } else {
            tracing::warn!(skew_ms = skew, "wall clock jumped; lease timing keeps to the monotonic clock");
            // Re-anchor on our own time so the warning is logged once per jump.
            *a = (mono, std::time::Instant::now());
        }
        mono
    }
}

/// A clock tests move by hand.
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: i64) -> Self {
        ManualClock(AtomicI64::new(start))
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst) * 1000
    }
}

pub fn to_datetime(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 with nanoseconds, as Vault prints times.
pub fn rfc3339(unix: i64) -> String {
    to_datetime(unix).format(&Rfc3339).unwrap_or_default()
}

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}
