//! Token workloads: creation (each request makes a token lease) and renewal.

use bytes::Bytes;
use serde_json::Value;

use super::{Cycle, Setup, Workload};
use crate::client::{Call, Client};
use crate::error::{Error, Result};

const CREATE_BODY: &str = r#"{"ttl":"1h","policies":["default"]}"#;

/// Renewal reuses at most this many tokens: enough that requests do not all contend on one
/// token's entry, few enough that setup stays short.
const RENEW_POOL_MAX: u64 = 100;

pub struct Create {
    body: Bytes,
}

impl Create {
    pub fn new() -> Self {
        Self {
            body: Bytes::from_static(CREATE_BODY.as_bytes()),
        }
    }
}

impl Workload for Create {
    fn call(&self, _seq: u64) -> Call {
        Call::post("auth/token/create", self.body.clone())
    }
}

/// Renews a pool of tokens made in setup through `auth/token/renew`.
pub async fn renew(client: &Client, setup: &Setup) -> Result<Cycle> {
    let count = setup.keys.clamp(1, RENEW_POOL_MAX);
    let client = client.clone();
    Cycle::prepare("auth/token/renew", count, setup.width, move |_| {
        let client = client.clone();
        async move {
            let token = create_token(&client).await?;
            let body = serde_json::json!({ "token": token, "increment": "1h" });
            Ok(Bytes::from(body.to_string()))
        }
    })
    .await
}

async fn create_token(client: &Client) -> Result<String> {
    let step = "create a token to renew";
    let reply = client
        .expect_ok(step, &Call::post("auth/token/create", CREATE_BODY))
        .await?;
    let json: Value = serde_json::from_slice(&reply.body).map_err(|e| Error::SetupOther {
        step: step.into(),
        reason: format!("response is not JSON: {e}"),
    })?;
    json.pointer("/auth/client_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::SetupOther {
            step: step.into(),
            reason: "response has no auth.client_token".into(),
        })
}
