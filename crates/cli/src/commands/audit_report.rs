//! `lessor audit report [-format=json] [-bound=DURATION] FILE...`: the lease lifecycle as
//! the audit log tells it, per mount and role. `-bound` defaults to 24h.
//!
//! Only response entries are read (each carries its request); failed requests (non-empty
//! `error`) change no lease, except rotations (below). Entries are ordered by `time`, so
//! rotated log files may be given in any order. HMAC'd values are compared as logged: one
//! device's hashes are stable, so the report needs no salt, but files of different devices
//! must not be mixed.
//!
//! * **Secret leases** are identified by `response.secret.lease_id` (issue and renew);
//!   renewals and revocations through `sys/leases/{renew,revoke}[/id]` and the legacy
//!   `sys/{renew,revoke}` by `request.data.lease_id` or the path; `revoke-prefix` and
//!   `revoke-force` revoke every known lease under the prefix.
//! * **Token leases** are identified by the (HMAC'd) client token of the creating response;
//!   `auth/token/renew`/`revoke` (`data.token`), `renew-self`/`revoke-self` (the request's
//!   client token) and the `-accessor` forms (`data.accessor`) renew and revoke them.
//! * A lease **expired** when the log shows no revocation and its last granted duration
//!   (`lease_duration` of the issue or of the last renewal) ended before the last entry of
//!   the log; otherwise it is **live** at the end of the log.
//! * **Renewed but never revoked**: renewed at least once, and no revocation in the log.
//! * **Over the bound** (`-bound`): lifetime (revocation, expiry, or end of log, minus issue)
//!   longer than the bound.
//! * **Rotations**: requests to `config/rotate-root`, `rotate-root`, `rotate-role/<role>`,
//!   `static-roles/<role>/rotate` or `rotate/<role>` of any mount (role `root` for root
//!   rotations). A successful response means the engine revoked the previous credential
//!   before answering (lessor's engines delete the old key first). A rotation **issued a new
//!   credential without revoking the old one** when its response's error or a warning says
//!   the new credential was saved or created but the old one was not deleted or revoked
//!   (lessor's AWS engine answers `the new access key was saved, but deleting the old one
//!   failed: ...`). The jsonx format is not read.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read, Write};

use serde_json::{Value, json};

use super::{CmdResult, Command, Ctx, Exit};
use crate::args::{Flag, parse_duration_secs};
use crate::output;

pub(super) fn commands() -> Vec<Command> {
    vec![Command {
        words: &["audit", "report"],
        flags: const { &[&[Flag::string(&["bound"])]] },
        run: report,
        help: "Report lease lifecycles (issued, renewed, revoked, expired) from audit logs",
    }]
}

/// Files at least this large get a progress bar (on a terminal).
const PROGRESS_MIN_BYTES: u64 = 4 << 20;
const DEFAULT_BOUND_SECS: i64 = 24 * 3600;

/// One event the report cares about, reduced from a response entry.
#[derive(Debug, Clone)]
enum Event {
    Issue {
        key: String,
        mount: String,
        role: String,
        duration: f64,
    },
    Renew {
        key: String,
        duration: Option<f64>,
    },
    Revoke {
        key: String,
    },
    RevokePrefix {
        prefix: String,
    },
    /// An issued token's accessor, so `-accessor` operations find its lease.
    Accessor {
        accessor: String,
        key: String,
    },
    /// A token lease renewed or revoked by accessor.
    ByAccessor {
        accessor: String,
        revoke: bool,
    },
    Rotation {
        mount: String,
        role: String,
        path: String,
        request_id: String,
        unrevoked: Option<String>,
    },
}

#[derive(Debug, Clone, Default)]
struct Lease {
    mount: String,
    role: String,
    /// `None`: issued before the log starts.
    issued: Option<f64>,
    /// When the last granted duration ends (0 = never).
    ends: f64,
    renewals: u32,
    last_renewal: Option<f64>,
    revoked: Option<f64>,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    issued: u64,
    renewed: u64,
    revoked: u64,
    expired: u64,
    live: u64,
    renewed_never_revoked: u64,
    over_bound: u64,
    rotations: u64,
    rotations_without_revocation: u64,
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

fn f(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64()
}

/// Unix seconds of an RFC 3339 time (`2026-01-02T03:04:05.123456789Z` or with an offset).
pub(crate) fn parse_rfc3339(t: &str) -> Option<f64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &t[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.chars().take_while(char::is_ascii_digit).count();
        frac = format!("0.{}", &r[..digits]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o.get(1..3)?.parse::<i64>().ok()? * 3600
                + o.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from the civil date (proleptic Gregorian), Howard Hinnant's algorithm.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset) as f64 + frac)
}

fn rfc3339(t: f64) -> String {
    let secs = t.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The role of a path relative to its mount: the name after `creds/`, `sts/`,
/// `static-creds/`, `roles/`, `create/` (token roles); otherwise the relative path.
fn role_of(rel: &str) -> String {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [] => "-".into(),
        ["create"] | ["create-orphan"] | ["login"] => "-".into(),
        [kind, name, ..]
            if ["creds", "sts", "static-creds", "roles", "create", "role"].contains(kind) =>
        {
            (*name).to_string()
        }
        _ => rel.trim_matches('/').to_string(),
    }
}

fn mount_of_lease(id: &str) -> String {
    let parts: Vec<&str> = id.split('/').collect();
    if parts.first() == Some(&"auth") && parts.len() > 2 {
        format!("auth/{}/", parts[1])
    } else {
        format!("{}/", parts.first().copied().unwrap_or(""))
    }
}

const ROTATIONS: &[&str] = &["config/rotate-root", "rotate-root", "config/rotate"];
const ROLE_ROTATIONS: &[(&str, &str)] = &[
    ("rotate-role/", ""),
    ("static-roles/", "/rotate"),
    ("rotate/", ""),
];

/// The role a rotation path rotates, if `rel` is one.
fn rotation_role(rel: &str) -> Option<String> {
    let rel = rel.trim_matches('/');
    if ROTATIONS.contains(&rel) {
        return Some("root".into());
    }
    ROLE_ROTATIONS.iter().find_map(|(pre, suf)| {
        let name = rel.strip_prefix(pre)?.strip_suffix(suf)?;
        (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
    })
}

/// A response's error or warning that says the new credential exists but the old one
/// was not removed.
fn unrevoked_reason(entry: &Value) -> Option<String> {
    let mut texts: Vec<String> = vec![s(entry, &["error"]).to_string()];
    if let Some(ws) = entry["response"]["warnings"].as_array() {
        texts.extend(ws.iter().filter_map(|w| w.as_str().map(str::to_string)));
    }
    texts.into_iter().find(|t| {
        let l = t.to_ascii_lowercase();
        let new = ["new", "saved", "created"].iter().any(|w| l.contains(w));
        let old = ["old", "previous"].iter().any(|w| l.contains(w));
        let kept = [
            "not deleted",
            "not revoked",
            "failed",
            "could not",
            "cannot",
        ]
        .iter()
        .any(|w| l.contains(w));
        new && old && kept
    })
}

/// Reduces one response entry to the events it carries.
fn events_of(e: &Value) -> Vec<Event> {
    let req = &e["request"];
    let path = s(req, &["path"]).trim_start_matches('/');
    let mount = s(req, &["mount_point"]).to_string();
    let rel = path.strip_prefix(mount.as_str()).unwrap_or(path);
    let failed = !s(e, &["error"]).is_empty();
    let mut out = Vec::new();
    if let Some(role) = rotation_role(rel) {
        let unrevoked = unrevoked_reason(e);
        if !failed || unrevoked.is_some() {
            out.push(Event::Rotation {
                mount: mount.clone(),
                role,
                path: path.to_string(),
                request_id: s(req, &["id"]).to_string(),
                unrevoked,
            });
        }
        return out;
    }
    if failed {
        return out;
    }
    let resp = &e["response"];
    let data_lease = s(req, &["data", "lease_id"]);
    let lease_path = |prefixes: &[&str]| {
        prefixes.iter().find_map(|p| {
            let rest = path.strip_prefix(p)?;
            let rest = rest.strip_prefix('/').unwrap_or(rest);
            Some(if data_lease.is_empty() {
                rest.to_string()
            } else {
                data_lease.to_string()
            })
        })
    };
    if let Some(prefix) = lease_path(&[
        "sys/leases/revoke-prefix",
        "sys/leases/revoke-force",
        "sys/revoke-prefix",
        "sys/revoke-force",
    ]) {
        out.push(Event::RevokePrefix { prefix });
        return out;
    }
    if let Some(id) = lease_path(&["sys/leases/renew", "sys/renew"]) {
        let id = if id.is_empty() {
            s(resp, &["secret", "lease_id"]).to_string()
        } else {
            id
        };
        if !id.is_empty() {
            out.push(Event::Renew {
                key: id,
                duration: f(resp, &["secret", "lease_duration"]),
            });
        }
        return out;
    }
    if let Some(id) = lease_path(&["sys/leases/revoke", "sys/revoke"]) {
        if !id.is_empty() {
            out.push(Event::Revoke { key: id });
        }
        return out;
    }
    if let Some(op) = path.strip_prefix("auth/token/") {
        let token = s(req, &["data", "token"]).to_string();
        let own = s(req, &["client_token"]).to_string();
        let renewed = f(resp, &["auth", "token_ttl"]);
        match op {
            "renew" => {
                return vec![Event::Renew {
                    key: token,
                    duration: renewed,
                }];
            }
            "renew-self" => {
                return vec![Event::Renew {
                    key: own,
                    duration: renewed,
                }];
            }
            "revoke" | "revoke-orphan" => return vec![Event::Revoke { key: token }],
            "revoke-self" => return vec![Event::Revoke { key: own }],
            "renew-accessor" | "revoke-accessor" => {
                let accessor = s(req, &["data", "accessor"]).to_string();
                return vec![Event::ByAccessor {
                    accessor,
                    revoke: op == "revoke-accessor",
                }];
            }
            _ => {}
        }
    }
    let lease_id = s(resp, &["secret", "lease_id"]);
    if !lease_id.is_empty() {
        out.push(Event::Issue {
            key: lease_id.to_string(),
            mount: mount.clone(),
            role: role_of(rel),
            duration: f(resp, &["secret", "lease_duration"]).unwrap_or(0.0),
        });
    }
    let token = s(resp, &["auth", "client_token"]);
    if !token.is_empty() && !path.starts_with("sys/wrapping/") {
        out.push(Event::Issue {
            key: token.to_string(),
            mount,
            role: role_of(rel),
            duration: f(resp, &["auth", "token_ttl"]).unwrap_or(0.0),
        });
        let accessor = s(resp, &["auth", "accessor"]);
        if !accessor.is_empty() {
            out.push(Event::Accessor {
                accessor: accessor.to_string(),
                key: token.to_string(),
            });
        }
    }
    out
}

/// Response entries reduced to their events, with their time.
type Timeline = Vec<(f64, Vec<Event>)>;

/// Reads every file: the timeline, the entries read and the lines skipped.
fn read_logs(files: &[String]) -> Result<(Timeline, u64, u64), Exit> {
    let total: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut progress = Progress::new(total);
    let mut out = Vec::new();
    let (mut skipped, mut read) = (0u64, 0u64);
    for path in files {
        let file = std::fs::File::open(path).map_err(|e| {
            Exit::with_code(
                1,
                format!("error opening {path}: {}", super::io_error_text(&e)),
            )
        })?;
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader)
                .take(64 << 20)
                .read_until(b'\n', &mut line)
                .map_err(|e| {
                    Exit::with_code(
                        1,
                        format!("error reading {path}: {}", super::io_error_text(&e)),
                    )
                })?;
            if n == 0 {
                break;
            }
            progress.advance(n as u64);
            let text = String::from_utf8_lossy(&line);
            // A device `prefix` comes before the JSON.
            let Some(start) = text.find('{') else {
                continue;
            };
            let Ok(entry) = serde_json::from_str::<Value>(text[start..].trim_end()) else {
                skipped += 1;
                continue;
            };
            read += 1;
            if entry["type"] != "response" {
                continue;
            }
            let Some(t) = parse_rfc3339(s(&entry, &["time"])) else {
                skipped += 1;
                continue;
            };
            let evs = events_of(&entry);
            if !evs.is_empty() {
                out.push((t, evs));
            }
        }
    }
    progress.finish();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok((out, read, skipped))
}

/// A progress bar on stderr while large files are read, when stderr is a terminal.
struct Progress {
    total: u64,
    done: u64,
    shown: u64,
    on: bool,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            total,
            done: 0,
            shown: 0,
            on: total >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal(),
        }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        if !self.on || self.done - self.shown < (1 << 20) {
            return;
        }
        self.shown = self.done;
        let pct = (self.done * 100 / self.total.max(1)).min(100);
        let bar = "#".repeat((pct / 4) as usize);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\rreading audit logs [{bar:<25}] {pct:>3}% ({} MiB)",
            self.done >> 20
        );
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "\rreading audit logs [{}] 100%", "#".repeat(25));
        }
    }
}

struct Report {
    leases: BTreeMap<String, Lease>,
    rotations: Vec<Value>,
    rotation_counts: BTreeMap<(String, String), (u64, u64)>,
    start: f64,
    end: f64,
}

fn replay(events: Timeline) -> Report {
    let mut r = Report {
        leases: BTreeMap::new(),
        rotations: Vec::new(),
        rotation_counts: BTreeMap::new(),
        start: events.first().map(|e| e.0).unwrap_or(0.0),
        end: events.last().map(|e| e.0).unwrap_or(0.0),
    };
    let mut accessors: BTreeMap<String, String> = BTreeMap::new();
    let unknown = |key: &str| Lease {
        mount: mount_of_lease(key),
        role: "-".into(),
        ..Default::default()
    };
    for (t, evs) in events {
        for ev in evs {
            match ev {
                Event::Issue {
                    key,
                    mount,
                    role,
                    duration,
                } => {
                    let ends = if duration > 0.0 { t + duration } else { 0.0 };
                    r.leases.insert(
                        key,
                        Lease {
                            mount,
                            role,
                            issued: Some(t),
                            ends,
                            ..Default::default()
                        },
                    );
                }
                Event::Renew { key, duration } => {
                    let l = r.leases.entry(key.clone()).or_insert_with(|| unknown(&key));
                    l.renewals += 1;
                    l.last_renewal = Some(t);
                    if let Some(d) = duration.filter(|d| *d > 0.0) {
                        l.ends = t + d;
                    }
                }
                Event::Revoke { key } => {
                    let l = r.leases.entry(key.clone()).or_insert_with(|| unknown(&key));
                    l.revoked.get_or_insert(t);
                }
                Event::RevokePrefix { prefix } => {
                    let p = prefix.trim_end_matches('/');
                    for (id, l) in r.leases.iter_mut() {
                        if id == p || id.starts_with(&format!("{p}/")) {
                            l.revoked.get_or_insert(t);
                        }
                    }
                }
                Event::Accessor { accessor, key } => {
                    accessors.insert(accessor, key);
                }
                Event::ByAccessor { accessor, revoke } => {
                    let Some(key) = accessors.get(&accessor) else {
                        continue;
                    };
                    if let Some(l) = r.leases.get_mut(key) {
                        if revoke {
                            l.revoked.get_or_insert(t);
                        } else {
                            l.renewals += 1;
                            l.last_renewal = Some(t);
                        }
                    }
                }
                Event::Rotation {
                    mount,
                    role,
                    path,
                    request_id,
                    unrevoked,
                } => {
                    let c = r
                        .rotation_counts
                        .entry((mount.clone(), role.clone()))
                        .or_default();
                    c.0 += 1;
                    if let Some(reason) = unrevoked {
                        c.1 += 1;
                        r.rotations.push(json!({
                            "mount": mount, "role": role, "path": path, "time": rfc3339(t),
                            "request_id": request_id, "reason": reason,
                        }));
                    }
                }
            }
        }
    }
    r
}

/// How a lease ends in the log: `revoked`, `expired` or `live`, and when.
fn outcome(l: &Lease, end: f64) -> (&'static str, f64) {
    if let Some(t) = l.revoked {
        ("revoked", t)
    } else if l.ends > 0.0 && l.ends <= end {
        ("expired", l.ends)
    } else {
        ("live", end)
    }
}

fn build(r: &Report, bound: i64, files: &[String], read: u64, skipped: u64) -> Value {
    let mut counts: BTreeMap<(String, String), Counts> = BTreeMap::new();
    let mut never_revoked = Vec::new();
    let mut over = Vec::new();
    for (id, l) in &r.leases {
        let c = counts.entry((l.mount.clone(), l.role.clone())).or_default();
        let (state, at) = outcome(l, r.end);
        if l.issued.is_some() {
            c.issued += 1;
        }
        c.renewed += u64::from(l.renewals);
        match state {
            "revoked" => c.revoked += 1,
            "expired" => c.expired += 1,
            _ => c.live += 1,
        }
        if l.renewals > 0 && state != "revoked" {
            c.renewed_never_revoked += 1;
            never_revoked.push(json!({
                "lease_id": id, "mount": l.mount, "role": l.role,
                "issued": l.issued.map(rfc3339), "renewals": l.renewals,
                "last_renewal": l.last_renewal.map(rfc3339), "state": state,
            }));
        }
        if let Some(issued) = l.issued {
            let lifetime = at - issued;
            if lifetime > bound as f64 {
                c.over_bound += 1;
                over.push(json!({
                    "lease_id": id, "mount": l.mount, "role": l.role, "issued": rfc3339(issued),
                    "lifetime_seconds": lifetime.round() as i64, "state": state,
                }));
            }
        }
    }
    for ((mount, role), (n, unrevoked)) in &r.rotation_counts {
        let c = counts.entry((mount.clone(), role.clone())).or_default();
        c.rotations += n;
        c.rotations_without_revocation += unrevoked;
    }
    let mounts: Vec<Value> = counts
        .iter()
        .map(|((mount, role), c)| {
            json!({
                "mount": mount, "role": role, "issued": c.issued, "renewed": c.renewed,
                "revoked": c.revoked, "expired": c.expired, "live": c.live,
                "renewed_never_revoked": c.renewed_never_revoked, "over_bound": c.over_bound,
                "rotations": c.rotations, "rotations_without_revocation": c.rotations_without_revocation,
            })
        })
        .collect();
    json!({
        "files": files,
        "entries": read,
        "skipped_lines": skipped,
        "start": (r.end > 0.0).then(|| rfc3339(r.start)),
        "end": (r.end > 0.0).then(|| rfc3339(r.end)),
        "bound_seconds": bound,
        "mounts": mounts,
        "renewed_never_revoked": never_revoked,
        "over_bound": over,
        "rotations_without_revocation": r.rotations,
    })
}

fn table_text(doc: &Value) -> String {
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0).to_string();
    let mut text = format!(
        "Audit log: {} entries from {} to {} ({} lines skipped)\n\n",
        doc["entries"],
        doc["start"].as_str().unwrap_or("-"),
        doc["end"].as_str().unwrap_or("-"),
        doc["skipped_lines"]
    );
    let cols = [
        "issued",
        "renewed",
        "revoked",
        "expired",
        "live",
        "renewed_never_revoked",
        "over_bound",
        "rotations",
        "rotations_without_revocation",
    ];
    let mut rows = vec![
        [
            "Mount",
            "Role",
            "Issued",
            "Renewed",
            "Revoked",
            "Expired",
            "Live",
            "Renewed/Never Revoked",
            "Over Bound",
            "Rotations",
            "Rotations w/o Revocation",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    for m in doc["mounts"].as_array().into_iter().flatten() {
        let mut row = vec![
            m["mount"].as_str().unwrap_or("").to_string(),
            m["role"].as_str().unwrap_or("").to_string(),
        ];
        row.extend(cols.iter().map(|c| n(m, c)));
        rows.push(row);
    }
    text.push_str(&output::table(&rows));
    let section = |title: &str, key: &str, cols: &[&str]| -> String {
        let items = doc[key].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return String::new();
        }
        let mut rows = vec![cols.iter().map(|c| c.to_string()).collect::<Vec<_>>()];
        for i in &items {
            rows.push(cols.iter().map(|c| output::go_value(&i[*c])).collect());
        }
        format!("\n{title}\n\n{}", output::table(&rows))
    };
    text.push_str(&section(
        "Leases renewed but never revoked:",
        "renewed_never_revoked",
        &[
            "lease_id",
            "mount",
            "role",
            "issued",
            "renewals",
            "last_renewal",
            "state",
        ],
    ));
    text.push_str(&section(
        &format!(
            "Leases that lived longer than {}:",
            output::human_duration(doc["bound_seconds"].as_i64().unwrap_or(0))
        ),
        "over_bound",
        &[
            "lease_id",
            "mount",
            "role",
            "issued",
            "lifetime_seconds",
            "state",
        ],
    ));
    text.push_str(&section(
        "Rotations that issued a new credential without revoking the old one:",
        "rotations_without_revocation",
        &["mount", "role", "time", "request_id", "reason"],
    ));
    text
}

fn report(ctx: &mut Ctx) -> CmdResult {
    ctx.flags.expect_args(1, usize::MAX)?;
    let bound = match ctx.flags.get("bound") {
        Some(v) => parse_duration_secs(v)?,
        None => DEFAULT_BOUND_SECS,
    };
    let files = ctx.args().to_vec();
    if let Some(flag) = files.iter().find(|f| f.len() > 1 && f.starts_with('-')) {
        return Err(Exit::usage(format!(
            "flags must come before the files (as with every command): {flag}"
        )));
    }
    let (events, read, skipped) = read_logs(&files)?;
    let r = replay(events);
    let doc = build(&r, bound, &files, read, skipped);
    if ctx.format.is_table() {
        output::out(&table_text(&doc));
    } else {
        output::outln(&ctx.format.document(&doc));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(
        time: &str,
        path: &str,
        mount: &str,
        data: Value,
        response: Value,
        error: &str,
    ) -> String {
        json!({
            "time": time, "type": "response",
            "request": {"id": "r", "path": path, "mount_point": mount, "client_token": "hmac-sha256:own", "data": data},
            "response": response, "error": error,
        })
        .to_string()
    }

    #[test]
    fn times_round_trip() {
        let t = parse_rfc3339("2026-11-21T10:19:23.5Z").unwrap();
        assert_eq!(rfc3339(t), "2026-11-21T10:19:23Z");
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        assert!(parse_rfc3339("garbage").is_none());
    }

    #[test]
    fn replays_a_lifecycle() {
        let lines = [
            resp(
                "2026-01-01T00:00:00Z",
                "aws/creds/app",
                "aws/",
                Value::Null,
                json!({"secret": {"lease_id": "aws/creds/app/a", "lease_duration": 3600}}),
                "",
            ),
            resp(
                "2026-01-01T00:00:01Z",
                "aws/creds/app",
                "aws/",
                Value::Null,
                json!({"secret": {"lease_id": "aws/creds/app/b", "lease_duration": 60}}),
                "",
            ),
            resp(
                "2026-01-01T00:00:02Z",
                "aws/creds/app",
                "aws/",
                Value::Null,
                json!({"secret": {"lease_id": "aws/creds/app/c", "lease_duration": 3600}}),
                "",
            ),
            resp(
                "2026-01-01T00:10:00Z",
                "sys/leases/renew",
                "sys/",
                json!({"lease_id": "aws/creds/app/a"}),
                json!({"secret": {"lease_id": "aws/creds/app/a", "lease_duration": 7200}}),
                "",
            ),
            resp(
                "2026-01-01T00:20:00Z",
                "sys/leases/revoke/aws/creds/app/c",
                "sys/",
                Value::Null,
                Value::Null,
                "",
            ),
            resp(
                "2026-01-01T00:30:00Z",
                "auth/token/create",
                "auth/token/",
                Value::Null,
                json!({"auth": {"client_token": "hmac-sha256:t1", "accessor": "hmac-sha256:a1", "token_ttl": 60}}),
                "",
            ),
            resp(
                "2026-01-01T00:30:10Z",
                "auth/token/revoke-accessor",
                "auth/token/",
                json!({"accessor": "hmac-sha256:a1"}),
                Value::Null,
                "",
            ),
            resp(
                "2026-01-01T00:31:00Z",
                "aws/config/rotate-root",
                "aws/",
                Value::Null,
                Value::Null,
                "the new access key was saved, but deleting the old one failed: AccessDenied",
            ),
            resp(
                "2026-01-01T00:32:00Z",
                "aws/config/rotate-root",
                "aws/",
                Value::Null,
                json!({"data": {"access_key": "hmac-sha256:k"}}),
                "",
            ),
            resp(
                "2026-01-01T00:33:00Z",
                "aws/config/rotate-root",
                "aws/",
                Value::Null,
                Value::Null,
                "permission denied",
            ),
        ];
        let events: Vec<(f64, Vec<Event>)> = lines
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    parse_rfc3339(v["time"].as_str().unwrap()).unwrap(),
                    events_of(&v),
                )
            })
            .collect();
        let r = replay(events);
        let doc = build(&r, 1200, &[], 0, 0);
        let app = doc["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "app")
            .unwrap();
        assert_eq!(
            (app["issued"].as_u64(), app["renewed"].as_u64()),
            (Some(3), Some(1))
        );
        assert_eq!(
            (
                app["revoked"].as_u64(),
                app["expired"].as_u64(),
                app["live"].as_u64()
            ),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(
            doc["renewed_never_revoked"][0]["lease_id"],
            "aws/creds/app/a"
        );
        // a: 33 minutes live at the end of the log; c: revoked after 20 minutes, under the bound.
        let over: Vec<&str> = doc["over_bound"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["lease_id"].as_str().unwrap())
            .collect();
        assert_eq!(over, vec!["aws/creds/app/a"]);
        let token = doc["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mount"] == "auth/token/")
            .unwrap();
        assert_eq!(token["revoked"], 1);
        let root = doc["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "root")
            .unwrap();
        assert_eq!(
            (
                root["rotations"].as_u64(),
                root["rotations_without_revocation"].as_u64()
            ),
            (Some(2), Some(1))
        );
        assert!(
            table_text(&doc)
                .contains("Rotations that issued a new credential without revoking the old one:")
        );
    }
}
