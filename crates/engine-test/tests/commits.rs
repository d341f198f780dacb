//! How many durable commits the lease manager spends: a token issuance or renewal is one
//! commit (the token and its lease in one atomic batch), a revocation is one commit (the
//! engine's own writes and the lease's removal in one batch), and leases expiring together
//! are forgotten in shared batches, not one commit each. Counted by the metrics layer's
//! storage wrapper, which sees every write call.

mod common;

use std::sync::Arc;

use common::Env;
use lessor_core::logical::Operation;
use lessor_core::metrics::{Metered, STORAGE_OPS, StorageTimes};
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
    let auth = env
        .ok(
            Operation::Update,
            "auth/token/create",
            json!({"ttl": "1h", "policies": ["default"]}),
        )
        .await
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(
        storage.writes() - before,
        1,
        "token, accessor and lease in one batch"
    );
    // The lease is recorded and scheduled.
    assert_eq!(leases_under(&env, "auth/token/create").await, 1);
    let before = storage.writes();
    env.call_as(
        &auth.client_token,
        Operation::Update,
        "auth/token/renew-self",
        json!({"increment": "2h"}),
    )
    .await
    .unwrap();
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
        env.call_as(
            &auth.client_token,
            Operation::Read,
            "auth/token/lookup-self",
            json!({})
        )
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
