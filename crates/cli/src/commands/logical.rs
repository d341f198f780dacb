//! The generic path commands: `read`, `write`, `list`, `delete`, and `unwrap` for responses
//! wrapped with `-wrap-ttl`.

use serde_json::{Value, json};

use super::{CmdResult, Command, Ctx, Exit, kv_data, query_pairs, sanitize_path};
use crate::args::Flag;

pub(super) fn commands() -> Vec<Command> {
    vec![
        Command {
            words: &["read"],
            flags: &[],
            run: read,
            help: "Read data and retrieve secrets",
        },
        Command {
            words: &["write"],
            flags: const { &[&[Flag::boolean(&["force", "f"])]] },
            run: write,
            help: "Write data, configuration, and secrets",
        },
        Command {
            words: &["list"],
            flags: &[],
            run: list,
            help: "List data or secrets",
        },
        Command {
            words: &["unwrap"],
            flags: &[],
            run: unwrap,
            help: "Unwrap a wrapped secret",
        },
        Command {
            words: &["delete"],
            flags: &[],
            run: delete,
            help: "Delete secrets and configuration",
        },
    ]
}

fn read(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(1, usize::MAX)?;
    let path = sanitize_path(&ctx.args()[0]);
    let query = query_pairs(&kv_data(&ctx.args()[1..])?);
    match ctx.client.read(&path, &query) {
        Ok(Some(secret)) => ctx.print_secret(&secret),
        Ok(None) => Err(Exit::with_code(2, format!("No value found at {path}"))),
        Err(e) => Err(Exit::api(format!("Error reading {path}"), &e)),
    }
}

fn write(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(1, usize::MAX)?;
    let path = sanitize_path(&ctx.args()[0]);
    let data = kv_data(&ctx.args()[1..])?;
    if data.is_empty() && !ctx.flags.bool("force") {
        return Err(Exit::usage("Must supply data or use -force"));
    }
    match ctx.client.write(&path, &Value::Object(data)) {
        Ok(Some(secret)) => ctx.print_secret(&secret),
        Ok(None) => {
            ctx.success(&format!("Success! Data written to: {path}"));
            Ok(0)
        }
        Err(e) => Err(Exit::api(format!("Error writing data to {path}"), &e)),
    }
}

fn list(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(1, 1)?;
    let path = sanitize_path(&ctx.args()[0]);
    match ctx.client.list(&path) {
        Ok(secret) => ctx.print_list(secret.as_ref(), &path),
        Err(e) => Err(Exit::api(format!("Error listing {path}"), &e)),
    }
}

fn delete(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(1, usize::MAX)?;
    let path = sanitize_path(&ctx.args()[0]);
    let query = query_pairs(&kv_data(&ctx.args()[1..])?);
    match ctx.client.delete(&path, &query) {
        Ok(_) => {
            ctx.success(&format!("Success! Data deleted (if it existed) at: {path}"));
            Ok(0)
        }
        Err(e) => Err(Exit::api(format!("Error deleting {path}"), &e)),
    }
}

/// `unwrap [token]`: with an argument, the current token unwraps it; without, the current
/// token is itself the wrapping token.
fn unwrap(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(0, 1)?;
    let body = match ctx.args().first() {
        Some(t) => json!({ "token": t }),
        None => json!({}),
    };
    match ctx.client.write("sys/wrapping/unwrap", &body) {
        Ok(Some(secret)) => ctx.print_secret(&secret),
        Ok(None) => Err(Exit::with_code(2, "No data found in the wrapped response")),
        Err(e) => Err(Exit::api("Error unwrapping", &e)),
    }
}
