//! The embedded durable backend (`storage "file" { path = "..." }`), on fjall (an LSM tree
//! with a write-ahead journal); docs/decisions/storage.md says why that engine.
//!
//! Writes go through **group commit**: each request hands its ops and a oneshot to one writer
//! thread, which takes everything queued, applies it as one fjall batch, fdatasyncs the journal
//! once and then acknowledges every request in the group. A write is acknowledged only after
//! that sync, and fjall makes a batch visible to readers only after its journal write, so a
//! reader never sees a write that a crash could take back.
//!
//! A group whose writes all came from background threads (`priority`: expiries, revoke-prefix
//! jobs) is committed by a second thread at their lower priority, the writer waiting for it,
//! so commits stay one at a time and in queue order. Applying a revocation storm's
//! tombstones is most of the CPU the storm costs besides its own threads; at normal priority
//! it competed with requests as an equal (KV readers' p99 during a revoke-prefix of 100k,
//! median of six alternating runs: 2.24 ms with it, 1.84 ms at the lower priority, the job
//! no slower). The writer cannot lower its own priority for such a group and raise it
//! after: that needs `CAP_SYS_NICE`. A request's write that arrives meanwhile waits for the
//! group, as it waits for any group in progress.
//!
//! Reads never touch the writer: point reads run inline (they hit memory almost always),
//! range reads on tokio's blocking pool, against fjall's snapshots.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use tokio::sync::oneshot;

use crate::listing::list_by_seeking;
use crate::{Result, Storage, StorageError, WriteOp, validate_ops};

/// Folder inside the configured directory that holds fjall's files.
const DATA_DIR: &str = "fjall";
/// The one keyspace (fjall's column family) lessor uses.
const KEYSPACE: &str = "kv";
/// Most requests one group takes, and most value bytes it gathers beyond its first request,
/// so one commit never grows without bound while others wait for the next.
const MAX_GROUP_REQUESTS: usize = 4096;
const MAX_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// One request for the writer thread: its ops and where to send the outcome.
struct Job {
    ops: Vec<WriteOp>,
    done: oneshot::Sender<Result<()>>,
    /// Queued from a background thread.
    background: bool,
}

/// The file backend. Share it behind an `Arc`. Dropping it lets the writer thread commit
/// what is queued, waits for that (one commit at most), and closes the store, so the same
/// directory can be opened again right away.
pub struct FileStorage {
    db: Database,
    kv: Keyspace,
    /// `None` only while dropping: closing the queue is what stops the writer.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    commits: Arc<AtomicU64>,
    background_commits: Arc<AtomicU64>,
}

/// Opens (creating if needed) the store in directory `path`.
pub fn open_file(path: &Path) -> Result<Arc<dyn Storage>> {
    Ok(Arc::new(FileStorage::open(path)?))
}

fn io(e: impl std::fmt::Display) -> StorageError {
    StorageError::Io(e.to_string())
}

impl FileStorage {
    /// Opens (creating if needed) the store in directory `path`. Fails if another process
    /// has it open.
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path)
            .map_err(|e| io(format!("creating {}: {e}", path.display())))?;
        let db = Database::builder(path.join(DATA_DIR))
            .open()
            .map_err(|e| io(format!("opening {}: {e}", path.display())))?;
        let kv = db
            .keyspace(KEYSPACE, KeyspaceCreateOptions::default)
            .map_err(io)?;
        let (jobs, queue) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let background_commits = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            db: db.clone(),
            kv: kv.clone(),
            commits: commits.clone(),
        };
        let lower = Lower::start(writer.clone(), background_commits.clone());
        let writer = std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || writer.run(&queue, lower))
            .map_err(|e| io(format!("starting the writer thread: {e}")))?;
        Ok(Self {
            db,
            kv,
            jobs: Some(jobs),
            writer: Some(writer),
            commits,
            background_commits,
        })
    }

    /// Durable commits (one journal sync each) since the store was opened: with group
    /// commit, fewer than the writes acknowledged.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Of those, the commits of groups only background threads queued, made at their
    /// priority.
    pub fn background_commits(&self) -> u64 {
        self.background_commits.load(Ordering::Relaxed)
    }

    /// Queues ops for the writer and waits until they are durable.
    async fn write(&self, ops: Vec<WriteOp>) -> Result<()> {
        validate_ops(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        let (done, outcome) = oneshot::channel();
        self.jobs
            .as_ref()
            .ok_or(StorageError::Closed)?
            .send(Job {
                ops,
                done,
                background: crate::priority::is_background(),
            })
            .map_err(|_| StorageError::Closed)?;
        outcome.await.map_err(|_| StorageError::Closed)?
    }

    /// Runs a read on the blocking pool: fjall may go to disk.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database, &Keyspace) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (db, kv) = (self.db.clone(), self.kv.clone());
        tokio::task::spawn_blocking(move || f(&db, &kv))
            .await
            .map_err(|e| io(format!("read task: {e}")))?
    }
}

impl Drop for FileStorage {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            // An Err means the writer panicked; the queue is closed either way.
            let _ = writer.join();
        }
    }
}

fn utf8_key(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| io("stored key is not UTF-8"))
}

/// Where a scan of `prefix` strictly after `after` starts.
fn scan_start(prefix: &str, after: Option<&str>) -> Bound<String> {
    match after {
        Some(a) if a >= prefix => Bound::Excluded(a.to_string()),
        _ => Bound::Included(prefix.to_string()),
    }
}

/// Keys from `start` onwards in `snap`, in order.
fn keys_from(
    snap: &fjall::Snapshot,
    kv: &Keyspace,
    start: Bound<String>,
) -> impl Iterator<Item = Result<String>> + use<> {
    snap.range(kv, (start, Bound::<String>::Unbounded))
        .map(|g| g.key().map_err(io).and_then(|k| utf8_key(&k)))
}

#[async_trait]
impl Storage for FileStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        // A point read is served from the memtable or the block cache almost always; a hop
        // to the blocking pool costs more than the read (two thread wake-ups per request).
        Ok(self.kv.get(key).map_err(io)?.map(|v| v.to_vec()))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.write(vec![WriteOp::Put(key.to_string(), value)]).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.write(vec![WriteOp::Delete(key.to_string())]).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.to_string();
        self.read(move |db, kv| {
            let snap = db.snapshot();
            list_by_seeking(&prefix, |start| keys_from(&snap, kv, start))
        })
        .await
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = prefix.to_string();
        let start = scan_start(&prefix, after);
        self.read(move |db, kv| {
            let snap = db.snapshot();
            let mut out = Vec::new();
            for item in snap.range(kv, (start, Bound::<String>::Unbounded)) {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = item.into_inner().map_err(io)?;
                if !k.starts_with(prefix.as_bytes()) {
                    break;
                }
                out.push((utf8_key(&k)?, v.to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let prefix = prefix.to_string();
        let start = scan_start(&prefix, after);
        self.read(move |db, kv| {
            let snap = db.snapshot();
            keys_from(&snap, kv, start)
                .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(&prefix)))
                .take(limit)
                .collect()
        })
        .await
    }

    async fn batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.write(ops).await
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}

/// The writer's state: the only code that writes to fjall.
#[derive(Clone)]
struct Writer {
    db: Database,
    kv: Keyspace,
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// The writer thread: takes queued requests a group at a time and commits each group,
    /// here or, if only background threads queued it, on `lower`'s thread.
    fn run(&self, queue: &mpsc::Receiver<Job>, lower: Option<Lower>) {
        // Ends when every `FileStorage` handle (and so every sender) is gone.
        while let Ok(first) = queue.recv() {
            let mut bytes = 0;
            let mut group = vec![first];
            while group.len() < MAX_GROUP_REQUESTS && bytes < MAX_GROUP_BYTES {
                match queue.try_recv() {
                    Ok(job) => {
                        bytes += job.ops.iter().map(op_bytes).sum::<usize>();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            match &lower {
                Some(lower) if group.iter().all(|job| job.background) => lower.apply(group, self),
                _ => self.apply(group),
            }
        }
        if let Some(lower) = lower {
            lower.stop();
        }
    }

    /// Commits a group and answers each of its requests.
    fn apply(&self, group: Vec<Job>) {
        let outcome = self.commit(&group);
        if let Err(e) = &outcome {
            tracing::error!(error = %e, requests = group.len(), "storage commit failed");
        }
        for job in group {
            // A requester that stopped waiting no longer needs the answer.
            let _ = job.done.send(outcome.clone());
        }
    }

    /// Applies a group as one durable batch. Later writes to a key win, as if the requests
    /// had committed one after another in queue order.
    fn commit(&self, group: &[Job]) -> Result<()> {
        // fdatasync suffices for fjall's append-only journal.
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        for op in last_write_per_key(group) {
            match op {
                WriteOp::Put(k, v) => batch.insert(&self.kv, k.as_str(), v.as_slice()),
                WriteOp::Delete(k) => batch.remove(&self.kv, k.as_str()),
            }
        }
        batch.commit().map_err(io)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The thread that commits background groups, at background priority.
struct Lower {
    groups: mpsc::SyncSender<Vec<Job>>,
    committed: mpsc::Receiver<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Lower {
    /// Starts the thread; `None` if it cannot be created (the writer then commits every
    /// group itself, at normal priority).
    fn start(writer: Writer, commits: Arc<AtomicU64>) -> Option<Self> {
        let (groups, queue) = mpsc::sync_channel::<Vec<Job>>(0);
        let (done, committed) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("storage-lower".into())
            .spawn(move || {
                if let Err(e) = crate::priority::enter_background() {
                    tracing::debug!(error = %e, "background commits keep normal priority");
                }
                while let Ok(group) = queue.recv() {
                    writer.apply(group);
                    commits.fetch_add(1, Ordering::Relaxed);
                    if done.send(()).is_err() {
                        break;
                    }
                }
            })
            .inspect_err(|e| tracing::warn!(error = %e, "no thread for background commits"))
            .ok()?;
        Some(Self {
            groups,
            committed,
            thread,
        })
    }

    /// Has the thread commit `group` and waits until it has (`writer` does it if the thread
    /// is gone).
    fn apply(&self, group: Vec<Job>, writer: &Writer) {
        match self.groups.send(group) {
            // A thread gone mid-group dropped its requests: they see the store closed.
            Ok(()) => {
                let _ = self.committed.recv();
            }
            Err(mpsc::SendError(group)) => writer.apply(group),
        }
    }

    /// Ends the thread once it has committed what it was given, so the store can close.
    fn stop(self) {
        drop(self.groups);
        // An Err means the thread panicked; it has stopped either way.
        let _ = self.thread.join();
    }
}

/// A group's ops in key order, one per key: the last queued. fjall leaves the order of two
/// writes to one key in a batch unspecified, hence one write per key. Key order is for the
/// memtable: fjall inserts a batch's ops into its skip list one after another, and each
/// insert's search then walks nodes the one before just touched (that search is about half
/// the writer's time in a revoke-prefix; in key order the writer used about a sixth less).
fn last_write_per_key(group: &[Job]) -> Vec<&WriteOp> {
    let mut ops: Vec<&WriteOp> = group.iter().flat_map(|job| &job.ops).collect();
    // Stable: writes to one key keep their queue order, so the last of each run wins.
    ops.sort_by(|a, b| a.key().cmp(b.key()));
    let mut out: Vec<&WriteOp> = Vec::with_capacity(ops.len());
    for op in ops {
        match out.last_mut() {
            Some(prev) if prev.key() == op.key() => *prev = op,
            _ => out.push(op),
        }
    }
    out
}

fn op_bytes(op: &WriteOp) -> usize {
    match op {
        WriteOp::Put(k, v) => k.len() + v.len(),
        WriteOp::Delete(k) => k.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn must<T>(r: Result<T>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    fn tempdir() -> tempfile::TempDir {
        match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance() {
        let dirs = parking_lot::Mutex::new(Vec::new());
        crate::conformance::run_all(|| {
            let dir = tempdir();
            let s = must(open_file(dir.path()));
            dirs.lock().push(dir);
            s
        })
        .await;
    }

    #[tokio::test]
    async fn reopen_keeps_data_and_creates_the_directory() {
        let dir = tempdir();
        let path = dir.path().join("not/yet/there");
        {
            let s = must(FileStorage::open(&path));
            must(s.put("a/b", b"v".to_vec()).await);
            assert_eq!(s.kind(), "file");
        }
        // Dropping closed the store: it opens again at once.
        let s = must(FileStorage::open(&path));
        assert_eq!(must(s.get("a/b").await), Some(b"v".to_vec()));
        assert_eq!(must(s.list("").await), ["a/"]);
    }

    /// A group's writes come out in key order, one per key, the last queued winning,
    /// across requests and within one.
    #[test]
    fn a_group_writes_each_key_once_in_key_order_the_last_winning() {
        let put = |k: &str, v: &str| WriteOp::Put(k.into(), v.into());
        let del = |k: &str| WriteOp::Delete(k.into());
        let job = |ops: Vec<WriteOp>| Job {
            ops,
            done: oneshot::channel().0,
            background: false,
        };
        let group = [
            job(vec![put("c", "1"), put("a", "1"), put("c", "2")]),
            job(vec![del("b"), put("a", "2")]),
            job(vec![put("b", "3"), del("c")]),
        ];
        let ops: Vec<WriteOp> = last_write_per_key(&group).into_iter().cloned().collect();
        assert_eq!(ops, [put("a", "2"), put("b", "3"), del("c")]);
    }

    /// A write from a background thread is committed by the thread at background priority;
    /// a request's write by the writer itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_writes_are_committed_at_background_priority() {
        let dir = tempdir();
        let s = Arc::new(must(FileStorage::open(dir.path())));
        // The thread names itself and lowers its priority once started: wait for both.
        let lowered = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|t| t.ok())
                .find(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "storage-lower")
                })
                .and_then(|t| t.file_name().to_str()?.parse::<i32>().ok())
                .and_then(rustix::process::Pid::from_raw)
                .and_then(|tid| rustix::process::getpriority_process(Some(tid)).ok())
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while lowered() != Some(crate::priority::NICE) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(lowered(), Some(crate::priority::NICE));
        let from_background = s.clone();
        std::thread::spawn(move || {
            crate::priority::enter_background().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            must(rt.block_on(from_background.put("bg", b"1".to_vec())));
        })
        .join()
        .unwrap();
        assert_eq!((s.commits(), s.background_commits()), (1, 1));
        must(s.put("fg", b"2".to_vec()).await);
        assert_eq!((s.commits(), s.background_commits()), (2, 1));
        assert_eq!(must(s.get("bg").await), Some(b"1".to_vec()));
        assert_eq!(must(s.get("fg").await), Some(b"2".to_vec()));
    }

    #[tokio::test]
    async fn a_second_open_of_a_live_store_fails() {
        let dir = tempdir();
        let _first = must(FileStorage::open(dir.path()));
        assert!(FileStorage::open(dir.path()).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_commits() {
        let dir = tempdir();
        let s = Arc::new(must(FileStorage::open(dir.path())));
        let mut tasks = Vec::new();
        for t in 0..64 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    must(s.put(&format!("t/{t}/{i}"), vec![0; 500]).await);
                }
            }));
        }
        for t in tasks {
            if let Err(e) = t.await {
                panic!("{e}");
            }
        }
        assert_eq!(must(s.scan("t/", None, 10_000).await).len(), 64 * 20);
        // 64 writers queue behind each sync, so groups hold many writes each.
        assert!(
            s.commits() < 64 * 20 / 2,
            "{} commits for {} writes",
            s.commits(),
            64 * 20
        );
    }
}
