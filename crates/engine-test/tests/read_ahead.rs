//! Reading ahead: the records of leases about to expire are read into the storage read
//! cache before they are due, so revoking them does not read them from storage then; and a
//! lease changed after it was read ahead is handled as it is now, not as it was read.

// Tests and their helpers may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::Env;
use lessor_core::logical::Operation;
use lessor_core::metrics::{Metered, STORAGE_OPS, StorageTimes};
use lessor_storage::cache::Cached;
use lessor_storage::inmem::InMem;
use serde_json::json;

/// A core over storage with a read cache, and the count of reads that got past the cache.
async fn env(read_ahead: usize) -> (Env, Arc<StorageTimes>) {
    let below = Arc::new(StorageTimes::default());
    let physical = Metered::new(Arc::new(InMem::new()), below.clone());
    let env = Env::over(Arc::new(Cached::new(physical, 10_000))).await;
    env.core
        .active()
        .unwrap()
        .expiration
        .set_read_ahead(read_ahead);
    (env, below)
}

fn storage_reads(t: &StorageTimes) -> u64 {
    let get = STORAGE_OPS.iter().position(|o| *o == "get").unwrap();
    t.by_op[get].snapshot().count
}

async fn read_ahead(env: &Env) -> Option<usize> {
    let task = env.core.active().unwrap().expiration.read_ahead()?;
    Some(task.await.unwrap())
}

#[tokio::test]
async fn leases_due_soon_are_read_ahead_and_their_revocation_finds_them_in_memory() {
    let mut reads_when_due = Vec::new();
    for limit in [0, 1000] {
        let (env, below) = env(limit).await;
        env.configure(json!({"ttl": "60s"})).await;
        for _ in 0..20 {
            env.issue().await;
        }
        // One due long after the window: not read ahead.
        env.configure(json!({"ttl": "1h"})).await;
        env.issue().await;
        env.clock.advance(58);
        let read = read_ahead(&env).await;
        assert_eq!(read, (limit > 0).then_some(20));
        // Those seconds are done: a second call reads nothing again.
        assert!(read_ahead(&env).await.is_none());
        env.clock.advance(2);
        let before = storage_reads(&below);
        assert_eq!(env.run_due().await, 20);
        reads_when_due.push(storage_reads(&below) - before);
        assert_eq!(env.resources().await, 1);
    }
    // Without reading ahead each record is read from storage when due; with it, none is.
    assert!(
        reads_when_due[0] >= reads_when_due[1] + 20,
        "{reads_when_due:?}"
    );
}

#[tokio::test]
async fn a_lease_renewed_after_it_was_read_ahead_keeps_its_new_expiry() {
    let (env, _) = env(1000).await;
    env.configure(json!({"ttl": "60s", "max_ttl": "2h"})).await;
    let (renewed, _) = env.issue().await;
    env.issue().await;
    env.clock.advance(58);
    assert_eq!(read_ahead(&env).await, Some(2));
    env.ok(
        Operation::Update,
        "sys/leases/renew",
        json!({"lease_id": renewed, "increment": "1h"}),
    )
    .await;
    env.clock.advance(2);
    assert_eq!(env.run_due().await, 1, "only the lease not renewed");
    assert_eq!(env.resources().await, 1);
    let data = env
        .data(
            Operation::Update,
            "sys/leases/lookup",
            json!({"lease_id": renewed}),
        )
        .await;
    // The record read now is the renewed one, not the one read ahead.
    assert_eq!(data["ttl"], 3598);
    env.clock.advance(3600);
    assert_eq!(env.run_due().await, 1);
    assert_eq!(env.resources().await, 0);
}
