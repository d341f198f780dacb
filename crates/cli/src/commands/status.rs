//! `status`: seal status then leader, exit 2 when sealed; also the seal-status rendering
//! `operator unseal` reuses.

use serde_json::{Map, Value};

use super::{CmdResult, Command, Ctx, Exit};
use crate::client::Client;
use crate::output;

pub(super) fn commands() -> Vec<Command> {
    vec![Command {
        words: &["status"],
        flags: &[],
        run: status,
        help: "Print seal and HA status",
    }]
}

fn status(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(0, 0)?;
    let seal = ctx
        .client
        .request("GET", "sys/seal-status", &[], crate::client::Body::None)
        .map(|r| r.body.unwrap_or(Value::Null))
        .map_err(|e| Exit::with_code(1, format!("Error checking seal status: {e}")))?;
    let code = print_seal_status(ctx, &seal)?;
    let sealed = seal.get("sealed").and_then(Value::as_bool).unwrap_or(true);
    Ok(if sealed { 2 } else { code })
}

/// The leader status; a sealed HA node cannot tell, which vault shows as HA enabled with
/// no leader details.
fn leader(client: &Client) -> Result<Value, Exit> {
    match client.request("GET", "sys/leader", &[], crate::client::Body::None) {
        Ok(r) => Ok(r.body.unwrap_or(Value::Null)),
        Err(e) if e.to_string().contains("Vault is sealed") => {
            Ok(serde_json::json!({ "ha_enabled": true }))
        }
        Err(e) => Err(Exit::with_code(
            1,
            format!("Error checking leader status: {e}"),
        )),
    }
}

/// Prints a seal-status body merged with the leader's HA fields, as `vault status` does.
pub(super) fn print_seal_status(ctx: &Ctx, seal: &Value) -> CmdResult {
    let leader = leader(&ctx.client)?;
    let lget = |k: &str| leader.get(k).cloned().unwrap_or(Value::Null);
    let ha_enabled = lget("ha_enabled").as_bool().unwrap_or(false);
    if !ctx.format.is_table() || ctx.field.is_some() {
        let mut merged = seal_status_document(seal);
        merged.insert("ha_enabled".into(), Value::Bool(ha_enabled));
        if ha_enabled {
            // Like the CLI's JSON, an unset (empty, false, zero) HA field is left out.
            for k in [
                "is_self",
                "active_time",
                "leader_address",
                "leader_cluster_address",
                "performance_standby",
                "performance_standby_last_remote_wal",
            ] {
                let v = lget(k);
                if !(v.is_null() || v == false || v == 0 || v == "") {
                    merged.insert(k.into(), v);
                }
            }
        }
        return ctx.print_object(&Value::Object(merged));
    }
    output::out(&output::kv_table(&seal_rows(seal, &leader)));
    Ok(0)
}

/// The seal status in the CLI's field order: always-present fields (with defaults), the
/// optional ones when the server sent them, then anything else the server added.
fn seal_status_document(seal: &Value) -> Map<String, Value> {
    let mut rest: Map<String, Value> = seal.as_object().cloned().unwrap_or_default();
    let mut out = Map::new();
    let defaults = [
        ("type", Value::String(String::new())),
        ("initialized", Value::Bool(false)),
        ("sealed", Value::Bool(true)),
        ("t", Value::from(0)),
        ("n", Value::from(0)),
        ("progress", Value::from(0)),
        ("nonce", Value::String(String::new())),
        ("version", Value::String(String::new())),
        ("build_date", Value::String(String::new())),
        ("migration", Value::Bool(false)),
    ];
    for (key, default) in defaults {
        out.insert(key.into(), rest.remove(key).unwrap_or(default));
    }
    for key in ["cluster_name", "cluster_id"] {
        if let Some(v) = rest.remove(key).filter(|v| v.as_str() != Some("")) {
            out.insert(key.into(), v);
        }
    }
    out.insert(
        "recovery_seal".into(),
        rest.remove("recovery_seal").unwrap_or(Value::Bool(false)),
    );
    if let Some(v) = rest.remove("storage_type") {
        out.insert("storage_type".into(), v);
    }
    out.extend(rest);
    out
}

fn seal_rows(seal: &Value, leader: &Value) -> Vec<(String, String)> {
    let s = |k: &str| seal.get(k).map(output::go_value).unwrap_or_default();
    let present = |k: &str| {
        seal.get(k)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    let mut rows = vec![
        ("Seal Type".to_string(), s("type")),
        ("Initialized".to_string(), s("initialized")),
        ("Sealed".to_string(), s("sealed")),
        ("Total Shares".to_string(), s("n")),
        ("Threshold".to_string(), s("t")),
    ];
    if seal.get("sealed").and_then(Value::as_bool).unwrap_or(true) {
        rows.push((
            "Unseal Progress".to_string(),
            format!("{}/{}", s("progress"), s("t")),
        ));
        rows.push(("Unseal Nonce".to_string(), s("nonce")));
    }
    rows.push(("Version".to_string(), s("version")));
    if present("build_date") {
        rows.push(("Build Date".to_string(), s("build_date")));
    }
    if present("commit_date") {
        rows.push(("Commit Date".to_string(), s("commit_date")));
    }
    if present("storage_type") {
        rows.push(("Storage Type".to_string(), s("storage_type")));
    }
    if present("cluster_name") {
        rows.push(("Cluster Name".to_string(), s("cluster_name")));
    }
    if present("cluster_id") {
        rows.push(("Cluster ID".to_string(), s("cluster_id")));
    }
    let l = |k: &str| leader.get(k).map(output::go_value).unwrap_or_default();
    let ha_enabled = leader
        .get("ha_enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    rows.push(("HA Enabled".to_string(), ha_enabled.to_string()));
    let sealed = seal.get("sealed").and_then(Value::as_bool).unwrap_or(true);
    // A sealed node knows nothing about its cluster.
    if ha_enabled && !sealed {
        let is_self = leader
            .get("is_self")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        rows.push(("HA Cluster".to_string(), l("leader_cluster_address")));
        rows.push((
            "HA Mode".to_string(),
            if is_self { "active" } else { "standby" }.to_string(),
        ));
        let active_time = l("active_time");
        if is_self && !active_time.is_empty() && !active_time.starts_with("0001-01-01") {
            rows.push(("Active Since".to_string(), active_time));
        }
        if !is_self {
            let addr = l("leader_address");
            let addr = if addr.is_empty() {
                "<none>".to_string()
            } else {
                addr
            };
            rows.push(("Active Node Address".to_string(), addr));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealed_rows_show_progress() {
        let seal = json!({"type": "shamir", "initialized": true, "sealed": true, "t": 2, "n": 3,
            "progress": 1, "nonce": "", "version": "0.1.0", "build_date": "2026-01-01T00:00:00Z"});
        let rows = seal_rows(&seal, &json!({"ha_enabled": false}));
        let names: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "Seal Type",
                "Initialized",
                "Sealed",
                "Total Shares",
                "Threshold",
                "Unseal Progress",
                "Unseal Nonce",
                "Version",
                "Build Date",
                "HA Enabled"
            ]
        );
        assert_eq!(rows[5].1, "1/2");
        assert_eq!(rows[6].1, "");
    }

    #[test]
    fn json_document_order() {
        let seal = json!({"sealed": false, "type": "shamir", "extra": 1, "cluster_name": "",
            "storage_type": "inmem"});
        let doc = seal_status_document(&seal);
        let keys: Vec<&str> = doc.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "type",
                "initialized",
                "sealed",
                "t",
                "n",
                "progress",
                "nonce",
                "version",
                "build_date",
                "migration",
                "recovery_seal",
                "storage_type",
                "extra"
            ]
        );
    }

    #[test]
    fn unsealed_ha_rows() {
        let seal = json!({"type": "shamir", "initialized": true, "sealed": false, "t": 1, "n": 1,
            "version": "0.1.0", "cluster_name": "c", "cluster_id": "id"});
        let leader = json!({"ha_enabled": true, "is_self": true, "active_time": "t0",
            "leader_cluster_address": "https://x:8201"});
        let rows = seal_rows(&seal, &leader);
        assert!(rows.iter().all(|(k, _)| k != "Unseal Progress"));
        assert!(rows.contains(&("HA Mode".to_string(), "active".to_string())));
        assert!(rows.contains(&("Cluster ID".to_string(), "id".to_string())));
        assert!(rows.contains(&("Active Since".to_string(), "t0".to_string())));

        let standby = json!({"ha_enabled": true, "is_self": false, "leader_address": ""});
        let rows = seal_rows(&seal, &standby);
        assert!(rows.contains(&("HA Mode".to_string(), "standby".to_string())));
        assert!(rows.contains(&("Active Node Address".to_string(), "<none>".to_string())));

        let sealed = json!({"sealed": true, "t": 1, "progress": 0});
        let rows = seal_rows(&sealed, &json!({"ha_enabled": true}));
        assert_eq!(
            rows.last().unwrap(),
            &("HA Enabled".to_string(), "true".to_string())
        );
    }
}
