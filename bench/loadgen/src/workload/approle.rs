//! AppRole logins: each request is `POST auth/<mount>/login` with one role id and one secret id
//! of unlimited uses, so each mints a token (and its lease) after checking both ids.
//!
//! Setup enables AppRole at the mount (default `approle`; an existing AppRole mount is reused),
//! writes the role `bench`, reads its role id and generates one secret id.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Setup, Workload};
use crate::client::{Call, Client};
use crate::error::{Error, Result};

const DEFAULT_MOUNT: &str = "approle";
const ROLE: &str = "bench";

pub struct Login {
    path: String,
    /// The login body; the ids live only here.
    body: Bytes,
}

impl Login {
    pub async fn prepare(client: &Client, setup: &Setup) -> Result<Self> {
        let mount = setup
            .mount
            .as_deref()
            .unwrap_or(DEFAULT_MOUNT)
            .trim_matches('/')
            .to_owned();
        enable(client, &mount).await?;
        let role = format!("auth/{mount}/role/{ROLE}");
        let role_body =
            json!({"token_policies": ["default"], "token_ttl": "1h", "secret_id_num_uses": 0});
        client
            .expect_ok(
                "write the AppRole role",
                &Call::post(role.clone(), role_body.to_string()),
            )
            .await?;
        let role_id = field(
            client,
            "read the role id",
            &Call::get(format!("{role}/role-id")),
            "/data/role_id",
        )
        .await?;
        let secret_id = field(
            client,
            "generate a secret id",
            &Call::post(format!("{role}/secret-id"), "{}"),
            "/data/secret_id",
        )
        .await?;
        let body = json!({"role_id": role_id, "secret_id": secret_id});
        Ok(Self {
            path: format!("auth/{mount}/login"),
            body: Bytes::from(body.to_string()),
        })
    }
}

impl Workload for Login {
    fn call(&self, _seq: u64) -> Call {
        Call::post(self.path.clone(), self.body.clone())
    }
}

/// Enables AppRole at `mount` unless something is mounted there already.
async fn enable(client: &Client, mount: &str) -> Result<()> {
    let call = Call::post(format!("sys/auth/{mount}"), r#"{"type":"approle"}"#);
    let reply = client.send(&call).await?;
    if reply.status.is_success() || String::from_utf8_lossy(&reply.body).contains("already in use")
    {
        return Ok(());
    }
    client.expect_ok("enable AppRole", &call).await.map(|_| ())
}

/// One string of a setup reply's JSON, at `pointer`.
async fn field(client: &Client, step: &str, call: &Call, pointer: &str) -> Result<String> {
    let reply = client.expect_ok(step, call).await?;
    let json: Value = serde_json::from_slice(&reply.body).map_err(|e| Error::SetupOther {
        step: step.into(),
        reason: format!("response is not JSON: {e}"),
    })?;
    json.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::SetupOther {
            step: step.into(),
            reason: format!("response has no {pointer}"),
        })
}
