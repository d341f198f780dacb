//! `lease lookup|renew|revoke` on `sys/leases/*`.

mod progress;

use serde_json::{Value, json};

use super::{CmdResult, Command, Ctx, Exit};
use crate::args::{Flag, parse_duration_secs};
use crate::client::Body;
use crate::output;

pub(super) fn commands() -> Vec<Command> {
    vec![
        Command {
            words: &["lease", "lookup"],
            flags: &[],
            run: lookup,
            help: "Look up a lease",
        },
        Command {
            words: &["lease", "renew"],
            flags: const { &[&[Flag::string(&["increment", "i"])]] },
            run: renew,
            help: "Renew a lease",
        },
        Command {
            words: &["lease", "revoke"],
            flags: const {
                &[&[
                    Flag::boolean(&["prefix"]),
                    Flag::boolean(&["force", "f"]),
                    Flag::boolean(&["sync"]),
                ]]
            },
            run: revoke,
            help: "Revoke a lease or every lease under a prefix",
        },
    ]
}

fn lookup(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(1, 1)?;
    let id = ctx.args()[0].clone();
    let secret = ctx
        .client
        .write("sys/leases/lookup", &json!({ "lease_id": id }))
        .map_err(|e| Exit::api(format!("error looking up lease id {id}"), &e))?
        .unwrap_or(Value::Null);
    ctx.print_secret(&secret)
}

fn renew(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(1, 1)?;
    let id = ctx.args()[0].clone();
    let increment = match ctx.flags.get("increment") {
        Some(v) => parse_duration_secs(v)?,
        None => 0,
    };
    let secret = ctx
        .client
        .write(
            "sys/leases/renew",
            &json!({ "lease_id": id, "increment": increment }),
        )
        .map_err(|e| Exit::api(format!("Error renewing {id}"), &e))?
        .unwrap_or(Value::Null);
    ctx.print_secret(&secret)
}

fn revoke(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(1, 1)?;
    let target = ctx.args()[0].clone();
    // The API refuses a path ending in '/', and a prefix means the same without it.
    let api_target = target.trim_end_matches('/').to_string();
    let force = ctx.flags.bool("force");
    // -force only makes sense for a prefix, so it implies one.
    let prefix = ctx.flags.bool("prefix") || force;
    let sync = ctx.flags.bool("sync");
    if force {
        ctx.client
            .request(
                "PUT",
                &format!("sys/leases/revoke-force/{api_target}"),
                &[],
                Body::None,
            )
            .map_err(|e| {
                Exit::api(
                    format!("Error force revoking leases with prefix {target}"),
                    &e,
                )
            })?;
        output::errln(
            "Warning! Force-removing leases can cause Vault to become out of sync with\n\
             secret engines!",
        );
        output::outln(&format!(
            "Success! Force revoked any leases with prefix: {target}"
        ));
        return Ok(0);
    }
    let (path, what) = if prefix {
        (format!("sys/leases/revoke-prefix/{api_target}"), "prefix")
    } else {
        (format!("sys/leases/revoke/{api_target}"), "lease")
    };
    // An asynchronous prefix revocation runs as a job: follow it when the server has them.
    let jobs_before = if prefix && !sync {
        progress::job_ids(&ctx.client)
    } else {
        None
    };
    ctx.client
        .request("PUT", &path, &[], Body::Json(&json!({ "sync": sync })))
        .map_err(|e| Exit::api(format!("Error revoking {what} {target}"), &e))?;
    if let Some(before) = jobs_before {
        return follow_job(ctx, &api_target, &target, &before);
    }
    if !sync {
        output::outln("All revocation operations queued successfully!");
    } else if prefix {
        output::outln(&format!(
            "Success! Revoked any leases with prefix: {target}"
        ));
    } else {
        output::outln(&format!("Success! Revoked lease: {target}"));
    }
    Ok(0)
}

/// Waits for the revoke-prefix job our request started, showing its progress.
fn follow_job(
    ctx: &Ctx,
    api_target: &str,
    target: &str,
    before: &std::collections::BTreeSet<String>,
) -> CmdResult {
    let context = || format!("Error revoking prefix {target}");
    let Some(id) = progress::find_job(&ctx.client, api_target, before)
        .map_err(|e| Exit::api(context(), &e))?
    else {
        // Queued but not seen (e.g. a job store shared with other writers): as vault says it.
        output::outln("All revocation operations queued successfully!");
        return Ok(0);
    };
    let end = progress::follow(&ctx.client, &id).map_err(|e| Exit::api(context(), &e))?;
    if end.failed > 0 {
        return Err(Exit::with_code(
            2,
            format!(
                "{}: {} of {} leases could not be revoked; they stay recorded and are retried (see sys/leases/jobs/{id})",
                context(),
                end.failed,
                end.total
            ),
        ));
    }
    output::outln(&format!(
        "Success! Revoked any leases with prefix: {target}"
    ));
    Ok(0)
}
