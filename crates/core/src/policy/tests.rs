//! Table tests of ACL precedence and of the policy store, written from the rules of spec §6 and
//! the priority examples of Vault's policy documentation.

use std::sync::Arc;
use std::time::Duration;

use lessor_storage::Storage;
use lessor_storage::inmem::InMem;
use serde_json::{Map, Value, json};

use super::*;

const C: Capabilities = Capabilities::CREATE;
const R: Capabilities = Capabilities::READ;
const U: Capabilities = Capabilities::UPDATE;
const L: Capabilities = Capabilities::LIST;
const D: Capabilities = Capabilities::DELETE;
const S: Capabilities = Capabilities::SUDO;

fn acl(policies: &[&str]) -> Acl {
    let parsed: Vec<Arc<Policy>> = policies
        .iter()
        .enumerate()
        .map(|(i, text)| Arc::new(parse_policy(&format!("p{i}"), text).unwrap()))
        .collect();
    Acl::new(&parsed)
}

fn caps(acl: &Acl, path: &str) -> Vec<String> {
    acl.capabilities(path)
}

fn data(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// (policies, path, expected `capabilities()` answer)
type Case = (
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
);

fn run(cases: &[Case]) {
    for (i, (policies, path, want)) in cases.iter().enumerate() {
        let got = caps(&acl(policies), path);
        assert_eq!(got, *want, "case {i}: {path} under {policies:?}");
    }
}

#[test]
fn policy_precedence_vault_priority_examples() {
    run(&[
        // (c) same first wildcard, both globs: fewer `+` segments wins.
        (
            &[r#"path "secret/*" { capabilities = ["read"] }
                 path "secret/+/+/foo/*" { capabilities = ["update"] }"#],
            "secret/a/b/foo/c",
            &["read"],
        ),
        // (a) the first wildcard later wins: `secret/a*` over `secret/+`.
        (
            &[r#"path "secret/a*" { capabilities = ["read"] }
                 path "secret/+" { capabilities = ["update"] }"#],
            "secret/ab",
            &["read"],
        ),
        // ... and over `secret/*`, by being the longest prefix.
        (
            &[r#"path "secret/a*" { capabilities = ["read"] }
                 path "secret/*" { capabilities = ["update"] }"#],
            "secret/ab",
            &["read"],
        ),
        // (b) same first wildcard: a non-glob beats `*`: `secret/+/foo` over `secret/*`.
        (
            &[r#"path "secret/*" { capabilities = ["read"] }
                 path "secret/+/foo" { capabilities = ["update"] }"#],
            "secret/x/foo",
            &["update"],
        ),
        (
            &[r#"path "secret/*" { capabilities = ["read"] }
                 path "secret/+/foo" { capabilities = ["update"] }"#],
            "secret/x/bar",
            &["read"],
        ),
        // (b) `foo/+` over `foo/*`, `foo/+/bar` over `foo/+/ba*`.
        (
            &[r#"path "foo/*" { capabilities = ["read"] }
                 path "foo/+" { capabilities = ["list"] }"#],
            "foo/x",
            &["list"],
        ),
        (
            &[r#"path "foo/+/ba*" { capabilities = ["read"] }
                 path "foo/+/bar" { capabilities = ["list"] }"#],
            "foo/x/bar",
            &["list"],
        ),
        (
            &[r#"path "foo/+/ba*" { capabilities = ["read"] }
                 path "foo/+/bar" { capabilities = ["list"] }"#],
            "foo/x/baz",
            &["read"],
        ),
        // (a) `foo/bar/+/baz` over `foo/+/bar/baz`.
        (
            &[r#"path "foo/+/bar/baz" { capabilities = ["read"] }
                 path "foo/bar/+/baz" { capabilities = ["list"] }"#],
            "foo/bar/bar/baz",
            &["list"],
        ),
        // (c) `foo/+/bar/baz` over `foo/+/+/baz`.
        (
            &[r#"path "foo/+/+/baz" { capabilities = ["read"] }
                 path "foo/+/bar/baz" { capabilities = ["list"] }"#],
            "foo/x/bar/baz",
            &["list"],
        ),
        // (d) the longer glob wins: `foo/+/bar/ba*` over `foo/+/bar/b*`.
        (
            &[r#"path "foo/+/bar/b*" { capabilities = ["read"] }
                 path "foo/+/bar/ba*" { capabilities = ["list"] }"#],
            "foo/x/bar/baz",
            &["list"],
        ),
        // (e) everything else equal: lexicographically larger wins ('b' > '+').
        (
            &[r#"path "a/+/+/c" { capabilities = ["read"] }
                 path "a/+/b/+" { capabilities = ["list"] }"#],
            "a/x/b/c",
            &["list"],
        ),
        // `+` is one whole segment: no match on fewer or more segments.
        (
            &[r#"path "a/+/c" { capabilities = ["read"] }"#],
            "a/c",
            &["deny"],
        ),
        (
            &[r#"path "a/+/c" { capabilities = ["read"] }"#],
            "a/x/y/c",
            &["deny"],
        ),
        (
            &[r#"path "+/c" { capabilities = ["read"] }"#],
            "a/c",
            &["read"],
        ),
        (
            &[r#"path "a/+/c*" { capabilities = ["read"] }"#],
            "a/x/cd/e",
            &["read"],
        ),
        (
            &[r#"path "a/+/*" { capabilities = ["read"] }"#],
            "a/x",
            &["deny"],
        ),
        (
            &[r#"path "a/+/*" { capabilities = ["read"] }"#],
            "a/x/y/z",
            &["read"],
        ),
    ]);
}

#[test]
fn policy_precedence_exact_prefix_and_no_merging() {
    run(&[
        // Exact beats every glob, and only matches itself.
        (
            &[r#"path "secret/foo" { capabilities = ["read"] }
                 path "secret/foo*" { capabilities = ["update"] }
                 path "secret/+" { capabilities = ["list"] }"#],
            "secret/foo",
            &["read"],
        ),
        (
            &[r#"path "secret/foo" { capabilities = ["read"] }
                 path "secret/foo*" { capabilities = ["update"] }"#],
            "secret/food",
            &["update"],
        ),
        // `*` is a glob only at the end; elsewhere it is a literal character.
        (
            &[r#"path "secret/*/x" { capabilities = ["read"] }"#],
            "secret/a/x",
            &["deny"],
        ),
        (
            &[r#"path "secret/*/x" { capabilities = ["read"] }"#],
            "secret/*/x",
            &["read"],
        ),
        // Prefix globs match the bare prefix too.
        (
            &[r#"path "secret/foo*" { capabilities = ["read"] }"#],
            "secret/foo",
            &["read"],
        ),
        (
            &[r#"path "secret/foo*" { capabilities = ["read"] }"#],
            "secret/foo/x",
            &["read"],
        ),
        (
            &[r#"path "secret/foo*" { capabilities = ["read"] }"#],
            "secret/fo",
            &["deny"],
        ),
        // The longest prefix decides alone: no merging with shorter prefixes.
        (
            &[r#"path "secret/*" { capabilities = ["read", "update"] }
                 path "secret/foo/*" { capabilities = ["list"] }"#],
            "secret/foo/bar",
            &["list"],
        ),
        (
            &[r#"path "secret/*" { capabilities = ["read"] }
                 path "secret/foo/*" { capabilities = ["deny"] }"#],
            "secret/bar",
            &["read"],
        ),
        // A matching rule with no capabilities still decides (and grants nothing).
        (
            &[r#"path "secret/*" { capabilities = ["read"] }
                 path "secret/foo" {}"#],
            "secret/foo",
            &["deny"],
        ),
        // Leading slashes are ignored on both sides.
        (
            &[r#"path "/secret/x" { capabilities = ["read"] }"#],
            "//secret/x",
            &["read"],
        ),
        // Nothing matches.
        (
            &[r#"path "secret/x" { capabilities = ["read"] }"#],
            "other",
            &["deny"],
        ),
        (&[], "secret/x", &["deny"]),
    ]);
}

#[test]
fn policy_union_of_identical_patterns_and_deny_wins() {
    const A: &str = r#"path "secret/foo" { capabilities = ["read"] }"#;
    const B: &str = r#"path "secret/foo" { capabilities = ["update", "list"] }"#;
    const DENY: &str = r#"path "secret/foo" { capabilities = ["deny"] }"#;
    run(&[
        (&[A, B], "secret/foo", &["list", "read", "update"]),
        (&[A, DENY], "secret/foo", &["deny"]),
        (&[DENY, A], "secret/foo", &["deny"]),
        (&[A, DENY, B], "secret/foo", &["deny"]),
        // Repeats within one policy union too.
        (
            &[r#"path "x/*" { capabilities = ["read"] }
                 path "x/*" { capabilities = ["create"] }"#],
            "x/y",
            &["create", "read"],
        ),
        // Same text, different kind: `secret/foo` and `secret/foo*` do not merge.
        (
            &[A, r#"path "secret/foo*" { capabilities = ["update"] }"#],
            "secret/foo",
            &["read"],
        ),
        (
            &[
                r#"path "s/+/x" { capabilities = ["read"] }"#,
                r#"path "s/+/x" { capabilities = ["deny"] }"#,
            ],
            "s/A/x",
            &["deny"],
        ),
    ]);
    let acl = acl(&[A, DENY]);
    let d = acl.check("secret/foo", R, None);
    assert!(!d.allowed);
    assert_eq!(d.capabilities, Capabilities::DENY);
}

#[test]
fn policy_list_trailing_slash() {
    let exact = acl(&[r#"path "secret/foo" { capabilities = ["list"] }"#]);
    assert!(exact.check("secret/foo/", L, None).allowed);
    assert_eq!(caps(&exact, "secret/foo/"), ["list"]);
    // Only LIST strips the slash.
    assert!(!exact.check("secret/foo/", R, None).allowed);

    let glob = acl(&[r#"path "secret/fo*" { capabilities = ["list"] }"#]);
    assert!(glob.check("secret/foo/", L, None).allowed);

    let segment = acl(&[r#"path "secret/+/foo" { capabilities = ["list"] }"#]);
    assert!(segment.check("secret/a/foo/", L, None).allowed);
    assert!(!segment.check("secret/a/foo/", R, None).allowed);

    // An exact rule on the slashed path still wins first.
    let both = acl(&[r#"path "secret/foo/" { capabilities = ["list"] }
                        path "secret/foo" { capabilities = ["read"] }"#]);
    assert!(both.check("secret/foo/", L, None).allowed);

    // LIST tries the trimmed path before the slashed one (as Vault does), so a glob matching
    // the trimmed path is chosen over a longer glob that only matches with the slash.
    let order = acl(&[r#"path "secret/foo*" { capabilities = ["read"] }
                         path "secret/foo/*" { capabilities = ["list"] }"#]);
    assert!(!order.check("secret/foo/", L, None).allowed);
    assert!(order.check("secret/foo/x", L, None).allowed);
}

#[test]
fn policy_check_needs_every_capability_and_reports_sudo() {
    let acl = acl(
        &[r#"path "sys/audit/*" { capabilities = ["update", "sudo"] }
                       path "secret/*" { policy = "write" }"#],
    );
    let d = acl.check("sys/audit/file", U, None);
    assert!(d.allowed && d.sudo && !d.root);
    assert!(acl.check("sys/audit/file", U | S, None).allowed);
    assert!(!acl.check("sys/audit/file", C, None).allowed);
    let d = acl.check("secret/x", C | R | U | D | L, None);
    assert!(d.allowed && !d.sudo);
    assert!(!acl.check("secret/x", S, None).allowed);
    assert!(!acl.check("secret/x", Capabilities::PATCH, None).allowed);
    assert_eq!(acl.check("nothing", R, None), Decision::default());
}

#[test]
fn policy_check_parameters() {
    let acl = acl(&[r#"
        path "secret/restricted" {
          capabilities = ["create", "update", "read", "list", "delete"]
          allowed_parameters = {
            "foo" = []
            "bar" = ["zip", "zap*"]
          }
          denied_parameters = { "bar" = ["zapped"] }
          required_parameters = ["foo"]
        }
        path "secret/open" {
          capabilities = ["update"]
          denied_parameters = { "*" = [] }
        }
    "#]);
    let p = "secret/restricted";
    let ok = |d: Value| acl.check(p, U, Some(&data(d))).allowed;
    assert!(ok(json!({"foo": "any", "bar": "zip"})));
    assert!(ok(json!({"foo": 1, "bar": "zapper"})));
    assert!(!ok(json!({"foo": 1, "bar": "zapped"})));
    assert!(!ok(json!({"foo": 1, "bar": "nope"})));
    assert!(!ok(json!({"bar": "zip"})));
    assert!(!ok(json!({"foo": 1, "other": 1})));
    assert!(!ok(json!({})));
    // Without data the check is on capabilities only.
    assert!(acl.check(p, U, None).allowed);
    // Operations that carry no parameters are not constrained.
    assert!(acl.check(p, L, Some(&data(json!({"x": 1})))).allowed);
    assert!(acl.check(p, D, Some(&data(json!({"x": 1})))).allowed);
    // `*` denied: any parameter is refused, none is fine.
    assert!(
        !acl.check("secret/open", U, Some(&data(json!({"a": 1}))))
            .allowed
    );
    assert!(acl.check("secret/open", U, Some(&data(json!({})))).allowed);
}

#[test]
fn policy_parameter_rules_union_across_policies() {
    let acl = acl(&[
        r#"path "kv/x" {
             capabilities = ["update"]
             allowed_parameters = { "a" = ["1"] }
           }"#,
        r#"path "kv/x" {
             capabilities = ["update"]
             allowed_parameters = { "a" = ["2"], "b" = [] }
           }"#,
    ]);
    let ok = |d: Value| acl.check("kv/x", U, Some(&data(d))).allowed;
    assert!(ok(json!({"a": "1"})));
    assert!(ok(json!({"a": "2", "b": "anything"})));
    assert!(!ok(json!({"a": "3"})));
    assert!(!ok(json!({"c": "1"})));
}

#[test]
fn policy_wrapping_ttl_bounds() {
    let acl = acl(&[r#"path "secret/w" {
        capabilities = ["read"]
        min_wrapping_ttl = "10s"
        max_wrapping_ttl = "1m"
    }"#]);
    assert!(!acl.check("secret/w", R, None).allowed);
    let wrapped = |secs| {
        acl.check_wrapped("secret/w", R, None, Some(Duration::from_secs(secs)))
            .allowed
    };
    assert!(wrapped(30));
    assert!(wrapped(10));
    assert!(wrapped(60));
    assert!(!wrapped(5));
    assert!(!wrapped(61));
}

#[test]
fn policy_json_and_hcl_compile_alike() {
    let hcl = acl(&[r#"
        path "secret/*" { capabilities = ["read", "list"] }
        path "secret/+/admin" { capabilities = ["deny"] }
    "#]);
    let json = acl(&[r#"{"path": {
        "secret/*": {"capabilities": ["read", "list"]},
        "secret/+/admin": {"capabilities": ["deny"]}
    }}"#]);
    for path in ["secret/a", "secret/a/admin", "secret/a/b", "other"] {
        assert_eq!(caps(&hcl, path), caps(&json, path), "{path}");
    }
}

#[test]
fn policy_root_acl() {
    let root = Acl::root();
    assert!(root.is_root());
    assert_eq!(caps(&root, "anything/at/all"), ["root"]);
    let d = root.check("sys/audit/x", S | U, Some(&data(json!({"x": 1}))));
    assert!(d.allowed && d.sudo && d.root);
    // A token holding `root` among others is root.
    let p = parse_policy("p", r#"path "a" { capabilities = ["deny"] }"#).unwrap();
    let root_policy = Policy {
        name: ROOT_POLICY.into(),
        raw: String::new(),
        rules: vec![],
    };
    assert!(Acl::new(&[Arc::new(p), Arc::new(root_policy)]).is_root());
}

#[test]
fn policy_default_grants() {
    let acl = acl(&[DEFAULT_POLICY_TEXT]);
    assert!(acl.check("auth/token/lookup-self", R, None).allowed);
    assert_eq!(caps(&acl, "auth/token/lookup-self"), ["read"]);
    assert!(acl.check("cubbyhole/x", C, None).allowed);
    assert_eq!(
        caps(&acl, "cubbyhole/x"),
        ["create", "delete", "list", "read", "update"]
    );
    for p in [
        "auth/token/renew-self",
        "auth/token/revoke-self",
        "sys/capabilities-self",
        "sys/renew",
        "sys/leases/renew",
        "sys/leases/lookup",
        "sys/wrapping/wrap",
        "sys/wrapping/lookup",
        "sys/wrapping/unwrap",
        "sys/tools/hash",
        "sys/tools/hash/sha2-256",
        "sys/tools/random/32",
        "identity/oidc/provider/p/authorize",
    ] {
        assert!(acl.check(p, U, None).allowed, "{p}");
    }
    assert!(acl.check("sys/internal/ui/resultant-acl", R, None).allowed);
    assert!(!acl.check("auth/token/lookup-self", U, None).allowed);
    assert!(!acl.check("auth/token/create", U, None).allowed);
    assert!(!acl.check("sys/leases/lookup/x", L, None).allowed);
    // Templated rules need an identity entity, which lessor tokens do not have.
    assert_eq!(caps(&acl, "identity/entity/id/abc"), ["deny"]);
    assert_eq!(caps(&acl, "secret/x"), ["deny"]);
}

fn store() -> (PolicyStore, Arc<dyn Storage>) {
    let storage: Arc<dyn Storage> = Arc::new(InMem::new());
    (PolicyStore::new(Arc::clone(&storage)), storage)
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn policy_store_round_trip_and_list() {
    let (store, _) = store();
    store.setup_defaults().await.unwrap();
    assert_eq!(store.list().await.unwrap(), ["default", "root"]);

    let text = r#"path "secret/*" { capabilities = ["read"] }"#;
    store.set(" Dev ", text).await.unwrap();
    let got = store.get("DEV").await.unwrap().unwrap();
    assert_eq!(got.name, "dev");
    assert_eq!(got.raw, text);
    store.set("team/ops", text).await.unwrap();
    assert_eq!(
        store.list().await.unwrap(),
        ["default", "dev", "root", "team/ops"]
    );

    // Base64 input is stored decoded.
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    store.set("b64", &encoded).await.unwrap();
    assert_eq!(store.get("b64").await.unwrap().unwrap().raw, text);

    let default = store.get("default").await.unwrap().unwrap();
    assert_eq!(default.raw, DEFAULT_POLICY_TEXT);
    let root = store.get("root").await.unwrap().unwrap();
    assert!(root.raw.is_empty() && root.rules.is_empty());
    assert!(store.get("missing").await.unwrap().is_none());

    store.delete("dev").await.unwrap();
    store.delete("never-existed").await.unwrap();
    assert!(store.get("dev").await.unwrap().is_none());
    assert!(!store.list().await.unwrap().contains(&"dev".to_string()));
}

#[tokio::test]
async fn policy_store_refusals() {
    let (store, _) = store();
    store.setup_defaults().await.unwrap();
    let text = r#"path "a" { capabilities = ["read"] }"#;
    let cases: Vec<(crate::Error, &str)> = vec![
        (
            store.set("root", text).await.unwrap_err(),
            r#"cannot update "root" policy"#,
        ),
        (
            store.set(" ROOT", text).await.unwrap_err(),
            r#"cannot update "root" policy"#,
        ),
        (
            store.set("response-wrapping", text).await.unwrap_err(),
            r#"cannot update "response-wrapping" policy"#,
        ),
        (
            store.set("x", "").await.unwrap_err(),
            "'policy' parameter not supplied or empty",
        ),
        (
            store
                .set("x", r#"path "a" { capabilities = ["nope"] }"#)
                .await
                .unwrap_err(),
            r#"failed to parse policy: path "a": invalid capability "nope""#,
        ),
        (
            store.delete("root").await.unwrap_err(),
            r#"cannot delete "root" policy"#,
        ),
        (
            store.delete("Default").await.unwrap_err(),
            "cannot delete default policy",
        ),
        (
            store.delete("response-wrapping").await.unwrap_err(),
            r#"cannot delete "response-wrapping" policy"#,
        ),
    ];
    for (err, want) in cases {
        assert_eq!(err.status(), 400);
        assert_eq!(err.to_string(), want);
    }
    assert!(store.get("x").await.unwrap().is_none());
    // `default` stays editable.
    store.set("default", text).await.unwrap();
    assert_eq!(store.get("default").await.unwrap().unwrap().raw, text);
    // ... and setup at the next unseal keeps the edit.
    store.setup_defaults().await.unwrap();
    assert_eq!(store.get("default").await.unwrap().unwrap().raw, text);
}

#[tokio::test]
async fn policy_store_acl_cache_and_invalidation() {
    let (store, storage) = store();
    store.setup_defaults().await.unwrap();
    store
        .set("dev", r#"path "secret/*" { capabilities = ["read"] }"#)
        .await
        .unwrap();

    let a = store
        .acl(&names(&["dev", "default", "unknown"]))
        .await
        .unwrap();
    let b = store
        .acl(&names(&["Unknown", "default", "DEV", "dev"]))
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b), "same policy set, same compiled ACL");
    assert_eq!(a.capabilities("secret/x"), ["read"]);
    assert_eq!(a.capabilities("auth/token/lookup-self"), ["read"]);

    // Caches answer without going back to storage: compiled ACLs per set, parsed policies
    // per name (a new set containing `dev` compiles from the parsed copy, no reparse).
    storage.delete("policy/dev").await.unwrap();
    let again = store
        .acl(&names(&["dev", "default", "unknown"]))
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&a, &again));
    let c = store.acl(&names(&["default", "dev"])).await.unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(c.capabilities("secret/x"), ["read"]);

    // Any write invalidates.
    store
        .set("dev", r#"path "secret/*" { capabilities = ["update"] }"#)
        .await
        .unwrap();
    let d = store.acl(&names(&["default", "dev"])).await.unwrap();
    assert!(!Arc::ptr_eq(&a, &d));
    assert_eq!(d.capabilities("secret/x"), ["update"]);

    // Editing another policy of the set invalidates too.
    store
        .set("default", r#"path "secret/y" { capabilities = ["deny"] }"#)
        .await
        .unwrap();
    let e = store.acl(&names(&["default", "dev"])).await.unwrap();
    assert_eq!(e.capabilities("secret/y"), ["deny"]);
    assert_eq!(e.capabilities("auth/token/lookup-self"), ["deny"]);

    store.delete("dev").await.unwrap();
    let f = store.acl(&names(&["default", "dev"])).await.unwrap();
    assert_eq!(f.capabilities("secret/x"), ["deny"]);

    // Unknown names are ignored; root anywhere means root.
    let g = store.acl(&names(&["nope"])).await.unwrap();
    assert_eq!(g.capabilities("secret/x"), ["deny"]);
    let r = store.acl(&names(&["default", "root"])).await.unwrap();
    assert!(r.is_root());
    assert_eq!(r.capabilities("sys/seal"), ["root"]);
}

#[tokio::test]
async fn policy_store_is_shareable_across_tasks() {
    let (store, _) = store();
    store.setup_defaults().await.unwrap();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let name = format!("p{}", i % 2);
            let text = format!(r#"path "s/{i}" {{ capabilities = ["read"] }}"#);
            store.set(&name, &text).await.unwrap();
            store.acl(&[name, "default".into()]).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Whatever the interleaving, the cache agrees with storage.
    for name in ["p0", "p1"] {
        let stored = store.get(name).await.unwrap().unwrap();
        let acl = store.acl(&[name.to_string()]).await.unwrap();
        let path = stored.rules[0].pattern.clone();
        assert_eq!(acl.capabilities(&path), ["read"]);
    }
}

#[test]
fn policy_types_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicyStore>();
    assert_send_sync::<Acl>();
    assert_send_sync::<Policy>();
}
