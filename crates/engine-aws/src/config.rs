//! `config/root`, `config/lease` and `config/rotate-root`: the mount's AWS credentials and
//! endpoints, the lease TTLs of IAM users, and self-rotation of the root key.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::duration;
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response, obj};
use lessor_core::{Error, Result};
use lessor_storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Shared;
use crate::sdk::{self, aws};
use crate::template::DEFAULT_USERNAME_TEMPLATE;

const ROOT_KEY: &str = "config/root";
const LEASE_KEY: &str = "config/lease";

/// What `config/root` stores.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RootConfig {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub iam_endpoint: String,
    pub sts_endpoint: String,
    pub sts_region: String,
    pub sts_fallback_endpoints: Vec<String>,
    pub sts_fallback_regions: Vec<String>,
    pub max_retries: i64,
    pub username_template: String,
    pub role_arn: String,
    pub identity_token_audience: String,
    pub identity_token_ttl: i64,
}

impl RootConfig {
    /// With no `config/root` the SDK's default chain applies, with default retries.
    pub fn unset() -> Self {
        RootConfig {
            max_retries: -1,
            username_template: DEFAULT_USERNAME_TEMPLATE.to_string(),
            ..Default::default()
        }
    }

    pub fn template(&self) -> &str {
        if self.username_template.is_empty() {
            DEFAULT_USERNAME_TEMPLATE
        } else {
            &self.username_template
        }
    }
}

/// What `config/lease` stores, in seconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct LeaseConfig {
    pub lease: i64,
    pub lease_max: i64,
}

pub(crate) async fn load_json<T: for<'de> Deserialize<'de>>(
    s: &Arc<dyn Storage>,
    key: &str,
) -> Result<Option<T>> {
    let Some(raw) = s.get(key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| Error::internal(format!("corrupt {key}: {e}")))
}

pub(crate) async fn store_json<T: Serialize>(s: &Arc<dyn Storage>, key: &str, v: &T) -> Result<()> {
    let raw = serde_json::to_vec(v).map_err(|e| Error::internal(e.to_string()))?;
    s.put(key, raw).await?;
    Ok(())
}

pub async fn read_root(s: &Arc<dyn Storage>) -> Result<Option<RootConfig>> {
    load_json(s, ROOT_KEY).await
}

pub async fn read_lease(s: &Arc<dyn Storage>) -> Result<Option<LeaseConfig>> {
    load_json(s, LEASE_KEY).await
}

pub fn paths(shared: &Arc<Shared>) -> Vec<Path> {
    vec![
        Path::new("config/root", Arc::new(RootPath(shared.clone())))
            .fields(vec![
                field::str(
                    "access_key",
                    "Access key with permission to create new keys.",
                ),
                field::str(
                    "secret_key",
                    "Secret key with permission to create new keys.",
                ),
                field::str("region", "Region for API calls."),
                field::str("iam_endpoint", "Endpoint to custom IAM server URL"),
                field::str("sts_endpoint", "Endpoint to custom STS server URL"),
                field::str("sts_region", "Specific region for STS API calls."),
                field::list("sts_fallback_endpoints", "Fallback STS endpoints"),
                field::list("sts_fallback_regions", "Fallback STS regions"),
                field::int(
                    "max_retries",
                    "Maximum number of retries; -1 for the SDK default",
                )
                .default(json!(-1)),
                field::str("username_template", "Template to generate IAM user names"),
                field::str("role_arn", "Role ARN for plugin workload identity"),
                field::str(
                    "identity_token_audience",
                    "Audience of plugin identity tokens",
                ),
                field::dur("identity_token_ttl", "TTL of plugin identity tokens"),
            ])
            .ops(&[Operation::Read, Operation::Update]),
        Path::new("config/lease", Arc::new(LeasePath))
            .fields(vec![
                field::str("lease", "Default lease for roles."),
                field::str("lease_max", "Maximum time a credential is valid for."),
            ])
            .ops(&[Operation::Read, Operation::Update]),
        Path::new("config/rotate-root", Arc::new(RotateRoot(shared.clone())))
            .ops(&[Operation::Update]),
    ]
}

struct RootPath(Arc<Shared>);

#[async_trait]
impl PathHandler for RootPath {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        if op == Operation::Read {
            let Some(c) = read_root(ctx.storage).await? else {
                return Err(Error::NotFound);
            };
            return Ok(Some(Response::data(obj([
                ("access_key", json!(c.access_key)),
                ("region", json!(c.region)),
                ("iam_endpoint", json!(c.iam_endpoint)),
                ("sts_endpoint", json!(c.sts_endpoint)),
                ("sts_region", json!(c.sts_region)),
                ("sts_fallback_endpoints", json!(c.sts_fallback_endpoints)),
                ("sts_fallback_regions", json!(c.sts_fallback_regions)),
                ("max_retries", json!(c.max_retries)),
                ("username_template", json!(c.template())),
                ("role_arn", json!(c.role_arn)),
                ("identity_token_audience", json!(c.identity_token_audience)),
                ("identity_token_ttl", json!(c.identity_token_ttl)),
            ]))));
        }
        let template = match d.string("username_template") {
            t if t.is_empty() => DEFAULT_USERNAME_TEMPLATE.to_string(),
            t => t,
        };
        crate::template::Template::parse(&template)
            .map_err(|e| Error::bad(format!("unable to initialize username template: {e}")))?;
        let c = RootConfig {
            access_key: d.string("access_key"),
            secret_key: d.string("secret_key"),
            region: d.string("region"),
            iam_endpoint: d.string("iam_endpoint"),
            sts_endpoint: d.string("sts_endpoint"),
            sts_region: d.string("sts_region"),
            sts_fallback_endpoints: d.list_or_empty("sts_fallback_endpoints"),
            sts_fallback_regions: d.list_or_empty("sts_fallback_regions"),
            max_retries: d.int("max_retries").unwrap_or(-1),
            username_template: template,
            role_arn: d.string("role_arn"),
            identity_token_audience: d.string("identity_token_audience"),
            identity_token_ttl: d.secs("identity_token_ttl").unwrap_or(0),
        };
        if c.sts_fallback_endpoints.len() != c.sts_fallback_regions.len() {
            return Err(Error::bad(
                "fallback endpoints and fallback regions must be the same length",
            ));
        }
        store_json(ctx.storage, ROOT_KEY, &c).await?;
        self.0.invalidate();
        Ok(None)
    }
}

struct LeasePath;

#[async_trait]
impl PathHandler for LeasePath {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        if op == Operation::Read {
            let Some(l) = read_lease(ctx.storage).await? else {
                return Err(Error::NotFound);
            };
            return Ok(Some(Response::data(obj([
                ("lease", json!(duration::format_go(l.lease))),
                ("lease_max", json!(duration::format_go(l.lease_max))),
            ]))));
        }
        // Only Go's grammar here, as Vault parses these two.
        let parse = |name: &str| -> Result<i64> {
            let raw = d.string(name);
            if raw.is_empty() {
                return Err(Error::bad(format!("'{name}' is a required parameter")));
            }
            duration::parse_go(&raw).map_err(|e| {
                let label = if name == "lease" {
                    "lease"
                } else {
                    "max lease"
                };
                Error::bad(format!("Invalid {label}: {e}"))
            })
        };
        let l = LeaseConfig {
            lease: parse("lease")?,
            lease_max: parse("lease_max")?,
        };
        store_json(ctx.storage, LEASE_KEY, &l).await?;
        Ok(None)
    }
}

struct RotateRoot(Arc<Shared>);

#[async_trait]
impl PathHandler for RotateRoot {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        // One rotation at a time: two would each delete the other's old key.
        let _guard = self.0.rotate_root_lock.lock().await;
        let mut c = read_root(ctx.storage)
            .await?
            .unwrap_or_else(RootConfig::unset);
        if c.access_key.is_empty() || c.secret_key.is_empty() {
            return Err(Error::bad(
                "Cannot call config/rotate-root when either access_key or secret_key is empty",
            ));
        }
        let old = sdk::build(&c).await;
        let user = aws(old.iam.get_user().send().await)?;
        let user_name = user
            .user()
            .map(|u| u.user_name().to_string())
            .ok_or_else(|| Error::internal("AWS returned no user for the root credentials"))?;
        let keys = aws(old
            .iam
            .list_access_keys()
            .user_name(&user_name)
            .send()
            .await)?;
        if keys.access_key_metadata().len() >= 2 {
            return Err(Error::bad(format!(
                "user {user_name} already has two access keys; delete one before rotating"
            )));
        }
        let created = aws(old
            .iam
            .create_access_key()
            .user_name(&user_name)
            .send()
            .await)?;
        let new_key = created
            .access_key()
            .ok_or_else(|| Error::internal("AWS returned no access key"))?;
        let old_id = std::mem::replace(&mut c.access_key, new_key.access_key_id().to_string());
        c.secret_key = new_key.secret_access_key().to_string();
        store_json(ctx.storage, ROOT_KEY, &c).await?;
        self.0.invalidate();
        // The old key is deleted with the new one, proving the new one works.
        let fresh = sdk::build(&c).await;
        let mut last = None;
        for attempt in 0..5u32 {
            match aws(fresh
                .iam
                .delete_access_key()
                .user_name(&user_name)
                .access_key_id(&old_id)
                .send()
                .await)
            {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) if e.no_such_entity() => {
                    last = None;
                    break;
                }
                Err(e) => {
                    // A new key can take a few seconds to be accepted everywhere.
                    last = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(500 << attempt)).await;
                }
            }
        }
        if let Some(e) = last {
            return Err(Error::bad(format!(
                "the new access key was saved, but deleting the old one failed: {e}"
            )));
        }
        Ok(Some(Response::data(obj([(
            "access_key",
            Value::String(c.access_key.clone()),
        )]))))
    }
}
