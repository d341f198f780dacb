//! Revoke-prefix as a durable job. A job records its prefix and a cursor in storage, walks
//! the leases below the prefix page by page with bounded concurrency, carries on past
//! failures (the failed leases stay recorded and retried with backoff) and reports done /
//! total / failed as it goes. Jobs left running by a crash resume at unseal, from their
//! cursor. Other requests never wait for a job.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Expiration, ID_PREFIX, LeaseEntry, LeaseState, Revoked};
use crate::{Error, Result};

pub(super) const JOB_PREFIX: &str = "jobs/";
const PAGE: usize = 1000;
/// Revocations of one job running at once (each still takes its mount's worker permit).
const JOB_CONCURRENCY: usize = 256;
/// Pages of one job being revoked at once.
const PAGES_IN_FLIGHT: usize = 3;
/// Finished jobs stay listed this long (seven days).
const JOB_RETENTION_SECS: i64 = 7 * 86_400;
/// Errors kept in a job record for the status endpoint.
const KEPT_ERRORS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub prefix: String,
    pub force: bool,
    pub state: JobState,
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub errors: Vec<String>,
    /// Last lease key handled: a resumed job starts after it.
    pub cursor: Option<String>,
    pub started: i64,
    pub finished: i64,
}

impl Job {
    pub fn status(&self) -> serde_json::Map<String, Value> {
        let v = json!({
            "id": self.id,
            "prefix": self.prefix,
            "force": self.force,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "errors": self.errors,
            "started": crate::clock::rfc3339(self.started),
            "finished": if self.finished > 0 { json!(crate::clock::rfc3339(self.finished)) } else { Value::Null },
        });
        v.as_object().cloned().unwrap_or_default()
    }
}

/// Running jobs' live progress, and watchers waiting for them to end.
/// What revoking one page came to: leases handled, and the failures among them.
struct PageOutcome {
    done: u64,
    errors: Vec<String>,
}

#[derive(Default)]
pub struct Jobs {
    live: parking_lot::Mutex<HashMap<String, tokio::sync::watch::Sender<Job>>>,
}

impl Expiration {
    async fn save_job(&self, job: &Job) -> Result<()> {
        let raw = serde_json::to_vec(job).map_err(|e| Error::internal(e.to_string()))?;
        self.storage
            .put(&format!("{JOB_PREFIX}{}", job.id), raw)
            .await?;
        Ok(())
    }

    /// A job's status: live if it runs here, else as last recorded.
    pub async fn job(&self, id: &str) -> Result<Option<Job>> {
        if let Some(tx) = self.jobs.live.lock().get(id) {
            return Ok(Some(tx.borrow().clone()));
        }
        match self.storage.get(&format!("{JOB_PREFIX}{id}")).await? {
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| Error::internal(e.to_string())),
            None => Ok(None),
        }
    }

    pub async fn job_ids(&self) -> Result<Vec<String>> {
        Ok(self.storage.list(JOB_PREFIX).await?)
    }

    /// Deletes finished job records older than `JOB_RETENTION_SECS`.
    async fn prune_jobs(&self) -> Result<()> {
        let cutoff = self.clock.now_unix() - JOB_RETENTION_SECS;
        for id in self.job_ids().await? {
            if let Some(job) = self.job(&id).await?
                && job.state == JobState::Done
                && job.finished < cutoff
            {
                self.storage.delete(&format!("{JOB_PREFIX}{id}")).await?;
            }
        }
        Ok(())
    }

    /// Starts a job revoking everything under `prefix` (or the one lease named exactly).
    pub async fn start_prefix_job(self: &Arc<Self>, prefix: &str, force: bool) -> Result<Job> {
        if let Err(e) = self.prune_jobs().await {
            tracing::warn!(error = %e, "cannot prune old revoke-prefix jobs");
        }
        let prefix = prefix.trim_start_matches('/').to_string();
        let now = self.clock.now_unix();
        let job = Job {
            id: uuid::Uuid::new_v4().to_string(),
            prefix,
            force,
            state: JobState::Running,
            // The job counts its leases itself, in the background (`run_job`): counting
            // 100k took a request thread over 100 ms, beside the requests it serves.
            total: 0,
            done: 0,
            failed: 0,
            errors: Vec::new(),
            cursor: None,
            started: now,
            finished: 0,
        };
        self.save_job(&job).await?;
        self.spawn_job(job.clone());
        Ok(job)
    }

    /// Waits until a job ends and returns its final record.
    pub async fn wait_job(&self, id: &str) -> Result<Job> {
        let rx = self.jobs.live.lock().get(id).map(|tx| tx.subscribe());
        if let Some(mut rx) = rx {
            loop {
                if rx.borrow().state == JobState::Done {
                    return Ok(rx.borrow().clone());
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
        }
        self.job(id)
            .await?
            .ok_or_else(|| Error::internal("revoke job vanished"))
    }

    fn spawn_job(self: &Arc<Self>, job: Job) {
        let (tx, _) = tokio::sync::watch::channel(job.clone());
        self.jobs.live.lock().insert(job.id.clone(), tx);
        let this = self.clone();
        crate::background::spawn(async move {
            let id = job.id.clone();
            if let Err(e) = this.run_job(job).await {
                tracing::error!(job = %id, error = %e, "revoke-prefix job stopped; it resumes at next unseal");
            }
            this.jobs.live.lock().remove(&id);
        });
    }

    /// Resumes the jobs a crash or a seal interrupted.
    pub async fn resume_jobs(self: &Arc<Self>) -> Result<usize> {
        let mut n = 0;
        for id in self.job_ids().await? {
            if let Some(job) = self.job(&id).await?
                && job.state == JobState::Running
            {
                tracing::info!(job = %id, prefix = %job.prefix, done = job.done, "resuming revoke-prefix job");
                self.spawn_job(job);
                n += 1;
            }
        }
        Ok(n)
    }

    /// The storage range a prefix covers: the exact lease, or the `<prefix>/` subtree.
    async fn range_of(&self, prefix: &str) -> Result<(String, Option<String>)> {
        let trimmed = prefix.trim_end_matches('/');
        if !prefix.ends_with('/')
            && !trimmed.is_empty()
            && self.load_stored(trimmed).await?.is_some()
        {
            return Ok((format!("{ID_PREFIX}{trimmed}"), Some(trimmed.to_string())));
        }
        if trimmed.is_empty() {
            return Ok((ID_PREFIX.to_string(), None));
        }
        Ok((format!("{ID_PREFIX}{trimmed}/"), None))
    }

    /// How many leases a range (`range_of`) holds.
    async fn count_in(&self, base: &str, exact: Option<&str>) -> Result<u64> {
        if exact.is_some() {
            return Ok(1);
        }
        let mut n = 0u64;
        let mut after: Option<String> = None;
        loop {
            let keys = self
                .storage
                .scan_keys(base, after.as_deref(), 10_000)
                .await?;
            let Some(last) = keys.last() else { break };
            after = Some(last.clone());
            n += keys.len() as u64;
        }
        Ok(n)
    }

    /// One page of lease records after `cursor`: the exact lease when the prefix names one,
    /// else the next `PAGE` records under `base`.
    async fn job_page(
        &self,
        base: &str,
        exact: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(match exact {
            Some(id) if cursor.is_none() => {
                let key = format!("{ID_PREFIX}{id}");
                self.storage
                    .get(&key)
                    .await?
                    .map(|v| vec![(key, v)])
                    .unwrap_or_default()
            }
            Some(_) => Vec::new(),
            None => self.storage.scan(base, cursor, PAGE).await?,
        })
    }

    /// Runs a job to its end. Pages are read ahead and up to `PAGES_IN_FLIGHT` are revoked
    /// at once, so the engine calls of one page overlap the removals of the one before;
    /// pages are accounted in order, so the saved cursor only ever passes leases that are
    /// done (a restart resumes at the first page not finished).
    async fn run_job(self: &Arc<Self>, mut job: Job) -> Result<()> {
        use futures_util::TryStreamExt;
        let (base, exact) = self.range_of(&job.prefix).await?;
        if job.cursor.is_none() && job.done == 0 {
            job.total = self.count_in(&base, exact.as_deref()).await?;
            self.save_job(&job).await?;
            self.publish(&job);
        }
        let force = job.force;
        let pages = futures_util::stream::try_unfold(job.cursor.clone(), |cursor| {
            let (this, base, exact) = (self.clone(), base.clone(), exact.clone());
            async move {
                let page = this
                    .job_page(&base, exact.as_deref(), cursor.as_deref())
                    .await?;
                Ok::<_, Error>(page.last().map(|(last, _)| last.clone()).map(|last| {
                    let next = Some(last.clone());
                    ((page, last), next)
                }))
            }
        });
        let mut outcomes = std::pin::pin!(
            pages
                .map_ok(|(page, last)| {
                    let this = self.clone();
                    async move { this.revoke_page(page, force).await.map(|o| (o, last)) }
                })
                .try_buffered(PAGES_IN_FLIGHT)
        );
        while let Some((outcome, last)) = outcomes.try_next().await? {
            job.done += outcome.done;
            job.failed += outcome.errors.len() as u64;
            let room = KEPT_ERRORS.saturating_sub(job.errors.len());
            job.errors.extend(outcome.errors.into_iter().take(room));
            job.total = job.total.max(job.done);
            job.cursor = Some(last);
            self.save_job(&job).await?;
            self.publish(&job);
        }
        job.state = JobState::Done;
        job.finished = self.clock.now_unix();
        self.save_job(&job).await?;
        self.publish(&job);
        Ok(())
    }

    /// Revokes one page of lease records through their engines and forgets, in one
    /// batch, those revoked.
    async fn revoke_page(
        self: &Arc<Self>,
        page: Vec<(String, Vec<u8>)>,
        force: bool,
    ) -> Result<PageOutcome> {
        use futures_util::StreamExt;
        let done = page.len() as u64;
        let results: Vec<(String, Result<Option<Revoked>>)> = futures_util::stream::iter(page)
            .map(|(key, raw)| async move {
                let id = key[ID_PREFIX.len()..].to_string();
                let r = match serde_json::from_slice::<LeaseEntry>(&raw) {
                    Ok(e) => self.revoke_in_job(e, force).await,
                    Err(err) => Err(Error::internal(format!("corrupt lease record: {err}"))),
                };
                (id, r)
            })
            .buffer_unordered(JOB_CONCURRENCY)
            .collect()
            .await;
        let mut revoked = Vec::new();
        let mut errors = Vec::new();
        for (id, r) in results {
            match r {
                Ok(Some(r)) => revoked.push(r),
                Ok(None) => {}
                Err(e) => errors.push(format!("{id}: {e}")),
            }
        }
        self.forget_many(revoked).await.map_err(|(err, _)| err)?;
        Ok(PageOutcome { done, errors })
    }

    fn publish(&self, job: &Job) {
        if let Some(tx) = self.jobs.live.lock().get(&job.id) {
            tx.send_replace(job.clone());
        }
    }

    /// One revocation of a job, through the worker pool. Returns the lease to forget (the
    /// caller forgets a page at once); a failure is recorded on the lease (retried with
    /// backoff) unless forced, when the lease is forgotten anyway.
    ///
    /// The record is the page's, not read again: a renewal that landed since changed only
    /// its times (no engine replaces a lease's revocation data on renewal), and once claimed
    /// no renewal can land. A reservation is read again: the claim waited for its issuance,
    /// which may have replaced the planned revocation data with the credential's own, or
    /// aborted it.
    async fn revoke_in_job(&self, e: LeaseEntry, force: bool) -> Result<Option<Revoked>> {
        let claim = self.claims.revocation(&e.id).await;
        let e = if e.state == LeaseState::Pending {
            match self.load_stored(&e.id).await? {
                Some(e) => e,
                None => return Ok(None),
            }
        } else {
            e
        };
        let _permit = self.workers.acquire(&e.mount).await;
        match self.revoke_entry(&e, None).await {
            Ok(writes) => Ok(Some(Revoked::claimed(e, writes, claim))),
            Err(err) if force => {
                tracing::warn!(lease_id = %e.id, error = %err, "forced revocation dropped a lease whose backend revoke failed");
                Ok(Some(Revoked::claimed(e, Vec::new(), claim)))
            }
            Err(err) => {
                let msg = err.to_string();
                if e.state != LeaseState::Irrevocable {
                    self.record_failure(e, msg.clone()).await;
                }
                Err(Error::bad(msg))
            }
        }
    }
}
