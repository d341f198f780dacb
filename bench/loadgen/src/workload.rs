//! Workloads: what request each worker sends, and what the server needs before the clock starts.
//!
//! Adding a workload takes a variant of [`Kind`], its arm in [`Kind::prepare`], and a type that
//! implements [`Workload`] (in `token.rs`, `kv.rs`, or a new module beside them).

mod approle;
mod kv;
mod lease;
mod token;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use clap::ValueEnum;
use tokio::task::JoinSet;

use crate::client::{Call, Client};
use crate::error::{Error, Result};

/// A prepared workload: given the sequence number of a call (counting every call of the run,
/// warm-up included), it says which request to send. It must be cheap; it runs in the timed loop.
pub trait Workload: Send + Sync {
    fn call(&self, seq: u64) -> Call;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// POST auth/token/create: a new service token (and so a new token lease) per request.
    TokenCreate,
    /// POST auth/token/renew over a pool of tokens made during setup.
    TokenRenew,
    /// POST <mount>/data/bench/<n> on KV v2 (default mount `secret`), ~100-byte values.
    Kv2Write,
    /// GET <mount>/data/bench/<n> on KV v2, after writing every key once during setup.
    Kv2Read,
    /// POST <mount>/bench/<n> on KV v1 (default mount `bench-kv1`, mounted if absent).
    Kv1Write,
    /// GET <mount>/bench/<n> on KV v1, after writing every key once during setup.
    Kv1Read,
    /// GET <mount>/creds/bench on the test engine (default mount `test`): one lease per
    /// request; `LESSOR_LOADGEN_EXPIRE_AT` makes them all expire at one second.
    LeaseIssue,
    /// POST sys/leases/renew over up to 1000 test-engine leases issued during setup.
    LeaseRenew,
    /// POST auth/<mount>/login on AppRole (default mount `approle`, enabled if absent) with
    /// one role id and one unlimited secret id: a token per request.
    ApproleLogin,
}

/// What setup may use: how many distinct keys (or tokens) to spread requests over, how wide to
/// fan out setup requests, and an optional mount path overriding the workload's default.
#[derive(Debug, Clone)]
pub struct Setup {
    pub keys: u64,
    pub width: usize,
    pub mount: Option<String>,
}

impl Kind {
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_else(|| format!("{self:?}"))
    }

    /// Runs the workload's setup against the server and returns the request generator.
    pub async fn prepare(self, client: &Client, setup: &Setup) -> Result<Arc<dyn Workload>> {
        use kv::{Op, Version};
        Ok(match self {
            Kind::TokenCreate => Arc::new(token::Create::new()),
            Kind::TokenRenew => Arc::new(token::renew(client, setup).await?),
            Kind::Kv2Write => {
                Arc::new(kv::Kv::prepare(client, setup, Version::V2, Op::Write).await?)
            }
            Kind::Kv2Read => Arc::new(kv::Kv::prepare(client, setup, Version::V2, Op::Read).await?),
            Kind::Kv1Write => {
                Arc::new(kv::Kv::prepare(client, setup, Version::V1, Op::Write).await?)
            }
            Kind::Kv1Read => Arc::new(kv::Kv::prepare(client, setup, Version::V1, Op::Read).await?),
            Kind::LeaseIssue => Arc::new(lease::Issue::new(setup)),
            Kind::LeaseRenew => Arc::new(lease::renew(client, setup).await?),
            Kind::ApproleLogin => Arc::new(approle::Login::prepare(client, setup).await?),
        })
    }
}

/// POSTs to `path`, cycling through request bodies prepared in setup, one per credential
/// (the renew workloads: the credentials themselves live only in these bodies).
pub struct Cycle {
    path: &'static str,
    bodies: Vec<Bytes>,
}

impl Cycle {
    /// Prepares `count` bodies, `body(i)` each, at most `width` at a time.
    async fn prepare<F, Fut>(path: &'static str, count: u64, width: usize, body: F) -> Result<Self>
    where
        F: Fn(u64) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Bytes>> + Send,
    {
        let bodies = fan_out(count, width, body).await?;
        Ok(Self { path, bodies })
    }
}

impl Workload for Cycle {
    fn call(&self, seq: u64) -> Call {
        let index = usize::try_from(seq % (self.bodies.len() as u64).max(1)).unwrap_or(0);
        let body = self.bodies.get(index).cloned().unwrap_or_default();
        Call::post(self.path, body)
    }
}

/// Runs `task(i)` for every `i` in `0..count`, at most `width` at a time, and collects the results
/// (in no particular order). Setup steps use it so that pre-populating does not take longer
/// than the benchmark itself.
async fn fan_out<T, F, Fut>(count: u64, width: usize, task: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T>> + Send,
{
    let width = width.clamp(1, 64) as u64;
    let mut set = JoinSet::new();
    for lane in 0..width.min(count) {
        let task = task.clone();
        set.spawn(async move {
            let mut out = Vec::new();
            let mut i = lane;
            while i < count {
                out.push(task(i).await?);
                i += width;
            }
            Ok::<_, Error>(out)
        });
    }
    let mut all = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    while let Some(joined) = set.join_next().await {
        let part = joined.map_err(|e| Error::SetupOther {
            step: "fan-out".into(),
            reason: e.to_string(),
        })??;
        all.extend(part);
    }
    Ok(all)
}
