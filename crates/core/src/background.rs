//! The runtime for background lease work: the expiry scheduler, revoke-prefix jobs and the
//! restore at unseal.
//!
//! Its threads run at a lower CPU priority than the ones serving requests. A revocation
//! storm (a prefix of 100k leases, a second in which as many expire) then takes the CPU the
//! requests leave over, instead of queueing them behind it; under full request load it
//! still gets a steady share (nice 5 weighs about a third of a normal thread), so it is
//! slowed, never stopped. It has a thread per core (up to `MAX_THREADS`): a storm is
//! CPU-bound, and with one thread the other core sat idle through a burst of expiries
//! while the due leases queued (with two on two cores, p50 lateness 57-79 ms against
//! 195-307 ms). The lower priority, not fewer threads, is what keeps requests first.
//! The threads are marked as background (`lessor_storage::priority`), so the file backend
//! commits the writes they alone queue at the same priority.
//! One runtime for the process, never dropped: cores come and go with seal and unseal,
//! their background tasks stop through their own signals.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

/// Most background threads, however many cores.
const MAX_THREADS: usize = 8;

/// A thread per core the process may run on, one at least.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
}

/// The background runtime, or `None` if its threads could not be created (the work then
/// runs on the caller's runtime, at normal priority).
fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(threads())
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
    // Marked as background, the thread's writes are also committed at its priority. A
    // failure to lower it only leaves the thread at normal priority.
    if let Err(e) = lessor_storage::priority::enter_background() {
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
        assert_eq!(nice, lessor_storage::priority::NICE);
    }

    /// Two tasks that each hold their thread until the other has started: on one thread
    /// the second could start only after the first gave up waiting.
    #[tokio::test]
    async fn runs_tasks_side_by_side_when_there_are_cores_for_it() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::{Duration, Instant};
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            return;
        }
        let started = Arc::new(AtomicUsize::new(0));
        let task = |started: Arc<AtomicUsize>| {
            super::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                let give_up = Instant::now() + Duration::from_secs(30);
                while started.load(Ordering::SeqCst) < 2 && Instant::now() < give_up {
                    std::thread::yield_now();
                }
                started.load(Ordering::SeqCst)
            })
        };
        let (a, b) = (task(started.clone()), task(started.clone()));
        assert_eq!(a.await.unwrap(), 2, "the tasks ran at the same time");
        assert_eq!(b.await.unwrap(), 2);
    }
}
