//! Lease workloads on the test engine (`lessor-test-server`, mount type `lessor-test`): each
//! request issues one dynamic credential, so one lease, through reserve -> create -> activate.
//!
//! With `LESSOR_LOADGEN_EXPIRE_AT=<unix seconds>` in the environment every request asks for
//! the TTL that makes its lease expire at that second, so a whole run's leases come due
//! together (the expiry-lateness benchmark). A request crossing a second boundary between
//! this clock read and the server's may land one second later.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{Setup, Workload};
use crate::client::Call;

const DEFAULT_MOUNT: &str = "test";
const EXPIRE_AT_ENV: &str = "LESSOR_LOADGEN_EXPIRE_AT";

pub struct Issue {
    path: String,
    expire_at: Option<i64>,
}

impl Issue {
    pub fn new(setup: &Setup) -> Self {
        let mount = setup.mount.as_deref().unwrap_or(DEFAULT_MOUNT);
        let expire_at = std::env::var(EXPIRE_AT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok());
        Self {
            path: format!("{}/creds/bench", mount.trim_matches('/')),
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
