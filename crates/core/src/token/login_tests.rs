//! Login tokens through the whole request pipeline: a small auth method whose renewal
//! answer the test controls, mounted in a dev-mode core. Renewal asks the method again
//! under the auth mount's limits, failed logins are counted per mount, and a token bound
//! to CIDR blocks is refused outside them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lessor_storage::inmem::InMem;
use serde_json::{Map, Value, json};

use crate::clock::ManualClock;
use crate::core::{Core, CoreConfig, Factory};
use crate::framework::field::{self, FieldData};
use crate::framework::{AuthRenewCtx, AuthRenewGrant, Backend, Ctx, Path, PathHandler};
use crate::logical::{AuthSpec, Operation, Request, Response};
use crate::{Error, Result};

const START: i64 = 1_800_000_000;
/// What the fake method's renewal answers.
const GRANT: u8 = 0;
const ROLE_GONE: u8 = 1;
const NO_OPINION: u8 = 2;

struct Fake {
    paths: Vec<Path>,
    renew: Arc<AtomicU8>,
}

struct Login;

#[async_trait]
impl PathHandler for Login {
    async fn handle(&self, _: &Ctx<'_>, _: Operation, d: &FieldData) -> Result<Option<Response>> {
        if d.string("password") != "ok" {
            return Err(Error::bad("invalid credentials"));
        }
        let mut internal = Map::new();
        internal.insert("role".into(), json!("r"));
        Ok(Some(Response {
            auth: Some(AuthSpec {
                policies: vec!["p".into()],
                display_name: "fake".into(),
                ttl: Duration::from_secs(60),
                renewable: true,
                internal,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

#[async_trait]
impl Backend for Fake {
    fn paths(&self) -> &[Path] {
        &self.paths
    }
    fn unauthenticated_paths(&self) -> &[&'static str] {
        &["login"]
    }
    async fn renew_auth(&self, ctx: &AuthRenewCtx<'_>) -> Result<Option<AuthRenewGrant>> {
        assert_eq!(ctx.internal["role"], json!("r"));
        assert!(ctx.policies.iter().any(|p| p == "p"));
        match self.renew.load(Ordering::SeqCst) {
            ROLE_GONE => Err(Error::bad("role could not be found")),
            NO_OPINION => Ok(None),
            _ => Ok(Some(AuthRenewGrant {
                ttl: Duration::from_secs(120),
                max_ttl: Duration::from_secs(600),
                period: Duration::ZERO,
            })),
        }
    }
}

struct H {
    core: Arc<Core>,
    clock: Arc<ManualClock>,
    renew: Arc<AtomicU8>,
    root: String,
}

async fn harness() -> H {
    let renew = Arc::new(AtomicU8::new(GRANT));
    let r = renew.clone();
    let factory: Factory = Arc::new(move |_| {
        let login = Path::new("login", Arc::new(Login))
            .fields(vec![field::str("password", "The password.")])
            .ops(&[Operation::Update]);
        Ok(Arc::new(Fake {
            paths: vec![login],
            renew: r.clone(),
        }) as Arc<dyn Backend>)
    });
    let clock = Arc::new(ManualClock::new(START));
    let config = CoreConfig {
        manual_scheduler: true,
        ..Default::default()
    };
    let core = Core::with_clock(
        Arc::new(InMem::new()),
        config,
        BTreeMap::from([("fake".to_string(), factory)]),
        clock.clone(),
    );
    let (_, root) = core.dev_init(None).await.unwrap();
    H {
        core,
        clock,
        renew,
        root,
    }
}

impl H {
    async fn call(
        &self,
        token: &str,
        op: Operation,
        path: &str,
        data: Value,
        from: &str,
    ) -> Result<Option<Response>> {
        let mut req =
            Request::new(op, path).with_data(data.as_object().cloned().unwrap_or_default());
        if !token.is_empty() {
            req = req.with_token(token);
        }
        req.remote_addr = from.parse::<SocketAddr>().ok();
        self.core.handle(req).await
    }

    async fn root(&self, op: Operation, path: &str, data: Value) -> Option<Response> {
        self.call(&self.root.clone(), op, path, data, "127.0.0.1:1")
            .await
            .unwrap()
    }

    async fn login(&self, mount: &str) -> String {
        let r = self
            .call(
                "",
                Operation::Update,
                &format!("auth/{mount}/login"),
                json!({"password": "ok"}),
                "127.0.0.1:1",
            )
            .await
            .unwrap()
            .unwrap();
        r.auth.unwrap().client_token
    }

    async fn create(&self, role: &str) -> String {
        self.root(
            Operation::Update,
            &format!("auth/token/create/{role}"),
            json!({}),
        )
        .await
        .and_then(|r| r.auth)
        .unwrap()
        .client_token
    }

    async fn renew_self(&self, token: &str) -> Result<AuthSpec> {
        let r = self
            .call(
                token,
                Operation::Update,
                "auth/token/renew-self",
                json!({}),
                "127.0.0.1:1",
            )
            .await?;
        Ok(r.and_then(|r| r.auth).unwrap())
    }
}

#[tokio::test]
async fn login_renewal_asks_the_method_under_the_auth_mounts_limits() {
    let h = harness().await;
    h.root(Operation::Update, "sys/auth/fake", json!({"type": "fake"}))
        .await;
    let token = h.login("fake").await;

    // The method's terms now apply (TTL 120 instead of the 60 issued).
    let a = h.renew_self(&token).await.unwrap();
    assert_eq!(a.lease_duration, 120);

    // The auth mount's max counts from creation; `auth/token/`'s does not matter.
    h.root(
        Operation::Update,
        "sys/auth/fake/tune",
        json!({"max_lease_ttl": "100s"}),
    )
    .await;
    h.clock.advance(10);
    let a = h.renew_self(&token).await.unwrap();
    assert_eq!(a.lease_duration, 90);

    // A method without an opinion keeps the issued terms.
    h.root(
        Operation::Update,
        "sys/auth/fake/tune",
        json!({"max_lease_ttl": "1h"}),
    )
    .await;
    h.renew.store(NO_OPINION, Ordering::SeqCst);
    assert_eq!(h.renew_self(&token).await.unwrap().lease_duration, 60);

    // The role is gone: refused, in the method's words, by renew and renew-accessor alike.
    h.renew.store(ROLE_GONE, Ordering::SeqCst);
    let e = h.renew_self(&token).await.unwrap_err();
    assert_eq!(
        (e.status(), e.to_string().as_str()),
        (400, "failed to renew entry: role could not be found")
    );
    let accessor = h
        .root(
            Operation::Update,
            "auth/token/lookup",
            json!({"token": token}),
        )
        .await
        .and_then(|r| r.data)
        .unwrap()["accessor"]
        .clone();
    let e = h
        .call(
            &h.root.clone(),
            Operation::Update,
            "auth/token/renew-accessor",
            json!({"accessor": accessor}),
            "127.0.0.1:1",
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), 400);
}

#[tokio::test]
async fn failed_logins_are_counted_per_mount() {
    let h = harness().await;
    let mount = format!("fake-{}", crate::mounts::random_hex(4));
    h.root(
        Operation::Update,
        &format!("sys/auth/{mount}"),
        json!({"type": "fake"}),
    )
    .await;
    let key = format!("auth/{mount}/");
    for _ in 0..2 {
        let e = h
            .call(
                "",
                Operation::Update,
                &format!("auth/{mount}/login"),
                json!({"password": "no"}),
                "127.0.0.1:1",
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), 400);
    }
    h.login(&mount).await;
    assert_eq!(super::login_failures().get(&key), 2);
    assert_eq!(super::login_failures().snapshot()[&key].kind, "fake");
}

#[tokio::test]
async fn bound_cidrs_are_enforced_on_use() {
    let h = harness().await;
    for (role, cidr) in [("far", "10.0.0.0/8"), ("near", "127.0.0.0/8")] {
        h.root(
            Operation::Update,
            &format!("auth/token/roles/{role}"),
            json!({"token_bound_cidrs": [cidr]}),
        )
        .await;
    }
    let far = h.create("far").await;
    let near = h.create("near").await;
    let lookup = |t: String, from: &'static str| {
        let h = &h;
        async move {
            h.call(
                &t,
                Operation::Read,
                "auth/token/lookup-self",
                json!({}),
                from,
            )
            .await
        }
    };
    let e = lookup(far.clone(), "127.0.0.1:5000").await.unwrap_err();
    assert_eq!(
        (e.status(), e.to_string().as_str()),
        (403, "permission denied")
    );
    assert!(lookup(far.clone(), "10.1.2.3:5000").await.is_ok());
    assert!(lookup(near.clone(), "127.0.0.1:5000").await.is_ok());
    // No known address: a bound token is refused.
    let e = h
        .call(
            &near,
            Operation::Read,
            "auth/token/lookup-self",
            json!({}),
            "unknown",
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), 403);
}
