//! `creds/:name` and `sts/:name`: issue a credential of the role's type. IAM users go
//! through the zero-leak protocol (reserve with the chosen name, then create); STS
//! credentials are reserved too, and their lease lives exactly as long as they do.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sts::operation::assume_role::AssumeRoleInput;
use aws_sdk_sts::operation::get_federation_token::GetFederationTokenInput;
use aws_sdk_sts::operation::get_session_token::GetSessionTokenInput;
use aws_sdk_sts::types::{PolicyDescriptorType, Tag};
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response, SecretSpec, obj};
use lessor_core::{Error, Result};
use serde_json::{Value, json};

use crate::Shared;
use crate::config::{read_lease, read_root};
use crate::role::{self, ASSUMED_ROLE, FEDERATION_TOKEN, IAM_USER, NAME_RE, Role, SESSION_TOKEN};
use crate::sdk::AwsError;
use crate::sts_call;
use crate::template::{self, NameKind};
use crate::{SECRET_TYPE, iam_user};

/// AWS refuses STS durations below 15 minutes.
const MIN_STS_SECS: i64 = 900;
const DEFAULT_STS_SECS: i64 = 3600;

pub fn paths(shared: &Arc<Shared>) -> Vec<Path> {
    let fields = || {
        vec![
            field::str("name", "Name of the role"),
            field::str("role_arn", "ARN of the role to assume"),
            field::dur("ttl", "Lifetime of the STS credentials"),
            field::str("role_session_name", "Session name of the assumed role"),
            field::str("mfa_code", "MFA code for session tokens"),
        ]
    };
    ["creds", "sts"]
        .iter()
        .map(|p| {
            Path::new(&format!("{p}/{NAME_RE}"), Arc::new(Creds(shared.clone())))
                .fields(fields())
                .ops(&[Operation::Read, Operation::Update])
        })
        .collect()
}

struct Creds(Arc<Shared>);

/// Which type a role issues. Legacy roles may list several: `creds/` prefers an IAM user,
/// `sts/` an STS type.
fn pick_type(r: &Role, sts_path: bool) -> Result<&str> {
    let preferred = r
        .credential_types
        .iter()
        .find(|t| (t.as_str() == IAM_USER) != sts_path);
    if let Some(t) = preferred.filter(|_| r.credential_types.len() > 1) {
        return Ok(t);
    }
    if r.has(IAM_USER) {
        return Ok(IAM_USER);
    }
    r.credential_types
        .first()
        .map(String::as_str)
        .ok_or_else(|| Error::bad("role has no credential_type"))
}

#[async_trait]
impl PathHandler for Creds {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let name = d.string("name");
        let Some(r) = role::load(ctx.storage, &name).await? else {
            return Err(Error::bad(format!("Role \"{name}\" not found")));
        };
        let sts_path = ctx.req.rel_path.starts_with("sts/");
        match pick_type(&r, sts_path)? {
            IAM_USER => self.iam_user(ctx, &name, &r).await,
            t => self.sts(ctx, &name, &r, t, d).await,
        }
    }
}

fn display_name(ctx: &Ctx<'_>) -> String {
    ctx.req
        .caller
        .as_ref()
        .map(|c| c.display_name.clone())
        .unwrap_or_default()
}

fn bad(e: AwsError) -> Error {
    Error::from(e)
}

impl Creds {
    async fn iam_user(&self, ctx: &Ctx<'_>, role_name: &str, r: &Role) -> Result<Option<Response>> {
        let cfg = read_root(ctx.storage)
            .await?
            .unwrap_or_else(crate::config::RootConfig::unset);
        let user = template::generate(cfg.template(), NameKind::Iam, &display_name(ctx), role_name)
            .map_err(Error::bad)?;
        let internal = json!({"username": user, "policy": role_name, "is_sts": false});
        // Zero leak: the lease naming this user is durable before AWS hears of it.
        let reservation = ctx.reserve(SECRET_TYPE, internal.clone()).await?;
        let clients = self.0.clients(ctx.storage).await?;
        let key = iam_user::create(&clients, role_name, r, &user)
            .await
            .map_err(bad)?;
        let lease = read_lease(ctx.storage).await?.unwrap_or_default();
        let mut resp = Response::data(obj([
            ("access_key", json!(key.access_key)),
            ("secret_key", json!(key.secret_key)),
            ("security_token", Value::Null),
        ]));
        resp.secret = Some(SecretSpec {
            secret_type: SECRET_TYPE.into(),
            ttl: secs(lease.lease),
            max_ttl: secs(lease.lease_max),
            renewable: true,
            internal,
            reservation,
        });
        Ok(Some(resp))
    }

    async fn sts(
        &self,
        ctx: &Ctx<'_>,
        role_name: &str,
        r: &Role,
        kind: &str,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let mut warnings = Vec::new();
        let mut ttl = match d.secs("ttl").filter(|t| *t > 0) {
            Some(t) => t,
            None if r.default_sts_ttl > 0 => r.default_sts_ttl,
            None => DEFAULT_STS_SECS,
        };
        let cap = if r.max_sts_ttl > 0 {
            r.max_sts_ttl
        } else {
            ctx.system.max_lease_ttl.as_secs() as i64
        };
        if cap > 0 && ttl > cap {
            ttl = cap;
        }
        if ttl < MIN_STS_SECS {
            warnings.push(format!(
                "STS credentials last at least {MIN_STS_SECS} seconds; the TTL was raised to that"
            ));
            ttl = MIN_STS_SECS;
        }
        let cfg = read_root(ctx.storage)
            .await?
            .unwrap_or_else(crate::config::RootConfig::unset);
        // Checks that need no AWS call come before the reservation.
        let role_arn = if kind == ASSUMED_ROLE {
            Some(pick_role_arn(r, d)?)
        } else {
            None
        };
        if kind == FEDERATION_TOKEN && r.policy_arns.is_empty() && r.policy_document.is_empty() {
            return Err(Error::bad(
                "must specify at least one of policy_arns or policy_document with federation_token credential_type",
            ));
        }
        let reservation = ctx.reserve(SECRET_TYPE, json!({"is_sts": true})).await?;
        let clients = self.0.clients(ctx.storage).await?;
        let dur = ttl as i32;
        let policy_arns: Vec<PolicyDescriptorType> = r
            .policy_arns
            .iter()
            .map(|a| PolicyDescriptorType::builder().arn(a).build())
            .collect();
        let policy = (!r.policy_document.is_empty()).then(|| r.policy_document.clone());
        let (creds, arn) = match kind {
            ASSUMED_ROLE => {
                let session = match d.str("role_session_name").filter(|s| !s.is_empty()) {
                    Some(s) => template::sanitize(s).chars().take(64).collect(),
                    None => template::generate(
                        cfg.template(),
                        NameKind::Iam,
                        &display_name(ctx),
                        role_name,
                    )
                    .map_err(Error::bad)?,
                };
                let mut req = AssumeRoleInput::builder()
                    .role_arn(role_arn.unwrap_or_default())
                    .role_session_name(session)
                    .duration_seconds(dur)
                    .set_policy(policy)
                    .set_policy_arns((!policy_arns.is_empty()).then_some(policy_arns));
                if !r.external_id.is_empty() {
                    req = req.external_id(&r.external_id);
                }
                for (k, v) in &r.session_tags {
                    let tag = Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                        .map_err(|e| Error::bad(format!("invalid session tag: {e}")))?;
                    req = req.tags(tag);
                }
                let out = sts_call!(clients, req).map_err(bad)?;
                let arn = out.assumed_role_user().map(|u| u.arn().to_string());
                (out.credentials().cloned(), arn)
            }
            FEDERATION_TOKEN => {
                let fed_name = template::generate(
                    cfg.template(),
                    NameKind::Sts,
                    &display_name(ctx),
                    role_name,
                )
                .map_err(Error::bad)?;
                let req = GetFederationTokenInput::builder()
                    .name(fed_name)
                    .duration_seconds(dur)
                    .set_policy(policy)
                    .set_policy_arns((!policy_arns.is_empty()).then_some(policy_arns));
                let out = sts_call!(clients, req).map_err(bad)?;
                (out.credentials().cloned(), None)
            }
            SESSION_TOKEN => {
                let mut req = GetSessionTokenInput::builder().duration_seconds(dur);
                if !r.mfa_serial_number.is_empty() {
                    req = req
                        .serial_number(&r.mfa_serial_number)
                        .token_code(d.string("mfa_code"));
                }
                let out = sts_call!(clients, req).map_err(bad)?;
                (out.credentials().cloned(), None)
            }
            other => return Err(Error::bad(format!("unknown credential_type {other:?}"))),
        };
        let c = creds.ok_or_else(|| Error::internal("AWS returned no credentials"))?;
        // The lease lives as long as the credential really does.
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let left = (c.expiration().secs() - now).max(1);
        let mut data = obj([
            ("access_key", json!(c.access_key_id())),
            ("secret_key", json!(c.secret_access_key())),
            ("security_token", json!(c.session_token())),
            ("session_token", json!(c.session_token())),
        ]);
        if kind == ASSUMED_ROLE {
            data.insert("arn".into(), json!(arn.unwrap_or_default()));
        }
        let mut resp = Response::data(data);
        resp.warnings = warnings;
        resp.secret = Some(SecretSpec {
            secret_type: SECRET_TYPE.into(),
            ttl: secs(left),
            max_ttl: secs(left),
            renewable: false,
            internal: json!({"is_sts": true}),
            reservation,
        });
        Ok(Some(resp))
    }
}

fn pick_role_arn(r: &Role, d: &FieldData) -> Result<String> {
    match d.str("role_arn").filter(|s| !s.is_empty()) {
        Some(a) if r.role_arns.iter().any(|x| x == a) => Ok(a.to_string()),
        Some(a) => Err(Error::bad(format!(
            "role_arn {a:?} is not allowed for this role"
        ))),
        None if r.role_arns.len() == 1 => Ok(r.role_arns[0].clone()),
        None => Err(Error::bad(
            "AWS role ARN must be specified with role_arn when the role has more than one",
        )),
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}
