//! KV workloads, v1 and v2, reads and writes over a fixed set of keys (`bench/0` ..).

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::{Setup, Workload, fan_out};
use crate::client::{Call, Client};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
}

/// Size of each stored value: a small secret, as most KV payloads are.
const VALUE_LEN: usize = 100;

/// A freshly mounted KV v2 answers writes only after its background setup; how long to wait.
const MOUNT_READY_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Kv {
    mount: String,
    version: Version,
    op: Op,
    keys: u64,
}

impl Kv {
    pub async fn prepare(client: &Client, setup: &Setup, version: Version, op: Op) -> Result<Self> {
        let default_mount = match version {
            Version::V1 => "bench-kv1",
            Version::V2 => "secret",
        };
        let kv = Self {
            mount: setup
                .mount
                .clone()
                .unwrap_or_else(|| default_mount.to_owned())
                .trim_matches('/')
                .to_owned(),
            version,
            op,
            keys: setup.keys.max(1),
        };
        kv.ensure_mount(client).await?;
        kv.wait_writable(client).await?;
        if op == Op::Read {
            kv.populate(client, setup.width).await?;
        }
        Ok(kv)
    }

    fn path(&self, key: u64) -> String {
        match self.version {
            Version::V1 => format!("{}/bench/{key}", self.mount),
            Version::V2 => format!("{}/data/bench/{key}", self.mount),
        }
    }

    /// A ~100-byte value that differs per write, so no layer can skip an unchanged write.
    fn body(&self, seq: u64) -> Bytes {
        let value = format!("{seq:0>width$}", width = VALUE_LEN);
        let body = match self.version {
            Version::V1 => format!(r#"{{"value":"{value}"}}"#),
            Version::V2 => format!(r#"{{"data":{{"value":"{value}"}}}}"#),
        };
        Bytes::from(body)
    }

    fn write(&self, seq: u64) -> Call {
        Call::post(self.path(seq % self.keys), self.body(seq))
    }

    /// Mounts the KV engine at the mount path unless something is there already; refuses a
    /// mount of the other KV version, which would make the numbers meaningless.
    async fn ensure_mount(&self, client: &Client) -> Result<()> {
        let step = "list mounts";
        let reply = client.expect_ok(step, &Call::get("sys/mounts")).await?;
        let json: Value = serde_json::from_slice(&reply.body).map_err(|e| Error::SetupOther {
            step: step.into(),
            reason: format!("response is not JSON: {e}"),
        })?;
        let table = json.get("data").unwrap_or(&json);
        let wanted = match self.version {
            Version::V1 => "1",
            Version::V2 => "2",
        };
        if let Some(mount) = table.get(format!("{}/", self.mount)) {
            let kind = mount.get("type").and_then(Value::as_str).unwrap_or("");
            // KV v1 mounts may carry no options at all.
            let version = mount
                .pointer("/options/version")
                .and_then(Value::as_str)
                .unwrap_or("1");
            if kind == "kv" && version == wanted {
                return Ok(());
            }
            return Err(Error::SetupOther {
                step: "check mount".into(),
                reason: format!(
                    "`{}/` is a `{kind}` mount (version {version}), not KV v{wanted}",
                    self.mount
                ),
            });
        }
        let body = serde_json::json!({ "type": "kv", "options": { "version": wanted } });
        client
            .expect_ok(
                "mount kv",
                &Call::post(format!("sys/mounts/{}", self.mount), body.to_string()),
            )
            .await?;
        Ok(())
    }

    async fn wait_writable(&self, client: &Client) -> Result<()> {
        let probe = Call::post(self.path(0), self.body(0));
        let deadline = tokio::time::Instant::now() + MOUNT_READY_TIMEOUT;
        loop {
            match client.expect_ok("first write", &probe).await {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn populate(&self, client: &Client, width: usize) -> Result<()> {
        let client = client.clone();
        let calls: std::sync::Arc<Vec<Call>> =
            std::sync::Arc::new((0..self.keys).map(|k| self.write(k)).collect());
        fan_out(self.keys, width, move |key| {
            let client = client.clone();
            let calls = calls.clone();
            async move {
                let index = usize::try_from(key).unwrap_or(usize::MAX);
                match calls.get(index) {
                    Some(call) => client.expect_ok("populate keys", call).await.map(drop),
                    None => Ok(()),
                }
            }
        })
        .await?;
        Ok(())
    }
}

impl Workload for Kv {
    fn call(&self, seq: u64) -> Call {
        match self.op {
            Op::Write => self.write(seq),
            Op::Read => Call::get(self.path(seq % self.keys)),
        }
    }
}
