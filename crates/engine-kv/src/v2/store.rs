//! The records of KV v2 and how they sit in storage; the per-secret locks; time.
//!
//! Times are kept as Unix nanoseconds (KV reports them to the nanosecond) and printed as
//! RFC 3339 with trailing zeros of the fraction dropped, as Vault prints them.

use std::collections::BTreeMap;
use std::sync::Arc;

use lessor_core::duration;
use lessor_core::logical::obj;
use lessor_core::stripes::Stripes;
use lessor_core::{Error, Result};
use lessor_storage::{Storage, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tokio::sync::MutexGuard;

/// Versions kept per secret when neither the secret nor the mount sets `max_versions`.
pub const DEFAULT_MAX_VERSIONS: u64 = 10;

const CONFIG_KEY: &str = "config";
const NANOS: i64 = 1_000_000_000;

/// "Now" in Unix nanoseconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| {
        let n = OffsetDateTime::now_utc().unix_timestamp_nanos();
        i64::try_from(n).unwrap_or(i64::MAX)
    })
}

/// What every handler of one mount shares.
pub struct State {
    locks: Stripes,
    clock: Clock,
}

/// Lock stripes: enough that unrelated secrets rarely wait on each other, few enough to
/// cost nothing per mount.
const LOCK_STRIPES: usize = 64;

impl State {
    pub fn new(clock: Clock) -> Self {
        State {
            locks: Stripes::new(LOCK_STRIPES),
            clock,
        }
    }

    /// Serialises every read-modify-write of one secret (check-and-set depends on it).
    pub async fn lock(&self, path: &str) -> MutexGuard<'_, ()> {
        self.locks.lock(path).await
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

/// Mount-wide settings (`config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    pub max_versions: u64,
    pub cas_required: bool,
    /// Seconds; 0 = off.
    pub delete_version_after: i64,
}

impl Config {
    pub async fn load(storage: &Arc<dyn Storage>) -> Result<Config> {
        Ok(get_json(storage, CONFIG_KEY).await?.unwrap_or_default())
    }

    pub async fn save(&self, storage: &Arc<dyn Storage>) -> Result<()> {
        storage.put(CONFIG_KEY, to_json(self)?).await?;
        Ok(())
    }
}

/// One version's bookkeeping, kept in the secret's metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VersionMeta {
    pub created: i64,
    /// When the version counts as deleted (may lie in the future, from
    /// `delete_version_after`).
    pub deletion: Option<i64>,
    pub destroyed: bool,
}

impl VersionMeta {
    /// Deleted (its deletion time has come) or destroyed: reads answer 404.
    pub fn is_gone(&self, now: i64) -> bool {
        self.destroyed || self.is_deleted(now)
    }

    pub fn is_deleted(&self, now: i64) -> bool {
        self.deletion.is_some_and(|t| t <= now)
    }
}

/// One secret's metadata (`metadata/<path>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyMeta {
    pub created: i64,
    pub updated: i64,
    pub current_version: u64,
    pub oldest_version: u64,
    pub max_versions: u64,
    pub cas_required: bool,
    /// Seconds; 0 = use the mount's.
    pub delete_version_after: i64,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub versions: BTreeMap<u64, VersionMeta>,
}

impl KeyMeta {
    pub fn new(now: i64) -> Self {
        KeyMeta {
            created: now,
            updated: now,
            ..Default::default()
        }
    }

    pub async fn load(storage: &Arc<dyn Storage>, path: &str) -> Result<Option<KeyMeta>> {
        get_json(storage, &meta_key(path)).await
    }

    pub fn put_op(&self, path: &str) -> Result<WriteOp> {
        Ok(WriteOp::Put(meta_key(path), to_json(self)?))
    }

    pub async fn save(&self, storage: &Arc<dyn Storage>, path: &str) -> Result<()> {
        storage.batch(vec![self.put_op(path)?]).await?;
        Ok(())
    }

    /// The `max_versions` in force: the secret's, else the mount's, else 10.
    pub fn effective_max_versions(&self, cfg: &Config) -> u64 {
        [self.max_versions, cfg.max_versions, DEFAULT_MAX_VERSIONS]
            .into_iter()
            .find(|m| *m > 0)
            .unwrap_or(DEFAULT_MAX_VERSIONS)
    }

    /// The `delete_version_after` in force: the shorter of the secret's and the mount's
    /// (the mount's is a ceiling); `None` when neither is set.
    pub fn effective_delete_after(&self, cfg: &Config) -> Option<i64> {
        [self.delete_version_after, cfg.delete_version_after]
            .into_iter()
            .filter(|s| *s > 0)
            .min()
    }

    /// The deletion time `delete_version_after` gives a version written (or undeleted)
    /// at `now`.
    pub fn deletion_from(&self, cfg: &Config, now: i64) -> Option<i64> {
        self.effective_delete_after(cfg)
            .map(|s| now.saturating_add(s.saturating_mul(NANOS)))
    }

    /// The check-and-set rules of a write. `cas` is the parsed `options.cas`.
    pub fn check_cas(&self, cfg: &Config, cas: Cas) -> Result<()> {
        match cas {
            Cas::Given(v) if v == self.current_version => Ok(()),
            Cas::Given(_) | Cas::Mismatch => Err(Error::bad(
                "check-and-set parameter did not match the current version",
            )),
            Cas::Absent if cfg.cas_required || self.cas_required => {
                Err(Error::bad("check-and-set parameter required for this call"))
            }
            Cas::Absent => Ok(()),
        }
    }

    /// Adds version `current + 1` created at `now`; returns the writes that store it with
    /// `data`, drop the versions beyond `max_versions` and save this record.
    pub fn add_version(
        &mut self,
        path: &str,
        cfg: &Config,
        now: i64,
        data: &Map<String, Value>,
    ) -> Result<Vec<WriteOp>> {
        let deletion = self.deletion_from(cfg, now);
        self.current_version += 1;
        let n = self.current_version;
        self.versions.insert(
            n,
            VersionMeta {
                created: now,
                deletion,
                destroyed: false,
            },
        );
        self.updated = now;
        if self.created == 0 {
            self.created = now;
        }
        let stored = StoredVersion {
            data: data.clone(),
            created: now,
        };
        let mut ops = vec![WriteOp::Put(version_key(path, n), to_json(&stored)?)];
        let max = self.effective_max_versions(cfg);
        if n - self.oldest_version >= max {
            // Drop everything up to `n - max`; a lowered max_versions may drop several.
            let last_dropped = n - max;
            for old in self.oldest_version..=last_dropped {
                if self.versions.remove(&old).is_some() {
                    ops.push(WriteOp::Delete(version_key(path, old)));
                }
            }
            self.oldest_version = last_dropped + 1;
        }
        ops.push(self.put_op(path)?);
        Ok(ops)
    }

    /// `{created_time, custom_metadata, deletion_time, destroyed, version}` of version `n`.
    pub fn version_json(&self, n: u64, vm: &VersionMeta) -> Map<String, Value> {
        obj([
            ("created_time", json!(rfc3339_nano(vm.created))),
            ("custom_metadata", self.custom_json()),
            ("deletion_time", json!(deletion_string(vm.deletion))),
            ("destroyed", json!(vm.destroyed)),
            ("version", json!(n)),
        ])
    }

    pub fn custom_json(&self) -> Value {
        match &self.custom_metadata {
            Some(m) => json!(m),
            None => Value::Null,
        }
    }
}

/// The parsed `options.cas` of a data write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    Absent,
    Given(u64),
    /// A value no version can have (negative): always a mismatch.
    Mismatch,
}

impl Cas {
    /// Reads `cas` from the `options` map with Vault's weak decoding (numbers, numeric
    /// strings, bools). `null` counts as not given.
    pub fn from_options(options: Option<&Map<String, Value>>) -> Result<Cas> {
        let Some(v) = options.and_then(|o| o.get("cas")) else {
            return Ok(Cas::Absent);
        };
        let bad = || Error::bad("error parsing check-and-set parameter");
        let n: i64 = match v {
            Value::Null => return Ok(Cas::Absent),
            Value::Bool(b) => i64::from(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => i,
                None => n.as_f64().map(|f| f.trunc() as i64).ok_or_else(bad)?,
            },
            Value::String(s) if s.trim().is_empty() => 0,
            Value::String(s) => s.trim().parse().map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        Ok(u64::try_from(n).map_or(Cas::Mismatch, Cas::Given))
    }
}

/// The data of one version as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredVersion {
    pub data: Map<String, Value>,
    pub created: i64,
}

impl StoredVersion {
    pub async fn load(
        storage: &Arc<dyn Storage>,
        path: &str,
        n: u64,
    ) -> Result<Option<StoredVersion>> {
        get_json(storage, &version_key(path, n)).await
    }
}

/// A version looked up for a read.
pub enum Lookup {
    /// No such secret or version: 404 `{"errors":[]}`.
    Missing,
    /// Deleted or destroyed: 404 with the version's metadata.
    Gone {
        meta: KeyMeta,
        n: u64,
        vm: VersionMeta,
    },
    Live {
        meta: KeyMeta,
        n: u64,
        vm: VersionMeta,
        data: Map<String, Value>,
    },
}

/// Finds version `version` (0 = current) of `path`.
pub async fn lookup(
    storage: &Arc<dyn Storage>,
    path: &str,
    version: i64,
    now: i64,
) -> Result<Lookup> {
    let Some(meta) = KeyMeta::load(storage, path).await? else {
        return Ok(Lookup::Missing);
    };
    let n = if version > 0 {
        version.unsigned_abs()
    } else {
        meta.current_version
    };
    let Some(vm) = meta.versions.get(&n).cloned() else {
        return Ok(Lookup::Missing);
    };
    if vm.is_gone(now) {
        return Ok(Lookup::Gone { meta, n, vm });
    }
    let Some(stored) = StoredVersion::load(storage, path, n).await? else {
        return Err(Error::internal("could not find version data"));
    };
    Ok(Lookup::Live {
        meta,
        n,
        vm,
        data: stored.data,
    })
}

pub fn meta_key(path: &str) -> String {
    format!("metadata/{path}")
}

/// The folder of one secret's versions.
pub fn versions_prefix(path: &str) -> String {
    format!("versions/{}/", hex::encode(path))
}

pub fn version_key(path: &str, n: u64) -> String {
    format!("{}{n}", versions_prefix(path))
}

async fn get_json<T: for<'de> Deserialize<'de>>(
    storage: &Arc<dyn Storage>,
    key: &str,
) -> Result<Option<T>> {
    let Some(raw) = storage.get(key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| Error::internal(format!("corrupt KV record: {e}")))
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::internal(format!("json encoding failed: {e}")))
}

/// Go's RFC3339Nano in UTC: `2018-03-22T02:24:06.945319214Z`, trailing zeros of the
/// fraction dropped, no fraction at all on a whole second.
pub fn rfc3339_nano(nanos: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let frac = t.nanosecond();
    if frac > 0 {
        let digits = format!("{frac:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// `deletion_time` as printed: `""` when not deleted.
pub fn deletion_string(deletion: Option<i64>) -> String {
    deletion.map(rfc3339_nano).unwrap_or_default()
}

/// `delete_version_after` as printed: Go's duration string (`"0s"`, `"1h0m0s"`).
pub fn go_duration(secs: i64) -> Value {
    json!(duration::format_go(secs.max(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_nano_like_go() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(1_521_685_446_945_319_214),
            "2018-03-22T02:24:06.945319214Z"
        );
        assert_eq!(
            rfc3339_nano(1_521_685_446_940_000_000),
            "2018-03-22T02:24:06.94Z"
        );
        assert_eq!(deletion_string(None), "");
    }

    #[test]
    fn cas_parsing_is_weak() {
        let o = |v: Value| Map::from_iter([("cas".to_string(), v)]);
        assert_eq!(Cas::from_options(None).unwrap(), Cas::Absent);
        assert_eq!(
            Cas::from_options(Some(&o(json!(2)))).unwrap(),
            Cas::Given(2)
        );
        assert_eq!(
            Cas::from_options(Some(&o(json!("3")))).unwrap(),
            Cas::Given(3)
        );
        assert_eq!(
            Cas::from_options(Some(&o(json!(null)))).unwrap(),
            Cas::Absent
        );
        assert_eq!(
            Cas::from_options(Some(&o(json!(-1)))).unwrap(),
            Cas::Mismatch
        );
        assert!(Cas::from_options(Some(&o(json!("abc")))).is_err());
    }

    #[test]
    fn effective_limits() {
        let cfg = Config {
            max_versions: 5,
            cas_required: false,
            delete_version_after: 3600,
        };
        let mut m = KeyMeta::default();
        assert_eq!(m.effective_max_versions(&Config::default()), 10);
        assert_eq!(m.effective_max_versions(&cfg), 5);
        m.max_versions = 2;
        assert_eq!(m.effective_max_versions(&cfg), 2);
        assert_eq!(m.effective_delete_after(&Config::default()), None);
        assert_eq!(m.effective_delete_after(&cfg), Some(3600));
        m.delete_version_after = 60;
        assert_eq!(m.effective_delete_after(&cfg), Some(60));
        m.delete_version_after = 7200;
        assert_eq!(m.effective_delete_after(&cfg), Some(3600));
    }
}
