//! `policy write|read|list|delete` on `sys/policies/acl`.

use std::io::Read;

use serde_json::{Value, json};

use super::{CmdResult, Command, Ctx, Exit, sanitize_path};
use crate::output::{self, Format};

const API: &str = "sys/policies/acl";

pub(super) fn commands() -> Vec<Command> {
    vec![
        Command {
            words: &["policy", "write"],
            flags: &[],
            run: write,
            help: "Upload a policy from a file or stdin",
        },
        Command {
            words: &["policy", "read"],
            flags: &[],
            run: read,
            help: "Print a policy",
        },
        Command {
            words: &["policy", "list"],
            flags: &[],
            run: list,
            help: "List policy names",
        },
        Command {
            words: &["policy", "delete"],
            flags: &[],
            run: delete,
            help: "Delete a policy",
        },
    ]
}

fn policy_name(ctx: &Ctx) -> String {
    sanitize_path(&ctx.args()[0]).to_lowercase()
}

fn write(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(2, 2)?;
    let name = policy_name(ctx);
    let source = &ctx.args()[1];
    let rules = if source == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Exit::usage(format!("Error reading policy from stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(source).map_err(|e| {
            Exit::with_code(
                2,
                format!(
                    "Error opening policy file: open {source}: {}",
                    super::io_error_text(&e)
                ),
            )
        })?
    };
    ctx.client
        .write(&format!("{API}/{name}"), &json!({ "policy": rules }))
        .map_err(|e| Exit::api("Error uploading policy", &e))?;
    output::outln(&format!("Success! Uploaded policy: {name}"));
    Ok(0)
}

fn read(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(1, 1)?;
    let name = policy_name(ctx);
    let secret = ctx
        .client
        .read(&format!("{API}/{name}"), &[])
        .map_err(|e| Exit::api(format!("Error reading policy named {name}"), &e))?
        .ok_or_else(|| Exit::with_code(2, format!("No policy named: {name}")))?;
    let rules = secret
        .get("data")
        .and_then(|d| d.get("policy").or_else(|| d.get("rules")))
        .and_then(Value::as_str)
        .unwrap_or("");
    match ctx.format {
        Format::Json | Format::Yaml => {
            output::outln(&ctx.format.document(&json!({ "policy": rules })))
        }
        Format::Table => output::outln(rules.trim_end()),
    }
    Ok(0)
}

fn list(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(0, 0)?;
    let secret = ctx
        .client
        .list(API)
        .map_err(|e| Exit::api("Error listing policies", &e))?;
    let keys = secret
        .as_ref()
        .and_then(|s| s.get("data"))
        .and_then(|d| d.get("keys"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    match ctx.format {
        Format::Json | Format::Yaml => output::outln(&ctx.format.document(&keys)),
        Format::Table => {
            for k in keys.as_array().into_iter().flatten() {
                output::outln(&output::go_value(k));
            }
        }
    }
    Ok(0)
}

fn delete(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(1, 1)?;
    let name = policy_name(ctx);
    ctx.client
        .delete(&format!("{API}/{name}"), &[])
        .map_err(|e| Exit::api(format!("Error deleting {name}"), &e))?;
    output::outln(&format!("Success! Deleted policy: {name}"));
    Ok(0)
}
