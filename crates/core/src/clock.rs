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

/// The plain wall clock (for components that only stamp times).
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        wall_ms()
    }
}

/// Wall-clock time that advances with the monotonic clock. A jump of the wall clock (an
/// operator's `date -s`, a VM resumed) is detected and logged once, then adopted slowly (by
/// at most `SLEW_PER_SEC` per second), so it can neither revoke every lease at once (a jump
/// forward) nor freeze the queue (a jump back). Small drift (NTP) is followed directly.
pub struct MonotonicClock {
    state: parking_lot::Mutex<ClockState>,
}

struct ClockState {
    /// Our time at `at`.
    base_ms: i64,
    at: std::time::Instant,
    /// The wall-clock offset we last warned about, so a jump is logged once.
    warned_skew: i64,
}

/// Wall and lessor time may differ this much before it counts as a jump.
const JUMP_MS: i64 = 2000;
/// How fast a jump is adopted: 10 ms per second (1 %).
const SLEW_PER_SEC: i64 = 10;

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock {
            state: parking_lot::Mutex::new(ClockState {
                base_ms: wall_ms(),
                at: std::time::Instant::now(),
                warned_skew: 0,
            }),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> i64 {
        let mut s = self.state.lock();
        let elapsed = s.at.elapsed().as_millis() as i64;
        let ours = s.base_ms + elapsed;
        let skew = wall_ms() - ours;
        let adjust = if skew.abs() <= JUMP_MS {
            s.warned_skew = 0;
            skew
        } else {
            if (skew - s.warned_skew).abs() > JUMP_MS {
                tracing::warn!(
                    skew_ms = skew,
                    "wall clock jumped; lease timing adopts it slowly"
                );
                s.warned_skew = skew;
            }
            let max = (elapsed * SLEW_PER_SEC / 1000).max(0);
            skew.clamp(-max, max)
        };
        if elapsed > 0 || adjust != 0 {
            s.base_ms = ours + adjust;
            s.at = std::time::Instant::now();
        }
        s.base_ms
    }
}

/// A clock tests move by hand (it keeps Unix ms).
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// Starts at `start` Unix seconds.
    pub fn new(start: i64) -> Self {
        ManualClock(AtomicI64::new(start * 1000))
    }

    pub fn advance(&self, secs: i64) {
        self.advance_ms(secs * 1000);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Splits a Unix ms time into seconds and the milliseconds past them: records keep an
/// expiry as whole seconds (what older records and Vault's fields hold) plus 0-999 ms.
pub fn split_ms(at_ms: i64) -> (i64, u16) {
    (at_ms.div_euclid(1000), at_ms.rem_euclid(1000) as u16)
}

/// The Unix ms time of `secs` and `ms` past it; 0 seconds (never) stays 0.
pub fn join_ms(secs: i64, ms: u16) -> i64 {
    if secs == 0 {
        return 0;
    }
    secs.saturating_mul(1000).saturating_add(i64::from(ms))
}

/// For `skip_serializing_if`: a record's milliseconds are left out when 0, so records
/// without them read the same.
pub fn is_zero_ms(v: &u16) -> bool {
    *v == 0
}

/// The `ttl` a lookup shows for an expiry at `expires_ms` (Unix ms) seen at `now_ms`, as
/// Vault computes it: the time to the expiry from now rounded to the nearest second, in
/// whole seconds (truncated), never below 0. A lease issued at .345 for 10 s shows 10 for
/// the rest of that second; one issued at .700 shows 9 at once.
pub fn seconds_left(expires_ms: i64, now_ms: i64) -> i64 {
    let now_rounded = now_ms
        .saturating_add(500)
        .div_euclid(1000)
        .saturating_mul(1000);
    (expires_ms.saturating_sub(now_rounded) / 1000).max(0)
}

pub fn to_datetime(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 with nanoseconds, as Vault prints times.
pub fn rfc3339(unix: i64) -> String {
    to_datetime(unix).format(&Rfc3339).unwrap_or_default()
}

/// A Unix ms time as RFC 3339 with its milliseconds (`2026-11-22T07:14:05.345Z`).
pub fn rfc3339_ms(unix_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_left_count_from_now_rounded_to_the_second() {
        let exp = 1_000_015_345; // 10 s after an issue at 1_000_005.345 s
        assert_eq!(seconds_left(exp, 1_000_005_345), 10);
        assert_eq!(seconds_left(exp, 1_000_005_499), 10);
        assert_eq!(seconds_left(exp, 1_000_005_500), 9);
        assert_eq!(seconds_left(exp, 1_000_014_499), 1);
        assert_eq!(seconds_left(exp, 1_000_014_500), 0);
        assert_eq!(seconds_left(exp, 1_000_099_000), 0, "never below 0");
    }

    #[test]
    fn monotonic_clock_follows_the_wall_clock_when_nothing_jumps() {
        let c = MonotonicClock::new();
        let a = c.now_ms();
        let w = wall_ms();
        assert!((a - w).abs() < 50, "{a} vs {w}");
        assert!(c.now_ms() >= a);
    }

    #[test]
    fn a_jump_is_adopted_slowly() {
        let c = MonotonicClock::new();
        {
            // Pretend our time is an hour behind the wall clock (a jump forward).
            let mut s = c.state.lock();
            s.base_ms -= 3_600_000;
            s.at = std::time::Instant::now() - std::time::Duration::from_secs(10);
        }
        let t = c.now_ms();
        let behind = wall_ms() - t;
        // 10 s of elapsed time let it catch up by at most 100 ms, not the hour.
        assert!(behind > 3_600_000 - 10_000 - 200, "{behind}");
        assert!(behind < 3_600_000, "{behind}");
    }
}
