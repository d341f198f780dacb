//! Crash durability of the file backend: a child process (this test binary re-run with
//! `LESSOR_KILL9_DIR` set) writes from many tasks and prints each key once its write is
//! acknowledged; the parent SIGKILLs it mid-stream, reopens the store and checks that every
//! acknowledged key is there, intact. Two rounds, so the second crashes a recovered store.

// Test code through and through: a failed step should fail the test on the spot.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lessor_storage::{FileStorage, Storage, WriteOp};

const CHILD_ENV: &str = "LESSOR_KILL9_DIR";
const ROUND_ENV: &str = "LESSOR_KILL9_ROUND";
/// Acknowledgements the parent waits for before killing: enough that the kill lands while
/// many writes are in flight.
const ACKS_BEFORE_KILL: usize = 1500;

/// The value written under `key`: 200 to 2000 bytes that depend on the key, so a value that
/// came back torn or from another key is caught.
fn value_for(key: &str) -> Vec<u8> {
    let seed = key
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let len = 200 + (seed % 1801) as usize;
    key.bytes()
        .chain(b"|".iter().copied())
        .cycle()
        .take(len)
        .collect()
}

/// The child: writes until killed (bounded, should the parent never kill it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Not the child: nothing to do.
    };
    let round = std::env::var(ROUND_ENV).unwrap_or_default();
    let store = Arc::new(FileStorage::open(Path::new(&dir)).unwrap());
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (store, round) = (store.clone(), round.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..2000 {
                let key = format!("r{round}/t{t:02}/{i:04}");
                if i % 4 == 3 {
                    // Some acknowledgements come from atomic batches of two keys.
                    let twin = format!("{key}/twin");
                    let ops = vec![
                        WriteOp::Put(key.clone(), value_for(&key)),
                        WriteOp::Put(twin.clone(), value_for(&twin)),
                    ];
                    store.batch(ops).await.unwrap();
                    println!("ack {key}\nack {twin}");
                } else {
                    store.put(&key, value_for(&key)).await.unwrap();
                    println!("ack {key}");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Runs one child round against `dir`, kills it after `ACKS_BEFORE_KILL` acknowledgements
/// and returns every key it acknowledged.
fn crash_round(dir: &Path, round: usize) -> BTreeSet<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill9_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut acked = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < ACKS_BEFORE_KILL && Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if let Some(key) = line.strip_prefix("ack ") {
                    acked.insert(key.to_string());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    assert!(
        acked.len() >= ACKS_BEFORE_KILL,
        "the child acknowledged only {} writes",
        acked.len()
    );
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    // Lines already in the pipe were acknowledged before the kill: they count too.
    reader.join().unwrap();
    acked.extend(
        lines
            .try_iter()
            .filter_map(|l| l.strip_prefix("ack ").map(str::to_string)),
    );
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    if std::env::var(CHILD_ENV).is_ok() {
        return; // The child runs only `kill9_child_process`.
    }
    let dir = tempfile::tempdir().unwrap();
    let mut all = BTreeSet::new();
    for round in 0..2 {
        let acked = crash_round(dir.path(), round);
        all.extend(acked);

        let store = FileStorage::open(dir.path()).unwrap();
        for key in &all {
            let got = store.get(key).await.unwrap();
            assert_eq!(
                got.as_deref(),
                Some(value_for(key).as_slice()),
                "acknowledged key {key} lost or torn after kill -9 (round {round})"
            );
        }
        // Whatever else survived is whole too: an unacknowledged write is there or not.
        let prefix = format!("r{round}/");
        let mut after: Option<String> = None;
        loop {
            let page = store.scan(&prefix, after.as_deref(), 500).await.unwrap();
            for (k, v) in &page {
                assert_eq!(v, &value_for(k), "key {k} torn");
            }
            match page.last() {
                Some((k, _)) if page.len() == 500 => after = Some(k.clone()),
                _ => break,
            }
        }
        eprintln!("round {round}: {} acknowledged keys checked", all.len());
    }
}
