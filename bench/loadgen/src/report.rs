//! The one JSON object a run prints on stdout, success or failure.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::runner::Outcome;

#[derive(Debug, Serialize)]
pub struct Report {
    pub workload: String,
    pub addr: String,
    pub concurrency: usize,
    /// `closed` (each worker sends when its last request is answered) or `open` (`--rate`).
    pub mode: &'static str,
    /// Requests per second offered in the open loop; null in the closed loop.
    pub target_rate: Option<f64>,
    pub warmup_seconds: f64,
    /// Measured requests, successful or not.
    pub requests: u64,
    pub ok: u64,
    /// Failed requests by HTTP status, or `transport` / `timeout`.
    pub errors: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub error_samples: BTreeMap<String, String>,
    pub seconds: f64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Latency of the successful requests.
    pub latency_ms: Latency,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Printed instead of a [`Report`] when the run could not take place.
#[derive(Debug, Serialize)]
pub struct Failure {
    pub workload: String,
    pub addr: String,
    pub error: String,
}

/// Where the numbers came from, carried into the report unchanged.
pub struct Context {
    pub workload: String,
    pub addr: String,
    pub concurrency: usize,
    /// The open loop's rate, or none for the closed loop.
    pub rate: Option<f64>,
    pub warmup_seconds: f64,
}

impl Report {
    pub fn new(context: Context, outcome: Outcome) -> Self {
        let failed: u64 = outcome.errors.values().sum();
        let throughput = if outcome.seconds > 0.0 {
            outcome.ok as f64 / outcome.seconds
        } else {
            0.0
        };
        Self {
            workload: context.workload,
            addr: context.addr,
            concurrency: context.concurrency,
            mode: if context.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            target_rate: context.rate,
            warmup_seconds: context.warmup_seconds,
            requests: outcome.ok + failed,
            ok: outcome.ok,
            errors: outcome.errors,
            error_samples: outcome.error_samples,
            seconds: round(outcome.seconds, 3),
            throughput: round(throughput, 1),
            latency_ms: Latency::of(&outcome.histogram),
        }
    }
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| round(micros as f64 / 1000.0, 3);
        if histogram.is_empty() {
            return Self {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
            mean: round(histogram.mean() / 1000.0, 3),
        }
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_in_milliseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        for micros in 1..=1000 {
            h.record(micros).unwrap();
        }
        let l = Latency::of(&h);
        assert!((l.p50 - 0.5).abs() < 0.01, "{l:?}");
        assert!((l.p99 - 0.99).abs() < 0.01, "{l:?}");
        assert!((l.max - 1.0).abs() < 0.01, "{l:?}");
    }

    #[test]
    fn empty_histogram_is_zero() {
        let h = Histogram::<u64>::new(3).unwrap();
        assert_eq!(Latency::of(&h).p99, 0.0);
    }
}
