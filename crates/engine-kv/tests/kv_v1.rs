//! KV v1 through the framework: read/write/delete/list, the lease_duration hint, 404s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{DEFAULT_TTL, Mount};
use lessor_core::logical::Operation;
use serde_json::json;

fn mount() -> Mount {
    Mount::new(lessor_engine_kv::factory(&BTreeMap::new()).unwrap())
}

#[tokio::test]
async fn write_read_delete() {
    let m = mount();
    let w = m.write("app/db", json!({"user": "u", "n": 1})).await;
    assert_eq!(w.status, 204);
    let r = m.read("app/db").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data, json!({"user": "u", "n": 1}));
    // No ttl key: the mount default.
    assert_eq!(r.lease_duration, DEFAULT_TTL);
    assert!(r.warnings.is_empty());

    // A write replaces the whole object.
    m.write("app/db", json!({"other": true})).await;
    assert_eq!(m.read("app/db").await.data, json!({"other": true}));

    assert_eq!(m.delete("app/db").await.status, 204);
    let gone = m.read("app/db").await;
    assert_eq!((gone.status, gone.error.as_str()), (404, ""));
    // Deleting what is not there is fine.
    assert_eq!(m.delete("app/db").await.status, 204);
}

#[tokio::test]
async fn missing_and_empty() {
    let m = mount();
    assert_eq!(m.read("nope").await.status, 404);
    assert_eq!(m.read("").await.status, 404);
    let e = m.write("x", json!({})).await;
    assert_eq!((e.status, e.error.as_str()), (400, "missing data fields"));
    let e = m.write("dir/", json!({"a": 1})).await;
    assert_eq!(
        (e.status, e.error.as_str()),
        (400, "cannot write to a path ending in '/'")
    );
    assert_eq!(
        m.req(Operation::Patch, "x", json!({"a": 1})).await.status,
        405
    );
}

#[tokio::test]
async fn ttl_sets_lease_duration() {
    let m = mount();
    let cases = [
        (json!({"ttl": "1h", "x": 1}), 3600),
        (json!({"ttl": 90}), 90),
        (json!({"ttl": "0"}), 0),
        (json!({"lease": "30m"}), 1800),
        (json!({"ttl": "bogus"}), DEFAULT_TTL),
    ];
    for (i, (body, want)) in cases.into_iter().enumerate() {
        let key = format!("t{i}");
        assert_eq!(m.write(&key, body.clone()).await.status, 204);
        let r = m.read(&key).await;
        assert_eq!(r.lease_duration, want, "{body}");
        // The ttl key stays in the data; no lease is issued.
        assert_eq!(r.data, body);
        let resp = m
            .call(Operation::Read, &key, json!({}))
            .await
            .unwrap()
            .unwrap();
        assert!(resp.secret.is_none());
        assert!(!resp.renewable);
        assert_eq!(resp.lease_id, "");
    }
}

#[tokio::test]
async fn list_folders() {
    let m = mount();
    for k in ["a", "b", "f/g", "f/h/i"] {
        m.write(k, json!({"v": 1})).await;
    }
    let root = m.list("").await;
    assert_eq!(root.data, json!({"keys": ["a", "b", "f/"]}));
    assert_eq!(m.list("f/").await.data, json!({"keys": ["g", "h/"]}));
    // Without the trailing slash the same folder is listed.
    assert_eq!(m.list("f").await.data, json!({"keys": ["g", "h/"]}));
    let none = m.list("zz/").await;
    assert_eq!((none.status, none.error.as_str()), (404, ""));
}

#[tokio::test]
async fn existence_decides_create_or_update() {
    let m = mount();
    let mut req = lessor_core::logical::Request::new(Operation::Update, "secret/k");
    req.rel_path = "k".into();
    let ctx = lessor_core::framework::Ctx {
        req: &req,
        storage: &m.storage,
        system: &m.system,
        leases: None,
    };
    let exists = lessor_core::framework::existence(m.backend.as_ref(), &ctx).await;
    assert_eq!(exists.unwrap(), Some(false));
    m.write("k", json!({"a": 1})).await;
    let exists = lessor_core::framework::existence(m.backend.as_ref(), &ctx).await;
    assert_eq!(exists.unwrap(), Some(true));
}

#[tokio::test]
async fn the_path_capture_is_not_stored() {
    let m = mount();
    m.write("k", json!({"a": 1})).await;
    assert_eq!(m.read("k").await.data, json!({"a": 1}));
}
