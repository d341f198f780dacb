//! Load generator for any Vault-compatible address.
//!
//! Runs one workload in a closed loop (`runner.rs`), or at a fixed rate with `--rate` (open loop,
//! `open_loop.rs`), and prints one JSON object: request counts, errors by status, throughput and
//! latency percentiles. `bench/run.py` drives it against several servers.

mod client;
mod duration;
mod error;
#[cfg(test)]
mod fake_server;
mod open_loop;
mod report;
mod runner;
mod workload;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::client::{Call, Client};
use crate::error::{Error, Result};
use crate::report::{Context, Failure, Report};
use crate::runner::Plan;
use crate::workload::{Kind, Setup};

#[derive(Debug, Parser)]
#[command(name = "lessor-loadgen", version, about)]
struct Args {
    /// Base address of the server.
    #[arg(long, default_value = "http://127.0.0.1:8200", env = "VAULT_ADDR")]
    addr: String,
    /// Token sent as X-Vault-Token (it needs root-like rights for setup steps such as mounting).
    #[arg(long, env = "VAULT_TOKEN", hide_env_values = true)]
    token: String,
    #[arg(long, value_enum)]
    workload: Kind,
    /// Requests in flight at once (one keep-alive connection each); with --rate, the most in
    /// flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Open loop: offer this many requests per second on a fixed schedule, answered or not, and
    /// measure latency from when each was due. Without it, each of the --concurrency workers
    /// sends its next request when the last is answered.
    #[arg(long, value_parser = open_loop::parse_rate)]
    rate: Option<f64>,
    /// Measured time, after the warm-up.
    #[arg(long, default_value = "10s", value_parser = duration::parse)]
    duration: Duration,
    /// Stop after this many measured requests, even before the duration is up.
    #[arg(long)]
    requests: Option<u64>,
    /// Unrecorded time before measuring, to fill connection pools and caches.
    #[arg(long, default_value = "2s", value_parser = duration::parse)]
    warmup: Duration,
    /// Distinct keys the KV workloads spread over (token-renew: size of its token pool, max 100).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Mount path to use instead of the workload's default (`secret` for KV v2, `bench-kv1`).
    #[arg(long)]
    mount: Option<String>,
    /// Runtime threads of the load generator. One leaves the other cores to the server and is
    /// ample for a loopback client.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Per-request limit; a request unanswered by then counts as a `timeout` error.
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    timeout: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))
        .and_then(|runtime| runtime.block_on(run(&args)));
    let (json, code) = match outcome {
        Ok(report) => (serde_json::to_string_pretty(&report), ExitCode::SUCCESS),
        Err(e) => {
            let failure = Failure {
                workload: args.workload.name(),
                addr: args.addr.clone(),
                error: e.to_string(),
            };
            (serde_json::to_string_pretty(&failure), ExitCode::from(2))
        }
    };
    match json {
        Ok(text) => println!("{text}"),
        Err(e) => {
            eprintln!("cannot encode the report: {e}");
            return ExitCode::FAILURE;
        }
    }
    code
}

async fn run(args: &Args) -> Result<Report> {
    if args.concurrency == 0 {
        return Err(Error::Usage("--concurrency must be at least 1".into()));
    }
    let client = Client::new(&args.addr, &args.token, args.concurrency)?;
    // Any HTTP answer will do (health is 429/501/503 on standby, uninitialised or sealed
    // servers); without this, an unreachable address would be hammered with failing connects.
    client.send(&Call::get("sys/health")).await?;
    let setup = Setup {
        keys: args.keys,
        width: args.concurrency,
        mount: args.mount.clone(),
    };
    let workload = args.workload.prepare(&client, &setup).await?;
    let plan = Plan {
        concurrency: args.concurrency,
        duration: args.duration,
        warmup: args.warmup,
        max_requests: args.requests,
        timeout: args.timeout,
    };
    let outcome = match args.rate {
        Some(rate) => open_loop::run(client, workload, &plan, rate).await?,
        None => runner::run(client, workload, &plan).await?,
    };
    let context = Context {
        workload: args.workload.name(),
        addr: args.addr.clone(),
        concurrency: args.concurrency,
        rate: args.rate,
        warmup_seconds: args.warmup.as_secs_f64(),
    };
    Ok(Report::new(context, outcome))
}
