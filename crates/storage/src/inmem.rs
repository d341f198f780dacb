//! In-memory backend: dev mode and unit tests. Nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::listing::list_by_seeking;
use crate::{Result, Storage, WriteOp, validate_key, validate_ops};

#[derive(Default)]
pub struct InMem {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl InMem {
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries below `prefix` strictly after `after`, in order.
    fn scan_range<'a>(
        map: &'a BTreeMap<String, Vec<u8>>,
        prefix: &'a str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a String, &'a Vec<u8>)> {
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        map.range::<str, _>((start, Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }
}

/// Vault-style listing over a sorted key set: immediate children of `prefix`, folders with
/// a trailing `/`. Shared by every backend that keeps keys in order.
pub fn list_children<'a>(prefix: &str, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            break;
        };
        let child = match rest.find('/') {
            Some(i) => &rest[..=i],
            None => rest,
        };
        if out.last().map(String::as_str) != Some(child) {
            out.push(child.to_string());
        }
    }
    out
}

#[async_trait]
impl Storage for InMem {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.map.read().get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        validate_key(key)?;
        self.map.write().insert(key.to_string(), value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.map.write().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let map = self.map.read();
        list_by_seeking(prefix, |start| {
            map.range((start, Bound::Unbounded))
                .map(|(k, _)| Ok(k.clone()))
        })
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let map = self.map.read();
        Ok(Self::scan_range(&map, prefix, after)
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn scan_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let map = self.map.read();
        Ok(Self::scan_range(&map, prefix, after)
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn batch(&self, ops: Vec<WriteOp>) -> Result<()> {
        validate_ops(&ops)?;
        let mut map = self.map.write();
        for op in ops {
            match op {
                WriteOp::Put(k, v) => {
                    map.insert(k, v);
                }
                WriteOp::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn conformance() {
        crate::conformance::run_all(|| Arc::new(InMem::new())).await;
    }

    #[test]
    fn list_children_folds_folders() {
        let keys = ["a", "a/b", "a/c/d", "a/c/e", "b"];
        assert_eq!(list_children("a/", keys[1..4].iter().copied()), ["b", "c/"]);
        assert_eq!(list_children("", keys.iter().copied()), ["a", "a/", "b"]);
    }
}
