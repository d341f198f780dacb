//! Lease events through the core: the order of a lease's events, failures and irrevocable
//! leases, token leases, prefix filtering, and `expiring-soon` timing (leases issued before
//! the subscription included). The clock is driven; nothing sleeps for a TTL.

// Tests and their helpers may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Env;
use lessor_core::expiration::{EventKind, Item, LeaseEvent, Subscription};
use lessor_core::logical::Operation;
use serde_json::json;

async fn subscribe(env: &Env, prefix: &str, before: Option<u64>) -> Subscription {
    let active = env.core.active().unwrap();
    active
        .expiration
        .events
        .subscribe(prefix, before.map(Duration::from_secs))
        .await
        .unwrap()
}

/// Every event ready now.
fn drain(sub: &mut Subscription) -> Vec<LeaseEvent> {
    let mut out = Vec::new();
    while let Some(item) = sub.try_next() {
        match item {
            Item::Event(ev) => out.push((*ev).clone()),
            Item::Lagged => panic!("lagged"),
        }
    }
    out
}

fn kinds(evs: &[LeaseEvent]) -> Vec<EventKind> {
    evs.iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn a_lease_tells_its_life_in_order() {
    let env = Env::new().await;
    env.configure(json!({"ttl": "1h", "max_ttl": "2h"})).await;
    let mut sub = subscribe(&env, "test/", None).await;
    let (lease, resource) = env.issue().await;
    env.clock.advance(600);
    env.ok(
        Operation::Update,
        "sys/leases/renew",
        json!({"lease_id": lease, "increment": 3600}),
    )
    .await;
    env.ok(
        Operation::Update,
        "sys/leases/revoke",
        json!({"lease_id": lease}),
    )
    .await;

    let evs = drain(&mut sub);
    assert_eq!(
        kinds(&evs),
        [EventKind::Issued, EventKind::Renewed, EventKind::Revoked]
    );
    assert!(
        evs.iter()
            .all(|e| e.lease_id == lease && e.mount == "test/")
    );
    assert_eq!(evs[0].ttl(), 3600);
    assert_eq!(evs[1].expire_time, common::START + 600 + 3600);
    assert_eq!(evs[2].time, common::START + 600);
    for e in &evs {
        let wire = e.data_json().to_string();
        assert!(
            !wire.contains(&resource),
            "no engine data in events: {wire}"
        );
    }
    let wire = evs[1].data_json();
    assert_eq!(wire["kind"], "renewed");
    assert_eq!(wire["lease_id"], lease);
    assert_eq!(wire["ttl"], 3600);
    assert!(wire["expire_time"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn expiry_failures_and_irrevocable_leases_are_told() {
    let env = Env::new().await;
    env.configure(json!({"ttl": "60s", "fail_revoke": 1})).await;
    let (retried, _) = env.issue().await;
    let mut sub = subscribe(&env, "", None).await;
    env.clock.advance(61);
    env.run_due().await;
    let evs = drain(&mut sub);
    assert_eq!(kinds(&evs), [EventKind::Failed]);
    assert_eq!(
        (evs[0].attempt, evs[0].lease_id.as_str()),
        (Some(1), retried.as_str())
    );
    assert!(
        evs[0]
            .error
            .as_deref()
            .unwrap()
            .contains("revocation failed as configured")
    );
    env.clock.advance(1000);
    env.run_due().await;
    assert_eq!(kinds(&drain(&mut sub)), [EventKind::Revoked]);

    env.configure(json!({"fail_revoke": -1})).await;
    let (stuck, _) = env.issue().await;
    env.clock.advance(61);
    for _ in 0..8 {
        env.run_due().await;
        env.clock.advance(2000);
    }
    let evs = drain(&mut sub);
    let issued_then: Vec<_> = kinds(&evs);
    assert_eq!(issued_then[0], EventKind::Issued);
    assert_eq!(issued_then[1..7], [EventKind::Failed; 6]);
    assert_eq!(issued_then[7..], [EventKind::Irrevocable]);
    let last = evs.last().unwrap();
    assert_eq!(
        (last.lease_id.as_str(), last.attempt),
        (stuck.as_str(), Some(6))
    );
    assert!(last.error.as_deref().unwrap().starts_with("out of retries"));
}

#[tokio::test]
async fn prefix_filters_lease_ids() {
    let env = Env::new().await;
    let mut sub = subscribe(&env, "test/creds/b", None).await;
    env.ok(Operation::Read, "test/creds/a", json!({})).await;
    let b = env
        .ok(Operation::Read, "test/creds/b", json!({}))
        .await
        .unwrap()
        .lease_id;
    let evs = drain(&mut sub);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].lease_id, b);
}

#[tokio::test]
async fn token_leases_are_issued_renewed_and_revoked_once() {
    let env = Env::new().await;
    let mut sub = subscribe(&env, "auth/token/", None).await;
    let r = env
        .ok(Operation::Update, "auth/token/create", json!({"ttl": "1h"}))
        .await
        .unwrap();
    let token = r.auth.unwrap().client_token;
    env.clock.advance(60);
    env.call_as(
        &token,
        Operation::Update,
        "auth/token/renew-self",
        json!({"increment": "1h"}),
    )
    .await
    .unwrap();
    env.ok(
        Operation::Update,
        "auth/token/revoke",
        json!({"token": token}),
    )
    .await;
    let evs = drain(&mut sub);
    assert_eq!(
        kinds(&evs),
        [EventKind::Issued, EventKind::Renewed, EventKind::Revoked]
    );
    assert!(evs[0].lease_id.starts_with("auth/token/create/"));
    assert_eq!(evs[0].mount, "auth/token/");
    assert!(
        evs.iter()
            .all(|e| !e.data_json().to_string().contains(&token))
    );

    // Expiry forgets the lease from two sides (the token and the lease manager): one event.
    env.ok(
        Operation::Update,
        "auth/token/create",
        json!({"ttl": "60s"}),
    )
    .await;
    env.clock.advance(61);
    env.run_due().await;
    assert_eq!(
        kinds(&drain(&mut sub)),
        [EventKind::Issued, EventKind::Revoked]
    );
}

#[tokio::test]
async fn expiring_soon_comes_before_expiry_for_old_and_new_leases() {
    let env = Env::new().await;
    env.configure(json!({"ttl": "100s"})).await;
    let (old, _) = env.issue().await;
    let mut sub = subscribe(&env, "test/", Some(30)).await;
    env.clock.advance(10);
    let new = env
        .ok(Operation::Read, "test/creds/role", json!({}))
        .await
        .unwrap()
        .lease_id;
    let (revoked, _) = env.issue().await;
    assert_eq!(
        kinds(&drain(&mut sub)),
        [EventKind::Issued, EventKind::Issued]
    );
    env.ok(
        Operation::Update,
        "sys/leases/revoke",
        json!({"lease_id": revoked}),
    )
    .await;
    assert_eq!(kinds(&drain(&mut sub)), [EventKind::Revoked]);

    // The old lease expires at START+100: announced at START+70, not a second earlier.
    env.clock.advance(59);
    assert!(drain(&mut sub).is_empty());
    env.clock.advance(1);
    let evs = drain(&mut sub);
    assert_eq!(kinds(&evs), [EventKind::ExpiringSoon]);
    assert_eq!((evs[0].lease_id.as_str(), evs[0].ttl()), (old.as_str(), 30));

    // The new one is renewed before its announcement: announced 30 s before the new expiry.
    env.ok(
        Operation::Update,
        "sys/leases/renew",
        json!({"lease_id": new}),
    )
    .await;
    assert_eq!(kinds(&drain(&mut sub)), [EventKind::Renewed]);
    env.clock.advance(69);
    assert!(drain(&mut sub).is_empty());
    env.clock.advance(1);
    let evs = drain(&mut sub);
    assert_eq!(kinds(&evs), [EventKind::ExpiringSoon]);
    assert_eq!(evs[0].lease_id, new);

    // Then the expiry itself.
    env.clock.advance(30);
    env.run_due().await;
    let evs = drain(&mut sub);
    assert_eq!(kinds(&evs), [EventKind::Revoked, EventKind::Revoked]);

    // `next` waits for an announcement and yields it once its time comes.
    env.configure(json!({"ttl": "40s"})).await;
    let (soon, _) = env.issue().await;
    assert!(matches!(sub.next().await, Some(Item::Event(e)) if e.kind == EventKind::Issued));
    env.clock.advance(10);
    let next = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap();
    assert!(
        matches!(next, Some(Item::Event(e)) if e.kind == EventKind::ExpiringSoon && e.lease_id == soon)
    );
}

#[tokio::test]
async fn sealing_ends_the_stream() {
    let env = Env::new().await;
    let mut sub = subscribe(&env, "", None).await;
    env.core.seal_now().await;
    let end = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap();
    assert_eq!(end, None);
}

#[tokio::test]
async fn a_token_renewed_after_a_restart_is_renewed_not_issued() {
    let env = Env::new().await;
    let r = env
        .ok(Operation::Update, "auth/token/create", json!({"ttl": "1h"}))
        .await
        .unwrap();
    let token = r.auth.unwrap().client_token;
    let env = env.restart().await;
    let mut sub = subscribe(&env, "auth/token/", None).await;
    env.call_as(
        &token,
        Operation::Update,
        "auth/token/renew-self",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(kinds(&drain(&mut sub)), [EventKind::Renewed]);
}
