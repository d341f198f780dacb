//! KV v2 through the framework: every endpoint, check-and-set, version limits, delete /
//! undelete / destroy, the 404 shapes, weak typing and concurrent writers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Mount, TestClock};
use lessor_core::logical::Operation;
use lessor_engine_kv::v2::KvV2;
use serde_json::{Value, json};

fn mount() -> (Mount, TestClock) {
    let clock = TestClock::new();
    let m = Mount::new(Arc::new(KvV2::with_clock(clock.as_clock())));
    (m, clock)
}

fn meta_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn factory_builds_v2() {
    let mut opts = BTreeMap::new();
    opts.insert("version".to_string(), "2".to_string());
    let m = Mount::new(lessor_engine_kv::factory(&opts).unwrap());
    assert_eq!(
        m.write("data/a", json!({"data": {"k": "v"}})).await.status,
        200
    );
    assert_eq!(m.read("data/a").await.data["data"], json!({"k": "v"}));
}

#[tokio::test]
async fn write_then_read_versions() {
    let (m, _) = mount();
    let w = m
        .write("data/app", json!({"data": {"a": {"b": 1}, "c": "x"}}))
        .await;
    assert_eq!(w.status, 200);
    assert_eq!(
        meta_keys(&w.data),
        [
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );
    assert_eq!(w.data["version"], 1);
    assert_eq!(w.data["deletion_time"], "");
    assert_eq!(w.data["destroyed"], false);
    assert_eq!(w.data["custom_metadata"], Value::Null);
    let created = w.data["created_time"].as_str().unwrap().to_string();
    assert!(created.starts_with("2024-01-01T00:00:00.5") && created.ends_with('Z'));
    assert_eq!(w.lease_duration, 0);

    m.write("data/app", json!({"data": {"v": 2}})).await;
    let r = m.read("data/app").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data["data"], json!({"v": 2}));
    assert_eq!(r.data["metadata"]["version"], 2);
    assert_eq!(r.lease_duration, 0);

    // `version` as the CLI sends it: a string.
    let old = m
        .req(Operation::Read, "data/app", json!({"version": "1"}))
        .await;
    assert_eq!(old.data["data"], json!({"a": {"b": 1}, "c": "x"}));
    assert_eq!(old.data["metadata"]["created_time"], created.as_str());

    let missing = m
        .req(Operation::Read, "data/app", json!({"version": 9}))
        .await;
    assert_eq!((missing.status, missing.data.clone()), (404, Value::Null));
    assert_eq!(m.read("data/nope").await.status, 404);
}

#[tokio::test]
async fn write_errors() {
    let (m, _) = mount();
    let e = m.write("data/a", json!({"options": {"cas": 0}})).await;
    assert_eq!((e.status, e.error.as_str()), (400, "no data provided"));
    let e = m.write("data/a", json!({"data": [1]})).await;
    assert_eq!(e.status, 400);
    assert!(
        e.error.starts_with("Field validation failed"),
        "{}",
        e.error
    );
    let e = m.write("data/dir/", json!({"data": {"a": 1}})).await;
    assert_eq!(e.error, "cannot write to a path ending in '/'");
    let e = m
        .write(
            "data/a",
            json!({"data": {"a": 1}, "options": {"cas": "abc"}}),
        )
        .await;
    assert_eq!(e.error, "error parsing check-and-set parameter");
    // Unknown parameters are ignored with a warning.
    let w = m
        .write("data/a", json!({"data": {"a": 1}, "bogus": 1}))
        .await;
    assert_eq!(w.status, 200);
    assert_eq!(
        w.warnings,
        ["Endpoint ignored these unrecognized parameters: [bogus]"]
    );
}

#[tokio::test]
async fn check_and_set() {
    let (m, _) = mount();
    const MISMATCH: &str = "check-and-set parameter did not match the current version";
    const REQUIRED: &str = "check-and-set parameter required for this call";
    let cas = |n: Value| json!({"data": {"n": n.clone()}, "options": {"cas": n}});

    // cas 0 creates only.
    assert_eq!(m.write("data/s", cas(json!(0))).await.status, 200);
    assert_eq!(m.write("data/s", cas(json!(0))).await.error, MISMATCH);
    assert_eq!(m.write("data/s", cas(json!(5))).await.error, MISMATCH);
    assert_eq!(m.write("data/s", cas(json!("1"))).await.data["version"], 2);
    assert_eq!(m.write("data/s", cas(json!(-1))).await.error, MISMATCH);

    // Required by the mount.
    assert_eq!(
        m.write("config", json!({"cas_required": "true"}))
            .await
            .status,
        204
    );
    assert_eq!(m.write("data/s", json!({"data": {}})).await.error, REQUIRED);
    assert_eq!(m.write("data/s", cas(json!(2))).await.status, 200);
    m.write("config", json!({"cas_required": false})).await;
    assert_eq!(m.write("data/s", json!({"data": {}})).await.status, 200);

    // Required by the secret.
    m.write("metadata/s", json!({"cas_required": true})).await;
    assert_eq!(m.write("data/s", json!({"data": {}})).await.error, REQUIRED);
    assert_eq!(
        m.patch("data/s", json!({"data": {"x": 1}})).await.error,
        REQUIRED
    );
    assert_eq!(m.write("data/s", cas(json!(4))).await.data["version"], 5);
}

#[tokio::test]
async fn max_versions_purges_old_versions() {
    let (m, _) = mount();
    for i in 1..=12 {
        m.write("data/p", json!({"data": {"i": i}})).await;
    }
    let meta = m.read("metadata/p").await.data;
    assert_eq!(meta["current_version"], 12);
    assert_eq!(meta["oldest_version"], 3);
    assert_eq!(meta["versions"].as_object().unwrap().len(), 10);
    assert!(meta["versions"].get("2").is_none());
    let v2 = m
        .req(Operation::Read, "data/p", json!({"version": 2}))
        .await;
    assert_eq!((v2.status, v2.data), (404, Value::Null));
    // The data of purged versions is gone from storage too.
    let stored = m.storage.scan("versions/", None, 100).await.unwrap();
    assert_eq!(stored.len(), 10);

    // A lower limit on the secret applies from its next write.
    m.write("metadata/p", json!({"max_versions": "2"})).await;
    assert_eq!(
        m.read("metadata/p").await.data["versions"]
            .as_object()
            .unwrap()
            .len(),
        10
    );
    m.write("data/p", json!({"data": {"i": 13}})).await;
    let meta = m.read("metadata/p").await.data;
    assert_eq!(meta["max_versions"], 2);
    assert_eq!(meta["oldest_version"], 12);
    assert_eq!(meta_keys(&meta["versions"]), ["12", "13"]);
    assert_eq!(
        m.storage.scan("versions/", None, 100).await.unwrap().len(),
        2
    );

    // The mount's limit applies to secrets without their own.
    m.write("config", json!({"max_versions": 3})).await;
    for i in 0..5 {
        m.write("data/q", json!({"data": {"i": i}})).await;
    }
    let meta = m.read("metadata/q").await.data;
    assert_eq!(meta_keys(&meta["versions"]), ["3", "4", "5"]);
}

#[tokio::test]
async fn soft_delete_undelete_destroy() {
    let (m, _) = mount();
    for i in 1..=3 {
        m.write("data/d", json!({"data": {"i": i}})).await;
    }
    // DELETE data/ soft-deletes the latest version.
    assert_eq!(m.delete("data/d").await.status, 204);
    let r = m.read("data/d").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.data["data"], Value::Null);
    assert_eq!(r.data["metadata"]["version"], 3);
    assert_ne!(r.data["metadata"]["deletion_time"], "");
    assert_eq!(r.data["metadata"]["destroyed"], false);

    // Weakly typed version lists.
    assert_eq!(
        m.write("delete/d", json!({"versions": "1,2"})).await.status,
        204
    );
    for v in [1, 2] {
        let r = m
            .req(Operation::Read, "data/d", json!({"version": v}))
            .await;
        assert_eq!(r.status, 404);
    }
    assert_eq!(
        m.write("undelete/d", json!({"versions": [1, "3"]}))
            .await
            .status,
        204
    );
    assert_eq!(m.read("data/d").await.data["data"], json!({"i": 3}));
    let v1 = m
        .req(Operation::Read, "data/d", json!({"version": 1}))
        .await;
    assert_eq!(
        (v1.status, v1.data["metadata"]["deletion_time"].clone()),
        (200, json!(""))
    );

    assert_eq!(
        m.write("destroy/d", json!({"versions": "2"})).await.status,
        204
    );
    let r = m
        .req(Operation::Read, "data/d", json!({"version": 2}))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.data["metadata"]["destroyed"], true);
    assert_eq!(r.data["data"], Value::Null);
    // Undelete cannot bring back a destroyed version.
    m.write("undelete/d", json!({"versions": [2]})).await;
    let r = m
        .req(Operation::Read, "data/d", json!({"version": 2}))
        .await;
    assert_eq!(r.status, 404);
    let stored = m.storage.scan("versions/", None, 100).await.unwrap();
    assert_eq!(stored.len(), 2);

    let e = m.write("delete/d", json!({})).await;
    assert_eq!(
        (e.status, e.error.as_str()),
        (400, "No version number provided")
    );
    let e = m.write("destroy/d", json!({"versions": "x"})).await;
    assert!(
        e.error.starts_with("Field validation failed"),
        "{}",
        e.error
    );
    // Unknown secrets and versions are no-ops.
    assert_eq!(
        m.write("delete/nope", json!({"versions": [1]}))
            .await
            .status,
        204
    );
    assert_eq!(
        m.write("destroy/d", json!({"versions": [99]})).await.status,
        204
    );
    assert_eq!(m.delete("data/nope").await.status, 204);
}

#[tokio::test]
async fn patch_merges() {
    let (m, _) = mount();
    // A patch of nothing: a bare 404 without a body.
    let e = m
        .call(Operation::Patch, "data/p", json!({"data": {"a": 1}}))
        .await;
    let raw = e.unwrap().unwrap().raw.unwrap();
    assert_eq!((raw.status, raw.body), (404, None));
    m.write("metadata/p", json!({})).await;
    assert_eq!(
        m.patch("data/p", json!({"data": {"a": 1}})).await.status,
        404
    );
    m.write("data/p", json!({"data": {"a": {"b": 1, "c": 2}, "d": 3}}))
        .await;
    let w = m
        .patch(
            "data/p",
            json!({"data": {"a": {"c": null, "e": 4}, "d": null, "f": "x"}}),
        )
        .await;
    assert_eq!((w.status, w.data["version"].clone()), (200, json!(2)));
    assert_eq!(
        m.read("data/p").await.data["data"],
        json!({"a": {"b": 1, "e": 4}, "f": "x"})
    );
    let e = m
        .patch("data/p", json!({"data": {"z": 1}, "options": {"cas": 1}}))
        .await;
    assert_eq!(
        e.error,
        "check-and-set parameter did not match the current version"
    );
    assert_eq!(m.patch("data/p", json!({})).await.error, "no data provided");

    // Patching a deleted current version answers 404 with its metadata.
    m.delete("data/p").await;
    let g = m.patch("data/p", json!({"data": {"z": 1}})).await;
    assert_eq!(g.status, 404);
    assert_eq!(g.data["version"], 2);
    assert_ne!(g.data["deletion_time"], "");
}

#[tokio::test]
async fn metadata_endpoints() {
    let (m, clock) = mount();
    m.write("data/team/app", json!({"data": {"a": 1}})).await;
    clock.advance_secs(5);
    m.write("data/team/app", json!({"data": {"a": 2}})).await;
    m.write("data/top", json!({"data": {"a": 1}})).await;

    let r = m.read("metadata/team/app").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        meta_keys(&r.data),
        [
            "cas_required",
            "created_time",
            "current_version",
            "custom_metadata",
            "delete_version_after",
            "max_versions",
            "oldest_version",
            "updated_time",
            "versions"
        ]
    );
    assert_eq!(r.data["current_version"], 2);
    assert_eq!(r.data["oldest_version"], 0);
    assert_eq!(r.data["max_versions"], 0);
    assert_eq!(r.data["delete_version_after"], "0s");
    assert_eq!(r.data["custom_metadata"], Value::Null);
    assert_eq!(
        r.data["created_time"],
        r.data["versions"]["1"]["created_time"]
    );
    assert_eq!(
        r.data["updated_time"],
        r.data["versions"]["2"]["created_time"]
    );
    assert_eq!(
        r.data["versions"]["1"],
        json!({"created_time": r.data["created_time"], "deletion_time": "", "destroyed": false})
    );

    // Set custom metadata (weakly typed values become strings), then merge-patch it.
    let w = m
        .write(
            "metadata/team/app",
            json!({"custom_metadata": {"owner": "me", "n": 1}, "delete_version_after": "1h"}),
        )
        .await;
    assert_eq!(w.status, 204);
    let r = m.read("metadata/team/app").await;
    assert_eq!(r.data["custom_metadata"], json!({"n": "1", "owner": "me"}));
    assert_eq!(r.data["delete_version_after"], "1h0m0s");
    let p = m
        .patch(
            "metadata/team/app",
            json!({"custom_metadata": {"owner": null, "team": "t"}, "max_versions": 4}),
        )
        .await;
    assert_eq!(p.status, 204);
    let r = m.read("metadata/team/app").await;
    assert_eq!(r.data["custom_metadata"], json!({"n": "1", "team": "t"}));
    assert_eq!(r.data["max_versions"], 4);
    // A later data write reports the custom metadata.
    let w = m.write("data/team/app", json!({"data": {}})).await;
    assert_eq!(w.data["custom_metadata"], json!({"n": "1", "team": "t"}));

    let e = m
        .write("metadata/team/app", json!({"custom_metadata": "x"}))
        .await;
    assert_eq!(e.status, 400);
    let e = m
        .write("metadata/team/app", json!({"delete_version_after": "-1s"}))
        .await;
    assert_eq!(e.status, 400);
    let e = m
        .write(
            "metadata/team/app",
            json!({"custom_metadata": {"k": "v".repeat(513)}}),
        )
        .await;
    assert!(e.error.contains("length of value for key"), "{}", e.error);

    // Patch needs an existing secret; a write creates an empty one.
    assert_eq!(
        m.patch("metadata/nope", json!({"max_versions": 1}))
            .await
            .status,
        404
    );
    assert_eq!(
        m.write("metadata/new", json!({"max_versions": 3}))
            .await
            .status,
        204
    );
    let r = m.read("metadata/new").await;
    assert_eq!(r.data["current_version"], 0);
    assert_eq!(r.data["versions"], json!({}));
    assert_eq!(m.read("data/new").await.status, 404);
    assert_eq!(m.read("metadata/nope").await.status, 404);

    // Listing.
    assert_eq!(
        m.list("metadata/").await.data,
        json!({"keys": ["new", "team/", "top"]})
    );
    assert_eq!(m.list("metadata/team").await.data, json!({"keys": ["app"]}));
    assert_eq!(m.list("metadata/zz/").await.status, 404);
    assert_eq!(m.list("data/").await.status, 405);

    // Delete removes everything.
    assert_eq!(m.delete("metadata/team/app").await.status, 204);
    assert_eq!(m.read("metadata/team/app").await.status, 404);
    assert_eq!(m.read("data/team/app").await.status, 404);
    assert_eq!(
        m.list("metadata/").await.data,
        json!({"keys": ["new", "top"]})
    );
    let left = m.storage.scan("versions/", None, 100).await.unwrap();
    assert_eq!(left.len(), 1, "only top's version remains");
    assert_eq!(m.delete("metadata/nope").await.status, 204);
}

#[tokio::test]
async fn delete_version_after_expires_versions() {
    let (m, clock) = mount();
    m.write("metadata/t", json!({"delete_version_after": "1h"}))
        .await;
    let w = m.write("data/t", json!({"data": {"a": 1}})).await;
    let created = w.data["created_time"].as_str().unwrap().to_string();
    let deletion = w.data["deletion_time"].as_str().unwrap().to_string();
    assert_eq!(&created[..13], "2024-01-01T00");
    assert_eq!(&deletion[..13], "2024-01-01T01");
    assert_eq!(created[13..], deletion[13..]);
    assert_eq!(m.read("data/t").await.status, 200);

    clock.advance_secs(3601);
    let r = m.read("data/t").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.data["metadata"]["deletion_time"], deletion.as_str());
    assert_eq!(
        m.req(Operation::Read, "subkeys/t", json!({})).await.status,
        404
    );
    // Undelete starts the clock again from now.
    m.write("undelete/t", json!({"versions": [1]})).await;
    let r = m.read("data/t").await;
    assert_eq!(r.status, 200);
    let rearmed = r.data["metadata"]["deletion_time"].as_str().unwrap();
    assert!(rearmed.starts_with("2024-01-01T02:00:01"), "{rearmed}");

    // The mount's setting caps the secret's.
    m.write("config", json!({"delete_version_after": "10m"}))
        .await;
    let w = m.write("data/t", json!({"data": {"a": 2}})).await;
    assert!(
        w.data["deletion_time"]
            .as_str()
            .unwrap()
            .starts_with("2024-01-01T01:10:01"),
        "{}",
        w.data["deletion_time"]
    );
}

#[tokio::test]
async fn config_endpoint() {
    let (m, _) = mount();
    let r = m.read("config").await;
    assert_eq!(
        r.data,
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0})
    );
    let w = m
        .write(
            "config",
            json!({"max_versions": "5", "cas_required": "1", "delete_version_after": "90m"}),
        )
        .await;
    assert_eq!(w.status, 204);
    assert_eq!(
        m.read("config").await.data,
        json!({"cas_required": true, "delete_version_after": "1h30m0s", "max_versions": 5})
    );
    // A write changes only what it sends.
    m.write(
        "config",
        json!({"cas_required": false, "delete_version_after": "0s"}),
    )
    .await;
    assert_eq!(
        m.read("config").await.data,
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 5})
    );
    assert_eq!(
        m.write("config", json!({"max_versions": "x"})).await.status,
        400
    );
    assert_eq!(
        m.write("config", json!({"max_versions": -1})).await.status,
        400
    );
}

#[tokio::test]
async fn subkeys_endpoint() {
    let (m, _) = mount();
    m.write(
        "data/s",
        json!({"data": {"a": {"b": {"c": 1}, "d": 2}, "e": "x"}}),
    )
    .await;
    m.write("data/s", json!({"data": {"only": 1}})).await;
    let r = m
        .req(Operation::Read, "subkeys/s", json!({"version": "1"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.data["subkeys"],
        json!({"a": {"b": {"c": null}, "d": null}, "e": null})
    );
    assert_eq!(r.data["metadata"]["version"], 1);
    let r = m
        .req(
            Operation::Read,
            "subkeys/s",
            json!({"version": 1, "depth": "1"}),
        )
        .await;
    assert_eq!(r.data["subkeys"], json!({"a": null, "e": null}));
    assert_eq!(
        m.read("subkeys/s").await.data["subkeys"],
        json!({"only": null})
    );
    assert_eq!(m.read("subkeys/nope").await.status, 404);

    m.delete("data/s").await;
    let g = m.read("subkeys/s").await;
    assert_eq!(g.status, 404);
    assert_eq!(g.data["subkeys"], Value::Null);
    assert_eq!(g.data["metadata"]["version"], 2);
}

#[tokio::test]
async fn v1_style_paths_get_a_hint() {
    let (m, _) = mount();
    let r = m.read("app").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.data, Value::Null);
    assert!(
        r.warnings[0].contains("use 'vault kv get'"),
        "{:?}",
        r.warnings
    );
    let r = m.write("app", json!({"a": 1})).await;
    assert_eq!(r.status, 404);
    assert!(r.warnings[0].contains("use 'vault kv put'"));
}

#[tokio::test]
async fn existence_checks() {
    let (m, _) = mount();
    for (rel, want_before) in [("data/e", false), ("metadata/e", false)] {
        let mut req = lessor_core::logical::Request::new(Operation::Update, rel);
        req.rel_path = rel.into();
        let ctx = lessor_core::framework::Ctx {
            req: &req,
            storage: &m.storage,
            system: &m.system,
            leases: None,
        };
        let got = lessor_core::framework::existence(m.backend.as_ref(), &ctx)
            .await
            .unwrap();
        assert_eq!(got, Some(want_before), "{rel}");
    }
    m.write("data/e", json!({"data": {}})).await;
    for rel in ["data/e", "metadata/e"] {
        let mut req = lessor_core::logical::Request::new(Operation::Update, rel);
        req.rel_path = rel.into();
        let ctx = lessor_core::framework::Ctx {
            req: &req,
            storage: &m.storage,
            system: &m.system,
            leases: None,
        };
        let got = lessor_core::framework::existence(m.backend.as_ref(), &ctx)
            .await
            .unwrap();
        assert_eq!(got, Some(true), "{rel}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cas_writers_one_wins() {
    let clock = TestClock::new();
    let m = Arc::new(Mount::with_storage(
        Arc::new(KvV2::with_clock(clock.as_clock())),
        Arc::new(common::Yielding::default()),
    ));
    m.write("data/race", json!({"data": {"w": "init"}})).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            m.write(
                "data/race",
                json!({"data": {"w": i}, "options": {"cas": 1}}),
            )
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => wins += 1,
            400 => assert_eq!(
                r.error,
                "check-and-set parameter did not match the current version"
            ),
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(m.read("metadata/race").await.data["current_version"], 2);

    // Plain concurrent writers each get their own version number.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            m.write("data/race", json!({"data": {"w": i}})).await.data["version"]
                .as_u64()
                .unwrap()
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort();
    assert_eq!(versions, (3..=10).collect::<Vec<u64>>());
}
