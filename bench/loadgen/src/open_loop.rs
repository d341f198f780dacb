//! The open loop (`--rate R`): measured call i is due at the start of the measured span plus
//! i/R, and the warm-up's calls are due at the same spacing before it, whether or not earlier
//! calls have been answered. `concurrency` workers take the next call from the shared counter,
//! so at most that many are in flight; a call that falls due while all of them are busy waits
//! for one, and its latency still counts from when it was due. A server that falls behind thus
//! shows its queue in the percentiles instead of slowing the generator down (no coordinated
//! omission), and in the achieved throughput falling short of the rate.
//!
//! A call still waiting `timeout` after it was due is counted as a `timeout` without being
//! sent, so an overloaded server's backlog cannot hold the run open for long after the end.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::runner::{self, Outcome, Plan, Shared};
use crate::workload::Workload;

/// tokio's timers are coarse: a sleep ends on a whole millisecond after its deadline, and the
/// runtime may park up to another millisecond past that. A worker sleeping until a call is due
/// would send it up to 2 ms late and charge that to the server, so it wakes this much before
/// instead, and the call's latency counts from its sending when that came first (the call goes
/// out at most this early; the rate is unchanged).
const TIMER_GRAIN: Duration = Duration::from_millis(2);

/// Accepts a rate for `--rate`: requests per second, positive.
pub fn parse_rate(text: &str) -> std::result::Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| format!("`{text}` is not a number of requests per second"))
        .and_then(check_rate)
}

fn check_rate(rate: f64) -> std::result::Result<f64, String> {
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(format!(
            "the rate must be a positive number of requests per second, not {rate}"
        ))
    }
}

/// When each call is due.
struct Schedule {
    /// When the first measured call is due: the start of the measured span.
    origin: Instant,
    rate: f64,
    /// Calls due before `origin`, within the warm-up.
    warmup_calls: u64,
    /// Warm-up and measured calls.
    calls: u64,
}

impl Schedule {
    fn new(plan: &Plan, rate: f64, origin: Instant) -> Self {
        // The epsilons keep float noise in `seconds * rate` from adding or losing a call: 1 s
        // at 500/s is exactly 500 calls.
        let warmup_calls = (plan.warmup.as_secs_f64() * rate + 1e-9).floor() as u64;
        let mut measured = (plan.duration.as_secs_f64() * rate - 1e-9).ceil().max(0.0) as u64;
        if let Some(max) = plan.max_requests {
            measured = measured.min(max);
        }
        Self {
            origin,
            rate,
            warmup_calls,
            calls: warmup_calls.saturating_add(measured),
        }
    }

    fn due(&self, index: u64) -> Instant {
        let at = |calls: u64| Duration::from_secs_f64(calls as f64 / self.rate);
        if index >= self.warmup_calls {
            self.origin + at(index - self.warmup_calls)
        } else {
            let early = at(self.warmup_calls - index);
            self.origin.checked_sub(early).unwrap_or(self.origin)
        }
    }
}

/// Runs the workload at `rate` calls per second; `plan.concurrency` caps the calls in flight.
pub async fn run(
    client: Client,
    workload: Arc<dyn Workload>,
    plan: &Plan,
    rate: f64,
) -> Result<Outcome> {
    let rate = check_rate(rate).map_err(Error::Usage)?;
    let shared = Shared::start(client, workload, plan);
    let schedule = Arc::new(Schedule::new(plan, rate, shared.measure_from));
    runner::drive(&shared, plan.concurrency, || {
        worker(shared.clone(), schedule.clone())
    })
    .await
}

async fn worker(shared: Arc<Shared>, schedule: Arc<Schedule>) -> Result<Outcome> {
    let mut outcome = Outcome::empty()?;
    loop {
        let index = shared.seq.fetch_add(1, Ordering::Relaxed);
        if index >= schedule.calls {
            break;
        }
        let due = schedule.due(index);
        let call = shared.workload.call(index);
        if let Some(wake) = due.checked_sub(TIMER_GRAIN)
            && wake > Instant::now()
        {
            tokio::time::sleep_until(wake).await;
        }
        // From when the call was due, however long it waited for a free worker; from its
        // sending if the timer woke us early (a reply cannot come before its request).
        let start = Instant::now().min(due);
        let answer = shared.attempt(&call, start + shared.timeout).await;
        if index >= schedule.warmup_calls {
            shared.record(&mut outcome, answer, start.elapsed());
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{self, Numbered};

    fn plan(concurrency: usize, duration: Duration, warmup: Duration) -> Plan {
        Plan {
            concurrency,
            duration,
            warmup,
            max_requests: None,
            timeout: Duration::from_secs(10),
        }
    }

    fn sent(outcome: &Outcome) -> u64 {
        outcome.ok + outcome.errors.values().sum::<u64>()
    }

    fn p50_ms(outcome: &Outcome) -> f64 {
        outcome.histogram.value_at_quantile(0.5) as f64 / 1000.0
    }

    #[test]
    fn schedule_counts_and_spacing() {
        let origin = Instant::now() + Duration::from_secs(1);
        let plan = plan(1, Duration::from_secs(1), Duration::from_millis(200));
        let s = Schedule::new(&plan, 500.0, origin);
        assert_eq!((s.warmup_calls, s.calls), (100, 600));
        assert_eq!(s.due(100), origin);
        assert_eq!(s.due(0), origin - Duration::from_millis(200));
        assert_eq!(s.due(101) - s.due(100), Duration::from_millis(2));
        let capped = Plan {
            max_requests: Some(7),
            ..plan
        };
        assert_eq!(Schedule::new(&capped, 500.0, origin).calls, 107);
    }

    #[test]
    fn rate_must_be_positive() {
        assert_eq!(parse_rate("5000"), Ok(5000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "x", "inf", "NaN", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn sends_the_rate_over_the_duration() {
        let client = Client::new(&fake_server::start().await, "t", 4).unwrap();
        let plan = plan(4, Duration::from_secs(1), Duration::from_millis(200));
        let outcome = run(client, Arc::new(Numbered), &plan, 500.0).await.unwrap();
        // The warm-up's 100 calls are not counted; the fake fails every tenth call.
        let n = sent(&outcome);
        assert!((495..=505).contains(&n), "{n}");
        assert!(
            outcome.errors.get("500").is_some_and(|&e| e >= 45),
            "{:?}",
            outcome.errors
        );
        // Spread over the second, not sent in a burst.
        assert!(
            outcome.seconds > 0.9 && outcome.seconds < 3.0,
            "{}",
            outcome.seconds
        );
    }

    #[tokio::test]
    async fn latency_counts_the_queue_behind_a_slow_server() {
        // 20 ms per request, one at a time, asked for every 5 ms: each call waits for all the
        // ones before it, so the median is hundreds of milliseconds, not 20.
        let addr = fake_server::start_slow(Duration::from_millis(20)).await;
        let client = Client::new(&addr, "t", 1).unwrap();
        let plan = plan(1, Duration::from_millis(500), Duration::ZERO);
        let outcome = run(client, Arc::new(Numbered), &plan, 200.0).await.unwrap();
        assert_eq!(sent(&outcome), 100);
        assert!(p50_ms(&outcome) > 200.0, "p50 {} ms", p50_ms(&outcome));
        // The server, not the schedule, set the pace.
        assert!(outcome.seconds > 1.5, "{}", outcome.seconds);

        // Control: at a rate the same server keeps up with, latency is its 20 ms.
        let client = Client::new(&addr, "t", 1).unwrap();
        let outcome = run(client, Arc::new(Numbered), &plan, 20.0).await.unwrap();
        assert_eq!(sent(&outcome), 10);
        let p50 = p50_ms(&outcome);
        assert!((19.0..200.0).contains(&p50), "p50 {p50} ms");
    }

    #[tokio::test]
    async fn the_timeout_counts_from_when_a_call_was_due() {
        // 50 ms per request against one every 10 ms: from the fourth call on, each has waited
        // most of its 150 ms before it is sent, and times out.
        let addr = fake_server::start_slow(Duration::from_millis(50)).await;
        let client = Client::new(&addr, "t", 1).unwrap();
        let plan = Plan {
            timeout: Duration::from_millis(150),
            ..plan(1, Duration::from_millis(500), Duration::ZERO)
        };
        let outcome = run(client, Arc::new(Numbered), &plan, 100.0).await.unwrap();
        assert_eq!(sent(&outcome), 50);
        let timeouts = outcome.errors.get("timeout").copied().unwrap_or(0);
        assert!(timeouts > 20, "{:?}", outcome.errors);
        // Sent in order, 50 calls of 50 ms would take 2.5 s.
        assert!(outcome.seconds < 1.5, "{}", outcome.seconds);
    }

    /// With one runtime thread shared with the fake server, the open loop keeps 5,000 calls per
    /// second. Timing-sensitive, so not run by default: `cargo test --release -p
    /// lessor-loadgen -- --ignored` on a quiet machine.
    #[tokio::test]
    #[ignore]
    async fn sustains_5k_per_second_on_one_thread() {
        let client = Client::new(&fake_server::start().await, "t", 64).unwrap();
        let plan = plan(64, Duration::from_secs(2), Duration::from_millis(500));
        let outcome = run(client, Arc::new(Numbered), &plan, 5000.0)
            .await
            .unwrap();
        let achieved = sent(&outcome) as f64 / outcome.seconds;
        let p99 = outcome.histogram.value_at_quantile(0.99) as f64 / 1000.0;
        eprintln!(
            "achieved {achieved:.0}/s, p50 {} ms, p99 {p99} ms",
            p50_ms(&outcome)
        );
        assert!(achieved > 4750.0, "{achieved}");
    }
}
