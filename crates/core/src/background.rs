//! The runtime for background lease work: the expiry scheduler, revoke-prefix jobs and the
//! restore at unseal.
//!
//! Its threads run at a lower CPU priority than the ones serving requests. A revocation
//! storm (a prefix of 100k leases, a second in which as many expire) then takes the CPU the
//! requests leave over, instead of queueing them behind it; under full request load it
//! still gets a steady share (nice 5 weighs about a third of a normal thread), so it is
//! slowed, never stopped. One runtime for the process, never dropped: cores come and go
//! with seal and unseal, their background tasks stop through their own signals.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

const THREADS: usize = 1;
const NICE: i32 = 5;

/// The background runtime, or `None` if its threads could not be created (the work then
/// runs on the caller's runtime, at normal priority).
fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(THREADS)
                .thread_name("lessor-background")
                .on_thread_start(lower_priority)
                .enable_all()
                .build()
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "no background runtime; lease work shares the request threads")
                })
                .ok()
        })
        .as_ref()
}

/// Runs `task` on the background runtime.
pub fn spawn<F>(task: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match runtime() {
        Some(rt) => rt.spawn(task),
        None => tokio::spawn(task),
    }
}

fn lower_priority() {
    // On Linux the nice value is per thread, and no pid names the calling thread. A
    // failure only leaves the thread at normal priority.
    if let Err(e) = rustix::process::setpriority_process(None, NICE) {
        tracing::debug!(error = %e, "background threads keep normal priority");
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn runs_tasks_at_lower_priority() {
        let nice = super::spawn(async { rustix::process::getpriority_process(None) })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(nice, super::NICE);
    }
}
