//! Secret ids of a role: generate (`secret-id`), `custom-secret-id`, LIST of accessors,
//! lookup and destroy by secret id or by accessor.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use lessor_auth_common::cidr::Cidr;
use lessor_auth_common::parse_cidrs;
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response, obj};
use lessor_core::{Error, Result};
use serde_json::{Value, json};

use crate::path_role::must_get;
use crate::role::Role;
use crate::salt::ct_eq;
use crate::secret_id::{self, SecretIdEntry};
use crate::{ROLE_NAME, State};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Generate,
    Custom,
    Lookup,
    Destroy,
    AccessorLookup,
    AccessorDestroy,
}

struct Handler {
    state: Arc<State>,
    kind: Kind,
}

pub fn paths(state: &Arc<State>) -> Vec<Path> {
    let h = |kind| {
        Arc::new(Handler {
            state: state.clone(),
            kind,
        })
    };
    let name = || field::str("role_name", "Name of the role.").required();
    let generate_fields = |custom: bool| {
        let mut f = vec![
            name(),
            field::any(
                "metadata",
                "JSON object of string values, attached to the tokens of logins with it.",
            ),
            field::list("cidr_list", "CIDR blocks logins with it may come from."),
            field::list(
                "token_bound_cidrs",
                "CIDR blocks the tokens of logins with it may be used from.",
            ),
            field::int("num_uses", "Uses of the secret id (0 = unlimited)."),
            field::dur("ttl", "TTL of the secret id."),
        ];
        if custom {
            f.push(field::str("secret_id", "The secret id to register.").required());
        }
        f
    };
    let by_id = || vec![name(), field::str("secret_id", "The secret id.").required()];
    let by_accessor = || {
        vec![
            name(),
            field::str("secret_id_accessor", "Accessor of the secret id.").required(),
        ]
    };
    let base = format!("role/{ROLE_NAME}");
    vec![
        Path::new(&format!("{base}/secret-id/?"), h(Kind::Generate))
            .fields(generate_fields(false))
            .ops(&[Operation::Update, Operation::List])
            .help("Generates a secret id for the role, or lists the accessors of its secret ids."),
        Path::new(&format!("{base}/custom-secret-id"), h(Kind::Custom))
            .fields(generate_fields(true))
            .ops(&[Operation::Update])
            .help("Registers a secret id chosen by the caller."),
        Path::new(&format!("{base}/secret-id/lookup"), h(Kind::Lookup))
            .fields(by_id())
            .ops(&[Operation::Update])
            .help("Reads the properties of a secret id."),
        Path::new(&format!("{base}/secret-id/destroy"), h(Kind::Destroy))
            .fields(by_id())
            .ops(&[Operation::Update, Operation::Delete])
            .help("Destroys a secret id."),
        Path::new(
            &format!("{base}/secret-id-accessor/lookup"),
            h(Kind::AccessorLookup),
        )
        .fields(by_accessor())
        .ops(&[Operation::Update])
        .help("Reads the properties of a secret id by its accessor."),
        Path::new(
            &format!("{base}/secret-id-accessor/destroy"),
            h(Kind::AccessorDestroy),
        )
        .fields(by_accessor())
        .ops(&[Operation::Update, Operation::Delete])
        .help("Destroys a secret id by its accessor."),
    ]
}

#[async_trait]
impl PathHandler for Handler {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let role = must_get(ctx, d).await?;
        let (s, salt) = (ctx.storage, &self.state.salt);
        let dir = secret_id::role_dir(s, salt, &role.name).await?;
        match self.kind {
            Kind::Generate if op == Operation::List => {
                let mut keys: Vec<String> = secret_id::all_in(s, &dir)
                    .await?
                    .into_iter()
                    .map(|e| e.accessor)
                    .collect();
                keys.sort();
                Response::list(keys)
            }
            Kind::Generate => {
                // v4 UUIDs come from the OS's CSPRNG: 122 random bits.
                let id = uuid::Uuid::new_v4().to_string();
                self.register(ctx, &role, &dir, d, id).await
            }
            Kind::Custom => {
                let id = d.string("secret_id");
                if id.is_empty() {
                    return Err(Error::bad("missing secret_id"));
                }
                self.register(ctx, &role, &dir, d, id).await
            }
            Kind::Lookup | Kind::Destroy => {
                let secret = d.string("secret_id");
                let hmac = salt.hash(s, &secret).await?;
                let _g = self.state.lock.lock().await;
                let entry = secret_id::get(s, &dir, &hmac)
                    .await?
                    .filter(|e| ct_eq(&e.secret_id_hmac, &hmac));
                self.lookup_or_destroy(ctx, &dir, entry).await
            }
            Kind::AccessorLookup | Kind::AccessorDestroy => {
                let accessor = d.string("secret_id_accessor");
                let _g = self.state.lock.lock().await;
                let entry = secret_id::by_accessor(s, salt, &dir, &accessor).await?;
                if entry.is_none() {
                    return Err(Error::bad(format!(
                        "failed to find accessor entry for secret_id_accessor: {accessor:?}"
                    )));
                }
                self.lookup_or_destroy(ctx, &dir, entry).await
            }
        }
    }
}

impl Handler {
    async fn lookup_or_destroy(
        &self,
        ctx: &Ctx<'_>,
        dir: &str,
        entry: Option<SecretIdEntry>,
    ) -> Result<Option<Response>> {
        let Some(entry) = entry else {
            return Ok(None);
        };
        let destroy = matches!(self.kind, Kind::Destroy | Kind::AccessorDestroy);
        if destroy || entry.expired(self.state.clock.now_unix()) {
            secret_id::remove(ctx.storage, &self.state.salt, dir, &entry).await?;
            return Ok(None);
        }
        Ok(Some(Response::data(entry.lookup_data())))
    }

    /// Checks the request's limits against the role's and stores the new entry.
    async fn register(
        &self,
        ctx: &Ctx<'_>,
        role: &Role,
        dir: &str,
        d: &FieldData,
        secret: String,
    ) -> Result<Option<Response>> {
        if !role.bind_secret_id {
            return Err(Error::bad("bind_secret_id is not set on the role"));
        }
        let num_uses = match d.int("num_uses") {
            Some(n) if n < 0 => return Err(Error::bad("num_uses cannot be negative")),
            Some(n) if role.secret_id_num_uses > 0 && (n == 0 || n > role.secret_id_num_uses) => {
                return Err(Error::bad(
                    "num_uses cannot be higher than the role's secret_id_num_uses",
                ));
            }
            Some(n) => n,
            None => role.secret_id_num_uses,
        };
        let ttl = match d.secs("ttl") {
            Some(t) if role.secret_id_ttl > 0 && (t == 0 || t > role.secret_id_ttl) => {
                return Err(Error::bad(
                    "ttl cannot be longer than the role's secret_id_ttl",
                ));
            }
            Some(t) => t,
            None => role.secret_id_ttl,
        };
        let cidr_list = d.list_or_empty("cidr_list");
        within(&cidr_list, &role.secret_id_bound_cidrs, "secret ID")?;
        let token_cidrs = d.list_or_empty("token_bound_cidrs");
        within(&token_cidrs, &role.token.token_bound_cidrs, "token")?;
        let metadata = parse_metadata(d.any("metadata"))?;

        let (s, salt) = (ctx.storage, &self.state.salt);
        let hmac = salt.hash(s, &secret).await?;
        let _g = self.state.lock.lock().await;
        if secret_id::get(s, dir, &hmac).await?.is_some() {
            return Err(Error::bad("SecretID is already registered"));
        }
        let now = self.state.clock.now_unix();
        let entry = SecretIdEntry {
            secret_id_hmac: hmac,
            accessor: uuid::Uuid::new_v4().to_string(),
            num_uses,
            ttl,
            creation_time: now,
            expiration_time: if ttl > 0 { now + ttl } else { 0 },
            last_updated_time: now,
            metadata,
            cidr_list,
            token_bound_cidrs: token_cidrs,
        };
        secret_id::create(s, salt, dir, &entry).await?;
        Ok(Some(Response::data(obj([
            ("secret_id", json!(secret)),
            ("secret_id_accessor", json!(entry.accessor)),
            ("secret_id_ttl", json!(entry.ttl)),
            ("secret_id_num_uses", json!(entry.num_uses)),
        ]))))
    }
}

/// Every block of `list` must lie inside one of the role's `bound` blocks (when it has any).
fn within(list: &[String], bound: &[String], what: &str) -> Result<()> {
    let blocks = parse_cidrs(list)?;
    if bound.is_empty() {
        return Ok(());
    }
    let bound: Vec<Cidr> = parse_cidrs(bound)?;
    for (b, text) in blocks.iter().zip(list) {
        if !bound.iter().any(|r| r.covers(b)) {
            return Err(Error::bad(format!(
                "failed to verify the CIDR restrictions set on the {what}: {text:?} is not \
                 within the role's bound CIDR blocks"
            )));
        }
    }
    Ok(())
}

/// `metadata` as a JSON string of a string map (what the CLI and hvac send) or an object.
fn parse_metadata(v: Option<&Value>) -> Result<BTreeMap<String, String>> {
    let bad = || Error::bad("failed to parse metadata: expected a JSON object of strings");
    let obj = match v {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(BTreeMap::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| bad())?,
        Some(other) => other.clone(),
    };
    let Value::Object(m) = obj else {
        return Err(bad());
    };
    m.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(bad()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_forms() {
        let m = parse_metadata(Some(&json!("{\"a\":\"b\"}"))).unwrap();
        assert_eq!(m.get("a").map(String::as_str), Some("b"));
        assert!(parse_metadata(Some(&json!({"a": 1}))).is_err());
        assert!(parse_metadata(Some(&json!("[1]"))).is_err());
        assert!(parse_metadata(None).unwrap().is_empty());
    }

    #[test]
    fn cidr_subsets() {
        let bound = vec!["10.0.0.0/8".to_string()];
        assert!(within(&["10.1.0.0/16".into()], &bound, "x").is_ok());
        assert!(within(&["11.0.0.0/16".into()], &bound, "x").is_err());
        assert!(within(&["11.0.0.0/16".into()], &[], "x").is_ok());
    }
}
