//! Lease workloads on the test engine (`lessor-test-server`, mount type `lessor-test`):
//! `Issue` makes one dynamic credential, so one lease, per request (reserve -> create ->
//! activate); `renew` renews leases made during setup through `sys/leases/renew`.
//!
//! With `LESSOR_LOADGEN_EXPIRE_AT=<unix seconds>` in the environment every request asks for
//! the TTL that makes its lease expire at that second, so a whole run's leases come due
//! together (the expiry-lateness benchmark). A request crossing a second boundary between
//! this clock read and the server's may land one second later.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;

use super::{Cycle, Setup, Workload};
use crate::client::{Call, Client};
use crate::error::{Error, Result};

const DEFAULT_MOUNT: &str = "test";
const EXPIRE_AT_ENV: &str = "LESSOR_LOADGEN_EXPIRE_AT";
/// Renewal spreads over at most this many leases (like token renewal's pool).
const RENEW_POOL_MAX: u64 = 1000;

fn creds_path(setup: &Setup) -> String {
    let mount = setup.mount.as_deref().unwrap_or(DEFAULT_MOUNT);
    format!("{}/creds/bench", mount.trim_matches('/'))
}

pub struct Issue {
    path: String,
    expire_at: Option<i64>,
}

impl Issue {
    pub fn new(setup: &Setup) -> Self {
        let expire_at = std::env::var(EXPIRE_AT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok());
        Self {
            path: creds_path(setup),
            expire_at,
        }
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Workload for Issue {
    fn call(&self, _seq: u64) -> Call {
        match self.expire_at {
            None => Call::get(self.path.clone()),
            Some(at) => {
                // At least 1 s: the engine reads 0 as "its configured TTL".
                let ttl = (at - now_unix()).max(1);
                Call::post(
                    self.path.clone(),
                    Bytes::from(format!(r#"{{"ttl":"{ttl}s"}}"#)),
                )
            }
        }
    }
}

/// Renews a pool of test-engine leases made in setup through `sys/leases/renew`.
pub async fn renew(client: &Client, setup: &Setup) -> Result<Cycle> {
    let count = setup.keys.clamp(1, RENEW_POOL_MAX);
    let (client, path) = (client.clone(), creds_path(setup));
    Cycle::prepare("sys/leases/renew", count, setup.width, move |_| {
        let (client, path) = (client.clone(), path.clone());
        async move {
            let lease = issue_lease(&client, &path).await?;
            let body = serde_json::json!({ "lease_id": lease, "increment": "1h" });
            Ok(Bytes::from(body.to_string()))
        }
    })
    .await
}

async fn issue_lease(client: &Client, path: &str) -> Result<String> {
    let step = "issue a test-engine lease to renew";
    let reply = client.expect_ok(step, &Call::get(path)).await?;
    let json: Value = serde_json::from_slice(&reply.body).map_err(|e| Error::SetupOther {
        step: step.into(),
        reason: format!("response is not JSON: {e}"),
    })?;
    json.get("lease_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Error::SetupOther {
            step: step.into(),
            reason: "response has no lease_id".into(),
        })
}
