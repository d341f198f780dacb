//! `secrets enable|disable|list|tune` and `auth enable|disable|list|tune`: the same four
//! operations on two mount tables (`sys/mounts`, `sys/auth`), told apart by [`Table`].

use serde_json::{Map, Value, json};

use super::{CmdResult, Command, Ctx, Exit, sanitize_path};
use crate::args::{Flag, parse_pairs};
use crate::client::Body;
use crate::output;

/// Which mount table a command works on, and how its messages name things.
#[derive(Clone, Copy)]
struct Table {
    api: &'static str,
    /// "secrets engine" / "auth method"
    noun: &'static str,
    plural: &'static str,
}

const SECRETS: Table = Table {
    api: "sys/mounts",
    noun: "secrets engine",
    plural: "secrets engines",
};
const AUTH: Table = Table {
    api: "sys/auth",
    noun: "auth method",
    plural: "enabled authentications",
};

/// Flags shared by enable and tune.
const CONFIG_FLAGS: &[Flag] = &[
    Flag::string(&["description"]),
    Flag::string(&["default-lease-ttl"]),
    Flag::string(&["max-lease-ttl"]),
    Flag::multi(&["options"]),
    Flag::string(&["version"]),
    Flag::string(&["listing-visibility"]),
    Flag::boolean(&["force-no-cache"]),
    Flag::string(&["token-type"]),
];
/// Flags only enable takes.
const ENABLE_ONLY: &[Flag] = &[
    Flag::string(&["path"]),
    Flag::boolean(&["local"]),
    Flag::boolean(&["seal-wrap"]),
    Flag::string(&["plugin-name"]),
    Flag::string(&["plugin-version"]),
];
const LIST_FLAGS: &[Flag] = &[Flag::boolean(&["detailed"])];

pub(super) fn commands() -> Vec<Command> {
    vec![
        Command {
            words: &["secrets", "enable"],
            flags: &[CONFIG_FLAGS, ENABLE_ONLY],
            run: |c| enable(c, SECRETS),
            help: "Enable a secrets engine",
        },
        Command {
            words: &["secrets", "disable"],
            flags: &[],
            run: |c| disable(c, SECRETS),
            help: "Disable a secrets engine",
        },
        Command {
            words: &["secrets", "list"],
            flags: &[LIST_FLAGS],
            run: |c| list(c, SECRETS),
            help: "List enabled secrets engines",
        },
        Command {
            words: &["secrets", "tune"],
            flags: &[CONFIG_FLAGS],
            run: |c| tune(c, SECRETS),
            help: "Tune a secrets engine configuration",
        },
        Command {
            words: &["auth", "enable"],
            flags: &[CONFIG_FLAGS, ENABLE_ONLY],
            run: |c| enable(c, AUTH),
            help: "Enable an auth method",
        },
        Command {
            words: &["auth", "disable"],
            flags: &[],
            run: |c| disable(c, AUTH),
            help: "Disable an auth method",
        },
        Command {
            words: &["auth", "list"],
            flags: &[LIST_FLAGS],
            run: |c| list(c, AUTH),
            help: "List enabled auth methods",
        },
        Command {
            words: &["auth", "tune"],
            flags: &[CONFIG_FLAGS],
            run: |c| tune(c, AUTH),
            help: "Tune an auth method configuration",
        },
    ]
}

/// The `config` object and `options` map of an enable or tune request.
struct MountSettings {
    config: Map<String, Value>,
    options: Map<String, Value>,
}

/// Builds [`MountSettings`] from the shared flags.
fn config_from_flags(ctx: &Ctx) -> Result<MountSettings, Exit> {
    let mut config = Map::new();
    for (flag, key) in [
        ("default-lease-ttl", "default_lease_ttl"),
        ("max-lease-ttl", "max_lease_ttl"),
    ] {
        if let Some(v) = ctx.flags.get(flag) {
            // "system" is a valid value for TTLs; anything else must be a duration.
            let v = if v == "system" {
                v.to_string()
            } else {
                ctx.duration_flag(flag)?.unwrap_or_default()
            };
            config.insert(key.into(), Value::String(v));
        }
    }
    for (flag, key) in [
        ("listing-visibility", "listing_visibility"),
        ("token-type", "token_type"),
    ] {
        if let Some(v) = ctx.flags.get(flag) {
            config.insert(key.into(), Value::String(v.to_string()));
        }
    }
    if ctx.flags.has("force-no-cache") {
        config.insert(
            "force_no_cache".into(),
            Value::Bool(ctx.flags.bool("force-no-cache")),
        );
    }
    let mut options = parse_pairs(ctx.flags.all("options"))?;
    if let Some(v) = ctx.flags.get("version") {
        options.insert("version".into(), Value::String(v.to_string()));
    }
    Ok(MountSettings { config, options })
}

fn enable(ctx: &mut Ctx, table: Table) -> CmdResult {
    ctx.flags.expect_args(1, 1)?;
    let kind = ctx.args()[0].clone();
    let path = sanitize_path(ctx.flags.get("path").unwrap_or(&kind));
    let MountSettings { config, options } = config_from_flags(ctx)?;
    let mut body = json!({
        "type": ctx.flags.get("plugin-name").unwrap_or(&kind),
        "description": ctx.flags.get("description").unwrap_or(""),
        "config": config,
        "local": ctx.flags.bool("local"),
        "seal_wrap": ctx.flags.bool("seal-wrap"),
    });
    if !options.is_empty() {
        body["options"] = Value::Object(options);
    }
    if let Some(v) = ctx.flags.get("plugin-version") {
        body["plugin_version"] = Value::String(v.to_string());
    }
    ctx.client
        .request(
            "POST",
            &format!("{}/{path}", table.api),
            &[],
            Body::Json(&body),
        )
        .map_err(|e| {
            let context = if table.api == AUTH.api {
                format!("Error enabling {kind} auth")
            } else {
                "Error enabling".to_string()
            };
            Exit::api(context, &e)
        })?;
    if table.api == AUTH.api {
        output::outln(&format!("Success! Enabled {kind} auth method at: {path}/"));
    } else {
        output::outln(&format!(
            "Success! Enabled the {kind} secrets engine at: {path}/"
        ));
    }
    Ok(0)
}

fn disable(ctx: &mut Ctx, table: Table) -> CmdResult {
    ctx.flags.expect_args(1, 1)?;
    let path = sanitize_path(&ctx.args()[0]);
    ctx.client
        .delete(&format!("{}/{path}", table.api), &[])
        .map_err(|e| Exit::api(format!("Error disabling {} at {path}", table.noun), &e))?;
    output::outln(&format!(
        "Success! Disabled the {} (if it existed) at: {path}/",
        table.noun
    ));
    Ok(0)
}

fn tune(ctx: &mut Ctx, table: Table) -> CmdResult {
    ctx.flags.expect_args(1, 1)?;
    let path = sanitize_path(&ctx.args()[0]);
    let MountSettings { config, options } = config_from_flags(ctx)?;
    let mut body = Value::Object(config);
    if let Some(d) = ctx.flags.get("description") {
        body["description"] = Value::String(d.to_string());
    }
    if !options.is_empty() {
        body["options"] = Value::Object(options);
    }
    ctx.client
        .request(
            "POST",
            &format!("{}/{path}/tune", table.api),
            &[],
            Body::Json(&body),
        )
        .map_err(|e| Exit::api("Error tuning", &e))?;
    output::outln(&format!("Success! Tuned the {} at: {path}/", table.noun));
    Ok(0)
}

fn ttl_cell(config: Option<&Value>, key: &str) -> String {
    match config.and_then(|c| c.get(key)).and_then(Value::as_i64) {
        Some(0) | None => "system".to_string(),
        Some(n) => n.to_string(),
    }
}

fn list(ctx: &mut Ctx, table: Table) -> CmdResult {
    ctx.flags.expect_args(0, 0)?;
    let body = ctx
        .client
        .read(table.api, &[])
        .map_err(|e| Exit::api(format!("Error listing {}", table.plural), &e))?
        .unwrap_or(Value::Null);
    // Newer servers put the table under `data`; the legacy top-level copy is the fallback.
    let mounts = body
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .or_else(|| body.as_object().cloned())
        .unwrap_or_default();
    if !ctx.format.is_table() {
        output::outln(&ctx.format.document(&Value::Object(mounts)));
        return Ok(0);
    }
    let mut paths: Vec<&String> = mounts.keys().collect();
    paths.sort();
    let detailed = ctx.flags.bool("detailed");
    let is_auth = table.api == AUTH.api;
    let mut rows = vec![if detailed {
        let mut h = vec!["Path", "Plugin", "Accessor", "Default TTL", "Max TTL"];
        if is_auth {
            h.push("Token Type");
        } else {
            h.push("Force No Cache");
        }
        h.extend([
            "Replication",
            "Seal Wrap",
            "External Entropy Access",
            "Options",
            "Description",
            "UUID",
            "Version",
            "Running Version",
            "Running SHA256",
            "Deprecation Status",
        ]);
        h.into_iter().map(str::to_string).collect()
    } else {
        let mut h = vec!["Path", "Type", "Accessor", "Description"];
        if is_auth {
            h.push("Version");
        }
        h.into_iter().map(str::to_string).collect::<Vec<_>>()
    }];
    for path in paths {
        let m = &mounts[path.as_str()];
        let s = |k: &str| m.get(k).map(output::go_value).unwrap_or_default();
        let config = m.get("config");
        let mut row = vec![path.clone(), s("type"), s("accessor")];
        if detailed {
            // The system and cubbyhole mounts have no lease TTLs of their own.
            let no_ttl = matches!(s("type").as_str(), "system" | "cubbyhole");
            for key in ["default_lease_ttl", "max_lease_ttl"] {
                row.push(if no_ttl {
                    "n/a".to_string()
                } else {
                    ttl_cell(config, key)
                });
            }
            let c = |k: &str| {
                config
                    .and_then(|c| c.get(k))
                    .map(output::go_value)
                    .unwrap_or_default()
            };
            row.push(if is_auth {
                c("token_type")
            } else {
                c("force_no_cache")
            });
            let local = m.get("local").and_then(Value::as_bool).unwrap_or(false);
            row.push(if local { "local" } else { "replicated" }.to_string());
            row.push(s("seal_wrap"));
            row.push(s("external_entropy_access"));
            row.push(match m.get("options") {
                Some(Value::Null) | None => "map[]".to_string(),
                Some(v) => output::go_value(v),
            });
            row.push(s("description"));
            row.push(s("uuid"));
            row.push(s("plugin_version"));
            row.push(s("running_plugin_version"));
            row.push(s("running_sha256"));
            row.push(s("deprecation_status"));
        } else {
            row.push(s("description"));
            if is_auth {
                row.push(s("plugin_version"));
            }
        }
        rows.push(row);
    }
    output::out(&output::table(&rows));
    Ok(0)
}
