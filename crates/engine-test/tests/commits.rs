//! How many durable commits the lease manager spends: a token issuance or renewal is one
//! commit (the token and its lease in one atomic batch), a revocation is one commit (the
//! engine's own writes and the lease's removal in one batch), and leases expiring together
//! are forgotten in shared batches, not one commit each. Counted by the metrics layer's
//! storage wrapper, which sees every write call.

// Tests and their helpers may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::Env;
use lessor_core::expiration::{EventKind, Item};
use lessor_core::logical::Operation;
use lessor_core::metrics::{Metered, Rendered, STORAGE_OPS, StorageTimes};
use lessor_storage::Storage;
use lessor_storage::inmem::InMem;
use serde_json::json;

/// Write calls seen by the metrics layer over in-memory storage (each would be one durable
/// commit on disk): puts, deletes and batches.
struct Writes(Arc<StorageTimes>);

impl Writes {
    fn writes(&self) -> usize {
        ["put", "delete", "batch"]
            .iter()
            .filter_map(|op| STORAGE_OPS.iter().position(|o| o == op))
            .map(|i| self.0.by_op[i].snapshot().count as usize)
            .sum()
    }
}

async fn env() -> (Env, Writes) {
    let times = Arc::new(StorageTimes::default());
    let storage = Metered::new(Arc::new(InMem::new()), times.clone());
    (Env::over(storage).await, Writes(times))
}

async fn leases_under(env: &Env, prefix: &str) -> usize {
    let exp = env.core.active().unwrap().expiration.clone();
    exp.ids_under(prefix).await.unwrap().len()
}

#[tokio::test]
async fn token_issuance_and_renewal_are_one_commit_each() {
    let (env, storage) = env().await;
    let before = storage.writes();
    let token = env.token("1h").await;
    assert_eq!(
        storage.writes() - before,
        1,
        "token, accessor and lease in one batch"
    );
    // The lease is recorded and scheduled.
    assert_eq!(leases_under(&env, "auth/token/create").await, 1);
    let before = storage.writes();
    env.renew_token(&token, "2h").await;
    assert_eq!(
        storage.writes() - before,
        1,
        "token and lease moved in one batch"
    );
    // Expiry still finds the token through its lease, at the renewed time.
    env.clock.advance(3600);
    assert_eq!(env.run_due().await, 0);
    env.clock.advance(3600);
    assert_eq!(env.run_due().await, 1);
    assert!(
        env.call_as(&token, Operation::Read, "auth/token/lookup-self", json!({}))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn leases_due_together_are_forgotten_in_shared_batches() {
    let (env, storage) = env().await;
    env.configure(json!({"ttl": "60s"})).await;
    const N: usize = 300;
    for _ in 0..N {
        env.issue().await;
    }
    assert_eq!(env.resources().await, N);
    env.clock.advance(60);
    let before = storage.writes();
    assert_eq!(env.run_due().await, N);
    let commits = storage.writes() - before;
    assert_eq!(env.resources().await, 0);
    // The engines' deletes ride in the lease removals' batches: a handful in all, not one
    // or two per lease.
    assert!(commits <= N / 50, "{commits} commits for {N} leases");
    assert_eq!(leases_under(&env, "test/").await, 0);
}

#[tokio::test]
async fn a_revocation_is_one_commit_with_the_engines_writes() {
    let (env, storage) = env().await;
    env.configure(json!({"ttl": "1h"})).await;
    let (lease_id, _) = env.issue().await;
    let before = storage.writes();
    env.ok(
        Operation::Update,
        "sys/leases/revoke",
        json!({"lease_id": lease_id}),
    )
    .await;
    assert_eq!(
        storage.writes() - before,
        1,
        "the engine's delete and the lease's removal in one batch"
    );
    assert_eq!(env.resources().await, 0);
    assert_eq!(leases_under(&env, "test/").await, 0);
}

/// A renewal rewrites the token and moves its lease's index entry; the lease record, whose
/// times are the token's, stays as written at creation. Lookups, the event stream's
/// snapshot, the metrics census and a restart all see the renewed expiry.
#[tokio::test]
async fn a_token_renewal_moves_its_lease_index_entry_and_leaves_the_record() {
    let raw = Arc::new(InMem::new());
    let env = Env::over(raw.clone()).await;
    let token = env.token("1h").await;
    let exp = env.core.active().unwrap().expiration.clone();
    let ids = exp.ids_under("auth/token/create").await.unwrap();
    assert_eq!(ids.len(), 1);
    let id = &ids[0];
    let stored = |key: String| {
        let raw = raw.clone();
        async move { raw.get(&key).await.unwrap().expect(&key) }
    };
    let (record_key, index_key) = (
        format!("sys/expire/id/{id}"),
        format!("sys/expire/idx/{id}"),
    );
    let (record, index) = (
        stored(record_key.clone()).await,
        stored(index_key.clone()).await,
    );

    env.clock.advance(600);
    env.renew_token(&token, "2h").await;
    assert_eq!(
        stored(record_key).await,
        record,
        "the lease record is not rewritten"
    );
    assert_ne!(stored(index_key).await, index, "the index entry moves");

    // Lookup: the token's times now, not the record's.
    let renewed_at = common::START + 600;
    let looked = env.lookup(id).await.unwrap().unwrap().data.unwrap();
    assert_eq!(looked["ttl"], json!(7200));
    assert_eq!(
        looked["expire_time"],
        json!(lessor_core::clock::rfc3339(renewed_at + 7200))
    );
    assert_eq!(
        looked["last_renewal"],
        json!(lessor_core::clock::rfc3339(renewed_at))
    );
    // The event stream's snapshot times it from the renewed expiry: announced an hour
    // before it (with the record's times it would be due at once).
    let mut sub = exp
        .events
        .subscribe("auth/token/", Some(std::time::Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(sub.try_next().is_none(), "not expiring within the hour");
    env.clock.advance(3600);
    match sub.try_next() {
        Some(Item::Event(ev)) => {
            assert_eq!(ev.kind, EventKind::ExpiringSoon);
            assert_eq!(ev.expire_time, renewed_at + 7200);
        }
        other => panic!("expected expiring-soon, got {other:?}"),
    }
    // The census: the lease is counted due in (1 h, 6 h], not within the hour.
    let Rendered::Text(text) = env.core.metrics.render(&env.core, true).await.unwrap() else {
        panic!("prometheus text expected");
    };
    let bucket = |le: &str| {
        text.lines()
            .find(|l| {
                l.contains("time_to_expiry_seconds_bucket") && l.contains(&format!("le=\"{le}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no le={le} bucket in:\n{text}"))
    };
    assert_eq!(bucket("900"), 0.0);
    assert_eq!(bucket("3600"), 1.0, "due in 3600 s from now");

    // After a restart it is scheduled from the moved index entry.
    // (Now an hour past the creation-time expiry, 3,600 s before the renewed one.)
    let env = env.restart().await;
    env.clock.advance(3599);
    assert_eq!(env.run_due().await, 0, "not before the renewed expiry");
    env.clock.advance(1);
    assert_eq!(env.run_due().await, 1, "at the renewed expiry");
}
