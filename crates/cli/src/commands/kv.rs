//! `kv get|put|patch|delete|list|undelete|destroy` and `kv metadata get|put|delete`.
//!
//! Every command first asks `sys/internal/ui/mounts/<path>` which mount serves the path and
//! whether it is KV version 2; a 404 there means version 1 (an old server, or no access to
//! that endpoint). Version 2 commands then rewrite `<mount>/<rest>` to
//! `<mount>/data/<rest>`, `<mount>/metadata/<rest>`, and so on.

use serde_json::{Map, Value, json};

use super::{CmdResult, Command, Ctx, Exit, kv_data, sanitize_path};
use crate::args::{Flag, parse_duration_secs, parse_pairs};
use crate::client::{ApiError, Body};
use crate::output;

const MOUNT: &[Flag] = &[Flag::string(&["mount"])];
const CAS: &[Flag] = &[Flag::string(&["cas"])];
const VERSIONS: &[Flag] = &[Flag::multi(&["versions"])];
const METADATA_PUT: &[Flag] = &[
    Flag::string(&["max-versions"]),
    Flag::boolean(&["cas-required"]),
    Flag::string(&["delete-version-after"]),
    Flag::multi(&["custom-metadata"]),
];

pub(super) fn commands() -> Vec<Command> {
    vec![
        Command {
            words: &["kv", "get"],
            flags: const { &[MOUNT, &[Flag::string(&["version"])]] },
            run: get,
            help: "Retrieve data from the KV store",
        },
        Command {
            words: &["kv", "put"],
            flags: &[MOUNT, CAS],
            run: |c| put(c, false),
            help: "Set or update data in the KV store",
        },
        Command {
            words: &["kv", "patch"],
            flags: const { &[MOUNT, CAS, &[Flag::string(&["method"])]] },
            run: |c| put(c, true),
            help: "Update data in the KV store without overwriting",
        },
        Command {
            words: &["kv", "delete"],
            flags: &[MOUNT, VERSIONS],
            run: delete,
            help: "Delete versions of secrets stored in K/V",
        },
        Command {
            words: &["kv", "list"],
            flags: &[MOUNT],
            run: list,
            help: "List data or secrets",
        },
        Command {
            words: &["kv", "undelete"],
            flags: &[MOUNT, VERSIONS],
            run: |c| versions_op(c, "undelete"),
            help: "Undelete versions of secrets stored in K/V",
        },
        Command {
            words: &["kv", "destroy"],
            flags: &[MOUNT, VERSIONS],
            run: |c| versions_op(c, "destroy"),
            help: "Permanently remove one or more versions of secrets",
        },
        Command {
            words: &["kv", "metadata", "get"],
            flags: &[MOUNT],
            run: metadata_get,
            help: "Retrieve key metadata from the KV store",
        },
        Command {
            words: &["kv", "metadata", "put"],
            flags: &[MOUNT, METADATA_PUT],
            run: metadata_put,
            help: "Set or update key metadata in the KV store",
        },
        Command {
            words: &["kv", "metadata", "delete"],
            flags: &[MOUNT],
            run: metadata_delete,
            help: "Delete all versions and metadata for a key in the KV store",
        },
    ]
}

/// The path a KV command works on, after the preflight.
struct KvPath {
    /// The path as the user means it (`secret/foo`).
    full: String,
    /// The mount that serves it (`secret/`), empty when the preflight found none.
    mount: String,
    v2: bool,
}

impl KvPath {
    /// `<mount>/<prefix>/<rest>` for a version 2 mount.
    fn api(&self, prefix: &str) -> String {
        kv_api_path(&self.full, &self.mount, prefix)
    }
}

/// Joins the mount, the API prefix and what follows the mount in `path`.
fn kv_api_path(path: &str, mount: &str, prefix: &str) -> String {
    let mount = mount.trim_matches('/');
    let rest = path
        .trim_matches('/')
        .strip_prefix(mount)
        .unwrap_or(path)
        .trim_matches('/');
    [mount, prefix, rest]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

/// Checks there is exactly one argument (the path), then resolves it.
fn resolve_one(ctx: &Ctx) -> Result<KvPath, Exit> {
    ctx.flags.expect_args(1, 1)?;
    resolve(ctx)
}

/// Resolves the first positional argument (joined to `-mount` if given) and runs the
/// preflight.
fn resolve(ctx: &Ctx) -> Result<KvPath, Exit> {
    ctx.flags.expect_args(1, usize::MAX)?;
    let arg = sanitize_path(&ctx.args()[0]);
    let (full, probe) = match ctx.flags.get("mount") {
        Some(m) => {
            let m = sanitize_path(m);
            let full = if arg.is_empty() {
                m.clone()
            } else {
                format!("{m}/{arg}")
            };
            (full, m)
        }
        None => (arg.clone(), arg),
    };
    let preflight = ctx.client.unwrapped().request(
        "GET",
        &format!("sys/internal/ui/mounts/{probe}"),
        &[],
        Body::None,
    );
    match preflight {
        Ok(reply) => {
            let data = reply
                .body
                .as_ref()
                .and_then(|b| b.get("data"))
                .cloned()
                .unwrap_or(Value::Null);
            let mount = data
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let v2 = data
                .get("options")
                .and_then(|o| o.get("version"))
                .and_then(Value::as_str)
                == Some("2");
            Ok(KvPath { full, mount, v2 })
        }
        Err(ApiError::Response { code: 404, .. }) => Ok(KvPath {
            full,
            mount: String::new(),
            v2: false,
        }),
        Err(e) => Err(Exit::with_code(2, e.to_string())),
    }
}

fn print_banner(title: &str, path: &str) {
    output::outln(&output::pad_equal_signs(title, path.len()));
    output::outln(path);
    output::outln("");
}

fn print_map(title: &str, map: &Map<String, Value>) {
    output::outln(&output::header_for_map(title, map));
    output::out(&output::kv_table(&map_pairs(map)));
}

/// A map's rows with Go's `%v` values, sorted by key (no TTL rewriting: KV shows data as is).
fn map_pairs(map: &Map<String, Value>) -> Vec<(String, String)> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| (k.clone(), output::go_value(&map[k.as_str()])))
        .collect()
}

fn get(ctx: &mut Ctx) -> CmdResult {
    let kv = resolve_one(ctx)?;
    let (path, query) = if kv.v2 {
        let q = ctx
            .flags
            .get("version")
            .map(|v| vec![("version".to_string(), v.to_string())])
            .unwrap_or_default();
        (kv.api("data"), q)
    } else {
        (kv.full.clone(), Vec::new())
    };
    let secret = ctx
        .client
        .read(&path, &query)
        .map_err(|e| Exit::api(format!("Error reading {path}"), &e))?
        .ok_or_else(|| Exit::with_code(2, format!("No value found at {path}")))?;
    if secret.get("wrap_info").is_some_and(Value::is_object) {
        return ctx.print_secret(&secret);
    }
    let data = secret.get("data").and_then(Value::as_object);
    let (payload, metadata) = if kv.v2 {
        (
            data.and_then(|d| d.get("data")).and_then(Value::as_object),
            data.and_then(|d| d.get("metadata"))
                .and_then(Value::as_object),
        )
    } else {
        (data, None)
    };
    if !ctx.format.is_table() && ctx.field.is_none() {
        return ctx.print_secret(&secret);
    }
    if let Some(field) = &ctx.field {
        if payload.is_none() {
            // A deleted or destroyed version has metadata only.
            return Err(Exit::with_code(2, format!("No data found at {path}")));
        }
        return ctx.print_field(payload.and_then(|p| p.get(field)), field, "map");
    }
    if kv.v2 {
        print_banner("Secret Path", &path);
        if let Some(m) = metadata {
            print_map("Metadata", m);
        }
    }
    if kv.v2 {
        output::outln("");
    }
    if let Some(p) = payload {
        print_map("Data", p);
    }
    Ok(0)
}

fn cas_options(ctx: &Ctx) -> Result<Option<Value>, Exit> {
    match ctx.flags.get("cas") {
        None => Ok(None),
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| Exit::usage(format!("invalid value {v:?} for flag -cas")))?;
            Ok(Some(json!({ "cas": n })))
        }
    }
}

fn put(ctx: &mut Ctx, patch: bool) -> CmdResult {
    let kv = resolve(ctx)?;
    let data = kv_data(&ctx.args()[1..])?;
    if data.is_empty() {
        return Err(Exit::usage("Must supply data"));
    }
    if !kv.v2 {
        if patch {
            return Err(Exit::with_code(
                2,
                "K/V engine mount must be version 2 for patch support",
            ));
        }
        ctx.client
            .write(&kv.full, &Value::Object(data))
            .map_err(|e| Exit::api(format!("Error writing data to {}", kv.full), &e))?;
        ctx.success(&format!("Success! Data written to: {}", kv.full));
        return Ok(0);
    }
    let path = kv.api("data");
    let mut body = json!({ "data": data });
    if let Some(options) = cas_options(ctx)? {
        body["options"] = options;
    }
    let (method, payload) = if patch {
        ("PATCH", Body::MergePatch(&body))
    } else {
        ("PUT", Body::Json(&body))
    };
    let secret = ctx
        .client
        .request(method, &path, &[], payload)
        .map_err(|e| Exit::api(format!("Error writing data to {path}"), &e))?
        .body
        .unwrap_or(Value::Null);
    if let Some(field) = &ctx.field {
        return ctx.print_field(secret.get("data").and_then(|d| d.get(field)), field, "map");
    }
    if !ctx.format.is_table() {
        return ctx.print_secret(&secret);
    }
    print_banner("Secret Path", &path);
    if let Some(m) = secret.get("data").and_then(Value::as_object) {
        print_map("Metadata", m);
    }
    Ok(0)
}

/// `-versions=1,2 -versions=3` as a list of version numbers.
fn versions(ctx: &Ctx) -> Result<Vec<i64>, Exit> {
    let mut out = Vec::new();
    for part in ctx.flags.all("versions").iter().flat_map(|v| v.split(',')) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        out.push(
            part.parse()
                .map_err(|_| Exit::usage(format!("invalid version {part:?}")))?,
        );
    }
    Ok(out)
}

fn delete(ctx: &mut Ctx) -> CmdResult {
    let kv = resolve_one(ctx)?;
    let versions = versions(ctx)?;
    let result = if !kv.v2 {
        let path = kv.full.clone();
        ctx.client.delete(&path, &[]).map(|_| path)
    } else if versions.is_empty() {
        let path = kv.api("data");
        ctx.client.delete(&path, &[]).map(|_| path)
    } else {
        // The message names the data path even when specific versions go through delete/.
        ctx.client
            .write(&kv.api("delete"), &json!({ "versions": versions }))
            .map(|_| kv.api("data"))
    };
    let path = result.map_err(|e| Exit::api(format!("Error deleting {}", kv.full), &e))?;
    ctx.success(&format!("Success! Data deleted (if it existed) at: {path}"));
    Ok(0)
}

fn versions_op(ctx: &mut Ctx, op: &str) -> CmdResult {
    let versions = versions(ctx)?;
    if versions.is_empty() {
        return Err(Exit::usage(format!(
            "No versions provided, use the \"-versions\" flag to specify the version to {op}."
        )));
    }
    let kv = resolve_one(ctx)?;
    if !kv.v2 {
        return Err(Exit::usage(format!(
            "{} not supported on KV Version 1",
            capitalized(op)
        )));
    }
    let path = kv.api(op);
    ctx.client
        .write(&path, &json!({ "versions": versions }))
        .map_err(|e| Exit::api(format!("Error writing data to {path}"), &e))?;
    ctx.success(&format!("Success! Data written to: {path}"));
    Ok(0)
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn list(ctx: &mut Ctx) -> CmdResult {
    let kv = resolve_one(ctx)?;
    let path = if kv.v2 {
        kv.api("metadata")
    } else {
        kv.full.clone()
    };
    let secret = ctx
        .client
        .list(&path)
        .map_err(|e| Exit::api(format!("Error listing {path}"), &e))?;
    ctx.print_list(secret.as_ref(), &path)
}

/// The metadata commands exist only on version 2 mounts.
fn resolve_v2(ctx: &Ctx) -> Result<String, Exit> {
    let kv = resolve_one(ctx)?;
    if !kv.v2 {
        return Err(Exit::usage("Metadata not supported on KV Version 1"));
    }
    Ok(kv.api("metadata"))
}

fn metadata_get(ctx: &mut Ctx) -> CmdResult {
    let path = resolve_v2(ctx)?;
    let secret = ctx
        .client
        .read(&path, &[])
        .map_err(|e| Exit::api(format!("Error reading {path}"), &e))?
        .ok_or_else(|| Exit::with_code(2, format!("No value found at {path}")))?;
    if !ctx.format.is_table() || ctx.field.is_some() {
        return ctx.print_secret(&secret);
    }
    let mut data = secret
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let versions = data.remove("versions");
    print_banner("Metadata Path", &path);
    print_map("Metadata", &data);
    if let Some(Value::Object(versions)) = versions {
        let mut numbers: Vec<(i64, &String)> = versions
            .keys()
            .map(|k| (k.parse().unwrap_or(i64::MAX), k))
            .collect();
        numbers.sort();
        for (_, k) in numbers {
            if let Some(v) = versions[k.as_str()].as_object() {
                output::outln("");
                print_map(&format!("Version {k}"), v);
            }
        }
    }
    Ok(0)
}

fn metadata_put(ctx: &mut Ctx) -> CmdResult {
    let path = resolve_v2(ctx)?;
    let mut body = Map::new();
    if let Some(v) = ctx.flags.get("max-versions") {
        let n: i64 = v
            .parse()
            .map_err(|_| Exit::usage(format!("invalid value {v:?} for flag -max-versions")))?;
        body.insert("max_versions".into(), json!(n));
    }
    if ctx.flags.has("cas-required") {
        body.insert(
            "cas_required".into(),
            Value::Bool(ctx.flags.bool("cas-required")),
        );
    }
    if let Some(v) = ctx.flags.get("delete-version-after") {
        let secs = parse_duration_secs(v)?;
        body.insert("delete_version_after".into(), json!(format!("{secs}s")));
    }
    let custom = parse_pairs(ctx.flags.all("custom-metadata"))?;
    if !custom.is_empty() {
        body.insert("custom_metadata".into(), Value::Object(custom));
    }
    ctx.client
        .write(&path, &Value::Object(body))
        .map_err(|e| Exit::api(format!("Error writing data to {path}"), &e))?;
    ctx.success(&format!("Success! Data written to: {path}"));
    Ok(0)
}

fn metadata_delete(ctx: &mut Ctx) -> CmdResult {
    let path = resolve_v2(ctx)?;
    ctx.client
        .delete(&path, &[])
        .map_err(|e| Exit::api(format!("Error deleting {path}"), &e))?;
    ctx.success(&format!("Success! Data deleted (if it existed) at: {path}"));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_paths() {
        assert_eq!(
            kv_api_path("secret/foo", "secret/", "data"),
            "secret/data/foo"
        );
        assert_eq!(
            kv_api_path("secret", "secret/", "metadata"),
            "secret/metadata"
        );
        assert_eq!(kv_api_path("a/b/c/d", "a/b/", "data"), "a/b/data/c/d");
        assert_eq!(kv_api_path("x/y", "", "data"), "data/x/y");
    }
}
