//! The closed loop: `concurrency` workers, each sending its next request as soon as the previous
//! one is answered, first through an unrecorded warm-up, then for the measured duration (or
//! until the request budget is spent).
//!
//! Each worker keeps its own histogram and counters and they are merged at the end, so the timed
//! loop shares nothing but two atomic counters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::client::Client;
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
    fn empty() -> Result<Self> {
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

/// Shared between workers: the clock boundaries and the two counters.
struct Shared {
    client: Client,
    workload: Arc<dyn Workload>,
    measure_from: Instant,
    deadline: Instant,
    max_requests: Option<u64>,
    timeout: Duration,
    /// Every call made, warm-up included: the workload's sequence number.
    seq: AtomicU64,
    /// Measured calls started, checked against `max_requests`.
    tickets: AtomicU64,
}

pub async fn run(client: Client, workload: Arc<dyn Workload>, plan: &Plan) -> Result<Outcome> {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let shared = Arc::new(Shared {
        client,
        workload,
        measure_from,
        deadline: measure_from + plan.duration,
        max_requests: plan.max_requests,
        timeout: plan.timeout,
        seq: AtomicU64::new(0),
        tickets: AtomicU64::new(0),
    });
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency.max(1) {
        workers.spawn(worker(shared.clone()));
    }
    // Markers on stderr let a driver sample the server (CPU time, memory) over exactly the
    // measured span, leaving out setup and warm-up.
    let marker = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from).await;
        eprintln!("{MEASURE_START}");
    });
    let mut total = Outcome::empty()?;
    while let Some(joined) = workers.join_next().await {
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

async fn worker(shared: Arc<Shared>) -> Result<Outcome> {
    let mut outcome = Outcome::empty()?;
    loop {
        let now = Instant::now();
        let measured = now >= shared.measure_from;
        if measured {
            if now >= shared.deadline {
                break;
            }
            if let Some(max) = shared.max_requests
                && shared.tickets.fetch_add(1, Ordering::Relaxed) >= max
            {
                break;
            }
        }
        let call = shared
            .workload
            .call(shared.seq.fetch_add(1, Ordering::Relaxed));
        let sent = Instant::now();
        let result = tokio::time::timeout(shared.timeout, shared.client.send(&call)).await;
        let latency = sent.elapsed();
        if matches!(result, Ok(Err(_))) {
            // The server is gone or refusing connections: keep counting, but do not spin.
            tokio::time::sleep(TRANSPORT_BACKOFF).await;
        }
        if !measured {
            continue;
        }
        match result {
            Ok(Ok(reply)) if reply.status.is_success() => {
                outcome.ok += 1;
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                outcome.histogram.saturating_record(micros.max(1));
            }
            Ok(Ok(reply)) => outcome.count_error(reply.status.as_u16().to_string(), || {
                Snippet::of(&reply.body).0
            }),
            Ok(Err(e)) => outcome.count_error("transport".into(), || e.to_string()),
            Err(_) => outcome.count_error("timeout".into(), || {
                format!("no answer within {:?}", shared.timeout)
            }),
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Call;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Sends `n/<seq>`; the fake server fails every tenth.
    struct Numbered;

    impl Workload for Numbered {
        fn call(&self, seq: u64) -> Call {
            Call::get(format!("n/{seq}"))
        }
    }

    fn status_for(path: &str) -> u16 {
        match path.rsplit('/').next().and_then(|n| n.parse::<u64>().ok()) {
            Some(n) if n % 10 == 0 => 500,
            _ => 200,
        }
    }

    /// Just enough HTTP/1.1 for the client: keep-alive, requests without bodies.
    async fn serve(mut socket: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let status = status_for(path);
                let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\n{{}}");
                if socket.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn fake_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket));
            }
        });
        format!("http://{addr}")
    }

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
        let client = Client::new(&fake_server().await, "t", 4).unwrap();
        let plan = plan(Duration::from_secs(30), Duration::ZERO, Some(100));
        let outcome = run(client, Arc::new(Numbered), &plan).await.unwrap();
        assert_eq!(outcome.ok, 90);
        assert_eq!(outcome.errors.get("500"), Some(&10));
        assert_eq!(outcome.histogram.len(), 90);
        assert!(outcome.error_samples.contains_key("500"));
    }

    #[tokio::test]
    async fn warmup_is_not_measured() {
        let client = Client::new(&fake_server().await, "t", 4).unwrap();
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
