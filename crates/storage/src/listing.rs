//! Vault-style `list` over any ordered key set that can seek: leaves are streamed, and each
//! folder costs one seek past everything below it, so listing the top level of a store with
//! millions of leases reads a handful of keys rather than all of them.

use std::ops::Bound;

use crate::Result;

/// The immediate children of `prefix` (folders with a trailing `/`), sorted, no duplicates.
///
/// `range_from(start)` returns the keys from `start` onwards, in order.
pub fn list_by_seeking<I, F>(prefix: &str, mut range_from: F) -> Result<Vec<String>>
where
    F: FnMut(Bound<String>) -> I,
    I: Iterator<Item = Result<String>>,
{
    let mut out = Vec::new();
    let mut keys = range_from(Bound::Included(prefix.to_string()));
    while let Some(key) = keys.next().transpose()? {
        let Some(rest) = key.strip_prefix(prefix) else {
            break;
        };
        match rest.find('/') {
            Some(i) => {
                out.push(rest[..=i].to_string());
                // Every key from "<folder>/" up to "<folder>0" starts with "<folder>/" ('0'
                // is the byte after '/'), so the next child is at or after "<folder>0".
                keys = range_from(Bound::Included(format!("{prefix}{}0", &rest[..i])));
            }
            None => out.push(rest.to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn list(keys: &[&str], prefix: &str) -> (Vec<String>, usize) {
        let set: BTreeSet<String> = keys.iter().map(|k| k.to_string()).collect();
        let mut seeks = 0;
        let out = list_by_seeking(prefix, |start| {
            seeks += 1;
            set.range((start, Bound::Unbounded))
                .cloned()
                .map(Ok)
                .collect::<Vec<_>>()
                .into_iter()
        });
        match out {
            Ok(v) => (v, seeks),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn folders_cost_one_seek_each() {
        let mut keys: Vec<String> = (0..1000).map(|i| format!("big/{i:04}")).collect();
        keys.extend(["a".into(), "big".into(), "big-x".into(), "c/d".into()]);
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (out, seeks) = list(&refs, "");
        assert_eq!(out, ["a", "big", "big-x", "big/", "c/"]);
        assert_eq!(seeks, 3, "the start, then one per folder");
    }

    #[test]
    fn below_a_prefix() {
        let (out, _) = list(&["p/a/1", "p/a/2", "p/b", "p0", "q"], "p/");
        assert_eq!(out, ["a/", "b"]);
        let (out, _) = list(&["p/a/1"], "p/a/");
        assert_eq!(out, ["1"]);
        let (out, _) = list(&["p/a/1"], "x/");
        assert!(out.is_empty());
    }
}
