//! Lease-count quotas through the core: the limit, what frees a slot, who is exempt, which
//! rule applies, token leases, and a restart. The clock is driven; nothing sleeps.

// Tests and their helpers may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Env;
use lessor_core::logical::Operation;
use serde_json::{Value, json};

const ISSUER: &str = r#"
path "test/*" { capabilities = ["read", "update", "list"] }
path "other/*" { capabilities = ["read", "update", "list"] }
path "auth/token/create" { capabilities = ["update"] }
"#;

/// A non-root token allowed to issue from the test mounts and to create tokens.
async fn issuer(env: &Env) -> String {
    env.ok(
        Operation::Update,
        "sys/policies/acl/issuer",
        json!({"policy": ISSUER}),
    )
    .await;
    env.token_with(&["issuer"], "24h").await
}

async fn quota(env: &Env, name: &str, path: &str, max: i64) {
    env.ok(
        Operation::Update,
        &format!("sys/quotas/lease-count/{name}"),
        json!({"path": path, "max_leases": max}),
    )
    .await;
}

async fn counter(env: &Env, name: &str) -> i64 {
    env.data(
        Operation::Read,
        &format!("sys/quotas/lease-count/{name}"),
        json!({}),
    )
    .await["counter"]
        .as_i64()
        .unwrap()
}

/// Issues as `token`: the lease id, or the error.
async fn issue_as(env: &Env, token: &str, path: &str) -> lessor_core::Result<String> {
    let r = env.call_as(token, Operation::Read, path, json!({})).await?;
    Ok(r.unwrap().lease_id)
}

#[tokio::test]
async fn the_limit_refuses_before_creating_and_a_revocation_frees_a_slot() {
    let env = Env::new().await;
    env.configure(json!({"ttl": "60s"})).await;
    let user = issuer(&env).await;
    quota(&env, "test-quota", "test", 3).await;
    let mut leases = Vec::new();
    for _ in 0..3 {
        leases.push(issue_as(&env, &user, "test/creds/role").await.unwrap());
    }
    let e = issue_as(&env, &user, "test/creds/role").await.unwrap_err();
    assert_eq!(e.status(), 429);
    assert_eq!(
        e.messages(),
        vec![
            "1 error occurred:\n\t* request path \"test/creds/role\": lease count quota exceeded\n\n"
        ]
    );
    assert_eq!(
        env.resources().await,
        3,
        "the refused request created nothing"
    );
    assert_eq!(counter(&env, "test-quota").await, 3);

    env.ok(
        Operation::Update,
        "sys/leases/revoke",
        json!({"lease_id": leases[0]}),
    )
    .await;
    assert_eq!(counter(&env, "test-quota").await, 2);
    issue_as(&env, &user, "test/creds/role").await.unwrap();
    assert!(issue_as(&env, &user, "test/creds/role").await.is_err());

    // Expiry frees a slot as well.
    env.clock.advance(61);
    env.run_due().await;
    assert_eq!(counter(&env, "test-quota").await, 0);
    issue_as(&env, &user, "test/creds/role").await.unwrap();
}

#[tokio::test]
async fn failed_issuance_gives_its_slot_back() {
    let env = Env::new().await;
    let user = issuer(&env).await;
    quota(&env, "q", "test", 1).await;
    env.configure(json!({"fail_create": true})).await;
    assert_eq!(
        issue_as(&env, &user, "test/creds/role")
            .await
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(counter(&env, "q").await, 0);
    env.configure(json!({"fail_create": false})).await;
    issue_as(&env, &user, "test/creds/role").await.unwrap();
}

#[tokio::test]
async fn root_is_exempt_but_counted() {
    let env = Env::new().await;
    let user = issuer(&env).await;
    quota(&env, "q", "test", 2).await;
    for _ in 0..4 {
        env.issue().await;
    }
    assert_eq!(counter(&env, "q").await, 4, "root's leases count");
    assert_eq!(
        issue_as(&env, &user, "test/creds/role")
            .await
            .unwrap_err()
            .status(),
        429
    );
}

#[tokio::test]
async fn a_quota_elsewhere_does_not_apply_and_the_most_specific_wins() {
    let env = Env::new().await;
    env.ok(
        Operation::Update,
        "sys/mounts/other",
        json!({"type": "lessor-test"}),
    )
    .await;
    let user = issuer(&env).await;
    quota(&env, "other", "other", 1).await;
    for _ in 0..3 {
        issue_as(&env, &user, "test/creds/role").await.unwrap();
    }
    issue_as(&env, &user, "other/creds/role").await.unwrap();
    assert_eq!(
        issue_as(&env, &user, "other/creds/role")
            .await
            .unwrap_err()
            .status(),
        429
    );

    // A global rule covers everything, but the mount's own rule takes precedence on it.
    quota(&env, "global", "", 4).await;
    assert_eq!(
        counter(&env, "global").await,
        4 + 1,
        "3 test, 1 other, and the issuer token"
    );
    assert_eq!(
        issue_as(&env, &user, "test/creds/role")
            .await
            .unwrap_err()
            .status(),
        429
    );
    quota(&env, "test-role", "test/creds/role", 10).await;
    issue_as(&env, &user, "test/creds/role").await.unwrap();
    // A rule on one role leaves the other roles to the broader rules.
    assert_eq!(
        issue_as(&env, &user, "test/creds/other")
            .await
            .unwrap_err()
            .status(),
        429
    );
}

#[tokio::test]
async fn token_leases_count() {
    let env = Env::new().await;
    let user = issuer(&env).await;
    quota(&env, "tokens", "auth/token", 2).await;
    assert_eq!(counter(&env, "tokens").await, 1, "the issuer's own token");
    let r = env
        .call_as(
            &user,
            Operation::Update,
            "auth/token/create",
            json!({"ttl": "1h"}),
        )
        .await;
    let child = r.unwrap().unwrap().auth.unwrap().client_token;
    let e = env
        .call_as(
            &user,
            Operation::Update,
            "auth/token/create",
            json!({"ttl": "1h"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), 429);
    assert_eq!(counter(&env, "tokens").await, 2);
    // Revoking the child (its lease is forgotten twice over: by the token and by the
    // lease manager) frees exactly one slot.
    env.ok(
        Operation::Update,
        "auth/token/revoke",
        json!({"token": child}),
    )
    .await;
    assert_eq!(counter(&env, "tokens").await, 1);
    env.call_as(
        &user,
        Operation::Update,
        "auth/token/create",
        json!({"ttl": "1h"}),
    )
    .await
    .unwrap();
    // Root is exempt.
    env.ok(Operation::Update, "auth/token/create", json!({"ttl": "1h"}))
        .await;
    assert_eq!(counter(&env, "tokens").await, 3);
    // A renewal, even the first one after a restart, is not a new lease.
    let env = env.restart().await;
    assert_eq!(counter(&env, "tokens").await, 3);
    env.call_as(&user, Operation::Update, "auth/token/renew-self", json!({}))
        .await
        .unwrap();
    assert_eq!(counter(&env, "tokens").await, 3);
}

#[tokio::test]
async fn restart_keeps_rules_and_counts() {
    let env = Env::new().await;
    let user = issuer(&env).await;
    quota(&env, "q", "test", 3).await;
    for _ in 0..3 {
        issue_as(&env, &user, "test/creds/role").await.unwrap();
    }
    let env = env.restart().await;
    assert_eq!(counter(&env, "q").await, 3);
    assert_eq!(
        issue_as(&env, &user, "test/creds/role")
            .await
            .unwrap_err()
            .status(),
        429
    );
    let keys = env
        .data(Operation::List, "sys/quotas/lease-count", json!({}))
        .await;
    assert_eq!(keys["keys"], json!(["q"]));
}

#[tokio::test]
async fn crud_and_validation() {
    let env = Env::new().await;
    env.issue().await;
    quota(&env, "q", "/test/", 5).await;
    let data = env
        .data(Operation::Read, "sys/quotas/lease-count/q", json!({}))
        .await;
    assert_eq!(data["name"], "q");
    assert_eq!(data["path"], "test/");
    assert_eq!(data["type"], "lease-count");
    assert_eq!(data["max_leases"], 5);
    assert_eq!(
        data["counter"], 1,
        "populated from the leases already there"
    );
    // An update may change one field only.
    env.ok(
        Operation::Update,
        "sys/quotas/lease-count/q",
        json!({"max_leases": "7"}),
    )
    .await;
    let data = env
        .data(Operation::Read, "sys/quotas/lease-count/q", json!({}))
        .await;
    assert_eq!(
        (data["max_leases"].clone(), data["path"].clone()),
        (json!(7), json!("test/"))
    );

    let bad = |body: Value| {
        let env = &env;
        async move {
            env.call(Operation::Update, "sys/quotas/lease-count/bad", body)
                .await
                .unwrap_err()
                .status()
        }
    };
    assert_eq!(bad(json!({"max_leases": 0})).await, 400);
    assert_eq!(bad(json!({"max_leases": 1, "path": "nowhere"})).await, 400);
    assert_eq!(
        bad(json!({"max_leases": 1, "type": "rate-limit"})).await,
        400
    );

    env.ok(Operation::Delete, "sys/quotas/lease-count/q", json!({}))
        .await;
    let e = env
        .call(Operation::Read, "sys/quotas/lease-count/q", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 404);
    assert_eq!(
        env.call(Operation::List, "sys/quotas/lease-count", json!({}))
            .await
            .unwrap_err()
            .status(),
        404
    );
}
