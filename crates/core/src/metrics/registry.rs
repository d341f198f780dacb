//! Metric primitives (atomic counters and fixed-bucket histograms) and the two renderings:
//! Prometheus text and Vault's JSON (`{Timestamp,Gauges,Counters,Samples,Points}`).
//!
//! A scrape builds a flat list of `Family`s; names are written with dots (Vault's JSON
//! style, `vault.expire.num_leases`) and become underscores in Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

/// Upper bounds (milliseconds) of latency buckets.
pub const LATENCY_BOUNDS_MS: &[f64] = &[
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
];

/// A histogram with fixed bounds: one atomic per bucket, the sum in microunits.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micro: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }
    }

    pub fn latency() -> Histogram {
        Histogram::new(LATENCY_BOUNDS_MS)
    }

    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b)
            && let Some(b) = self.buckets.get(i)
        {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro
            .fetch_add((v.max(0.0) * 1_000_000.0) as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramData {
        HistogramData {
            bounds: self.bounds.to_vec(),
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum_micro.load(Ordering::Relaxed) as f64 / 1_000_000.0,
        }
    }
}

/// A histogram's values: per-bucket (not cumulative) counts below each bound.
#[derive(Debug, Clone, Default)]
pub struct HistogramData {
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
}

#[derive(Debug, Clone)]
pub enum Val {
    Num(f64),
    Hist(HistogramData),
}

/// One labelled value of a family.
#[derive(Debug, Clone)]
pub struct Point {
    pub labels: Vec<(&'static str, String)>,
    pub value: Val,
}

/// One metric: name (dotted), help, kind and its labelled values.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub points: Vec<Point>,
}

impl Family {
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            points: Vec::new(),
        }
    }

    pub fn with(mut self, labels: Vec<(&'static str, String)>, v: f64) -> Family {
        self.points.push(Point {
            labels,
            value: Val::Num(v),
        });
        self
    }

    pub fn with_hist(mut self, labels: Vec<(&'static str, String)>, h: HistogramData) -> Family {
        self.points.push(Point {
            labels,
            value: Val::Hist(h),
        });
        self
    }

    pub fn one(name: &'static str, kind: Kind, help: &'static str, v: f64) -> Family {
        Family::new(name, kind, help).with(Vec::new(), v)
    }
}

fn prom_name(n: &str) -> String {
    n.replace(['.', '-'], "_")
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &[(&str, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Prometheus text exposition format 0.0.4.
pub fn prometheus(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let mut name = prom_name(f.name);
        if f.kind == Kind::Counter && !name.ends_with("_total") {
            name.push_str("_total");
        }
        let kind = match f.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {name} {}", f.help);
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for p in &f.points {
            match &p.value {
                Val::Num(v) => {
                    let _ = writeln!(out, "{name}{} {}", label_text(&p.labels, None), num(*v));
                }
                Val::Hist(h) => {
                    let mut cum = 0;
                    for (b, c) in h.bounds.iter().zip(&h.counts) {
                        cum += c;
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {cum}",
                            label_text(&p.labels, Some(("le", num(*b))))
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        label_text(&p.labels, Some(("le", "+Inf".into()))),
                        h.count
                    );
                    let _ = writeln!(out, "{name}_sum{} {}", label_text(&p.labels, None), h.sum);
                    let _ = writeln!(
                        out,
                        "{name}_count{} {}",
                        label_text(&p.labels, None),
                        h.count
                    );
                }
            }
        }
    }
    out
}

/// Vault's JSON shape of `sys/metrics`.
pub fn json(families: &[Family], timestamp: &str) -> Value {
    let mut gauges = Vec::new();
    let mut counters = Vec::new();
    let mut samples = Vec::new();
    for f in families {
        for p in &f.points {
            let labels: serde_json::Map<String, Value> = p
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            match (&p.value, f.kind) {
                (Val::Num(v), Kind::Gauge) => {
                    gauges.push(json!({"Name": f.name, "Value": v, "Labels": labels}));
                }
                (Val::Num(v), _) => counters.push(json!({
                    "Name": f.name, "Count": v, "Rate": 0, "Sum": v, "Min": 1, "Max": 1,
                    "Mean": 1, "Stddev": 0, "Labels": labels,
                })),
                (Val::Hist(h), _) => {
                    let mean = if h.count > 0 {
                        h.sum / h.count as f64
                    } else {
                        0.0
                    };
                    samples.push(json!({
                        "Name": f.name, "Count": h.count, "Rate": 0, "Sum": h.sum,
                        "Mean": mean, "Labels": labels,
                    }));
                }
            }
        }
    }
    json!({
        "Timestamp": timestamp,
        "Gauges": gauges,
        "Counters": counters,
        "Samples": samples,
        "Points": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_histograms_cumulatively() {
        let h = Histogram::new(&[1.0, 10.0]);
        h.observe(0.5);
        h.observe(5.0);
        h.observe(50.0);
        let fams = vec![
            Family::one("vault.expire.num_leases", Kind::Gauge, "Leases.", 3.0),
            Family::new("lessor.request.duration_ms", Kind::Histogram, "Latency.")
                .with_hist(vec![("class", "sys".into())], h.snapshot()),
        ];
        let text = prometheus(&fams);
        assert!(text.contains("vault_expire_num_leases 3\n"));
        assert!(text.contains("lessor_request_duration_ms_bucket{class=\"sys\",le=\"10\"} 2\n"));
        assert!(text.contains("lessor_request_duration_ms_bucket{class=\"sys\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("lessor_request_duration_ms_count{class=\"sys\"} 3\n"));
        let j = json(&fams, "t");
        assert_eq!(j["Gauges"][0]["Name"], "vault.expire.num_leases");
        assert_eq!(j["Samples"][0]["Count"], 3);
    }
}
