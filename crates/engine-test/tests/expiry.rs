//! How the scheduler works through leases due together: the engine calls that revoke them
//! are not held to the pace of the durable removals that follow, so a slow disk delays
//! only the bookkeeping, never the revocation of a credential.

// Tests and their helpers may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use common::Env;
use lessor_storage::inmem::InMem;
use lessor_storage::{Result, Storage, WriteOp};
use serde_json::json;
use tokio::sync::Notify;

/// Issues `n` leases of the test engine, each with time to live `ttl`.
async fn issue_with_ttl(env: &Env, ttl: &str, n: usize) {
    env.configure(json!({ "ttl": ttl })).await;
    for _ in 0..n {
        env.issue().await;
    }
}

/// Storage whose writes wait while it is held: a disk that has stopped answering.
#[derive(Default)]
struct Held {
    inner: InMem,
    held: AtomicBool,
    waiting: AtomicUsize,
    released: Notify,
}

impl Held {
    async fn gate(&self) {
        if !self.held.load(Ordering::SeqCst) {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        loop {
            let released = self.released.notified();
            if !self.held.load(Ordering::SeqCst) {
                return;
            }
            released.await;
        }
    }

    fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.released.notify_waiters();
    }
}

#[async_trait]
impl Storage for Held {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.gate().await;
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.gate().await;
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.scan(prefix, after, limit).await
    }
    async fn batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.gate().await;
        self.inner.batch(ops).await
    }
    fn kind(&self) -> &'static str {
        "inmem"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_go_on_while_removals_wait_for_the_disk() {
    let storage = Arc::new(Held::default());
    let env = Env::over(storage.clone()).await;
    // More than one removal group (512) and the engine calls in flight (96) together: a
    // scheduler that waited for each group's write would stop after the first group.
    const N: usize = 1500;
    issue_with_ttl(&env, "1h", N).await;
    assert_eq!(env.resources().await, N);

    storage.held.store(true, Ordering::SeqCst);
    env.clock.advance(3601);
    let expiration = env.core.active().unwrap().expiration.clone();
    let run = tokio::spawn(async move { expiration.run_due_now().await });
    // Every credential is revoked through its engine while no removal can be written.
    env.until_stat("revoke_calls", N as u64).await;
    assert!(
        storage.waiting.load(Ordering::SeqCst) > 0,
        "removals are waiting"
    );
    assert!(
        !run.is_finished(),
        "nothing is forgotten before it is written"
    );

    storage.release();
    assert_eq!(run.await.unwrap(), N);
    assert_eq!(env.resources().await, 0, "every removal was written");
    assert_eq!(
        env.stat("revoke_calls").await,
        N as u64,
        "each revoked once"
    );
    let expiration = env.core.active().unwrap().expiration.clone();
    assert!(expiration.ids_under("test/").await.unwrap().is_empty());
}

/// A burst's removals wait while many due leases are still to be revoked, then are all
/// written; a few due together are removed as they go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bursts_removals_wait_for_its_revocations_and_a_small_batch_does_not() {
    for (n, waits) in [(200, false), (2_500, true)] {
        let env = Env::new().await;
        issue_with_ttl(&env, "1h", n).await;
        env.clock.advance(3601);
        let expiration = env.core.active().unwrap().expiration.clone();
        assert_eq!(expiration.run_due_now().await, n);
        assert_eq!(
            expiration.removals_deferred() > 0,
            waits,
            "{n} due: removals waited"
        );
        assert_eq!(env.resources().await, 0, "{n} due: every removal written");
        assert!(expiration.ids_under("test/").await.unwrap().is_empty());
        assert_eq!(
            env.stat("revoke_calls").await,
            n as u64,
            "each revoked once"
        );
    }
}

/// A few leases due now wait for their removals when a burst is due the next second: the
/// scheduler sees it coming, so the burst's revocations do not share the CPU with the
/// writer from its start. (More than the backlog's 16,384-lease threshold come due.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_wait_when_a_burst_is_due_the_next_second() {
    const NOW: usize = 200;
    const NEXT: usize = 16_500;
    let env = Env::new().await;
    issue_with_ttl(&env, "3600s", NOW).await;
    issue_with_ttl(&env, "3601s", NEXT).await;
    env.clock.advance(3600);
    let expiration = env.core.active().unwrap().expiration.clone();
    assert_eq!(expiration.run_due_now().await, NOW);
    assert!(
        expiration.removals_deferred() > 0,
        "the {NOW} due now waited for the burst behind them"
    );
    assert_eq!(env.resources().await, NEXT, "only those due now revoked");
    env.clock.advance(1);
    assert_eq!(expiration.run_due_now().await, NEXT);
    assert_eq!(env.resources().await, 0, "every removal written");
    assert!(expiration.ids_under("test/").await.unwrap().is_empty());
}
