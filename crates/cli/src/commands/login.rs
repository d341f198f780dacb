//! `login`: authenticate and keep the token in `~/.vault-token`.
//!
//! The token method looks the token up (`auth/token/lookup-self`) to show what it is. Every
//! other method is generic: `-method=X [-path=P] k=v...` posts the data to
//! `auth/<P or X>/login` and takes `auth.client_token`; a method that needs a default input
//! (the Kubernetes service-account token) supplies it in [`method_defaults`].

use serde_json::{Map, Value, json};

use super::{CmdResult, Command, Ctx, Exit, kv_data};
use crate::args::Flag;
use crate::client::token_file;
use crate::output;

/// Where a pod finds its service-account token.
const K8S_SA_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

pub(super) fn commands() -> Vec<Command> {
    vec![Command {
        words: &["login"],
        flags: const {
            &[&[
                Flag::string(&["method"]),
                Flag::string(&["path"]),
                Flag::boolean(&["no-store"]),
                Flag::boolean(&["token-only"]),
                Flag::boolean(&["no-print"]),
            ]]
        },
        run: login,
        help: "Authenticate locally",
    }]
}

fn login(ctx: &mut Ctx) -> CmdResult {
    let method = ctx.flags.get("method").unwrap_or("token").to_string();
    let secret = if method == "token" {
        ctx.flags.expect_args(0, 1)?;
        token_login(ctx)?
    } else {
        method_login(ctx, &method)?
    };
    let token = secret
        .get("auth")
        .and_then(|a| a.get("client_token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Exit::with_code(
                2,
                "Error authenticating: no authentication information returned",
            )
        })?
        .to_string();
    if ctx.flags.bool("token-only") {
        output::raw_value(&token);
        return Ok(0);
    }
    let store = !ctx.flags.bool("no-store");
    if store {
        store_token(&token)?;
    }
    if ctx.flags.bool("no-print") {
        return Ok(0);
    }
    let env_token = ["VAULT_TOKEN", "BAO_TOKEN"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()));
    if env_token && store {
        output::errln(
            "WARNING! The VAULT_TOKEN environment variable is set! The value of this variable\n\
             will take precedence; if this is unwanted please unset VAULT_TOKEN or update its\n\
             value accordingly.\n",
        );
    }
    if ctx.format.is_table() && ctx.field.is_none() {
        if !store {
            output::outln(
                "The token was not stored in token helper. Set the VAULT_TOKEN environment\n\
                 variable or pass the token below with each request to Vault.\n",
            );
        }
        output::outln(
            "Success! You are now authenticated. The token information displayed below is\n\
             already stored in the token helper. You do NOT need to run \"vault login\" again.\n\
             Future Vault requests will automatically use this token.\n",
        );
    }
    ctx.print_secret(&secret)
}

fn token_login(ctx: &mut Ctx) -> Result<Value, Exit> {
    let token = match ctx.args().first() {
        // `login token=...` is accepted as well as the bare token.
        Some(t) if t.starts_with("token=") => t["token=".len()..].to_string(),
        Some(t) if t != "-" => t.clone(),
        _ => ctx.prompt("Token (will be hidden): ", "A token is")?,
    };
    if token.is_empty() {
        return Err(Exit::usage("Missing token"));
    }
    if ctx.flags.bool("token-only") {
        // No verification, as vault's -token-only.
        return Ok(json!({"auth": {"client_token": token}}));
    }
    ctx.client.set_token(Some(token.clone()));
    let lookup = ctx
        .client
        .read("auth/token/lookup-self", &[])
        .map_err(|e| Exit::api("Error looking up token", &e))?
        .ok_or_else(|| Exit::with_code(2, "Error looking up token: token not found"))?;
    let data = lookup.get("data").cloned().unwrap_or(Value::Null);
    let d = |k: &str| data.get(k).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "request_id": lookup.get("request_id").cloned().unwrap_or(json!("")),
        "lease_id": "",
        "lease_duration": 0,
        "renewable": false,
        "data": null,
        "warnings": null,
        "auth": {
            "client_token": token,
            "accessor": d("accessor"),
            "policies": d("policies"),
            "token_policies": d("policies"),
            "identity_policies": d("identity_policies"),
            "metadata": d("meta"),
            "orphan": d("orphan"),
            "entity_id": d("entity_id"),
            "lease_duration": d("ttl"),
            "renewable": d("renewable"),
        }
    }))
}

/// Inputs a method gets when the user leaves them out: the Kubernetes method reads the
/// pod's service-account token from `sa_token` when no `jwt` is given.
fn method_defaults(
    method: &str,
    data: &mut Map<String, Value>,
    sa_token: &std::path::Path,
) -> Result<(), Exit> {
    if method == "kubernetes" && !data.contains_key("jwt") {
        let jwt = std::fs::read_to_string(sa_token).map_err(|e| {
            Exit::usage(format!(
                "No jwt given and the service account token could not be read from {}: {e}",
                sa_token.display()
            ))
        })?;
        data.insert("jwt".into(), Value::String(jwt.trim().to_string()));
    }
    Ok(())
}

/// The login path of a method mounted at `mount`. Username/password methods take the user
/// name in the path (`auth/userpass/login/<username>`), the others a plain `login`.
fn login_path(method: &str, mount: &str, data: &mut Map<String, Value>) -> Result<String, Exit> {
    if matches!(method, "userpass" | "ldap" | "okta" | "radius") {
        let user = match data.remove("username") {
            Some(Value::String(u)) if !u.is_empty() => u,
            _ => return Err(Exit::usage("'username' must be specified")),
        };
        return Ok(format!("auth/{mount}/login/{user}"));
    }
    Ok(format!("auth/{mount}/login"))
}

fn method_login(ctx: &mut Ctx, method: &str) -> Result<Value, Exit> {
    let mut data = kv_data(ctx.args())?;
    method_defaults(method, &mut data, std::path::Path::new(K8S_SA_TOKEN))?;
    let mount = ctx
        .flags
        .get("path")
        .map(super::sanitize_path)
        .unwrap_or_else(|| method.to_string());
    let path = login_path(method, &mount, &mut data)?;
    // Logging in needs no token, and a stale one must not get in the way.
    ctx.client.set_token(None);
    ctx.client
        .write(&path, &Value::Object(data))
        .map_err(|e| Exit::api("Error authenticating", &e))?
        .ok_or_else(|| {
            Exit::with_code(
                2,
                "Error authenticating: no authentication information returned",
            )
        })
}

fn store_token(token: &str) -> Result<(), Exit> {
    let path =
        token_file().ok_or_else(|| Exit::with_code(2, "Error storing token: HOME is not set"))?;
    write_private(&path, token).map_err(|e| Exit::with_code(2, format!("Error storing token: {e}")))
}

/// Writes the token file readable by its owner only.
fn write_private(path: &std::path::Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_reads_the_service_account_token_unless_given() {
        let dir = tempfile::tempdir().unwrap();
        let sa = dir.path().join("token");
        std::fs::write(&sa, "eyJ.sa.jwt\n").unwrap();
        let mut data = Map::new();
        data.insert("role".into(), json!("web"));
        method_defaults("kubernetes", &mut data, &sa).unwrap();
        assert_eq!(data["jwt"], "eyJ.sa.jwt");

        let mut given = Map::new();
        given.insert("jwt".into(), json!("mine"));
        method_defaults("kubernetes", &mut given, &dir.path().join("missing")).unwrap();
        assert_eq!(given["jwt"], "mine");

        let mut none = Map::new();
        assert!(method_defaults("kubernetes", &mut none, &dir.path().join("missing")).is_err());
        method_defaults("approle", &mut none, &dir.path().join("missing")).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn login_paths() {
        let mut data = Map::new();
        assert_eq!(
            login_path("approle", "ci", &mut data).unwrap(),
            "auth/ci/login"
        );
        data.insert("username".into(), json!("ann"));
        data.insert("password".into(), json!("pw"));
        assert_eq!(
            login_path("userpass", "userpass", &mut data).unwrap(),
            "auth/userpass/login/ann"
        );
        assert!(!data.contains_key("username"));
        assert!(login_path("userpass", "userpass", &mut Map::new()).is_err());
    }
}
