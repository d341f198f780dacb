//! Static roles: an existing IAM user whose single access key lessor rotates on a
//! schedule. A rotation records its intent, creates the new key, persists it, then deletes
//! every other key of the user; after a crash the intent is finished (or rolled back) so
//! the user always ends with exactly one key, the one `static-creds/` hands out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response, obj};
use lessor_core::{Error, Result};
use lessor_storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Shared;
use crate::config::{load_json, store_json};
use crate::role::NAME_RE;
use crate::sdk::{AwsError, Clients, aws, gone_ok};

/// Vault's floor for `rotation_period`.
pub const MIN_ROTATION_SECS: i64 = 60;
const ROLE_PREFIX: &str = "static-role/";
const CREDS_PREFIX: &str = "static-creds/";
const INTENT_PREFIX: &str = "static-intent/";
/// How often the rotation task looks for due roles.
const TICK: Duration = Duration::from_secs(1);
/// Wait after a failed rotation before trying that role again.
const RETRY_SECS: i64 = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticRole {
    pub username: String,
    pub rotation_period: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StaticCreds {
    access_key: String,
    secret_key: String,
    /// Unix seconds of the next rotation.
    expiration: i64,
}

/// Written before a key is created: the rotation of `username` may be half done.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Intent {
    username: String,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn paths(shared: &Arc<Shared>) -> Vec<Path> {
    vec![
        Path::new("static-roles/?", Arc::new(ListStatic)).ops(&[Operation::List]),
        Path::new(
            &format!("static-roles/{NAME_RE}"),
            Arc::new(StaticRolePath(shared.clone())),
        )
        .fields(vec![
            field::str("name", "Name of the static role"),
            field::str("username", "IAM user whose key is rotated"),
            field::dur("rotation_period", "Time between rotations"),
        ])
        .ops(&[Operation::Read, Operation::Update, Operation::Delete])
        .existence(),
        Path::new(
            &format!("static-creds/{NAME_RE}"),
            Arc::new(StaticCredsPath),
        )
        .fields(vec![field::str("name", "Name of the static role")])
        .ops(&[Operation::Read]),
    ]
}

async fn load_role(s: &Arc<dyn Storage>, name: &str) -> Result<Option<StaticRole>> {
    load_json(s, &format!("{ROLE_PREFIX}{name}")).await
}

struct ListStatic;

#[async_trait]
impl PathHandler for ListStatic {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        Response::list(ctx.storage.list(ROLE_PREFIX).await?)
    }
}

struct StaticRolePath(Arc<Shared>);

#[async_trait]
impl PathHandler for StaticRolePath {
    async fn exists(&self, ctx: &Ctx<'_>, d: &FieldData) -> Result<bool> {
        Ok(load_role(ctx.storage, &d.string("name")).await?.is_some())
    }

    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let name = d.string("name");
        match op {
            Operation::Read => {
                let Some(r) = load_role(ctx.storage, &name).await? else {
                    return Err(Error::NotFound);
                };
                Ok(Some(Response::data(obj([
                    ("name", json!(name)),
                    ("username", json!(r.username)),
                    ("rotation_period", json!(r.rotation_period)),
                ]))))
            }
            Operation::Delete => {
                let _g = self.0.static_lock.lock().await;
                for p in [ROLE_PREFIX, CREDS_PREFIX, INTENT_PREFIX] {
                    ctx.storage.delete(&format!("{p}{name}")).await?;
                }
                Ok(None)
            }
            _ => self.write(ctx, &name, d).await,
        }
    }
}

impl StaticRolePath {
    async fn write(&self, ctx: &Ctx<'_>, name: &str, d: &FieldData) -> Result<Option<Response>> {
        let existing = load_role(ctx.storage, name).await?;
        let username = d
            .str("username")
            .map(str::to_string)
            .or_else(|| existing.as_ref().map(|r| r.username.clone()))
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::bad("missing username"))?;
        let period = d
            .secs("rotation_period")
            .or_else(|| existing.as_ref().map(|r| r.rotation_period))
            .ok_or_else(|| Error::bad("missing rotation_period"))?;
        if period < self.0.min_rotation_secs {
            return Err(Error::bad(format!(
                "rotation_period must be at least {}",
                lessor_core::duration::format_short(self.0.min_rotation_secs)
            )));
        }
        let clients = self.0.clients(ctx.storage).await?;
        if let Err(e) = aws(clients.iam.get_user().user_name(&username).send().await) {
            return Err(if e.no_such_entity() {
                Error::bad(format!("IAM user {username:?} does not exist"))
            } else {
                Error::from(e)
            });
        }
        let role = StaticRole {
            username: username.clone(),
            rotation_period: period,
        };
        let _g = self.0.static_lock.lock().await;
        store_json(ctx.storage, &format!("{ROLE_PREFIX}{name}"), &role).await?;
        let changed_user = existing.as_ref().is_none_or(|r| r.username != username);
        if changed_user {
            ctx.storage.delete(&format!("{CREDS_PREFIX}{name}")).await?;
            rotate(&clients, ctx.storage, name, &role)
                .await
                .map_err(Error::from)?;
        } else if let Some(mut c) =
            load_json::<StaticCreds>(ctx.storage, &format!("{CREDS_PREFIX}{name}")).await?
        {
            // A new period takes effect from now.
            c.expiration = now() + period;
            store_json(ctx.storage, &format!("{CREDS_PREFIX}{name}"), &c).await?;
        }
        Ok(None)
    }
}

struct StaticCredsPath;

#[async_trait]
impl PathHandler for StaticCredsPath {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let name = d.string("name");
        let Some(c) =
            load_json::<StaticCreds>(ctx.storage, &format!("{CREDS_PREFIX}{name}")).await?
        else {
            return Err(Error::NotFound);
        };
        Ok(Some(Response::data(obj([
            ("access_key", json!(c.access_key)),
            ("secret_key", json!(c.secret_key)),
            (
                "expiration",
                json!(lessor_core::clock::rfc3339(c.expiration)),
            ),
        ]))))
    }
}

/// Rotates the key of `name`: intent, create, persist, delete the others, clear intent.
async fn rotate(
    c: &Clients,
    s: &Arc<dyn Storage>,
    name: &str,
    role: &StaticRole,
) -> std::result::Result<(), AwsError> {
    let storage_err = |e: lessor_core::Error| AwsError {
        code: None,
        status: None,
        message: format!("storage: {e}"),
    };
    let intent_key = format!("{INTENT_PREFIX}{name}");
    let creds_key = format!("{CREDS_PREFIX}{name}");
    store_json(
        s,
        &intent_key,
        &Intent {
            username: role.username.clone(),
        },
    )
    .await
    .map_err(storage_err)?;
    let current = load_json::<StaticCreds>(s, &creds_key)
        .await
        .map_err(storage_err)?;
    let keys = aws(c
        .iam
        .list_access_keys()
        .user_name(&role.username)
        .send()
        .await)?;
    let mut meta: Vec<_> = keys.access_key_metadata().to_vec();
    if meta.len() >= 2 {
        // Make room: drop the oldest key that is not the one being handed out.
        meta.sort_by_key(|k| k.create_date().map(|d| d.secs()).unwrap_or(0));
        let keep = current.as_ref().map(|c| c.access_key.as_str());
        let oldest = meta
            .iter()
            .filter_map(|k| k.access_key_id())
            .find(|id| Some(*id) != keep);
        if let Some(id) = oldest {
            gone_ok(aws(c
                .iam
                .delete_access_key()
                .user_name(&role.username)
                .access_key_id(id)
                .send()
                .await))?;
        }
    }
    let out = aws(c
        .iam
        .create_access_key()
        .user_name(&role.username)
        .send()
        .await)?;
    let key = out.access_key().ok_or_else(|| AwsError {
        code: None,
        status: None,
        message: "AWS returned no access key".into(),
    })?;
    let fresh = StaticCreds {
        access_key: key.access_key_id().to_string(),
        secret_key: key.secret_access_key().to_string(),
        expiration: now() + role.rotation_period,
    };
    store_json(s, &creds_key, &fresh)
        .await
        .map_err(storage_err)?;
    keep_only(c, &role.username, &fresh.access_key).await?;
    s.delete(&intent_key)
        .await
        .map_err(|e| storage_err(e.into()))?;
    tracing::info!(role = %name, "rotated static role access key");
    Ok(())
}

/// Deletes every key of `user` except `keep`.
async fn keep_only(c: &Clients, user: &str, keep: &str) -> std::result::Result<bool, AwsError> {
    let keys = aws(c.iam.list_access_keys().user_name(user).send().await)?;
    let mut found = false;
    for k in keys.access_key_metadata() {
        match k.access_key_id() {
            Some(id) if id == keep => found = true,
            Some(id) => {
                gone_ok(aws(c
                    .iam
                    .delete_access_key()
                    .user_name(user)
                    .access_key_id(id)
                    .send()
                    .await))?;
            }
            None => {}
        }
    }
    Ok(found)
}

/// Finishes a rotation interrupted by a crash: if the persisted key exists, the others go
/// (the new key is kept, or a key created but never persisted is rolled back); if it does
/// not, a full rotation runs.
async fn recover(
    c: &Clients,
    s: &Arc<dyn Storage>,
    name: &str,
    role: &StaticRole,
) -> std::result::Result<(), AwsError> {
    let creds = load_json::<StaticCreds>(s, &format!("{CREDS_PREFIX}{name}"))
        .await
        .map_err(|e| AwsError {
            code: None,
            status: None,
            message: format!("storage: {e}"),
        })?;
    let kept = match creds {
        Some(cur) => keep_only(c, &role.username, &cur.access_key).await?,
        None => false,
    };
    if kept {
        let _ = s.delete(&format!("{INTENT_PREFIX}{name}")).await;
        tracing::info!(role = %name, "finished an interrupted static key rotation");
        return Ok(());
    }
    rotate(c, s, name, role).await
}

/// Spawns the mount's rotation task: finishes interrupted rotations, then rotates each
/// role when its period is over.
pub fn spawn_rotation(
    shared: Arc<Shared>,
    storage: Arc<dyn Storage>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut retry_at: BTreeMap<String, i64> = BTreeMap::new();
        loop {
            if let Err(e) = tick(&shared, &storage, &mut retry_at).await {
                tracing::debug!(error = %e, "static role rotation pass failed");
            }
            tokio::time::sleep(TICK).await;
        }
    })
}

async fn tick(
    shared: &Arc<Shared>,
    s: &Arc<dyn Storage>,
    retry_at: &mut BTreeMap<String, i64>,
) -> Result<()> {
    let names = s.list(ROLE_PREFIX).await?;
    if names.is_empty() {
        return Ok(());
    }
    let intents = s.list(INTENT_PREFIX).await?;
    let t = now();
    for name in names {
        if retry_at.get(&name).is_some_and(|at| *at > t) {
            continue;
        }
        let pending = intents.contains(&name);
        let due = match load_json::<StaticCreds>(s, &format!("{CREDS_PREFIX}{name}")).await? {
            Some(c) => c.expiration <= t,
            None => true,
        };
        if !pending && !due {
            continue;
        }
        let _g = shared.static_lock.lock().await;
        // Re-read under the lock: the role may have been deleted or rewritten meanwhile.
        let Some(role) = load_role(s, &name).await? else {
            continue;
        };
        let clients = shared.clients(s).await?;
        let result = if pending {
            recover(&clients, s, &name, &role).await
        } else {
            rotate(&clients, s, &name, &role).await
        };
        match result {
            Ok(()) => {
                retry_at.remove(&name);
            }
            Err(e) => {
                tracing::warn!(role = %name, error = %e, "static role rotation failed; will retry");
                retry_at.insert(name, t + RETRY_SECS);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Crash recovery of rotations against a real moto server (skipped when the project's
    //! venv has no `moto_server`).
    use super::*;
    use crate::testmoto::{admin, start_moto};
    use lessor_storage::inmem::InMem;

    async fn keys(c: &Clients, user: &str) -> Vec<String> {
        let out = c
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .unwrap();
        out.access_key_metadata()
            .iter()
            .filter_map(|k| k.access_key_id().map(String::from))
            .collect()
    }

    async fn new_key(c: &Clients, user: &str) -> StaticCreds {
        let out = c
            .iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap();
        let k = out.access_key().unwrap();
        StaticCreds {
            access_key: k.access_key_id().into(),
            secret_key: k.secret_access_key().into(),
            expiration: now() + 60,
        }
    }

    #[tokio::test]
    async fn interrupted_rotations_end_with_exactly_the_stored_key() {
        let Some(moto) = start_moto() else { return };
        let c = admin(moto.1).await;
        let s: Arc<dyn Storage> = Arc::new(InMem::new());
        let role = StaticRole {
            username: "svc".into(),
            rotation_period: 60,
        };
        c.iam.create_user().user_name("svc").send().await.unwrap();
        let intent = Intent {
            username: "svc".into(),
        };

        // Crash after CreateAccessKey, before the new key was persisted: rolled back.
        let k1 = new_key(&c, "svc").await;
        store_json(&s, "static-creds/r", &k1).await.unwrap();
        let _k2 = new_key(&c, "svc").await;
        store_json(&s, "static-intent/r", &intent).await.unwrap();
        recover(&c, &s, "r", &role).await.unwrap();
        assert_eq!(keys(&c, "svc").await, vec![k1.access_key.clone()]);
        assert!(s.get("static-intent/r").await.unwrap().is_none());

        // Crash after persisting, before the old key was deleted: finished.
        let k3 = new_key(&c, "svc").await;
        store_json(&s, "static-creds/r", &k3).await.unwrap();
        store_json(&s, "static-intent/r", &intent).await.unwrap();
        recover(&c, &s, "r", &role).await.unwrap();
        assert_eq!(keys(&c, "svc").await, vec![k3.access_key.clone()]);

        // The stored key is gone (deleted by hand): a full rotation restores one good key.
        c.iam
            .delete_access_key()
            .user_name("svc")
            .access_key_id(&k3.access_key)
            .send()
            .await
            .unwrap();
        let _stray = new_key(&c, "svc").await;
        store_json(&s, "static-intent/r", &intent).await.unwrap();
        recover(&c, &s, "r", &role).await.unwrap();
        let stored: StaticCreds = load_json(&s, "static-creds/r").await.unwrap().unwrap();
        assert_eq!(keys(&c, "svc").await, vec![stored.access_key]);

        // A plain rotation with two keys present makes room first and ends with one.
        let _extra = new_key(&c, "svc").await;
        rotate(&c, &s, "r", &role).await.unwrap();
        let stored: StaticCreds = load_json(&s, "static-creds/r").await.unwrap().unwrap();
        assert_eq!(keys(&c, "svc").await, vec![stored.access_key]);
    }
}
