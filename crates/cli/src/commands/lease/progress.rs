//! Following a revoke-prefix job to its end: finds the job the server started for a prefix,
//! polls `sys/leases/jobs/<id>` and draws its progress on stderr (a redrawn bar on a
//! terminal, a plain line per change otherwise, so logs stay readable).

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{ApiError, Client};

const POLL: Duration = Duration::from_millis(200);
/// How long to look for the job of a request that was just accepted before giving up. lessor
/// records the job before it answers, so it is listed at once; a server without jobs (a LIST
/// there is a 404, like an empty one) costs only this wait.
const FIND_TIMEOUT: Duration = Duration::from_secs(2);
/// Plain progress lines at most this often, plus one at the end.
const LINE_EVERY: Duration = Duration::from_secs(1);
const BAR_WIDTH: usize = 30;

/// A job's counters as the status endpoint reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub finished: bool,
}

impl Progress {
    fn of(status: &Value) -> Progress {
        let n = |k: &str| status.get(k).and_then(Value::as_u64).unwrap_or(0);
        Progress {
            total: n("total"),
            done: n("done"),
            failed: n("failed"),
            finished: status.get("state").and_then(Value::as_str) == Some("done"),
        }
    }
}

/// The ids of the revoke-prefix jobs the server knows; `None` when it has no job endpoint.
pub fn job_ids(client: &Client) -> Option<BTreeSet<String>> {
    let reply = client.list("sys/leases/jobs").ok()?;
    let keys = reply
        .as_ref()
        .and_then(|b| b.pointer("/data/keys"))
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(keys)
}

fn job_status(client: &Client, id: &str) -> Result<Option<Value>, ApiError> {
    Ok(client
        .read(&format!("sys/leases/jobs/{id}"), &[])?
        .and_then(|b| b.get("data").cloned()))
}

/// The job on `prefix` that is not among `before`: the one our request started.
pub fn find_job(
    client: &Client,
    prefix: &str,
    before: &BTreeSet<String>,
) -> Result<Option<String>, ApiError> {
    let deadline = Instant::now() + FIND_TIMEOUT;
    loop {
        for id in job_ids(client).unwrap_or_default().difference(before) {
            let Some(status) = job_status(client, id)? else {
                continue;
            };
            if status.get("prefix").and_then(Value::as_str) == Some(prefix) {
                return Ok(Some(id.clone()));
            }
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// Polls job `id` until it is done, drawing progress on stderr; returns its last counters.
pub fn follow(client: &Client, id: &str) -> Result<Progress, ApiError> {
    let mut view = View::new(std::io::stderr().is_terminal());
    loop {
        let progress = match job_status(client, id)? {
            Some(status) => Progress::of(&status),
            // Jobs are kept once done; a vanished one can only have ended.
            None => Progress {
                finished: true,
                ..Default::default()
            },
        };
        view.show(progress);
        if progress.finished {
            view.finish();
            return Ok(progress);
        }
        std::thread::sleep(POLL);
    }
}

/// Draws progress: the bar on a terminal, lines otherwise.
struct View {
    terminal: bool,
    last: Option<Progress>,
    last_line: Option<Instant>,
}

impl View {
    fn new(terminal: bool) -> View {
        View {
            terminal,
            last: None,
            last_line: None,
        }
    }

    fn show(&mut self, p: Progress) {
        if self.last == Some(p) {
            return;
        }
        self.last = Some(p);
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r{}", bar(p));
        } else {
            let due = self.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY);
            if due || p.finished {
                self.last_line = Some(Instant::now());
                let _ = writeln!(err, "{}", line(p));
            }
        }
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.terminal {
            let _ = writeln!(std::io::stderr().lock());
        }
    }
}

fn handled(p: Progress) -> u64 {
    p.done.saturating_add(p.failed)
}

/// `[#########---------]  450/1000 revoked, 0 failed`
pub fn bar(p: Progress) -> String {
    let filled = match (p.total, p.finished) {
        // Nothing under the prefix.
        (0, true) => BAR_WIDTH,
        // The job is still counting its leases.
        (0, false) => 0,
        (t, _) => (handled(p).min(t) as u128 * BAR_WIDTH as u128 / t as u128) as usize,
    };
    format!(
        "[{}{}] {}/{} revoked, {} failed",
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH - filled),
        p.done,
        p.total,
        p.failed
    )
}

/// `Revoking: 450/1000 revoked, 0 failed`
pub fn line(p: Progress) -> String {
    format!(
        "Revoking: {}/{} revoked, {} failed",
        p.done, p.total, p.failed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_fills_with_handled_leases() {
        let p = Progress {
            total: 10,
            done: 4,
            failed: 1,
            finished: false,
        };
        let b = bar(p);
        assert!(b.starts_with(&format!("[{}{}]", "#".repeat(15), "-".repeat(15))));
        assert!(b.ends_with("4/10 revoked, 1 failed"));
        let counting = Progress::default();
        assert!(bar(counting).starts_with(&format!("[{}]", "-".repeat(BAR_WIDTH))));
        let empty_prefix = Progress {
            finished: true,
            ..Default::default()
        };
        assert!(bar(empty_prefix).starts_with(&format!("[{}]", "#".repeat(BAR_WIDTH))));
        // More handled than counted at the start (leases issued meanwhile) stays in the bar.
        let over = bar(Progress {
            total: 2,
            done: 5,
            ..Default::default()
        });
        assert!(over.starts_with(&format!("[{}]", "#".repeat(BAR_WIDTH))));
    }

    #[test]
    fn progress_reads_status() {
        let p =
            Progress::of(&serde_json::json!({"total": 3, "done": 2, "failed": 1, "state": "done"}));
        assert_eq!(
            p,
            Progress {
                total: 3,
                done: 2,
                failed: 1,
                finished: true
            }
        );
    }
}
