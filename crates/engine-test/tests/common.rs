//! A core on in-memory storage with a manual clock and the test engine at `test/`.

// Tests and their helpers may unwrap: a panic is a failed test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use lessor_core::clock::ManualClock;
use lessor_core::core::{Core, CoreConfig, Factory};
use lessor_core::logical::{Operation, Request, Response};
use lessor_storage::Storage;
use serde_json::{Value, json};

pub const START: i64 = 1_800_000_000;

pub struct Env {
    pub core: Arc<Core>,
    pub clock: Arc<ManualClock>,
    pub storage: Arc<dyn Storage>,
    pub root: String,
    pub key: Vec<u8>,
}

pub fn factories() -> BTreeMap<String, Factory> {
    let mut f = lessor_server::factories();
    f.insert(
        lessor_engine_test::TYPE.into(),
        Arc::new(lessor_engine_test::factory),
    );
    f
}

fn config() -> CoreConfig {
    CoreConfig {
        manual_scheduler: true,
        ..CoreConfig::default()
    }
}

impl Env {
    pub async fn new() -> Env {
        Env::over(Arc::new(lessor_storage::inmem::InMem::new())).await
    }

    /// As `new`, over the given (empty) storage.
    pub async fn over(storage: Arc<dyn Storage>) -> Env {
        let clock = Arc::new(ManualClock::new(START));
        let core = Core::with_clock(storage.clone(), config(), factories(), clock.clone());
        let (key, root) = core.dev_init(Some("root")).await.unwrap();
        let env = Env {
            core,
            clock,
            storage,
            root,
            key,
        };
        env.ok(
            Operation::Update,
            "sys/mounts/test",
            json!({"type": "lessor-test"}),
        )
        .await;
        env
    }

    /// A second core over the same storage, as after a restart, unsealed.
    pub async fn restart(&self) -> Env {
        self.core.seal_now().await;
        let core = Core::with_clock(
            self.storage.clone(),
            config(),
            factories(),
            self.clock.clone(),
        );
        core.unseal(&self.key).await.unwrap();
        Env {
            core,
            clock: self.clock.clone(),
            storage: self.storage.clone(),
            root: self.root.clone(),
            key: self.key.clone(),
        }
    }

    pub async fn call_as(
        &self,
        token: &str,
        op: Operation,
        path: &str,
        data: Value,
    ) -> lessor_core::Result<Option<Response>> {
        let req = Request::new(op, path)
            .with_data(data.as_object().cloned().unwrap_or_default())
            .with_token(token);
        self.core.handle(req).await
    }

    pub async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> lessor_core::Result<Option<Response>> {
        self.call_as(&self.root.clone(), op, path, data).await
    }

    pub async fn ok(&self, op: Operation, path: &str, data: Value) -> Option<Response> {
        match self.call(op, path, data).await {
            Ok(r) => r,
            Err(e) => panic!("{path}: {e}"),
        }
    }

    pub async fn data(&self, op: Operation, path: &str, data: Value) -> Value {
        let r = self.ok(op, path, data).await.expect("a response");
        Value::Object(r.data.unwrap_or_default())
    }

    pub async fn configure(&self, cfg: Value) {
        self.ok(Operation::Update, "test/config", cfg).await;
    }

    /// Issues one credential; returns (lease id, resource id).
    pub async fn issue(&self) -> (String, String) {
        let r = self
            .ok(Operation::Read, "test/creds/role", json!({}))
            .await
            .unwrap();
        let resource = r.data.as_ref().unwrap()["resource"]
            .as_str()
            .unwrap()
            .to_string();
        (r.lease_id, resource)
    }

    /// A token with `ttl` (so a lease) and the default policy; returns the client token.
    pub async fn token(&self, ttl: &str) -> String {
        self.token_with(&["default"], ttl).await
    }

    /// A token with `ttl` and `policies`; returns the client token.
    pub async fn token_with(&self, policies: &[&str], ttl: &str) -> String {
        let r = self
            .ok(
                Operation::Update,
                "auth/token/create",
                json!({"ttl": ttl, "policies": policies}),
            )
            .await;
        r.and_then(|r| r.auth).unwrap().client_token
    }

    /// Renews a secret lease by `increment` seconds through `sys/leases/renew`.
    pub async fn renew(&self, lease: &str, increment: i64) -> Response {
        let r = self
            .ok(
                Operation::Update,
                "sys/leases/renew",
                json!({"lease_id": lease, "increment": increment}),
            )
            .await;
        r.unwrap()
    }

    /// Renews `token` itself by `increment` (a duration string).
    pub async fn renew_token(&self, token: &str, increment: &str) {
        self.call_as(
            token,
            Operation::Update,
            "auth/token/renew-self",
            json!({"increment": increment}),
        )
        .await
        .unwrap();
    }

    pub async fn resources(&self) -> usize {
        self.data(Operation::Read, "test/resources", json!({}))
            .await["count"]
            .as_u64()
            .unwrap() as usize
    }

    pub async fn lookup(&self, lease: &str) -> lessor_core::Result<Option<Response>> {
        self.call(
            Operation::Update,
            "sys/leases/lookup",
            json!({"lease_id": lease}),
        )
        .await
    }

    /// One of the test engine's counters (`test/stats`).
    pub async fn stat(&self, name: &str) -> u64 {
        self.data(Operation::Read, "test/stats", json!({})).await[name]
            .as_u64()
            .unwrap()
    }

    /// Waits until the engine counter `name` reaches `n`: a call slowed by the engine's
    /// delay knobs is then in flight. Fails rather than hangs if it never does.
    pub async fn until_stat(&self, name: &str, n: u64) {
        for _ in 0..10_000 {
            if self.stat(name).await >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("engine counter {name} never reached {n}");
    }

    pub async fn run_due(&self) -> usize {
        self.core.active().unwrap().expiration.run_due_now().await
    }

    pub async fn irrevocable(&self) -> u64 {
        self.data(
            Operation::Read,
            "sys/leases/count",
            json!({"type": "irrevocable"}),
        )
        .await["lease_count"]
            .as_u64()
            .unwrap()
    }
}
