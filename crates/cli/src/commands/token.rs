//! `token create|lookup|renew|revoke` on `auth/token/*`.

use serde_json::{Map, Value, json};

use super::{CmdResult, Command, Ctx, Exit};
use crate::args::{Flag, parse_duration_secs, parse_pairs};
use crate::output;

const CREATE_FLAGS: &[Flag] = &[
    Flag::multi(&["policy"]),
    Flag::string(&["ttl"]),
    Flag::string(&["explicit-max-ttl"]),
    Flag::string(&["period"]),
    Flag::boolean(&["orphan"]),
    Flag::boolean(&["no-default-policy"]),
    Flag::string(&["use-limit"]),
    Flag::boolean(&["renewable"]),
    Flag::string(&["display-name"]),
    Flag::multi(&["metadata"]),
    Flag::string(&["role"]),
    Flag::string(&["type"]),
    Flag::string(&["id"]),
    Flag::string(&["entity-alias"]),
];

pub(super) fn commands() -> Vec<Command> {
    vec![
        Command {
            words: &["token", "create"],
            flags: &[CREATE_FLAGS],
            run: create,
            help: "Create a new token",
        },
        Command {
            words: &["token", "lookup"],
            flags: const { &[&[Flag::boolean(&["accessor"])]] },
            run: lookup,
            help: "Display information about a token",
        },
        Command {
            words: &["token", "renew"],
            flags: const {
                &[&[
                    Flag::string(&["increment", "i"]),
                    Flag::boolean(&["accessor"]),
                ]]
            },
            run: renew,
            help: "Renew a token lease",
        },
        Command {
            words: &["token", "revoke"],
            flags: const {
                &[&[
                    Flag::boolean(&["self"]),
                    Flag::boolean(&["accessor"]),
                    Flag::string(&["mode"]),
                ]]
            },
            run: revoke,
            help: "Revoke a token and its children",
        },
    ]
}

fn create(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(0, 0)?;
    let mut body = Map::new();
    let policies: Vec<Value> = ctx
        .flags
        .all("policy")
        .iter()
        .flat_map(|p| p.split(','))
        .map(|p| Value::String(p.trim().to_string()))
        .filter(|p| p.as_str().is_some_and(|s| !s.is_empty()))
        .collect();
    if !policies.is_empty() {
        body.insert("policies".into(), Value::Array(policies));
    }
    for (flag, key) in [
        ("ttl", "ttl"),
        ("explicit-max-ttl", "explicit_max_ttl"),
        ("period", "period"),
    ] {
        if let Some(v) = ctx.duration_flag(flag)? {
            body.insert(key.into(), Value::String(v));
        }
    }
    for (flag, key) in [
        ("display-name", "display_name"),
        ("type", "type"),
        ("id", "id"),
        ("entity-alias", "entity_alias"),
    ] {
        if let Some(v) = ctx.flags.get(flag) {
            body.insert(key.into(), Value::String(v.to_string()));
        }
    }
    if let Some(v) = ctx.flags.get("use-limit") {
        let n: i64 = v
            .parse()
            .map_err(|_| Exit::usage(format!("invalid value {v:?} for flag -use-limit")))?;
        body.insert("num_uses".into(), json!(n));
    }
    if ctx.flags.bool("no-default-policy") {
        body.insert("no_default_policy".into(), Value::Bool(true));
    }
    // Tokens are renewable unless the user says otherwise.
    let renewable = !ctx.flags.has("renewable") || ctx.flags.bool("renewable");
    body.insert("renewable".into(), Value::Bool(renewable));
    let meta = parse_pairs(ctx.flags.all("metadata"))?;
    if !meta.is_empty() {
        body.insert("meta".into(), Value::Object(meta));
    }
    let path = match (ctx.flags.get("role"), ctx.flags.bool("orphan")) {
        (Some(role), _) => format!("auth/token/create/{role}"),
        (None, true) => "auth/token/create-orphan".to_string(),
        (None, false) => "auth/token/create".to_string(),
    };
    let secret = ctx
        .client
        .write(&path, &Value::Object(body))
        .map_err(|e| Exit::api("Error creating token", &e))?
        .unwrap_or(Value::Null);
    ctx.print_secret(&secret)
}

fn lookup(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(0, 1)?;
    let arg = ctx.args().first().cloned();
    let by_accessor = ctx.flags.bool("accessor");
    let result = match (arg, by_accessor) {
        (None, true) => {
            return Err(Exit::usage(
                "Not enough arguments with -accessor (expected 1, got 0)",
            ));
        }
        (None, false) => ctx.client.read("auth/token/lookup-self", &[]),
        (Some(a), true) => ctx
            .client
            .write("auth/token/lookup-accessor", &json!({ "accessor": a })),
        (Some(t), false) => ctx
            .client
            .write("auth/token/lookup", &json!({ "token": t })),
    };
    let secret = result
        .map_err(|e| Exit::api("Error looking up token", &e))?
        .unwrap_or(Value::Null);
    ctx.print_secret(&secret)
}

fn renew(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(0, 1)?;
    let increment = match ctx.flags.get("increment") {
        Some(v) => parse_duration_secs(v)?,
        None => 0,
    };
    let (path, body) = match (ctx.args().first(), ctx.flags.bool("accessor")) {
        (None, true) => return Err(Exit::usage("Not enough arguments (expected 1, got 0)")),
        (None, false) => ("auth/token/renew-self", json!({ "increment": increment })),
        (Some(a), true) => (
            "auth/token/renew-accessor",
            json!({ "accessor": a, "increment": increment }),
        ),
        (Some(t), false) => (
            "auth/token/renew",
            json!({ "token": t, "increment": increment }),
        ),
    };
    let secret = ctx
        .client
        .write(path, &body)
        .map_err(|e| Exit::api("Error renewing token", &e))?
        .unwrap_or(Value::Null);
    ctx.print_secret(&secret)
}

fn revoke(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(0, 1)?;
    let arg = ctx.args().first().cloned();
    let by_self = ctx.flags.bool("self");
    let by_accessor = ctx.flags.bool("accessor");
    let mode = ctx.flags.get("mode").unwrap_or("").to_string();
    if by_self && arg.is_some() {
        return Err(Exit::usage(
            "Too many arguments with -self (expected 0, got 1)",
        ));
    }
    if by_self && by_accessor {
        return Err(Exit::usage("Cannot use -self with -accessor"));
    }
    if by_accessor && mode == "path" {
        return Err(Exit::usage("Cannot use -mode=path with -accessor"));
    }
    if !matches!(mode.as_str(), "" | "orphan" | "path") {
        return Err(Exit::usage(format!("Invalid mode: {mode}")));
    }
    let result = match (arg, by_self) {
        (None, true) => ctx.client.write("auth/token/revoke-self", &json!({})),
        (None, false) => {
            return Err(Exit::usage(
                "Not enough arguments (expected 1 or -self, got 0)",
            ));
        }
        (Some(a), _) if by_accessor => ctx
            .client
            .write("auth/token/revoke-accessor", &json!({ "accessor": a })),
        (Some(p), _) if mode == "path" => ctx
            .client
            .write(&format!("sys/leases/revoke-prefix/{p}"), &json!({})),
        (Some(t), _) if mode == "orphan" => ctx
            .client
            .write("auth/token/revoke-orphan", &json!({ "token": t })),
        (Some(t), _) => ctx
            .client
            .write("auth/token/revoke", &json!({ "token": t })),
    };
    result.map_err(|e| Exit::api("Error revoking token", &e))?;
    output::outln("Success! Revoked token (if it existed)");
    Ok(0)
}
