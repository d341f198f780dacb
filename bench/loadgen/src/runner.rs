//! The closed loop: `concurrency` workers, each sending its next request as soon as the previous
//! one is answered, first through an unrecorded warm-up, then for the measured duration (or
//! until the request budget is spent).
//!
//! Also the pieces both loops share (see `open_loop.rs`): the clock ([`Shared`]), sending with a
//! time limit, recording an answer into an [`Outcome`], and running workers to the end
//! ([`drive`]). Each worker keeps its own histogram and counters and they are merged at the end,
//! so the timed loop shares nothing but atomic counters.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::client::{Call, Client, Reply};
use crate::error::{Error, Result, Snippet};
use crate::workload::Workload;

/// Latencies are recorded in microseconds, up to this bound (longer ones saturate).
const MAX_LATENCY_US: u64 = 120_000_000;

/// Lines written to stderr when the measured span starts and ends.
pub const MEASURE_START: &str = "lessor-loadgen: measure-start";
pub const MEASURE_END: &str = "lessor-loadgen: measure-end";

/// Pause of a worker after a connection-level failure.
const TRANSPORT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct Plan {
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub max_requests: Option<u64>,
    /// A request still unanswered after this long counts as a `timeout` error, so a stuck
    /// server cannot hold the run open.
    pub timeout: Duration,
}

/// The measured part of a run. Only successful (2xx) requests enter the histogram; the others
/// are counted by status (or `transport`, `timeout`) with the first body seen for each.
pub struct Outcome {
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
    pub seconds: f64,
    pub histogram: Histogram<u64>,
}

impl Outcome {
    pub fn empty() -> Result<Self> {
        Ok(Self {
            ok: 0,
            errors: BTreeMap::new(),
            error_samples: BTreeMap::new(),
            seconds: 0.0,
            histogram: new_histogram()?,
        })
    }

    fn count_error(&mut self, kind: String, sample: impl FnOnce() -> String) {
        *self.errors.entry(kind.clone()).or_default() += 1;
        self.error_samples.entry(kind).or_insert_with(sample);
    }

    fn merge(&mut self, other: Outcome) -> Result<()> {
        self.ok += other.ok;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        for (kind, sample) in other.error_samples {
            self.error_samples.entry(kind).or_insert(sample);
        }
        self.histogram
            .add(&other.histogram)
            .map_err(|e| Error::Histogram(format!("{e:?}")))
    }
}

fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| Error::Histogram(e.to_string()))
}

/// What became of one request.
pub enum Answer {
    Reply(Reply),
    /// No HTTP answer: the connection failed.
    Failed(Error),
    /// No answer by the request's time limit.
    TimedOut,
}

/// Shared between workers of either loop: the clock boundaries, the per-request limit and the
/// call counter.
pub struct Shared {
    pub client: Client,
    pub workload: Arc<dyn Workload>,
    pub measure_from: Instant,
    pub deadline: Instant,
    pub timeout: Duration,
    /// Every call made, warm-up included: the workload's sequence number (in the open loop also
    /// the call's place in the schedule).
    pub seq: AtomicU64,
}

impl Shared {
    /// Starts the clock: the warm-up begins now.
    pub fn start(client: Client, workload: Arc<dyn Workload>, plan: &Plan) -> Arc<Self> {
        let measure_from = Instant::now() + plan.warmup;
        Arc::new(Self {
            client,
            workload,
            measure_from,
            deadline: measure_from + plan.duration,
            timeout: plan.timeout,
            seq: AtomicU64::new(0),
        })
    }

    /// Sends `call`, giving up at `give_up` (a call already past it is not sent at all).
    pub async fn attempt(&self, call: &Call, give_up: Instant) -> Answer {
        if Instant::now() >= give_up {
            return Answer::TimedOut;
        }
        match tokio::time::timeout_at(give_up, self.client.send(call)).await {
            Ok(Ok(reply)) => Answer::Reply(reply),
            Ok(Err(e)) => Answer::Failed(e),
            Err(_) => Answer::TimedOut,
        }
    }

    /// Records one measured answer, `latency` after the request's start.
    pub fn record(&self, outcome: &mut Outcome, answer: Answer, latency: Duration) {
        match answer {
            Answer::Reply(reply) if reply.status.is_success() => {
                outcome.ok += 1;
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                outcome.histogram.saturating_record(micros.max(1));
            }
            Answer::Reply(reply) => outcome.count_error(reply.status.as_u16().to_string(), || {
                Snippet::of(&reply.body).0
            }),
            Answer::Failed(e) => outcome.count_error("transport".into(), || e.to_string()),
            Answer::TimedOut => outcome.count_error("timeout".into(), || {
                format!("no answer within {:?}", self.timeout)
            }),
        }
    }
}

/// Runs `workers` copies of the future `worker` makes until they all stop, marks the measured
/// span on stderr, and merges what they measured. Both loops end here.
pub async fn drive<F, Fut>(shared: &Shared, workers: usize, worker: F) -> Result<Outcome>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Outcome>> + Send + 'static,
{
    let measure_from = shared.measure_from;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        set.spawn(worker());
    }
    // Markers on stderr let a driver sample the server (CPU time, memory) over exactly the
    // measured span, leaving out setup and warm-up.
    let marker = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from).await;
        eprintln!("{MEASURE_START}");
    });
    let mut total = Outcome::empty()?;
    while let Some(joined) = set.join_next().await {
        let outcome = joined.map_err(|e| Error::SetupOther {
            step: "worker".into(),
            reason: e.to_string(),
        })??;
        total.merge(outcome)?;
    }
    if Instant::now() >= measure_from {
        // Already due: let it print, so the start marker always precedes the end marker.
        let _ = marker.await;
    } else {
        marker.abort();
    }
    eprintln!("{MEASURE_END}");
    // Workers stop at the deadline but finish the request in flight; the measured span runs
    // until the last answer, so throughput is not overstated.
    total.seconds = Instant::now()
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    Ok(total)
}

/// The closed loop's request budget: measured calls started, checked against `max`.
struct Budget {
    max: Option<u64>,
    taken: AtomicU64,
}

pub async fn run(client: Client, workload: Arc<dyn Workload>, plan: &Plan) -> Result<Outcome> {
    let shared = Shared::start(client, workload, plan);
    let budget = Arc::new(Budget {
        max: plan.max_requests,
        taken: AtomicU64::new(0),
    });
    drive(&shared, plan.concurrency, || {
        worker(shared.clone(), budget.clone())
    })
    .await
}

async fn worker(shared: Arc<Shared>, budget: Arc<Budget>) -> Result<Outcome> {
    let mut outcome = Outcome::empty()?;
    loop {
        let now = Instant::now();
        let measured = now >= shared.measure_from;
        if measured {
            if now >= shared.deadline {
                break;
            }
            if let Some(max) = budget.max
                && budget.taken.fetch_add(1, Ordering::Relaxed) >= max
            {
                break;
            }
        }
        let call = shared
            .workload
            .call(shared.seq.fetch_add(1, Ordering::Relaxed));
        let sent = Instant::now();
        let answer = shared.attempt(&call, sent + shared.timeout).await;
        let latency = sent.elapsed();
        if matches!(answer, Answer::Failed(_)) {
            // The server is gone or refusing connections: keep counting, but do not spin.
            tokio::time::sleep(TRANSPORT_BACKOFF).await;
        }
        if measured {
            shared.record(&mut outcome, answer, latency);
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{self, Numbered};
    use tokio::net::TcpListener;

    fn plan(duration: Duration, warmup: Duration, max_requests: Option<u64>) -> Plan {
        Plan {
            concurrency: 4,
            duration,
            warmup,
            max_requests,
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn request_budget_is_exact_and_errors_are_counted_by_status() {
        let client = Client::new(&fake_server::start().await, "t", 4).unwrap();
        let plan = plan(Duration::from_secs(30), Duration::ZERO, Some(100));
        let outcome = run(client, Arc::new(Numbered), &plan).await.unwrap();
        assert_eq!(outcome.ok, 90);
        assert_eq!(outcome.errors.get("500"), Some(&10));
        assert_eq!(outcome.histogram.len(), 90);
        assert!(outcome.error_samples.contains_key("500"));
    }

    #[tokio::test]
    async fn warmup_is_not_measured() {
        let client = Client::new(&fake_server::start().await, "t", 4).unwrap();
        let plan = plan(Duration::from_millis(200), Duration::from_millis(200), None);
        let outcome = run(client, Arc::new(Numbered), &plan).await.unwrap();
        assert!(outcome.ok > 0);
        // Only the measured span counts: about 0.2 s, not 0.4 s.
        assert!(
            outcome.seconds >= 0.2 && outcome.seconds < 0.35,
            "{}",
            outcome.seconds
        );
    }

    #[tokio::test]
    async fn unreachable_server_is_a_transport_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = Client::new(&addr, "t", 1).unwrap();
        let err = client.send(&Call::get("sys/health")).await.unwrap_err();
        assert!(matches!(err, Error::Transport(_)), "{err}");
    }
}
