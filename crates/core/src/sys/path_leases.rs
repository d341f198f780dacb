//! `sys/leases/*` and the old aliases `sys/renew`, `sys/revoke`, `sys/revoke-prefix`,
//! `sys/revoke-force`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::SysRef;
use crate::framework::field;
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Operation, RawBody, Response, obj};
use crate::{Error, Result};

const TIDY_WARNING: &str = "Tidy operation successfully started. Any information from the operation will be printed to Vault's server logs.";

#[derive(Clone, Copy)]
enum Kind {
    Lookup,
    ListLookup,
    Renew,
    Revoke,
    RevokePrefix,
    RevokeForce,
    Tidy,
    Count,
    Irrevocable,
    Jobs,
    Job,
    Quarantine,
    Unquarantine,
}

pub(super) fn paths(s: &SysRef) -> Vec<Path> {
    let h = |kind| Arc::new(Leases { s: s.clone(), kind });
    let lease_fields = || {
        vec![
            field::str("lease_id", "The lease id."),
            field::str("url_lease_id", "The lease id, from the URL."),
            field::dur("increment", "Requested TTL extension."),
            field::bool("sync", "Wait for revocation to finish.").default(json!(true)),
            field::str("prefix", "Lease id prefix."),
            field::str("type", "irrevocable"),
            field::str("limit", "Max number of leases listed."),
            field::bool("include_child_namespaces", ""),
        ]
    };
    let upd = &[Operation::Update];
    let mut v = vec![
        Path::new("leases/lookup", h(Kind::Lookup))
            .fields(lease_fields())
            .ops(upd),
        Path::new("leases/lookup/(?P<prefix>.*)", h(Kind::ListLookup))
            .fields(lease_fields())
            .ops(&[Operation::List]),
        Path::new("leases/tidy", h(Kind::Tidy)).ops(upd),
        Path::new("leases/count", h(Kind::Count))
            .fields(lease_fields())
            .ops(&[Operation::Read]),
        Path::new("leases", h(Kind::Irrevocable))
            .fields(lease_fields())
            .ops(&[Operation::Read]),
        Path::new("leases/quarantine", h(Kind::Quarantine)).ops(&[Operation::Read]),
        Path::new("leases/quarantine/(?P<lease_id>.+)", h(Kind::Unquarantine))
            .fields(lease_fields())
            .ops(&[Operation::Delete]),
        Path::new("leases/jobs/?", h(Kind::Jobs)).ops(&[Operation::List]),
        Path::new("leases/jobs/(?P<job_id>[^/]+)", h(Kind::Job))
            .fields(vec![field::str("job_id", "Revoke-prefix job id.")])
            .ops(&[Operation::Read]),
    ];
    for base in ["leases/", ""] {
        v.push(
            Path::new(
                &format!("{base}renew(?:/(?P<url_lease_id>.+))?"),
                h(Kind::Renew),
            )
            .fields(lease_fields())
            .ops(upd),
        );
        v.push(
            Path::new(
                &format!("{base}revoke(?:/(?P<url_lease_id>.+))?"),
                h(Kind::Revoke),
            )
            .fields(lease_fields())
            .ops(upd),
        );
        v.push(
            Path::new(
                &format!("{base}revoke-prefix/(?P<prefix>.+)"),
                h(Kind::RevokePrefix),
            )
            .fields(lease_fields())
            .ops(upd),
        );
        v.push(
            Path::new(
                &format!("{base}revoke-force/(?P<prefix>.+)"),
                h(Kind::RevokeForce),
            )
            .fields(lease_fields())
            .ops(upd),
        );
    }
    v
}

fn accepted() -> Response {
    Response {
        raw: Some(RawBody {
            status: 202,
            body: None,
            content_type: None,
            text: None,
        }),
        ..Default::default()
    }
}

fn lease_id(d: &FieldData) -> Option<String> {
    d.str("lease_id")
        .filter(|s| !s.is_empty())
        .or_else(|| d.str("url_lease_id").filter(|s| !s.is_empty()))
        .map(|s| s.trim_start_matches('/').to_string())
}

struct Leases {
    s: SysRef,
    kind: Kind,
}

#[async_trait]
impl PathHandler for Leases {
    async fn handle(
        &self,
        _ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let (_, active) = self.s.active()?;
        let exp = &active.expiration;
        match self.kind {
            Kind::Lookup => {
                let id = lease_id(d).ok_or_else(|| Error::bad("lease_id must be specified"))?;
                let e = exp
                    .lookup(&id)
                    .await?
                    .ok_or_else(|| Error::bad("invalid lease"))?;
                Ok(Some(Response::data(exp.lookup_data(&e))))
            }
            Kind::ListLookup => Response::list(exp.list(&d.string("prefix")).await?),
            Kind::Renew => {
                let id = lease_id(d).ok_or_else(|| Error::bad("lease_id must be specified"))?;
                let increment = d.secs("increment").unwrap_or(0);
                Ok(Some(exp.renew(&id, increment).await?))
            }
            Kind::Revoke => {
                let id = lease_id(d).ok_or_else(|| Error::bad("lease_id must be specified"))?;
                if d.bool("sync").unwrap_or(true) {
                    exp.revoke(&id, false).await?;
                    Ok(None)
                } else {
                    exp.expire_prefix_now(&id).await?;
                    Ok(Some(accepted()))
                }
            }
            Kind::RevokePrefix | Kind::RevokeForce => {
                let force = matches!(self.kind, Kind::RevokeForce);
                let job = exp.start_prefix_job(&d.string("prefix"), force).await?;
                if !d.bool("sync").unwrap_or(true) {
                    return Ok(Some(accepted()));
                }
                let job = exp.wait_job(&job.id).await?;
                if job.failed > 0 {
                    return Err(Error::bad(format!(
                        "failed to revoke {} of {} leases under \"{}\" (job {}); they stay recorded and are retried: {}",
                        job.failed,
                        job.total,
                        job.prefix,
                        job.id,
                        job.errors.first().map(String::as_str).unwrap_or("")
                    )));
                }
                Ok(None)
            }
            Kind::Jobs => Response::list(exp.job_ids().await?),
            Kind::Unquarantine => {
                if !exp.forget_quarantined(&d.string("lease_id")).await? {
                    return Err(Error::NotFound);
                }
                Ok(None)
            }
            Kind::Quarantine => {
                let list: Vec<Value> = exp
                    .quarantined()
                    .await?
                    .into_iter()
                    .map(|(id, reason)| json!({"lease_id": id, "reason": reason}))
                    .collect();
                Ok(Some(Response::data(obj([
                    ("lease_count", json!(list.len())),
                    ("leases", Value::Array(list)),
                ]))))
            }
            Kind::Job => {
                let job = exp.job(&d.string("job_id")).await?.ok_or(Error::NotFound)?;
                Ok(Some(Response::data(job.status())))
            }
            Kind::Tidy => {
                let exp = exp.clone();
                tokio::spawn(async move {
                    match exp.tidy().await {
                        Ok(n) => tracing::info!(revoked = n, "lease tidy finished"),
                        Err(e) => tracing::error!(error = %e, "lease tidy failed"),
                    }
                });
                let mut r = Response {
                    status: Some(202),
                    ..Default::default()
                };
                r.warnings.push(TIDY_WARNING.to_string());
                Ok(Some(r))
            }
            Kind::Count | Kind::Irrevocable => {
                if d.str("type") != Some("irrevocable") {
                    return Err(Error::bad(
                        "invalid or missing type parameter; only \"irrevocable\" is supported",
                    ));
                }
                let leases = exp.irrevocable().await?;
                let mut counts = serde_json::Map::new();
                for l in &leases {
                    let n = counts
                        .get(&l.mount_accessor)
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    counts.insert(l.mount_accessor.clone(), json!(n + 1));
                }
                let mut data = obj([("lease_count", json!(leases.len()))]);
                if matches!(self.kind, Kind::Count) {
                    data.insert("counts".into(), Value::Object(counts));
                } else {
                    let list: Vec<Value> = leases
                        .iter()
                        .map(|l| json!({"lease_id": l.id, "mount_id": l.mount_accessor, "error": l.last_error}))
                        .collect();
                    data.insert("leases".into(), Value::Array(list));
                }
                Ok(Some(Response::data(data)))
            }
        }
    }
}
