//! A lease's renewal against its revocation, and an issuance against both, each caught in
//! flight: the test engine is slowed so one call is still running when the other starts. A
//! renewal that answers OK keeps the lease until its new expiry; a revocation leaves nothing
//! behind, neither record nor resource, and a renewal arriving during it is refused; an
//! issuance that answers OK hands out a credential its lease still covers.

// Tests and their helpers may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Env;
use lessor_core::logical::Operation;
use serde_json::json;

#[tokio::test]
async fn the_scheduler_waits_for_a_renewal_in_flight_and_keeps_the_lease() {
    let env = Env::new().await;
    env.configure(json!({"ttl": "1h", "renew_delay_ms": 300}))
        .await;
    let (lease, _) = env.issue().await;
    env.clock.advance(3590);
    let (renewed, due) = tokio::join!(env.renew(&lease, 3600), async {
        env.until_stat("renew_calls", 1).await;
        // Past the old expiry while the renewal is in the engine.
        env.clock.advance(20);
        env.run_due().await
    });
    assert_eq!(renewed.lease_duration, 3600);
    assert_eq!(due, 1, "the scheduler took the lease as due");
    assert_eq!(env.stat("revoke_calls").await, 0, "not revoked");
    assert!(env.lookup(&lease).await.unwrap().is_some());

    // It goes at the expiry the renewal granted (renewed at +3590 for an hour).
    env.clock.advance(3579);
    env.run_due().await;
    assert_eq!(env.resources().await, 1);
    env.clock.advance(1);
    env.run_due().await;
    assert_eq!(env.resources().await, 0);
}

#[tokio::test]
async fn a_revocation_waits_for_a_renewal_in_flight_and_leaves_no_record() {
    let env = Env::new().await;
    env.configure(json!({"ttl": "1h", "renew_delay_ms": 300}))
        .await;
    let (lease, _) = env.issue().await;
    let (renewed, revoked) = tokio::join!(env.renew(&lease, 7200), async {
        env.until_stat("renew_calls", 1).await;
        env.call(
            Operation::Update,
            "sys/leases/revoke",
            json!({"lease_id": lease}),
        )
        .await
    });
    assert_eq!(renewed.lease_duration, 7200, "the renewal landed first");
    revoked.expect("then the revocation");
    assert!(env.lookup(&lease).await.is_err(), "no record written back");
    let exp = env.core.active().unwrap().expiration.clone();
    assert!(exp.ids_under("test/").await.unwrap().is_empty());
    assert_eq!(env.resources().await, 0);
}

#[tokio::test]
async fn a_renewal_during_a_revocation_is_refused() {
    let env = Env::new().await;
    env.configure(json!({"ttl": "1h", "revoke_delay_ms": 300}))
        .await;
    for (n, (path, body)) in [
        ("sys/leases/revoke", true),
        ("sys/leases/revoke-prefix/test/creds/role", false),
    ]
    .into_iter()
    .enumerate()
    {
        let (lease, _) = env.issue().await;
        let data = if body {
            json!({"lease_id": lease})
        } else {
            json!({})
        };
        let (revoked, renewed) = tokio::join!(env.call(Operation::Update, path, data), async {
            env.until_stat("revoke_calls", n as u64 + 1).await;
            env.call(
                Operation::Update,
                "sys/leases/renew",
                json!({"lease_id": lease, "increment": 3600}),
            )
            .await
        });
        revoked.unwrap_or_else(|e| panic!("{path}: {e}"));
        let err = renewed.expect_err("renewal of a lease being revoked");
        assert!(err.to_string().contains("being revoked"), "{path}: {err}");
        assert!(env.lookup(&lease).await.is_err(), "{path}: record gone");
        assert_eq!(env.resources().await, 0, "{path}");
    }
}

/// Waits until the test engine holds `n` resources: an issuance slowed by `create_delay_ms`
/// has reserved its lease and is creating.
async fn until_resources(env: &Env, n: usize) {
    for _ in 0..10_000 {
        if env.resources().await >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("the engine never held {n} resources");
}

/// A reservation whose deadline passes while its engine is still creating (a slow
/// upstream) is not revoked under the request: the credential the client is handed stays
/// covered by its lease. (The scheduler once revoked it as the request activated it; the
/// client held a deleted key and no lease.)
#[tokio::test]
async fn an_issuance_past_its_reservation_deadline_keeps_its_lease() {
    let env = Env::new().await;
    env.configure(json!({"ttl": "1h", "create_delay_ms": 300}))
        .await;
    let ((lease, resource), due) = tokio::join!(env.issue(), async {
        until_resources(&env, 1).await;
        env.clock
            .advance(lessor_core::expiration::PENDING_DEADLINE_SECS + 1);
        env.run_due().await
    });
    assert_eq!(due, 1, "the scheduler took the reservation as due");
    assert_eq!(
        env.stat("revoke_calls").await,
        0,
        "not revoked under the request"
    );
    let data = env.lookup(&lease).await.unwrap().unwrap().data.unwrap();
    assert_eq!(data["ttl"], 3600);
    assert_eq!(env.resources().await, 1);

    // The scheduler looks again and finds the lease active: it goes at its own expiry.
    env.clock.advance(2);
    env.run_due().await;
    assert_eq!(env.resources().await, 1, "{resource} kept");
    env.clock.advance(3600);
    env.run_due().await;
    assert_eq!(env.resources().await, 0);
    assert!(env.lookup(&lease).await.is_err());
}

/// A token revoked, or a prefix revoked, while a request is creating a credential under it:
/// the revocation waits for the issuance, which answers OK, then revokes the lease it
/// activated (the prefix job reading the record again, now the credential's). Nothing is
/// left.
#[tokio::test]
async fn a_revocation_during_an_issuance_waits_then_revokes_the_lease() {
    let env = Env::new().await;
    env.configure(json!({"ttl": "1h", "create_delay_ms": 300}))
        .await;
    for revoke_token in [true, false] {
        let token = env.token_with(&["root"], "1h").await;
        let (issued, revoked) = tokio::join!(
            env.call_as(&token, Operation::Read, "test/creds/role", json!({})),
            async {
                until_resources(&env, 1).await;
                if revoke_token {
                    let body = json!({"token": token});
                    env.call(Operation::Update, "auth/token/revoke", body).await
                } else {
                    let path = "sys/leases/revoke-prefix/test/creds/role";
                    env.call(Operation::Update, path, json!({})).await
                }
            }
        );
        let what = if revoke_token { "token" } else { "prefix" };
        let issued = issued
            .unwrap_or_else(|e| panic!("{what}: the issuance under way completes: {e}"))
            .unwrap();
        revoked.unwrap_or_else(|e| panic!("{what}: then the revocation: {e}"));
        assert!(
            env.lookup(&issued.lease_id).await.is_err(),
            "{what}: lease revoked"
        );
        let exp = env.core.active().unwrap().expiration.clone();
        assert!(exp.ids_under("test/").await.unwrap().is_empty(), "{what}");
        assert_eq!(env.resources().await, 0, "{what}");
    }
}
