//! `lessor-leasebench`: the lease-manager figures that need a million leases, which HTTP
//! would take too long to create. It drives `lessor_core::core::Core` in-process over the
//! durable `file` storage with the test engine mounted at `test/`, in two processes so the
//! second one starts with nothing in memory:
//!
//! - `populate --dir D --leases N`: init, unseal, issue N test-engine leases through
//!   `Core::handle` (the request path every HTTP issuance takes, minus HTTP), seal; the unseal
//!   key and root token go to `D/leasebench.json` for the next phase.
//! - `restore --dir D --leases N`: open, unseal, time the first request served and the moment
//!   all N leases are scheduled, and read RSS (`/proc/self/status`) around it; then build a
//!   bare `Schedule` of N ids of the same shape to size the index alone.
//!
//! Each phase prints one JSON object on stdout; progress goes to stderr.

mod phases;
mod rss;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Lease-manager benchmarks over file storage, in-process")]
struct Args {
    #[command(subcommand)]
    phase: Phase,
}

#[derive(Subcommand)]
enum Phase {
    /// Create a store holding N active test-engine leases.
    Populate {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        leases: u64,
        /// Issuances in flight at once (group commit batches their writes).
        #[arg(long, default_value_t = 512)]
        concurrency: usize,
    },
    /// Unseal that store in a fresh process and time and size the restore.
    Restore {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        leases: u64,
        /// Give up waiting for the schedule after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lessor-leasebench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        match args.phase {
            Phase::Populate {
                dir,
                leases,
                concurrency,
            } => phases::populate(&dir, leases, concurrency).await,
            Phase::Restore {
                dir,
                leases,
                timeout,
            } => phases::restore(&dir, leases, timeout).await,
        }
    });
    match outcome {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lessor-leasebench: {e}");
            println!("{}", serde_json::json!({ "error": e }));
            ExitCode::from(2)
        }
    }
}
