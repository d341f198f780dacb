//! Token store and `auth/token/` tests, driven through `framework::dispatch` with
//! hand-built callers, on in-memory storage and a manual clock.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lessor_storage::Storage;
use lessor_storage::inmem::InMem;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::*;
use crate::barrier::View;
use crate::clock::ManualClock;
use crate::framework::{Backend, Ctx, SystemView, dispatch};
use crate::logical::{Operation, Request, Response};

const START: i64 = 1_800_000_000;
const MOUNT_MAX: i64 = 2_764_800;

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl TokenLeaseHooks for Recorder {
    fn token_lease_writes(&self, _: &TokenEntry, _: TokenLeaseChange) -> Result<LeaseWrites> {
        Ok(LeaseWrites {
            root: Arc::new(InMem::new()),
            ops: Vec::new(),
        })
    }
    fn token_lease_recorded(&self, e: &TokenEntry) {
        self.events.lock().push((
            "upsert".into(),
            format!("{}/{}@{}", e.path, e.id_hash, e.expire_time),
        ));
    }
    async fn token_revoked(&self, e: &TokenEntry) -> Result<()> {
        self.events
            .lock()
            .push(("revoked".into(), e.id_hash.clone()));
        Ok(())
    }
}

impl Recorder {
    fn count(&self, kind: &str) -> usize {
        self.events.lock().iter().filter(|(k, _)| k == kind).count()
    }
    fn revoked(&self) -> Vec<String> {
        self.events
            .lock()
            .iter()
            .filter(|(k, _)| k == "revoked")
            .map(|(_, h)| h.clone())
            .collect()
    }
}

struct H {
    raw: Arc<InMem>,
    store: Arc<TokenStore>,
    backend: Arc<dyn Backend>,
    clock: Arc<ManualClock>,
    hooks: Arc<Recorder>,
    system: SystemView,
    root: String,
}

async fn harness() -> H {
    let raw = Arc::new(InMem::new());
    let clock = Arc::new(ManualClock::new(START));
    let storage: Arc<dyn Storage> = raw.clone();
    let store = Arc::new(
        TokenStore::with_clock(View::new(storage, ""), clock.clone())
            .await
            .unwrap(),
    );
    let hooks = Arc::new(Recorder::default());
    store.set_hooks(hooks.clone());
    let root = store.create_root(None).await.unwrap();
    H {
        raw,
        backend: backend(store.clone()),
        store,
        clock,
        hooks,
        system: SystemView {
            default_lease_ttl: Duration::from_secs(MOUNT_MAX as u64),
            max_lease_ttl: Duration::from_secs(MOUNT_MAX as u64),
            mount_path: "auth/token/".into(),
        },
        root,
    }
}

impl H {
    /// Calls `auth/token/<rel>` as `token`, with `sudo` granted by the (pretend) ACL.
    async fn call_as(
        &self,
        token: &str,
        sudo: bool,
        op: Operation,
        rel: &str,
        data: Value,
    ) -> Result<Option<Response>> {
        let entry = self
            .store
            .resolve(token)
            .await?
            .ok_or(Error::InvalidToken)?;
        let mut caller = entry.caller();
        caller.sudo = caller.sudo || sudo;
        let mut req = Request::new(op, format!("auth/token/{rel}"))
            .with_data(data.as_object().cloned().unwrap_or_default())
            .with_token(token);
        req.rel_path = rel.to_string();
        req.mount_point = "auth/token/".into();
        req.mount_type = "token".into();
        req.caller = Some(caller);
        let storage: Arc<dyn Storage> = Arc::new(InMem::new());
        let ctx = Ctx::new(&req, &storage, &self.system);
        dispatch(self.backend.as_ref(), &ctx).await
    }

    async fn call(
        &self,
        token: &str,
        op: Operation,
        rel: &str,
        data: Value,
    ) -> Result<Option<Response>> {
        self.call_as(token, false, op, rel, data).await
    }

    /// Creates a token as `parent` and returns (token, auth, warnings).
    async fn create(
        &self,
        parent: &str,
        rel: &str,
        data: Value,
    ) -> (String, crate::logical::AuthSpec, Vec<String>) {
        let resp = self
            .call(parent, Operation::Update, rel, data)
            .await
            .unwrap()
            .unwrap();
        let auth = resp.auth.unwrap();
        (auth.client_token.clone(), auth, resp.warnings)
    }

    async fn lookup(&self, token: &str) -> serde_json::Map<String, Value> {
        self.call(
            &self.root,
            Operation::Update,
            "lookup",
            json!({ "token": token }),
        )
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap()
    }

    async fn alive(&self, token: &str) -> bool {
        self.store.resolve(token).await.unwrap().is_some()
    }
}

fn bad(r: Result<Option<Response>>) -> String {
    let e = r.expect_err("expected an error");
    assert_eq!(e.status(), 400, "{e}");
    e.to_string()
}

#[tokio::test]
async fn token_create_lookup_and_auth_block() {
    let h = harness().await;
    let (t, auth, warnings) = h
        .create(
            &h.root,
            "create",
            json!({"policies": "b,a", "ttl": "1h", "meta": {"k": "v"}, "display_name": "my app!"}),
        )
        .await;
    assert!(warnings.is_empty());
    assert!(t.starts_with("hvs.") && t.len() >= 28, "{t}");
    assert_eq!(auth.accessor.len(), 24);
    assert_eq!(auth.policies, ["a", "b", "default"]);
    assert_eq!(auth.token_policies, auth.policies);
    assert_eq!(auth.lease_duration, 3600);
    assert!(auth.renewable && !auth.orphan);
    assert_eq!(auth.token_type, "service");
    assert_eq!(auth.metadata.get("k").map(String::as_str), Some("v"));

    let d = h.lookup(&t).await;
    assert_eq!(d["id"], json!(t));
    assert_eq!(d["display_name"], json!("token-my-app"));
    assert_eq!(d["path"], json!("auth/token/create"));
    assert_eq!(d["creation_time"], json!(START));
    assert_eq!(d["creation_ttl"], json!(3600));
    assert_eq!(d["ttl"], json!(3600));
    assert_eq!(d["orphan"], json!(false));
    assert_eq!(d["meta"], json!({"k": "v"}));
    assert_eq!(d["type"], json!("service"));
    assert!(d["expire_time"].is_string() && d["issue_time"].is_string());

    // lookup-self (GET and POST) and lookup without a token answer the caller.
    for (op, rel) in [
        (Operation::Read, "lookup-self"),
        (Operation::Update, "lookup-self"),
        (Operation::Update, "lookup"),
    ] {
        let d = h
            .call(&t, op, rel, json!({}))
            .await
            .unwrap()
            .unwrap()
            .data
            .unwrap();
        assert_eq!(d["accessor"], json!(auth.accessor), "{rel}");
        assert_eq!(d["id"], json!(t));
    }
    // By accessor: the id is hidden.
    let d = h
        .call(
            &h.root,
            Operation::Update,
            "lookup-accessor",
            json!({"accessor": auth.accessor}),
        )
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    assert_eq!(d["id"], json!(""));
    assert_eq!(d["policies"], json!(["a", "b", "default"]));
    // Unknown token / accessor.
    let e = h
        .call(
            &h.root,
            Operation::Update,
            "lookup",
            json!({"token": "nope"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);
    assert!(
        bad(h
            .call(
                &h.root,
                Operation::Update,
                "lookup-accessor",
                json!({"accessor": "nope"})
            )
            .await)
        .contains("invalid accessor")
    );
}

#[tokio::test]
async fn token_root_never_expires() {
    let h = harness().await;
    let d = h.lookup(&h.root).await;
    assert_eq!(d["policies"], json!(["root"]));
    assert_eq!(d["ttl"], json!(0));
    assert_eq!(d["expire_time"], Value::Null);
    assert_eq!(d["renewable"], json!(false));
    assert_eq!(d["path"], json!("auth/token/root"));
    // A child of root without TTL is a root token that never expires either.
    let (_, auth, _) = h.create(&h.root, "create", json!({})).await;
    assert_eq!(auth.policies, ["root"]);
    assert_eq!(auth.lease_duration, 0);
    assert!(!auth.renewable);
    assert_eq!(
        bad(h
            .call(&h.root, Operation::Update, "renew-self", json!({}))
            .await),
        "lease is not renewable"
    );
    // Dev mode picks its own root token.
    let dev = h.store.create_root(Some("dev-root")).await.unwrap();
    assert_eq!(dev, "dev-root");
    assert!(h.alive("dev-root").await);
    // No lease for tokens that never expire.
    assert_eq!(h.hooks.count("upsert"), 0);
}

#[tokio::test]
async fn token_subset_rule_and_sudo_only_options() {
    let h = harness().await;
    let (p, _, _) = h
        .create(
            &h.root,
            "create",
            json!({"policies": ["a", "b"], "ttl": "1h"}),
        )
        .await;
    let err = bad(h
        .call(&p, Operation::Update, "create", json!({"policies": ["c"]}))
        .await);
    assert_eq!(err, "child policies must be subset of parent");
    let (_, auth, _) = h.create(&p, "create", json!({"policies": ["a"]})).await;
    assert_eq!(auth.policies, ["a", "default"]);
    let (_, auth, _) = h.create(&p, "create", json!({})).await;
    assert_eq!(auth.policies, ["a", "b", "default"]);
    let (_, auth, _) = h
        .create(
            &p,
            "create",
            json!({"policies": ["a"], "no_default_policy": true}),
        )
        .await;
    assert_eq!(auth.policies, ["a"]);

    for (body, msg) in [
        (
            json!({"no_parent": true}),
            "root or sudo privileges required to create orphan token",
        ),
        (
            json!({"id": "custom"}),
            "root or sudo privileges required to specify token id",
        ),
        (
            json!({"period": "10m"}),
            "root or sudo privileges required to create periodic token",
        ),
    ] {
        assert_eq!(
            bad(h.call(&p, Operation::Update, "create", body).await),
            msg
        );
    }
    // With sudo the same requests pass, and the subset rule is lifted.
    let r = h
        .call_as(
            &p,
            true,
            Operation::Update,
            "create",
            json!({"policies": ["c"], "no_parent": true}),
        )
        .await
        .unwrap()
        .unwrap();
    let auth = r.auth.unwrap();
    assert!(auth.orphan);
    assert_eq!(auth.policies, ["c", "default"]);
    assert_eq!(
        bad(h
            .call_as(
                &p,
                true,
                Operation::Update,
                "create",
                json!({"policies": ["root"]})
            )
            .await),
        "root tokens may not be created without parent token being root"
    );
    // create-orphan needs only the path ACL.
    let (_, auth, _) = h
        .create(&p, "create-orphan", json!({"policies": ["a"]}))
        .await;
    assert!(auth.orphan);
    // Custom ids from root.
    let (t, _, _) = h
        .create(&h.root, "create", json!({"id": "my-token", "ttl": 60}))
        .await;
    assert_eq!(t, "my-token");
    assert_eq!(
        bad(h
            .call(
                &h.root,
                Operation::Update,
                "create",
                json!({"id": "my-token"})
            )
            .await),
        "cannot create a token with a duplicate ID"
    );
    assert_eq!(
        bad(h
            .call(
                &h.root,
                Operation::Update,
                "create",
                json!({"num_uses": -1})
            )
            .await),
        "number of uses cannot be negative"
    );
    assert_eq!(
        bad(h
            .call(
                &h.root,
                Operation::Update,
                "create",
                json!({"type": "weird"})
            )
            .await),
        "invalid 'token_type' value"
    );
}

#[tokio::test]
async fn token_ttl_caps_and_renewals() {
    let h = harness().await;
    // explicit max caps the TTL at creation, with the warning.
    let (t, auth, w) = h
        .create(
            &h.root,
            "create",
            json!({"policies": "a", "ttl": "1h", "explicit_max_ttl": "30m"}),
        )
        .await;
    assert_eq!(auth.lease_duration, 1800);
    assert_eq!(
        w,
        [
            "TTL of \"1h\" exceeded the effective max_ttl of \"30m\"; TTL value is capped accordingly"
        ]
    );
    // Renewal counts from now and is capped at creation + explicit max.
    h.clock.advance(600);
    let r = h
        .call(
            &h.root,
            Operation::Update,
            "renew",
            json!({"token": t, "increment": "1h"}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.auth.as_ref().unwrap().lease_duration, 1200);
    assert_eq!(
        r.warnings,
        [
            "TTL of \"1h\" exceeded the effective max_ttl of \"20m\"; TTL value is capped accordingly"
        ]
    );
    assert_eq!(r.auth.unwrap().client_token, t);
    let d = h.lookup(&t).await;
    assert_eq!(d["ttl"], json!(1200));
    assert_eq!(d["last_renewal_time"], json!(START + 600));

    // Without increment a renewal grants the creation TTL again, from now.
    let (t2, auth2, _) = h
        .create(&h.root, "create", json!({"policies": "a", "ttl": 300}))
        .await;
    h.clock.advance(200);
    let r = h
        .call(&t2, Operation::Update, "renew-self", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.auth.unwrap().lease_duration, 300);
    assert_eq!(
        h.store.resolve(&t2).await.unwrap().unwrap().expire_time,
        START + 800 + 300
    );
    // By accessor: no client token in the reply.
    let r = h
        .call(
            &h.root,
            Operation::Update,
            "renew-accessor",
            json!({"accessor": auth2.accessor, "increment": 60}),
        )
        .await
        .unwrap()
        .unwrap();
    let a = r.auth.unwrap();
    assert_eq!((a.client_token.as_str(), a.lease_duration), ("", 60));

    // Mount max caps too, counted from creation.
    let (t3, auth3, w) = h
        .create(
            &h.root,
            "create",
            json!({"ttl": MOUNT_MAX + 100, "policies": "a"}),
        )
        .await;
    assert_eq!(auth3.lease_duration, MOUNT_MAX as u64);
    assert_eq!(w.len(), 1);
    h.clock.advance(MOUNT_MAX - 100);
    let r = h
        .call(&h.root, Operation::Update, "renew", json!({"token": t3}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.auth.unwrap().lease_duration, 100);

    // Non-renewable tokens.
    let (t4, auth4, _) = h
        .create(
            &h.root,
            "create",
            json!({"policies": "a", "ttl": "1h", "renewable": false}),
        )
        .await;
    assert!(!auth4.renewable);
    assert_eq!(
        bad(h
            .call(&h.root, Operation::Update, "renew", json!({"token": t4}))
            .await),
        "lease is not renewable"
    );
    assert_eq!(
        bad(h.call(&h.root, Operation::Update, "renew", json!({})).await),
        "missing token ID"
    );
    assert_eq!(
        bad(h
            .call(
                &h.root,
                Operation::Update,
                "renew",
                json!({"token": "nope"})
            )
            .await),
        "token not found"
    );
}

#[tokio::test]
async fn token_periodic_tokens_reset_to_period() {
    let h = harness().await;
    let (t, auth, _) = h
        .create(
            &h.root,
            "create",
            json!({"policies": "a", "period": "10m", "ttl": "1h"}),
        )
        .await;
    assert_eq!(auth.lease_duration, 600);
    assert_eq!(h.lookup(&t).await["period"], json!(600));
    for _ in 0..3 {
        h.clock.advance(500);
        let r = h
            .call(
                &t,
                Operation::Update,
                "renew-self",
                json!({"increment": "3h"}),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.auth.unwrap().lease_duration, 600);
        assert!(r.warnings.is_empty());
    }
    // Past the mount max a periodic token still lives on.
    h.clock.advance(MOUNT_MAX);
    let (t, _, _) = h
        .create(
            &h.root,
            "create",
            json!({"period": 60, "explicit_max_ttl": 90}),
        )
        .await;
    h.clock.advance(50);
    let r = h
        .call(&t, Operation::Update, "renew-self", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.auth.unwrap().lease_duration, 40);
    assert_eq!(r.warnings.len(), 1);
}

#[tokio::test]
async fn token_revoke_tree_three_levels_and_variants() {
    let h = harness().await;
    let (a, _, _) = h
        .create(&h.root, "create", json!({"policies": "p", "ttl": "1h"}))
        .await;
    let (b, _, _) = h.create(&a, "create", json!({})).await;
    let (c, _, _) = h.create(&b, "create", json!({})).await;
    let (c2, _, _) = h.create(&b, "create", json!({})).await;
    let (other, _, _) = h
        .create(&h.root, "create", json!({"policies": "p", "ttl": "1h"}))
        .await;
    assert_eq!(h.lookup(&c).await["orphan"], json!(false));

    let r = h
        .call(&h.root, Operation::Update, "revoke", json!({"token": a}))
        .await
        .unwrap();
    assert!(r.is_none());
    for t in [&a, &b, &c, &c2] {
        assert!(!h.alive(t).await);
    }
    assert!(h.alive(&other).await);
    // Hooks saw every token of the tree, children before their parent.
    let revoked = h.hooks.revoked();
    assert_eq!(revoked.len(), 4);
    assert_eq!(revoked.last(), Some(&h.store.hash(&a)));
    // No index entry is left behind.
    let keys: Vec<String> = h
        .raw
        .scan("", None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| revoked.iter().any(|h| k.contains(h.as_str())))
        .collect();
    assert!(keys.is_empty(), "{keys:?}");
    assert_eq!(h.store.list_accessors().await.unwrap().len(), 2);

    // Unknown token: success. Missing: 400.
    assert!(
        h.call(
            &h.root,
            Operation::Update,
            "revoke",
            json!({"token": "nope"})
        )
        .await
        .unwrap()
        .is_none()
    );
    assert_eq!(
        bad(h
            .call(&h.root, Operation::Update, "revoke", json!({}))
            .await),
        "missing token ID"
    );
    // revoke-self and revoke-accessor.
    let (s, _, _) = h.create(&h.root, "create", json!({"policies": "p"})).await;
    assert!(
        h.call(&s, Operation::Update, "revoke-self", json!({}))
            .await
            .unwrap()
            .is_none()
    );
    assert!(!h.alive(&s).await);
    let acc = h.lookup(&other).await["accessor"].clone();
    assert!(
        h.call(
            &h.root,
            Operation::Update,
            "revoke-accessor",
            json!({"accessor": acc})
        )
        .await
        .unwrap()
        .is_none()
    );
    assert!(!h.alive(&other).await);
    let r = h
        .call(
            &h.root,
            Operation::Update,
            "revoke-accessor",
            json!({"accessor": acc}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.warnings, ["No token found with this accessor"]);
}

#[tokio::test]
async fn token_revoke_orphan_keeps_children() {
    let h = harness().await;
    let (a, _, _) = h
        .create(&h.root, "create", json!({"policies": "p", "ttl": "1h"}))
        .await;
    let (b, _, _) = h.create(&a, "create", json!({})).await;
    let (c, _, _) = h.create(&b, "create", json!({})).await;
    // Needs sudo.
    assert_eq!(
        bad(h
            .call(&a, Operation::Update, "revoke-orphan", json!({"token": a}))
            .await),
        "root or sudo privileges required to revoke and orphan"
    );
    assert!(
        h.call_as(
            &a,
            true,
            Operation::Update,
            "revoke-orphan",
            json!({"token": b})
        )
        .await
        .unwrap()
        .is_none()
    );
    assert!(!h.alive(&b).await);
    assert!(h.alive(&a).await && h.alive(&c).await);
    let d = h.lookup(&c).await;
    assert_eq!(d["orphan"], json!(true));
    // c is no longer below a: revoking a leaves it alone.
    h.store.revoke_tree(&h.store.hash(&a)).await.unwrap();
    assert!(h.alive(&c).await);
    assert_eq!(
        bad(h
            .call(
                &h.root,
                Operation::Update,
                "revoke-orphan",
                json!({"token": "nope"})
            )
            .await),
        "token to revoke not found"
    );
}

#[tokio::test]
async fn token_num_uses_exhaustion() {
    let h = harness().await;
    let (t, auth, _) = h
        .create(&h.root, "create", json!({"policies": "p", "num_uses": 2}))
        .await;
    assert_eq!(auth.num_uses, 2);
    let mut e = h.store.resolve(&t).await.unwrap().unwrap();
    h.store.use_token(&mut e).await.unwrap();
    assert_eq!(e.num_uses, 1);
    assert!(!e.last_use_pending());
    let mut e = h.store.resolve(&t).await.unwrap().unwrap();
    h.store.use_token(&mut e).await.unwrap();
    assert!(e.last_use_pending());
    // During its last request the token resolves no more; the core revokes it after.
    assert!(!h.alive(&t).await);
    assert!(matches!(
        h.store.use_token(&mut e).await,
        Err(Error::InvalidToken)
    ));
    h.store.finish_use(&e).await.unwrap();
    assert!(h.store.lookup_hash(&e.id_hash).await.unwrap().is_none());
    // A token revoked during its request is not an error afterwards.
    assert!(h.store.use_token(&mut e).await.is_ok());
    // Unlimited tokens are never written on use.
    let mut root = h.store.resolve(&h.root).await.unwrap().unwrap();
    let before = root.clone();
    h.store.use_token(&mut root).await.unwrap();
    assert_eq!(root, before);
}

#[tokio::test]
async fn token_expired_is_not_resolvable_and_is_revoked() {
    let h = harness().await;
    let (p, _, _) = h
        .create(&h.root, "create", json!({"policies": "p", "ttl": 60}))
        .await;
    let (c, _, _) = h.create(&p, "create", json!({"ttl": 600})).await;
    h.clock.advance(59);
    assert!(h.alive(&p).await);
    h.clock.advance(1);
    assert!(!h.alive(&p).await);
    // Seeing it expired revoked the whole tree.
    assert!(
        h.store
            .lookup_hash(&h.store.hash(&p))
            .await
            .unwrap()
            .is_none()
    );
    assert!(!h.alive(&c).await);
    assert_eq!(h.hooks.count("revoked"), 2);
}

#[tokio::test]
async fn a_token_expires_at_its_own_millisecond_after_creation_and_renewal() {
    let h = harness().await;
    h.clock.advance_ms(700);
    let (t, auth, _) = h
        .create(&h.root, "create", json!({"policies": "p", "ttl": 60}))
        .await;
    assert_eq!(auth.lease_duration, 60);
    let d = h.lookup(&t).await;
    // As Vault shows it: from now rounded to the nearest second (.700 -> the next one).
    assert_eq!(d["ttl"], json!(59));
    assert_eq!(
        d["expire_time"],
        json!(crate::clock::rfc3339_ms((START + 60) * 1000 + 700))
    );
    // Its last millisecond is still its own: a whole-second expiry would have ended it
    // 700 ms early.
    h.clock.advance_ms(59_999);
    assert!(h.alive(&t).await);
    assert_eq!(h.lookup(&t).await["ttl"], json!(0));
    // Renewed 250 ms into a second, it runs its increment from that millisecond.
    h.clock.advance_ms(-59_999 + 30_000 - 450);
    let now_ms = START * 1000 + 30_250;
    let r = h
        .call(
            &t,
            Operation::Update,
            "renew-self",
            json!({"increment": 60}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.auth.unwrap().lease_duration, 60);
    let e = h
        .store
        .lookup_hash(&h.store.hash(&t))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.expires_at_ms(), now_ms + 60_000);
    h.clock.advance_ms(59_999);
    assert!(h.alive(&t).await);
    h.clock.advance_ms(1);
    assert!(!h.alive(&t).await);
}

#[tokio::test]
async fn token_storage_holds_no_token_in_clear() {
    let h = harness().await;
    let (t, _, _) = h
        .create(&h.root, "create", json!({"policies": "p", "ttl": 60}))
        .await;
    let (c, _, _) = h.create(&t, "create", json!({})).await;
    let (custom, _, _) = h
        .create(&h.root, "create", json!({"id": "Zq7customtokenvalue"}))
        .await;
    let all = h.raw.scan("", None, 100_000).await.unwrap();
    assert!(!all.is_empty());
    for secret in [&h.root, &t, &c, &custom] {
        let needle = secret.trim_start_matches("hvs.").as_bytes();
        for (k, v) in &all {
            assert!(
                !k.contains(secret.trim_start_matches("hvs.")),
                "token in key {k}"
            );
            assert!(
                !v.windows(needle.len()).any(|w| w == needle),
                "token in value of {k}"
            );
        }
    }
}

#[tokio::test]
async fn token_hooks_on_create_renew_revoke() {
    let h = harness().await;
    let (t, _, _) = h
        .create(&h.root, "create", json!({"policies": "p", "ttl": 60}))
        .await;
    let hash = h.store.hash(&t);
    {
        let ev = h.hooks.events.lock();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, "upsert");
        assert_eq!(ev[0].1, format!("auth/token/create/{hash}@{}", START + 60));
    }
    h.clock.advance(30);
    h.call(
        &t,
        Operation::Update,
        "renew-self",
        json!({"increment": 120}),
    )
    .await
    .unwrap();
    assert_eq!(
        h.hooks.events.lock()[1].1,
        format!("auth/token/create/{hash}@{}", START + 150)
    );
    h.call(&t, Operation::Update, "revoke-self", json!({}))
        .await
        .unwrap();
    assert_eq!(h.hooks.revoked(), [hash]);
}

#[tokio::test]
async fn token_roles_crud_and_rules() {
    let h = harness().await;
    let r = h
        .call(
            &h.root,
            Operation::Create,
            "roles/app",
            json!({"allowed_policies": "a,b", "orphan": true, "path_suffix": "v11", "token_period": "5m"}),
        )
        .await
        .unwrap();
    assert!(r.is_none());
    let d = h
        .call(&h.root, Operation::Read, "roles/app", json!({}))
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    assert_eq!(d["name"], json!("app"));
    assert_eq!(d["allowed_policies"], json!(["a", "b"]));
    assert_eq!(d["token_period"], json!(300));
    assert_eq!(d["renewable"], json!(true));
    assert_eq!(d["token_type"], json!("default-service"));
    assert_eq!(d["allowed_entity_aliases"], Value::Null);
    let keys = h
        .call(&h.root, Operation::List, "roles", json!({}))
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    assert_eq!(keys["keys"], json!(["app"]));
    // Update merges.
    h.call(
        &h.root,
        Operation::Update,
        "roles/app",
        json!({"renewable": false}),
    )
    .await
    .unwrap();
    let role = h.store.get_role("app").await.unwrap().unwrap();
    assert!(!role.renewable && role.orphan);
    h.call(
        &h.root,
        Operation::Update,
        "roles/app",
        json!({"renewable": true}),
    )
    .await
    .unwrap();
    assert_eq!(
        bad(h
            .call(
                &h.root,
                Operation::Update,
                "roles/bad",
                json!({"path_suffix": "a/../b"})
            )
            .await),
        r"given role path suffix contains invalid characters; must match \w[\w-.]+\w"
    );

    // Tokens of the role: allowed policies regardless of the parent, orphan, periodic, path.
    let (p, _, _) = h
        .create(&h.root, "create", json!({"policies": "x", "ttl": "1h"}))
        .await;
    let (t, auth, _) = h.create(&p, "create/app", json!({})).await;
    assert_eq!(auth.policies, ["a", "b", "default"]);
    assert!(auth.orphan);
    assert_eq!(auth.lease_duration, 300);
    let d = h.lookup(&t).await;
    assert_eq!(d["path"], json!("auth/token/create/app/v11"));
    assert_eq!(d["role"], json!("app"));
    let (_, auth, _) = h.create(&p, "create/app", json!({"policies": "a"})).await;
    assert_eq!(auth.policies, ["a", "default"]);
    let err = bad(h
        .call(
            &p,
            Operation::Update,
            "create/app",
            json!({"policies": "c"}),
        )
        .await);
    assert!(
        err.starts_with(
            "token policies ([\"c\" \"default\"]) must be subset of the role's allowed policies"
        ),
        "{err}"
    );
    // Renewal of a role token re-reads the role's period.
    h.clock.advance(100);
    let r = h
        .call(&t, Operation::Update, "renew-self", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.auth.unwrap().lease_duration, 300);

    // Disallowed lists and globs.
    h.call(
        &h.root,
        Operation::Create,
        "roles/dis",
        json!({"disallowed_policies": "b", "disallowed_policies_glob": "x*"}),
    )
    .await
    .unwrap();
    assert_eq!(
        bad(h
            .call(
                &h.root,
                Operation::Update,
                "create/dis",
                json!({"policies": "b"})
            )
            .await),
        "token policy \"b\" is disallowed by this role"
    );
    assert_eq!(
        bad(h
            .call(
                &h.root,
                Operation::Update,
                "create/dis",
                json!({"policies": "xyz"})
            )
            .await),
        "token policy \"xyz\" is disallowed by this role"
    );
    let (_, auth, _) = h
        .create(&h.root, "create/dis", json!({"policies": "c"}))
        .await;
    assert_eq!(auth.policies, ["c", "default"]);
    assert!(!auth.orphan);

    assert_eq!(
        bad(h
            .call(&h.root, Operation::Update, "create/nope", json!({}))
            .await),
        "unknown role nope"
    );
    assert_eq!(
        bad(h
            .call(
                &h.root,
                Operation::Update,
                "create",
                json!({"entity_alias": "x"})
            )
            .await),
        "'entity_alias' is only allowed in combination with token role"
    );
    // Delete.
    h.call(&h.root, Operation::Delete, "roles/dis", json!({}))
        .await
        .unwrap();
    let e = h
        .call(&h.root, Operation::Read, "roles/dis", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 404);
}

#[tokio::test]
async fn token_accessors_list_needs_sudo() {
    let h = harness().await;
    let (t, auth, _) = h.create(&h.root, "create", json!({"policies": "p"})).await;
    let e = h
        .call(&t, Operation::List, "accessors", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);
    let keys = h
        .call(&h.root, Operation::List, "accessors", json!({}))
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&json!(auth.accessor)));
}

#[tokio::test]
async fn token_tidy_removes_dangling_entries() {
    let h = harness().await;
    let (p, _, _) = h
        .create(&h.root, "create", json!({"policies": "p", "ttl": "1h"}))
        .await;
    let (c, _, _) = h.create(&p, "create", json!({})).await;
    let (gone, _, _) = h.create(&h.root, "create", json!({"policies": "p"})).await;
    // Simulate an interrupted revocation: the parent's and one token's records vanish.
    h.raw
        .delete(&format!("id/{}", h.store.hash(&p)))
        .await
        .unwrap();
    h.raw
        .delete(&format!("id/{}", h.store.hash(&gone)))
        .await
        .unwrap();
    let report = h.store.tidy().await.unwrap();
    assert_eq!(report.dangling_accessors, 2);
    assert!(report.revoked >= 1);
    assert!(!h.alive(&c).await, "a child outlived its parent");
    assert_eq!(h.store.list_accessors().await.unwrap().len(), 1);
    let r = h
        .call(&h.root, Operation::Update, "tidy", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, Some(202));
    assert_eq!(r.warnings.len(), 1);
}

#[tokio::test]
async fn token_login_params_from_auth_spec() {
    let h = harness().await;
    let spec = crate::logical::AuthSpec {
        policies: vec!["app".into()],
        display_name: "approle".into(),
        ttl: Duration::from_secs(7200),
        max_ttl: Duration::from_secs(3600),
        renewable: true,
        ..Default::default()
    };
    let mut p = CreateParams::from_auth(&spec, "auth/approle/login");
    let w = p
        .apply_ttl(TtlLimits::from(&h.system), h.store.now())
        .unwrap();
    assert!(w.is_some());
    let (t, e) = h.store.create(p).await.unwrap();
    assert!(h.alive(&t).await);
    assert!(e.orphan && e.parent.is_empty());
    assert_eq!(e.policies, ["app", "default"]);
    assert_eq!(e.creation_ttl, 3600);
    assert_eq!(e.path, "auth/approle/login");
}

#[tokio::test]
async fn token_salt_persists_across_reopen() {
    let h = harness().await;
    let storage: Arc<dyn Storage> = h.raw.clone();
    let again = TokenStore::new(View::new(storage, "")).await.unwrap();
    assert!(again.resolve(&h.root).await.unwrap().is_some());
}

#[tokio::test]
async fn token_deep_chain_revokes_iteratively() {
    let h = harness().await;
    let (first, _, _) = h.create(&h.root, "create", json!({"policies": "p"})).await;
    let mut tokens = vec![first.clone()];
    for _ in 0..150 {
        let parent = tokens.last().cloned().unwrap();
        let (t, _, _) = h.create(&parent, "create", json!({})).await;
        tokens.push(t);
    }
    h.store.revoke_tree(&h.store.hash(&first)).await.unwrap();
    for t in &tokens {
        assert!(!h.alive(t).await);
    }
    assert_eq!(h.hooks.count("revoked"), tokens.len());
    assert_eq!(h.store.list_accessors().await.unwrap().len(), 1);
}

#[tokio::test]
async fn token_renew_racing_revoke_never_resurrects() {
    let h = harness().await;
    for _ in 0..20 {
        let (t, _, _) = h
            .create(&h.root, "create", json!({"policies": "p", "ttl": 600}))
            .await;
        let hash = h.store.hash(&t);
        let (s1, s2) = (h.store.clone(), h.store.clone());
        let h1 = hash.clone();
        let renew = tokio::spawn(async move {
            for _ in 0..5 {
                let _ = s1
                    .renew(
                        &h1,
                        60,
                        TtlLimits {
                            default: 600,
                            max: 3600,
                        },
                    )
                    .await;
            }
        });
        let revoke = tokio::spawn(async move { s2.revoke_tree(&hash).await });
        renew.await.unwrap();
        revoke.await.unwrap().unwrap();
        assert!(!h.alive(&t).await);
        assert!(
            h.store
                .lookup_hash(&h.store.hash(&t))
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_child_of_a_missing_parent_is_refused_and_leaves_nothing() {
    let h = harness().await;
    let storage: Arc<dyn Storage> = h.raw.clone();
    let before = storage.scan_keys("", None, 10_000).await.unwrap();
    let p = CreateParams {
        parent: "hnosuchparent".into(),
        policies: vec!["default".into()],
        ttl: 3600,
        path: "auth/token/create".into(),
        ..Default::default()
    };
    let err = h.store.create(p).await.unwrap_err();
    assert!(err.to_string().contains("parent token not found"), "{err}");
    // Written, found orphaned, undone: no token, accessor or parent link stays.
    assert_eq!(storage.scan_keys("", None, 10_000).await.unwrap(), before);
    assert_eq!(h.hooks.count("revoked"), 1);
}
