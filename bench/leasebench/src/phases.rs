//! The two phases: populate a store, then restore it in a fresh process.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lessor_core::core::{Core, CoreConfig, Factory};
use lessor_core::expiration::{Schedule, random_suffix};
use lessor_core::logical::{Operation, Request, Response};
use serde_json::{Map, Value, json};

use crate::rss::rss_bytes;

type Result<T> = std::result::Result<T, String>;

/// Where `populate` leaves the unseal key and root token for `restore`.
const STATE_FILE: &str = "leasebench.json";
const MOUNT: &str = "test";
const CREDS: &str = "test/creds/bench";
/// Long enough that no lease expires while the benchmark runs.
const LEASE_TTL: &str = "720h";

fn factories() -> BTreeMap<String, Factory> {
    let mut f: BTreeMap<String, Factory> = BTreeMap::new();
    // `kv` only because a core can mount KV; the benchmark never uses it.
    f.insert(
        "kv".into(),
        Arc::new(|entry| lessor_engine_kv::factory(&entry.options)),
    );
    f.insert(
        lessor_engine_test::TYPE.into(),
        Arc::new(lessor_engine_test::factory),
    );
    f
}

fn open(dir: &Path) -> Result<Arc<Core>> {
    let storage = lessor_storage::file::open_file(&dir.join("data"))
        .map_err(|e| format!("cannot open file storage in {}: {e}", dir.display()))?;
    Ok(Core::new(storage, CoreConfig::default(), factories()))
}

async fn call(
    core: &Arc<Core>,
    token: &str,
    op: Operation,
    path: &str,
    data: Value,
) -> Result<Option<Response>> {
    let data: Map<String, Value> = data.as_object().cloned().unwrap_or_default();
    core.handle(Request::new(op, path).with_data(data).with_token(token))
        .await
        .map_err(|e| format!("{path}: {e}"))
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1000.0
}

/// Init, unseal, mount the test engine and issue `leases` leases, `concurrency` at a time.
pub async fn populate(dir: &Path, leases: u64, concurrency: usize) -> Result<String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let core = open(dir)?;
    let (keys, root) = core.init(1, 1).await.map_err(|e| format!("init: {e}"))?;
    let key = keys.first().ok_or("init returned no key")?.clone();
    core.unseal(&key)
        .await
        .map_err(|e| format!("unseal: {e}"))?;
    call(
        &core,
        &root,
        Operation::Update,
        &format!("sys/mounts/{MOUNT}"),
        json!({"type": lessor_engine_test::TYPE}),
    )
    .await?;
    call(
        &core,
        &root,
        Operation::Update,
        "test/config",
        json!({"ttl": LEASE_TTL, "max_ttl": LEASE_TTL}),
    )
    .await?;
    let state = json!({"key": hex::encode(&key), "root": root});
    std::fs::write(dir.join(STATE_FILE), state.to_string())
        .map_err(|e| format!("cannot write state: {e}"))?;

    let issued = Arc::new(AtomicU64::new(0));
    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (core, root, issued, claimed) =
            (core.clone(), root.clone(), issued.clone(), claimed.clone());
        tasks.spawn(async move {
            while claimed.fetch_add(1, Ordering::Relaxed) < leases {
                let r = call(&core, &root, Operation::Read, CREDS, json!({})).await?;
                if r.is_none_or(|r| r.lease_id.is_empty()) {
                    return Err("issuance returned no lease".to_string());
                }
                let n = issued.fetch_add(1, Ordering::Relaxed) + 1;
                if n % (leases / 10).max(1) == 0 {
                    eprintln!(
                        "lessor-leasebench: {n}/{leases} leases in {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Ok::<(), String>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| format!("issuing task: {e}"))??;
    }
    let elapsed = started.elapsed();
    let scheduled = core.active().map_or(0, |a| a.expiration.schedule().len());
    let rss = rss_bytes();
    core.seal_now().await;
    Ok(json!({
        "phase": "populate",
        "leases": issued.load(Ordering::Relaxed),
        "concurrency": concurrency,
        "seconds": secs(elapsed),
        "issuances_per_s": (issued.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()).round(),
        "scheduled": scheduled,
        "rss_bytes": rss,
    })
    .to_string())
}

fn read_state(dir: &Path) -> Result<(Vec<u8>, String)> {
    let raw = std::fs::read_to_string(dir.join(STATE_FILE))
        .map_err(|e| format!("no state from populate: {e}"))?;
    let v: Value = serde_json::from_str(&raw).map_err(|e| format!("bad state file: {e}"))?;
    let key = v["key"]
        .as_str()
        .and_then(|k| hex::decode(k).ok())
        .ok_or("state without key")?;
    let root = v["root"]
        .as_str()
        .ok_or("state without root token")?
        .to_string();
    Ok((key, root))
}

/// Unseal a populated store; time the first request and the full schedule; size the index.
pub async fn restore(dir: &Path, leases: u64, timeout: u64) -> Result<String> {
    let (key, root) = read_state(dir)?;
    // Opening the store replays the journal written since the last flush into memory.
    let opening = Instant::now();
    let core = open(dir)?;
    let opened = opening.elapsed();
    let rss_sealed = rss_bytes();
    let started = Instant::now();
    core.unseal(&key)
        .await
        .map_err(|e| format!("unseal: {e}"))?;
    let unsealed = started.elapsed();
    // The first request a client would send: is my token good?
    call(
        &core,
        &root,
        Operation::Read,
        "auth/token/lookup-self",
        json!({}),
    )
    .await?;
    let first_request = started.elapsed();
    // And the first credential issued after unseal.
    call(&core, &root, Operation::Read, CREDS, json!({})).await?;
    let first_issue = started.elapsed();
    let expiration = core.active().ok_or("sealed again")?.expiration.clone();
    let deadline = Duration::from_secs(timeout);
    let wanted = usize::try_from(leases).unwrap_or(usize::MAX);
    while expiration.schedule().len() < wanted {
        if started.elapsed() > deadline {
            return Err(format!(
                "only {} of {leases} leases scheduled after {timeout} s",
                expiration.schedule().len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let all_scheduled = started.elapsed();
    let rss_restored = rss_bytes();
    let scheduled = expiration.schedule().len();
    let index = bare_index_size(leases);
    let n = leases.max(1) as f64;
    Ok(json!({
        "phase": "restore",
        "leases": leases,
        "scheduled": scheduled,
        "open_ms": ms(opened),
        "unseal_ms": ms(unsealed),
        "first_request_ms": ms(first_request),
        "first_issue_ms": ms(first_issue),
        "all_scheduled_ms": ms(all_scheduled),
        "rss_sealed_bytes": rss_sealed,
        "rss_restored_bytes": rss_restored,
        "rss_total_per_lease_bytes": (rss_restored as f64 / n).round(),
        "rss_restore_delta_per_lease_bytes": (rss_restored.saturating_sub(rss_sealed) as f64 / n).round(),
        "index_bytes_per_lease": index,
    })
    .to_string())
}

/// RSS growth per lease of a bare `Schedule` holding `n` ids shaped like test-engine lease
/// ids (`test/creds/bench/` + 24 characters): the lease index alone, with no storage caches
/// or restore buffers mixed in. The ids are built first so only the index is measured.
fn bare_index_size(n: u64) -> f64 {
    let ids: Vec<String> = (0..n)
        .map(|_| format!("{CREDS}/{}", random_suffix()))
        .collect();
    let before = rss_bytes();
    let schedule = Schedule::new();
    for (i, id) in ids.iter().enumerate() {
        // Spread over a day of expiry times, each at some millisecond, as real leases are.
        let i = i as i64;
        schedule.insert(id, (1_800_000_000 + i % 86_400) * 1000 + (i * 7_919) % 1000);
    }
    let after = rss_bytes();
    let per = after.saturating_sub(before) as f64 / n.max(1) as f64;
    drop(schedule);
    per.round()
}
