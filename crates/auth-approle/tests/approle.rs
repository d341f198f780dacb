//! AppRole through the framework's dispatch: roles, role ids, secret ids and their limits,
//! login, tidy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use lessor_auth_approle::AppRole;
use lessor_auth_common::testing::Mount;
use lessor_core::clock::ManualClock;
use lessor_core::logical::Operation;
use serde_json::json;

async fn mount() -> (Mount, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let backend = Arc::new(AppRole::with_clock(clock.clone()));
    (
        Mount::new(backend, "approle", "approle").await.unwrap(),
        clock,
    )
}

async fn role_id(m: &Mount, role: &str) -> String {
    let r = m.read(&format!("role/{role}/role-id")).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.data["role_id"].as_str().unwrap().to_string()
}

async fn secret(m: &Mount, role: &str, body: serde_json::Value) -> serde_json::Value {
    let r = m.write(&format!("role/{role}/secret-id"), body).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.data
}

async fn login(m: &Mount, role_id: &str, secret_id: &str) -> lessor_auth_common::testing::Reply {
    m.write("login", json!({"role_id": role_id, "secret_id": secret_id}))
        .await
}

#[tokio::test]
async fn role_crud_reads_back_ints() {
    let (m, _) = mount().await;
    let w = m
        .write(
            "role/Web",
            json!({"token_policies": "a,b", "token_ttl": "1h", "token_max_ttl": "2h",
                "secret_id_ttl": "10m", "secret_id_num_uses": "5", "token_num_uses": 2}),
        )
        .await;
    assert_eq!(w.status, 204, "{w:?}");
    let r = m.read("role/web").await;
    assert_eq!(r.data["token_policies"], json!(["a", "b"]));
    assert_eq!(r.data["token_ttl"], json!(3600));
    assert_eq!(r.data["token_max_ttl"], json!(7200));
    assert_eq!(r.data["secret_id_ttl"], json!(600));
    assert_eq!(r.data["secret_id_num_uses"], json!(5));
    assert_eq!(r.data["bind_secret_id"], json!(true));
    assert_eq!(r.data["token_type"], json!("default"));
    // An update keeps what it does not name.
    m.write("role/web", json!({"token_ttl": 60})).await;
    let r = m.read("role/web").await;
    assert_eq!(r.data["token_ttl"], json!(60));
    assert_eq!(r.data["secret_id_num_uses"], json!(5));

    assert_eq!(m.list("role/").await.data["keys"], json!(["web"]));
    assert_eq!(m.delete("role/web").await.status, 204);
    assert_eq!(m.read("role/web").await.status, 404);
    assert_eq!(m.list("role/").await.status, 404);
}

#[tokio::test]
async fn role_needs_a_constraint() {
    let (m, _) = mount().await;
    let r = m.write("role/x", json!({"bind_secret_id": false})).await;
    assert_eq!(r.status, 400);
    assert!(r.error.contains("at least one constraint"), "{}", r.error);
    let r = m
        .write(
            "role/x",
            json!({"bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.0/8"}),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    // Without a secret id, the CIDR binding is the credential.
    let id = role_id(&m, "x").await;
    let ok = m
        .req_from(
            Operation::Update,
            "login",
            json!({"role_id": id}),
            "127.0.0.1:1",
        )
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let no = m
        .req_from(
            Operation::Update,
            "login",
            json!({"role_id": id}),
            "10.0.0.1:1",
        )
        .await;
    assert_eq!(no.status, 400);
}

#[tokio::test]
async fn login_issues_the_roles_auth() {
    let (m, _) = mount().await;
    m.write(
        "role/app",
        json!({"token_policies": ["p1"], "token_ttl": 300, "token_max_ttl": 600,
            "token_period": 0, "token_num_uses": 4, "token_no_default_policy": true}),
    )
    .await;
    let id = role_id(&m, "app").await;
    let s = secret(&m, "app", json!({"metadata": "{\"team\":\"blue\"}"})).await;
    let r = login(&m, &id, s["secret_id"].as_str().unwrap()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let a = r.auth.unwrap();
    assert_eq!(a.token_policies, ["p1"]);
    assert_eq!(a.ttl.as_secs(), 300);
    assert_eq!(a.max_ttl.as_secs(), 600);
    assert_eq!(a.num_uses, 4);
    assert!(a.no_default_policy && a.renewable && a.client_token.is_empty());
    assert_eq!(a.display_name, "approle");
    assert_eq!(a.metadata.get("role_name").map(String::as_str), Some("app"));
    assert_eq!(a.metadata.get("team").map(String::as_str), Some("blue"));
}

#[tokio::test]
async fn login_failures_are_uniform() {
    let (m, _) = mount().await;
    m.write("role/app", json!({"token_policies": "p"})).await;
    let id = role_id(&m, "app").await;
    let s = secret(&m, "app", json!({})).await;
    let sid = s["secret_id"].as_str().unwrap();
    for (rid, sec) in [(id.as_str(), "wrong"), ("wrong", sid)] {
        let r = login(&m, rid, sec).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.error, "invalid role or secret ID");
    }
    assert_eq!(login(&m, "", sid).await.error, "missing role_id");
    assert_eq!(login(&m, &id, "").await.error, "missing secret_id");
    // A secret id of another role does not open this one.
    m.write("role/other", json!({})).await;
    let other = secret(&m, "other", json!({})).await;
    let r = login(&m, &id, other["secret_id"].as_str().unwrap()).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn uses_are_spent_and_expired_ids_deleted() {
    let (m, clock) = mount().await;
    m.write(
        "role/app",
        json!({"secret_id_num_uses": 2, "secret_id_ttl": 100}),
    )
    .await;
    let id = role_id(&m, "app").await;
    let s = secret(&m, "app", json!({})).await;
    assert_eq!(s["secret_id_num_uses"], json!(2));
    assert_eq!(s["secret_id_ttl"], json!(100));
    let sid = s["secret_id"].as_str().unwrap();
    assert_eq!(login(&m, &id, sid).await.status, 200);
    let look = m
        .write("role/app/secret-id/lookup", json!({"secret_id": sid}))
        .await;
    assert_eq!(look.data["secret_id_num_uses"], json!(1));
    assert_eq!(login(&m, &id, sid).await.status, 200);
    assert_eq!(login(&m, &id, sid).await.status, 400);
    assert_eq!(m.list("role/app/secret-id/").await.status, 404);

    let s = secret(&m, "app", json!({"ttl": 50})).await;
    let sid = s["secret_id"].as_str().unwrap();
    clock.advance(51);
    assert_eq!(login(&m, &id, sid).await.error, "invalid role or secret ID");
    assert_eq!(m.list("role/app/secret-id/").await.status, 404);

    // Limits of the role bound what a secret id may ask for.
    for bad in [
        json!({"ttl": 200}),
        json!({"num_uses": 3}),
        json!({"num_uses": 0}),
    ] {
        let r = m.write("role/app/secret-id", bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn secret_id_lookup_destroy_and_accessors() {
    let (m, _) = mount().await;
    m.write("role/app", json!({"secret_id_bound_cidrs": "10.0.0.0/8"}))
        .await;
    let s = secret(
        &m,
        "app",
        json!({"metadata": {"k": "v"}, "cidr_list": "10.1.0.0/16", "ttl": 0}),
    )
    .await;
    let (sid, acc) = (
        s["secret_id"].as_str().unwrap().to_string(),
        s["secret_id_accessor"].as_str().unwrap().to_string(),
    );
    let l = m.list("role/app/secret-id").await;
    assert_eq!(l.data["keys"], json!([acc]));
    let look = m
        .write(
            "role/app/secret-id-accessor/lookup",
            json!({"secret_id_accessor": acc}),
        )
        .await;
    assert_eq!(look.status, 200, "{look:?}");
    assert_eq!(look.data["metadata"], json!({"k": "v"}));
    assert_eq!(look.data["cidr_list"], json!(["10.1.0.0/16"]));
    assert_eq!(look.data["expiration_time"], json!("0001-01-01T00:00:00Z"));
    assert!(look.data.get("secret_id").is_none());

    // A CIDR outside the role's binding is refused at generation.
    let r = m
        .write("role/app/secret-id", json!({"cidr_list": "192.168.0.0/24"}))
        .await;
    assert_eq!(r.status, 400);

    // Login from outside the secret id's CIDR list fails.
    let id = role_id(&m, "app").await;
    let r = m
        .req_from(
            Operation::Update,
            "login",
            json!({"role_id": id, "secret_id": sid}),
            "10.2.0.1:1",
        )
        .await;
    assert_eq!(r.status, 400);
    let r = m
        .req_from(
            Operation::Update,
            "login",
            json!({"role_id": id, "secret_id": sid}),
            "10.1.0.1:1",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    let d = m
        .write(
            "role/app/secret-id-accessor/destroy",
            json!({"secret_id_accessor": acc}),
        )
        .await;
    assert_eq!(d.status, 204);
    let look = m
        .write("role/app/secret-id/lookup", json!({"secret_id": sid}))
        .await;
    assert_eq!(look.status, 204);
    let r = m
        .write(
            "role/app/secret-id-accessor/lookup",
            json!({"secret_id_accessor": acc}),
        )
        .await;
    assert_eq!(r.status, 400);

    // Custom secret ids, once each; destroy by secret id.
    let c = m
        .write("role/app/custom-secret-id", json!({"secret_id": "my-own"}))
        .await;
    assert_eq!(c.data["secret_id"], json!("my-own"));
    let again = m
        .write("role/app/custom-secret-id", json!({"secret_id": "my-own"}))
        .await;
    assert_eq!(again.status, 400);
    let d = m
        .write("role/app/secret-id/destroy", json!({"secret_id": "my-own"}))
        .await;
    assert_eq!(d.status, 204);
    assert_eq!(m.list("role/app/secret-id/").await.status, 404);
}

#[tokio::test]
async fn role_id_is_settable_and_unique() {
    let (m, _) = mount().await;
    m.write("role/a", json!({"role_id": "custom-a"})).await;
    m.write("role/b", json!({})).await;
    assert_eq!(role_id(&m, "a").await, "custom-a");
    let r = m
        .write("role/b/role-id", json!({"role_id": "custom-a"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        m.write("role/b/role-id", json!({"role_id": "custom-b"}))
            .await
            .status,
        204
    );
    let s = secret(&m, "b", json!({})).await;
    let sid = s["secret_id"].as_str().unwrap();
    assert_eq!(login(&m, "custom-b", sid).await.status, 200);
    // The old role id no longer logs in.
    m.write("role/b/role-id", json!({"role_id": "custom-c"}))
        .await;
    assert_eq!(login(&m, "custom-b", sid).await.status, 400);
    assert_eq!(login(&m, "custom-c", sid).await.status, 200);
}

#[tokio::test]
async fn tidy_and_role_delete_remove_secret_ids() {
    let (m, clock) = mount().await;
    m.write("role/app", json!({})).await;
    secret(&m, "app", json!({"ttl": 10})).await;
    let keep = secret(&m, "app", json!({})).await;
    clock.advance(11);
    let t = m.write("tidy/secret-id", json!({})).await;
    assert_eq!(t.status, 202);
    assert_eq!(
        m.list("role/app/secret-id").await.data["keys"],
        json!([keep["secret_id_accessor"]])
    );
    let id = role_id(&m, "app").await;
    m.delete("role/app").await;
    m.write("role/app", json!({"role_id": id})).await;
    assert_eq!(m.list("role/app/secret-id").await.status, 404);
    let r = login(&m, &id, keep["secret_id"].as_str().unwrap()).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn secret_ids_are_stored_only_hashed() {
    let (m, _) = mount().await;
    m.write("role/app", json!({})).await;
    let s = secret(&m, "app", json!({})).await;
    let sid = s["secret_id"].as_str().unwrap();
    let mut stack = vec![String::new()];
    while let Some(prefix) = stack.pop() {
        for k in m.storage.list(&prefix).await.unwrap() {
            let full = format!("{prefix}{k}");
            if full.ends_with('/') {
                stack.push(full);
                continue;
            }
            assert!(!full.contains(sid));
            let v = m.storage.get(&full).await.unwrap().unwrap();
            assert!(!String::from_utf8_lossy(&v).contains(sid), "{full}");
        }
    }
}

#[tokio::test]
async fn renewal_rereads_the_role() {
    let (m, _) = mount().await;
    let r = m
        .write(
            "role/ren",
            json!({"token_policies": "a", "token_ttl": 60, "token_max_ttl": 120}),
        )
        .await;
    assert!(r.status < 300, "{r:?}");
    let id = role_id(&m, "ren").await;
    let s = secret(&m, "ren", json!({})).await;
    let auth = login(&m, &id, s["secret_id"].as_str().unwrap())
        .await
        .auth
        .unwrap();
    let g = m.renew_auth(&auth).await.unwrap().unwrap();
    assert_eq!((g.ttl.as_secs(), g.max_ttl.as_secs()), (60, 120));

    m.write("role/ren", json!({"token_ttl": 30})).await;
    let g = m.renew_auth(&auth).await.unwrap().unwrap();
    assert_eq!(g.ttl.as_secs(), 30);

    m.write("role/ren", json!({"token_policies": "b"})).await;
    let e = m.renew_auth(&auth).await.unwrap_err();
    assert_eq!(e.to_string(), "policies have changed, not renewing");

    m.write("role/ren", json!({"token_policies": "a"})).await;
    assert!(m.renew_auth(&auth).await.is_ok());
    m.delete("role/ren").await;
    let e = m.renew_auth(&auth).await.unwrap_err();
    assert_eq!(
        (e.status(), e.to_string()),
        (
            400,
            "role \"ren\" does not exist during renewal".to_string()
        )
    );
}
