//! Measures the embedded engines (redb, fjall, SQLite) on lessor's write pattern: many small
//! values (200-2000 bytes, incompressible like barrier ciphertext) written by concurrent
//! requests, each acknowledged only once it is fsync'd. The numbers behind
//! docs/decisions/storage.md.
//!
//! Every engine runs two ways:
//! * `direct`: each request runs its own durable transaction on the blocking pool, so
//!   concurrent requests queue on the engine's writer lock and pay one fsync each;
//! * `group`: requests enqueue their ops and a oneshot; one writer thread drains the queue,
//!   commits everything in one durable transaction and acknowledges them all.
//!
//! Usage: `cargo run --release -p lessor-storage --example engine_bench -- [seconds] [tasks]
//! [repetitions] [engine]` (defaults 3 s per run, 64 tasks, 3 repetitions, every engine), or `-- recovery N [engine]` to
//! time reopening a store of N keys after its process died unclean. Data goes to a temporary
//! directory under `$TMPDIR`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lessor_storage::Storage;
use tokio::sync::oneshot;

type Op = (String, Vec<u8>);
type Res<T> = Result<T, String>;

/// What the bench needs from an engine: one durable transaction, and a point read.
trait Engine: Send + Sync + 'static {
    /// Durable commits so far, for engines that group writes themselves.
    fn commits(&self) -> Option<u64> {
        None
    }
    fn commit(&self, ops: &[Op]) -> Res<()>;
    fn get(&self, key: &str) -> Res<Option<Vec<u8>>>;
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ---- redb ------------------------------------------------------------------------------

const REDB_TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("kv");

struct Redb {
    db: redb::Database,
    /// Quick-repair: each commit also saves the allocator state (two-phase commit), so
    /// reopening after a crash need not walk the whole file.
    quick_repair: bool,
}

impl Redb {
    fn open(dir: &std::path::Path, quick_repair: bool) -> Self {
        let db = redb::Database::create(dir.join("redb.db")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(REDB_TABLE).unwrap();
        txn.commit().unwrap();
        Redb { db, quick_repair }
    }
}

impl Engine for Redb {
    fn commit(&self, ops: &[Op]) -> Res<()> {
        // Durability::Immediate is redb's default: commit returns after fsync.
        let mut txn = self.db.begin_write().map_err(err)?;
        txn.set_quick_repair(self.quick_repair);
        {
            let mut t = txn.open_table(REDB_TABLE).map_err(err)?;
            for (k, v) in ops {
                t.insert(k.as_str(), v.as_slice()).map_err(err)?;
            }
        }
        txn.commit().map_err(err)
    }

    fn get(&self, key: &str) -> Res<Option<Vec<u8>>> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read().map_err(err)?;
        let t = txn.open_table(REDB_TABLE).map_err(err)?;
        Ok(t.get(key).map_err(err)?.map(|g| g.value().to_vec()))
    }
}

// ---- fjall -----------------------------------------------------------------------------

struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
}

impl Fjall {
    fn open(dir: &std::path::Path) -> Self {
        let db = fjall::Database::builder(dir.join("fjall")).open().unwrap();
        let ks = db
            .keyspace("kv", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        Fjall { db, ks }
    }
}

impl Engine for Fjall {
    fn commit(&self, ops: &[Op]) -> Res<()> {
        // The journal is fdatasync'd before the batch is applied and commit returns.
        let mut b = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncData));
        for (k, v) in ops {
            b.insert(&self.ks, k.as_str(), v.as_slice());
        }
        b.commit().map_err(err)
    }

    fn get(&self, key: &str) -> Res<Option<Vec<u8>>> {
        Ok(self.ks.get(key).map_err(err)?.map(|v| v.to_vec()))
    }
}

// ---- SQLite ----------------------------------------------------------------------------

struct Sqlite {
    path: std::path::PathBuf,
    writer: Mutex<rusqlite::Connection>,
    /// Read connections; WAL lets them read while the writer commits.
    readers: Mutex<Vec<rusqlite::Connection>>,
}

impl Sqlite {
    fn connect(path: &std::path::Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(path).unwrap();
        // WAL + synchronous=FULL: each commit fsyncs the WAL before returning.
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;",
        )
        .unwrap();
        c
    }

    fn open(dir: &std::path::Path) -> Self {
        let path = dir.join("sqlite.db");
        let w = Self::connect(&path);
        w.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
        )
        .unwrap();
        Sqlite {
            path,
            writer: Mutex::new(w),
            readers: Mutex::new(Vec::new()),
        }
    }
}

impl Engine for Sqlite {
    fn commit(&self, ops: &[Op]) -> Res<()> {
        let mut c = self.writer.lock().unwrap();
        let tx = c.transaction().map_err(err)?;
        {
            let mut st = tx
                .prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")
                .map_err(err)?;
            for (k, v) in ops {
                st.execute(rusqlite::params![k, v]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    fn get(&self, key: &str) -> Res<Option<Vec<u8>>> {
        use rusqlite::OptionalExtension;
        let popped = self.readers.lock().unwrap().pop();
        let c = popped.unwrap_or_else(|| Self::connect(&self.path));
        let r = c
            .prepare_cached("SELECT v FROM kv WHERE k = ?1")
            .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
            .map_err(err);
        self.readers.lock().unwrap().push(c);
        r
    }
}

// ---- lessor's own file backend --------------------------------------------------------

/// `FileStorage` behind the same interface, to check the backend keeps what the engine
/// promised: its writes go through its own group commit, so the bench runs it `direct`.
/// Called only from blocking threads, hence `block_on`.
struct Lessor {
    store: Arc<lessor_storage::FileStorage>,
    rt: tokio::runtime::Handle,
}

impl Engine for Lessor {
    fn commits(&self) -> Option<u64> {
        Some(self.store.commits())
    }

    fn commit(&self, ops: &[Op]) -> Res<()> {
        let ops = ops
            .iter()
            .map(|(k, v)| lessor_storage::WriteOp::Put(k.clone(), v.clone()))
            .collect();
        self.rt.block_on(self.store.batch(ops)).map_err(err)
    }

    fn get(&self, key: &str) -> Res<Option<Vec<u8>>> {
        self.rt.block_on(self.store.get(key)).map_err(err)
    }
}

// ---- write paths -----------------------------------------------------------------------

type Job = (Vec<Op>, oneshot::Sender<Res<()>>);

/// How a request gets its write committed.
#[derive(Clone)]
enum Writer {
    Direct(Arc<dyn Engine>),
    Group(std::sync::mpsc::Sender<Job>),
}

/// Largest number of requests one group commit takes, so one fsync never waits on an
/// unbounded transaction.
const MAX_GROUP: usize = 1024;

fn group_writer(engine: Arc<dyn Engine>, groups: Arc<AtomicU64>) -> Writer {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::spawn(move || {
        while let Ok(first) = rx.recv() {
            let (mut ops, ack) = first;
            let mut acks = vec![ack];
            while acks.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok((more, ack)) => {
                        ops.extend(more);
                        acks.push(ack);
                    }
                    Err(_) => break,
                }
            }
            let r = engine.commit(&ops);
            groups.fetch_add(1, Ordering::Relaxed);
            for a in acks {
                let _ = a.send(r.clone());
            }
        }
    });
    Writer::Group(tx)
}

impl Writer {
    async fn put(&self, op: Op) -> Res<()> {
        match self {
            Writer::Direct(e) => {
                let e = e.clone();
                tokio::task::spawn_blocking(move || e.commit(&[op]))
                    .await
                    .map_err(err)?
            }
            Writer::Group(q) => {
                let (tx, rx) = oneshot::channel();
                q.send((vec![op], tx)).map_err(err)?;
                rx.await.map_err(err)?
            }
        }
    }
}

// ---- workload --------------------------------------------------------------------------

/// xorshift: deterministic, dependency-free value bytes and choices.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn value(&mut self) -> Vec<u8> {
        let len = 200 + self.below(1801) as usize;
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

const PRELOADED: u64 = 10_000;

fn key(task: u64, n: u64) -> String {
    format!("sys/expire/id/aws/creds/role-{task}/{n:016x}")
}

struct Outcome {
    writes: u64,
    reads: u64,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
}

/// Runs `tasks` tasks for `dur`; each op is a put, or a get of a preloaded key with
/// probability `read_pct`%.
async fn run(
    engine: Arc<dyn Engine>,
    writer: Writer,
    tasks: u64,
    dur: Duration,
    read_pct: u64,
) -> Outcome {
    let writes = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (engine, writer) = (engine.clone(), writer.clone());
        let (writes, reads) = (writes.clone(), reads.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
            let mut lat = Vec::new();
            let mut n = 0;
            while start.elapsed() < dur {
                let t0 = Instant::now();
                if rng.below(100) < read_pct {
                    let k = key(1_000, rng.below(PRELOADED));
                    let e = engine.clone();
                    let v = tokio::task::spawn_blocking(move || e.get(&k))
                        .await
                        .unwrap()
                        .unwrap();
                    assert!(v.is_some());
                    reads.fetch_add(1, Ordering::Relaxed);
                } else {
                    writer.put((key(t, n), rng.value())).await.unwrap();
                    n += 1;
                    writes.fetch_add(1, Ordering::Relaxed);
                }
                lat.push(t0.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: usize| lat.get(lat.len() * p / 100).copied().unwrap_or(0);
    Outcome {
        writes: writes.load(Ordering::Relaxed),
        reads: reads.load(Ordering::Relaxed),
        secs,
        p50_us: pct(50),
        p99_us: pct(99),
    }
}

const ENGINES: [&str; 4] = ["redb", "redb-quick-repair", "fjall", "sqlite"];
/// `FileStorage` itself, measured after the raw engines.
const LESSOR: &str = "lessor-file";

fn open(name: &str, dir: &std::path::Path) -> Arc<dyn Engine> {
    match name {
        "redb" => Arc::new(Redb::open(dir, false)),
        "redb-quick-repair" => Arc::new(Redb::open(dir, true)),
        "fjall" => Arc::new(Fjall::open(dir)),
        LESSOR => Arc::new(Lessor {
            store: Arc::new(lessor_storage::FileStorage::open(dir).unwrap()),
            rt: tokio::runtime::Handle::current(),
        }),
        _ => Arc::new(Sqlite::open(dir)),
    }
}

/// `recovery ENGINE N`: a child process loads N keys in durable transactions of 1000 and
/// aborts without closing the store; the parent then times reopening it (crash recovery).
fn recovery(name: &str, n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let t0 = Instant::now();
    let status = std::process::Command::new(exe)
        .args(["crash-child", name, &n.to_string()])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die unclean");
    let load = t0.elapsed();
    let t0 = Instant::now();
    let engine = open(name, dir.path());
    let reopened = t0.elapsed();
    assert!(engine.get(&key(1_000, n - 1)).unwrap().is_some());
    println!(
        "| {name} | {n} | {:.1} | {:.3} |",
        load.as_secs_f64(),
        reopened.as_secs_f64()
    );
}

fn crash_child(name: &str, n: u64, dir: &std::path::Path) {
    let engine = open(name, dir);
    let mut rng = Rng(7);
    let mut i = 0;
    while i < n {
        let end = (i + 1000).min(n);
        let ops: Vec<Op> = (i..end).map(|k| (key(1_000, k), rng.value())).collect();
        engine.commit(&ops).unwrap();
        i = end;
    }
    std::process::abort();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("crash-child") => {
            return crash_child(&args[2], args[3].parse().unwrap(), args[4].as_ref());
        }
        Some("recovery") => {
            println!("| engine | keys | load s | reopen after kill s |\n|---|---|---|---|");
            for name in ENGINES {
                if args.get(3).is_none_or(|o| o == name) {
                    recovery(name, args[2].parse().unwrap());
                }
            }
            return;
        }
        _ => {}
    }
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let tasks: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let only: Option<String> = args.get(4).cloned();
    let dur = Duration::from_secs(secs);

    println!(
        "| engine | write path | workload | tasks | writes/s (min-max) | reads/s | commits/s | p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // Every configuration once per repetition, round-robin, so that load from elsewhere on
    // the machine spreads over all of them; the table shows medians (and the write range).
    let mut configs = Vec::new();
    for name in ENGINES.into_iter().chain([LESSOR]) {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        for (label, workload_tasks, read_pct) in [
            ("put, 1 task", 1, 0),
            ("put", tasks, 0),
            ("50% put / 50% get", tasks, 50),
        ] {
            for grouped in [false, true] {
                // One task has nothing to group; `FileStorage` groups by itself.
                if (workload_tasks == 1 || name == LESSOR) && grouped {
                    continue;
                }
                configs.push((name, label, workload_tasks, read_pct, grouped));
            }
        }
    }
    let mut results: Vec<Vec<Row>> = vec![Vec::new(); configs.len()];
    for rep in 0..reps {
        eprintln!("repetition {}/{reps}", rep + 1);
        for (i, &(name, _, workload_tasks, read_pct, grouped)) in configs.iter().enumerate() {
            results[i].push(measure(name, workload_tasks, read_pct, grouped, dur).await);
        }
    }
    for ((name, label, workload_tasks, _, grouped), rows) in configs.into_iter().zip(results) {
        let med = |f: fn(&Row) -> f64| {
            let mut v: Vec<f64> = rows.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[0], v[v.len() - 1])
        };
        let (w, wmin, wmax) = med(|r| r.writes);
        println!(
            "| {name} | {} | {label} | {workload_tasks} | {w:.0} ({wmin:.0}-{wmax:.0}) | {:.0} | {:.0} | {:.2} | {:.2} |",
            match (grouped, name) {
                (true, _) => "group commit",
                (false, LESSOR) => "its own group commit",
                (false, _) => "direct",
            },
            med(|r| r.reads).0,
            med(|r| r.commits).0,
            med(|r| r.p50_ms).0,
            med(|r| r.p99_ms).0,
        );
    }
}

/// One run's rates.
#[derive(Clone)]
struct Row {
    writes: f64,
    reads: f64,
    commits: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// One run of one configuration on a fresh store.
async fn measure(name: &str, tasks: u64, read_pct: u64, grouped: bool, dur: Duration) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(name, dir.path());
    // Keys the readers look up, loaded in big durable transactions.
    let mut rng = Rng(42);
    for chunk in 0..PRELOADED / 1000 {
        let ops: Vec<Op> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|n| (key(1_000, n), rng.value()))
            .collect();
        tokio::task::block_in_place(|| engine.commit(&ops)).unwrap();
    }
    let groups = Arc::new(AtomicU64::new(0));
    let writer = if grouped {
        group_writer(engine.clone(), groups.clone())
    } else {
        Writer::Direct(engine.clone())
    };
    let commits_before = engine.commits();
    let o = run(engine.clone(), writer, tasks, dur, read_pct).await;
    let commits = match (grouped, engine.commits(), commits_before) {
        (true, _, _) => groups.load(Ordering::Relaxed),
        (false, Some(after), Some(before)) => after - before,
        _ => o.writes,
    };
    Row {
        writes: o.writes as f64 / o.secs,
        reads: o.reads as f64 / o.secs,
        commits: commits as f64 / o.secs,
        p50_ms: o.p50_us as f64 / 1000.0,
        p99_ms: o.p99_us as f64 / 1000.0,
    }
}
