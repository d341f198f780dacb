//! The `sys/` endpoints that answer raw bodies (no envelope) and work while sealed:
//! `init`, `seal-status`, `unseal`, `health`, `leader`.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::core::Core;
use crate::framework::field::{self, FieldType};
use crate::logical::{Operation, Request, Response};
use crate::seal::{SealStatus, decode_key};
use crate::{Error, Result};

/// Answers the request if it is one of the raw endpoints; `Ok(None)` otherwise.
pub async fn handle(core: &Arc<Core>, req: &Request) -> Result<Option<Response>> {
    let path = req.path.trim_end_matches('/');
    let write = matches!(req.operation, Operation::Update | Operation::Create);
    let resp = match (path, write) {
        ("sys/init", false) => {
            Response::raw(200, json!({"initialized": core.seal.initialized().await?}))
        }
        ("sys/init", true) => init(core, &req.data).await?,
        ("sys/seal-status", false) => Response::raw(200, seal_status(core).await?),
        ("sys/unseal", true) => unseal(core, &req.data).await?,
        ("sys/health", false) => health(core, &req.data, req.head).await?,
        ("sys/leader", false) => Response::raw(200, leader(core)),
        _ => return Ok(None),
    };
    Ok(Some(resp))
}

fn int_field(data: &Map<String, Value>, name: &str) -> Result<Option<i64>> {
    match data.get(name) {
        None => Ok(None),
        Some(v) => match field::parse(name, FieldType::Int, v)? {
            Some(field::Parsed::Int(i)) => Ok(Some(i)),
            _ => Ok(None),
        },
    }
}

async fn init(core: &Arc<Core>, data: &Map<String, Value>) -> Result<Response> {
    let shares = int_field(data, "secret_shares")?.unwrap_or(0);
    let threshold = int_field(data, "secret_threshold")?.unwrap_or(0);
    if !(0..=255).contains(&shares) || !(0..=255).contains(&threshold) {
        return Err(Error::bad(
            "invalid seal configuration: secret shares and threshold must be between 1 and 255",
        ));
    }
    let (keys, root_token) = core.init(shares as u32, threshold as u32).await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Response::raw(
        200,
        json!({
            "keys": keys.iter().map(hex::encode).collect::<Vec<_>>(),
            "keys_base64": keys.iter().map(|k| b64.encode(k)).collect::<Vec<_>>(),
            "root_token": root_token,
        }),
    ))
}

/// The seal-status object (also the answer of `sys/unseal`).
pub async fn seal_status(core: &Arc<Core>) -> Result<Value> {
    let s = core.seal.status().await?;
    Ok(status_json(core, &s))
}

fn status_json(core: &Core, s: &SealStatus) -> Value {
    let mut v = json!({
        "type": s.kind,
        "initialized": s.initialized,
        "sealed": s.sealed,
        "t": s.t,
        "n": s.n,
        "progress": s.progress,
        "nonce": s.nonce,
        "version": core.config.version,
        "build_date": "",
        "migration": false,
        "recovery_seal": false,
        "storage_type": core.physical.kind(),
    });
    if !s.sealed
        && let Some(o) = v.as_object_mut()
        && let Some(a) = core.active()
    {
        o.insert("cluster_name".into(), json!(a.cluster_name));
        o.insert("cluster_id".into(), json!(a.cluster_id));
    }
    v
}

async fn unseal(core: &Arc<Core>, data: &Map<String, Value>) -> Result<Response> {
    let reset = match data.get("reset") {
        Some(v) => matches!(
            field::parse("reset", FieldType::Bool, v)?,
            Some(field::Parsed::Bool(true))
        ),
        None => false,
    };
    if reset {
        if !core.sealed() {
            return Err(Error::bad("vault is unsealed"));
        }
        core.seal.reset();
        return Ok(Response::raw(200, seal_status(core).await?));
    }
    let key = match data.get("key").and_then(Value::as_str) {
        Some(k) if !k.is_empty() => k,
        _ => {
            return Err(Error::bad(
                "'key' must be specified in request body as JSON, or 'reset' set to true",
            ));
        }
    };
    if !core.seal.initialized().await? {
        return Err(Error::bad("Vault is not initialized"));
    }
    let key = decode_key(key)?;
    let status = core.unseal(&key).await?;
    Ok(Response::raw(200, status_json(core, &status)))
}

async fn health(core: &Arc<Core>, q: &Map<String, Value>, head: bool) -> Result<Response> {
    let code = |name: &str, default: i64| -> Result<i64> {
        match q.get(name) {
            None => Ok(default),
            Some(v) => match field::parse(name, FieldType::Int, v) {
                Ok(Some(field::Parsed::Int(i))) => Ok(i),
                _ => Err(Error::bad(format!("bad code for {name}: {v}"))),
            },
        }
    };
    let initialized = core.seal.initialized().await?;
    let sealed = core.sealed();
    let status = if !initialized {
        code("uninitcode", 501)?
    } else if sealed {
        code("sealedcode", 503)?
    } else {
        code("activecode", 200)?
    };
    // Validate the remaining overrides the way Vault does, even if this node uses none.
    for name in ["standbycode", "drsecondarycode", "performancestandbycode"] {
        code(name, 0)?;
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut body = json!({
        "initialized": initialized,
        "sealed": sealed,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": now,
        "version": core.config.version,
        "enterprise": false,
        "echo_duration_ms": 0,
        "clock_skew_ms": 0,
    });
    if !sealed
        && let Some(o) = body.as_object_mut()
        && let Some(a) = core.active()
    {
        o.insert("cluster_name".into(), json!(a.cluster_name));
        o.insert("cluster_id".into(), json!(a.cluster_id));
    }
    let status = u16::try_from(status).map_err(|_| Error::bad("invalid status code"))?;
    let mut r = Response::raw(status, body);
    if head && let Some(raw) = r.raw.as_mut() {
        raw.body = None;
    }
    Ok(r)
}

fn leader(core: &Arc<Core>) -> Value {
    let active_time = core
        .active()
        .map(|a| a.active_since.clone())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
    json!({
        "ha_enabled": false,
        "is_self": false,
        "active_time": active_time,
        "leader_address": "",
        "leader_cluster_address": "",
        "performance_standby": false,
        "performance_standby_last_remote_wal": 0,
    })
}
