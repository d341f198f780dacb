//! `operator init`, `operator unseal`, `operator seal`.

use serde_json::{Value, json};

use super::{CmdResult, Command, Ctx, Exit};
use crate::args::Flag;
use crate::client::Body;
use crate::output;

pub(super) fn commands() -> Vec<Command> {
    vec![
        Command {
            words: &["operator", "init"],
            flags: const {
                &[&[
                    Flag::string(&["key-shares", "n"]),
                    Flag::string(&["key-threshold", "t"]),
                    Flag::boolean(&["status"]),
                ]]
            },
            run: init,
            help: "Initialize a server",
        },
        Command {
            words: &["operator", "unseal"],
            flags: const { &[&[Flag::boolean(&["reset"])]] },
            run: unseal,
            help: "Unseal a server",
        },
        Command {
            words: &["operator", "seal"],
            flags: &[],
            run: seal,
            help: "Seal a server",
        },
    ]
}

fn int_flag(ctx: &Ctx, name: &str, default: i64) -> Result<i64, Exit> {
    match ctx.flags.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| Exit::usage(format!("invalid value {v:?} for flag -{name}: parse error"))),
    }
}

fn init(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(0, 0)?;
    if ctx.flags.bool("status") {
        let body = ctx
            .client
            .request("GET", "sys/init", &[], Body::None)
            .map_err(|e| Exit::api("Error checking init status", &e))?
            .body
            .unwrap_or(Value::Null);
        if body.get("initialized").and_then(Value::as_bool) == Some(true) {
            output::outln("Vault is initialized");
            return Ok(0);
        }
        output::outln("Vault is not initialized");
        return Ok(2);
    }
    let shares = int_flag(ctx, "key-shares", 5)?;
    let threshold = int_flag(ctx, "key-threshold", 3)?;
    let request = json!({"secret_shares": shares, "secret_threshold": threshold});
    let resp = ctx
        .client
        .request("PUT", "sys/init", &[], Body::Json(&request))
        .map_err(|e| Exit::api("Error initializing", &e))?
        .body
        .unwrap_or(Value::Null);
    let list = |k: &str| resp.get(k).cloned().unwrap_or_else(|| json!([]));
    let root_token = resp.get("root_token").cloned().unwrap_or(Value::Null);
    if !ctx.format.is_table() {
        let out = json!({
            "unseal_keys_b64": list("keys_base64"),
            "unseal_keys_hex": list("keys"),
            "unseal_shares": shares,
            "unseal_threshold": threshold,
            "recovery_keys_b64": [],
            "recovery_keys_hex": [],
            "recovery_keys_shares": 0,
            "recovery_keys_threshold": 0,
            "root_token": root_token,
        });
        output::outln(&ctx.format.document(&out));
        return Ok(0);
    }
    let mut text = String::new();
    if let Some(keys) = list("keys_base64").as_array() {
        for (i, k) in keys.iter().enumerate() {
            text.push_str(&format!("Unseal Key {}: {}\n", i + 1, output::go_value(k)));
        }
    }
    text.push_str(&format!(
        "\nInitial Root Token: {}\n\n",
        output::go_value(&root_token)
    ));
    let paragraphs = [
        format!(
            "Vault initialized with {shares} key shares and a key threshold of {threshold}. \
             Please securely distribute the key shares printed above. When the Vault is \
             re-sealed, restarted, or stopped, you must supply at least {threshold} of these \
             keys to unseal it before it can start servicing requests."
        ),
        format!(
            "Vault does not store the generated root key. Without at least {threshold} keys \
             to reconstruct the root key, Vault will remain permanently sealed!"
        ),
        "It is possible to generate new unseal keys, provided you have a quorum of existing \
         unseal keys shares. See \"vault operator rekey\" for more information."
            .to_string(),
    ];
    let wrapped: Vec<String> = paragraphs
        .iter()
        .map(|p| output::word_wrap(p, 78).join("\n"))
        .collect();
    text.push_str(&wrapped.join("\n\n"));
    text.push('\n');
    output::out(&text);
    Ok(0)
}

fn unseal(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(0, 1)?;
    let request = if ctx.flags.bool("reset") {
        json!({"reset": true})
    } else {
        let key = match ctx.args().first() {
            Some(k) if k != "-" => k.clone(),
            _ => ctx.prompt("Unseal Key (will be hidden): ", "An unseal key is")?,
        };
        if key.is_empty() {
            return Err(Exit::usage("Missing unseal key"));
        }
        json!({"key": key})
    };
    let status = ctx
        .client
        .request("PUT", "sys/unseal", &[], Body::Json(&request))
        .map_err(|e| {
            let context = if request.get("reset").is_some() {
                "Error resetting unseal process"
            } else {
                "Error unsealing"
            };
            Exit::api(context, &e)
        })?
        .body
        .unwrap_or(Value::Null);
    super::status::print_seal_status(ctx, &status)
}

fn seal(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(0, 0)?;
    ctx.client
        .request("PUT", "sys/seal", &[], Body::None)
        .map_err(|e| Exit::api("Error sealing", &e))?;
    output::outln("Success! Vault is sealed.");
    Ok(0)
}
