//! The one suite every backend passes: each contract point of [`Storage`], checked against a
//! fresh store from the caller's factory. A backend's tests call [`run_all`]; other crates
//! reach it through the `conformance` feature.
//!
//! A failed check panics with what was expected: this is test code, and loud is its job.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use crate::{Result, Storage, StorageError, WriteOp};

/// Runs every check, each on a store of its own from `make`.
pub async fn run_all(make: impl Fn() -> Arc<dyn Storage>) {
    get_put_delete(make()).await;
    list_children(make()).await;
    list_after_delete(make()).await;
    scan_paging(make()).await;
    batch_applies_in_order(make()).await;
    batch_is_all_or_nothing(make()).await;
    batch_is_atomic_to_readers(make()).await;
    concurrent_writers(make()).await;
    large_values(make()).await;
    odd_keys(make()).await;
    invalid_keys(make()).await;
    kind_is_named(make());
}

fn ok<T>(r: Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e}"),
    }
}

fn same<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    assert_eq!(got, want, "{what}");
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn put(s: &dyn Storage, key: &str, value: &[u8]) {
    ok(s.put(key, value.to_vec()).await, &format!("put {key}"));
}

async fn get(s: &dyn Storage, key: &str) -> Option<Vec<u8>> {
    ok(s.get(key).await, &format!("get {key}"))
}

async fn list(s: &dyn Storage, prefix: &str) -> Vec<String> {
    ok(s.list(prefix).await, &format!("list {prefix:?}"))
}

/// The keys of a `scan` page, checked against `scan_keys` with the same arguments.
async fn scan_keys(
    s: &dyn Storage,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Vec<String> {
    let page = ok(
        s.scan(prefix, after, limit).await,
        &format!("scan {prefix:?}"),
    );
    let keys: Vec<String> = page.into_iter().map(|(k, _)| k).collect();
    let only = ok(
        s.scan_keys(prefix, after, limit).await,
        &format!("scan_keys {prefix:?}"),
    );
    same(&only, &keys, "scan_keys pages like scan");
    keys
}

/// Missing keys, put, overwrite, delete, deleting what is not there.
pub async fn get_put_delete(s: Arc<dyn Storage>) {
    let s = s.as_ref();
    same(get(s, "k").await, None, "a missing key reads as None");
    put(s, "k", b"one").await;
    same(get(s, "k").await, Some(b"one".to_vec()), "put then get");
    put(s, "k", b"two").await;
    same(
        get(s, "k").await,
        Some(b"two".to_vec()),
        "overwrite replaces",
    );
    put(s, "empty", b"").await;
    same(
        get(s, "empty").await,
        Some(Vec::new()),
        "an empty value is a value",
    );
    ok(s.delete("k").await, "delete");
    same(get(s, "k").await, None, "a deleted key reads as None");
    ok(
        s.delete("k").await,
        "deleting a missing key is not an error",
    );
    ok(s.delete("never/was").await, "deleting a never-written key");
    same(
        get(s, "empty").await,
        Some(Vec::new()),
        "other keys are untouched",
    );
    same(get(s, "k/").await, None, "a folder name is not a key");
}

/// Vault-style listing: immediate children, folders with a trailing `/`, sorted, no
/// duplicates; the empty prefix lists the top level.
pub async fn list_children(s: Arc<dyn Storage>) {
    let s = s.as_ref();
    same(
        list(s, "").await,
        Vec::<String>::new(),
        "an empty store lists nothing",
    );
    for k in [
        "foo",
        "foo/x",
        "bar/baz",
        "bar/qux/1",
        "bar/qux/2",
        "bar-sibling",
        "zoo/deep/er/still",
    ] {
        put(s, k, b"v").await;
    }
    same(
        list(s, "").await,
        strings(&["bar-sibling", "bar/", "foo", "foo/", "zoo/"]),
        "top level: keys and folders, sorted",
    );
    same(
        list(s, "bar/").await,
        strings(&["baz", "qux/"]),
        "one level down",
    );
    same(list(s, "bar/qux/").await, strings(&["1", "2"]), "leaves");
    same(
        list(s, "zoo/").await,
        strings(&["deep/"]),
        "a folder of folders",
    );
    same(
        list(s, "foo/").await,
        strings(&["x"]),
        "a key that is also a folder",
    );
    same(
        list(s, "nope/").await,
        Vec::<String>::new(),
        "a missing folder lists nothing",
    );
    same(
        list(s, "bar/baz/").await,
        Vec::<String>::new(),
        "a key is not a folder",
    );
}

/// A folder exists only while keys are below it.
pub async fn list_after_delete(s: Arc<dyn Storage>) {
    let s = s.as_ref();
    put(s, "a/b/c", b"v").await;
    put(s, "a/d", b"v").await;
    put(s, "top", b"v").await;
    ok(s.delete("a/b/c").await, "delete");
    same(
        list(s, "a/").await,
        strings(&["d"]),
        "the emptied folder is gone",
    );
    same(
        list(s, "a/b/").await,
        Vec::<String>::new(),
        "nothing left below it",
    );
    ok(s.delete("a/d").await, "delete");
    same(
        list(s, "").await,
        strings(&["top"]),
        "the parent folder went too",
    );
}

/// `scan` (and `scan_keys`) page through a prefix recursively, in key order, strictly after
/// `after`.
pub async fn scan_paging(s: Arc<dyn Storage>) {
    let s = s.as_ref();
    let mut want = Vec::new();
    for i in 0..23 {
        let k = format!("p/{i:02}");
        put(s, &k, k.as_bytes()).await;
        want.push(k);
    }
    for k in ["p/sub/a", "p/sub/deeper/b"] {
        put(s, k, k.as_bytes()).await;
        want.push(k.to_string());
    }
    want.sort();
    for k in ["o", "p", "pa", "q/x", "p0"] {
        put(s, k, b"outside").await;
    }

    // Page by 5 until a short page.
    let mut got: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let after = got.last().map(|(k, _)| k.clone());
        let page = ok(s.scan("p/", after.as_deref(), 5).await, "scan page");
        assert!(page.len() <= 5, "a page holds at most `limit` entries");
        let done = page.len() < 5;
        got.extend(page);
        if done {
            break;
        }
    }
    let keys: Vec<String> = got.iter().map(|(k, _)| k.clone()).collect();
    same(
        keys,
        want.clone(),
        "paging visits every key below the prefix once, in order",
    );
    for (k, v) in &got {
        same(v.as_slice(), k.as_bytes(), "scan returns each key's value");
    }

    same(
        scan_keys(s, "p/", None, 0).await,
        Vec::<String>::new(),
        "limit 0",
    );
    same(
        scan_keys(s, "p/", Some("a"), 2).await,
        strings(&["p/00", "p/01"]),
        "an `after` before the prefix starts at the prefix",
    );
    same(
        scan_keys(s, "p/", Some("p/05"), 2).await,
        strings(&["p/06", "p/07"]),
        "strictly after `after`",
    );
    same(
        scan_keys(s, "p/", Some("p/04x"), 1).await,
        strings(&["p/05"]),
        "`after` need not be a key",
    );
    same(
        scan_keys(s, "p/", Some("p/sub/deeper/b"), 10).await,
        Vec::<String>::new(),
        "after the last key",
    );
    same(
        scan_keys(s, "p/", Some("z"), 10).await,
        Vec::<String>::new(),
        "`after` past the prefix",
    );
    same(
        scan_keys(s, "p/sub/", None, 10).await,
        strings(&["p/sub/a", "p/sub/deeper/b"]),
        "recursive below a folder",
    );
    let all = scan_keys(s, "", None, 1000).await;
    same(
        all.len(),
        want.len() + 5,
        "the empty prefix scans everything",
    );
    let mut sorted = all.clone();
    sorted.sort();
    same(all, sorted, "in key order");
}

/// A batch's writes apply in order: a later op on the same key wins.
pub async fn batch_applies_in_order(s: Arc<dyn Storage>) {
    let s = s.as_ref();
    put(s, "gone", b"old").await;
    ok(
        s.batch(vec![
            WriteOp::Put("a".into(), b"1".to_vec()),
            WriteOp::Put("b".into(), b"2".to_vec()),
            WriteOp::Delete("gone".into()),
            WriteOp::Put("c".into(), b"first".to_vec()),
            WriteOp::Put("c".into(), b"second".to_vec()),
            WriteOp::Put("d".into(), b"doomed".to_vec()),
            WriteOp::Delete("d".into()),
            WriteOp::Delete("never".into()),
        ])
        .await,
        "batch",
    );
    same(get(s, "a").await, Some(b"1".to_vec()), "batch put");
    same(get(s, "b").await, Some(b"2".to_vec()), "batch put");
    same(get(s, "gone").await, None, "batch delete");
    same(
        get(s, "c").await,
        Some(b"second".to_vec()),
        "the later put wins",
    );
    same(get(s, "d").await, None, "put then delete leaves nothing");
    ok(s.batch(Vec::new()).await, "an empty batch is fine");
}

/// A batch that cannot apply whole applies nothing.
pub async fn batch_is_all_or_nothing(s: Arc<dyn Storage>) {
    let s = s.as_ref();
    put(s, "keep", b"before").await;
    let r = s
        .batch(vec![
            WriteOp::Put("fresh".into(), b"x".to_vec()),
            WriteOp::Put("keep".into(), b"after".to_vec()),
            WriteOp::Put(String::new(), b"invalid key".to_vec()),
        ])
        .await;
    assert!(
        matches!(r, Err(StorageError::InvalidKey(_))),
        "a bad key fails the batch: {r:?}"
    );
    same(
        get(s, "fresh").await,
        None,
        "no write of a failed batch is visible",
    );
    same(
        get(s, "keep").await,
        Some(b"before".to_vec()),
        "a failed batch overwrote nothing",
    );
}

/// Readers see every batch whole or not at all, while batches land concurrently.
pub async fn batch_is_atomic_to_readers(s: Arc<dyn Storage>) {
    const ROUNDS: u32 = 200;
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..ROUNDS {
                let v = i.to_be_bytes().to_vec();
                let ops = ["atom/a", "atom/b", "atom/c"]
                    .iter()
                    .map(|k| WriteOp::Put(k.to_string(), v.clone()))
                    .collect();
                ok(s.batch(ops).await, "batch");
            }
        })
    };
    let mut seen = 0;
    while !writer.is_finished() || seen == 0 {
        let page = ok(s.scan("atom/", None, 10).await, "scan");
        if page.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        same(page.len(), 3, "all of a batch's keys or none");
        assert!(
            page.iter().all(|(_, v)| *v == page[0].1),
            "one scan sees one batch's values"
        );
        seen += 1;
        tokio::task::yield_now().await;
    }
    ok(
        writer.await.map_err(|e| StorageError::Io(e.to_string())),
        "writer task",
    );
    let last = (ROUNDS - 1).to_be_bytes().to_vec();
    same(
        get(s.as_ref(), "atom/b").await,
        Some(last),
        "the last batch wins",
    );
}

/// Many tasks writing at once: every write lands, none is lost or mixed up.
pub async fn concurrent_writers(s: Arc<dyn Storage>) {
    const TASKS: usize = 64;
    const EACH: usize = 25;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..EACH {
                let k = format!("conc/{t:02}/{i:02}");
                let v = format!("{t}:{i}").into_bytes();
                if i % 5 == 4 {
                    ok(
                        s.batch(vec![
                            WriteOp::Put(k, v),
                            WriteOp::Put(format!("shared/{t}"), vec![t as u8]),
                        ])
                        .await,
                        "concurrent batch",
                    );
                } else {
                    ok(s.put(&k, v).await, "concurrent put");
                }
                ok(
                    s.put("contended", format!("{t}:{i}").into_bytes()).await,
                    "contended put",
                );
            }
        }));
    }
    for h in handles {
        ok(
            h.await.map_err(|e| StorageError::Io(e.to_string())),
            "writer task",
        );
    }
    let s = s.as_ref();
    let all = ok(s.scan("conc/", None, TASKS * EACH + 1).await, "scan");
    same(all.len(), TASKS * EACH, "every concurrent write landed");
    let want: BTreeMap<String, Vec<u8>> = (0..TASKS)
        .flat_map(|t| {
            (0..EACH).map(move |i| {
                (
                    format!("conc/{t:02}/{i:02}"),
                    format!("{t}:{i}").into_bytes(),
                )
            })
        })
        .collect();
    same(
        all.into_iter().collect::<BTreeMap<_, _>>(),
        want,
        "each key holds its own value",
    );
    same(
        list(s, "shared/").await.len(),
        TASKS,
        "batched writes landed",
    );
    let last = get(s, "contended").await;
    assert!(
        last.as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|v| v.ends_with(&format!(":{}", EACH - 1))),
        "the contended key holds some task's last write: {last:?}"
    );
}

/// Values of 1 MiB round-trip intact, alone and in a batch.
pub async fn large_values(s: Arc<dyn Storage>) {
    let s = s.as_ref();
    let big: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    put(s, "big/one", &big).await;
    same(
        get(s, "big/one").await.as_deref(),
        Some(big.as_slice()),
        "1 MiB value",
    );
    let mut other = big.clone();
    other.reverse();
    ok(
        s.batch(vec![
            WriteOp::Put("big/two".into(), other.clone()),
            WriteOp::Put("big/three".into(), big.clone()),
        ])
        .await,
        "batch of large values",
    );
    same(
        get(s, "big/two").await,
        Some(other),
        "1 MiB value from a batch",
    );
    let page = ok(s.scan("big/", None, 10).await, "scan");
    same(page.len(), 3, "scan over large values");
    same(page[0].1.len(), big.len(), "scan returns the whole value");
}

/// Keys with spaces, unicode, quotes, percent signs, dots and the like are plain keys.
pub async fn odd_keys(s: Arc<dyn Storage>) {
    let s = s.as_ref();
    let keys = [
        "odd/with space",
        "odd/ünïcødé ключ 鍵",
        "odd/emoji 🔑",
        "odd/quote\"'`",
        "odd/percent%2Fslash",
        "odd/dots/../up",
        "odd/tab\tnewline\n",
        "odd/back\\slash",
        "odd/semi;colon:star*?",
        "odd/sql' OR 1=1 --",
        "odd/%_like",
    ];
    for k in keys {
        put(s, k, k.as_bytes()).await;
    }
    for k in keys {
        same(
            get(s, k).await.as_deref(),
            Some(k.as_bytes()),
            &format!("odd key {k:?}"),
        );
    }
    let mut want: Vec<String> = keys
        .iter()
        .map(|k| {
            let rest = &k["odd/".len()..];
            match rest.find('/') {
                Some(i) => rest[..=i].to_string(),
                None => rest.to_string(),
            }
        })
        .collect();
    want.sort();
    same(list(s, "odd/").await, want, "odd keys list sorted by bytes");
    same(
        list(s, "odd/dots/").await,
        strings(&["../"]),
        "`..` is just a name",
    );
    same(get(s, "odd/%").await, None, "no pattern matching in get");
    same(
        scan_keys(s, "odd/%", None, 10).await,
        strings(&["odd/%_like"]),
        "no pattern matching in scan",
    );
    same(
        list(s, "odd/%").await,
        strings(&["_like"]),
        "no pattern matching in list",
    );
}

/// Keys are non-empty and free of NUL; writes of other keys fail with `InvalidKey`.
pub async fn invalid_keys(s: Arc<dyn Storage>) {
    let s = s.as_ref();
    for bad in ["", "nul\0inside"] {
        let r = s.put(bad, b"v".to_vec()).await;
        assert!(
            matches!(r, Err(StorageError::InvalidKey(_))),
            "put {bad:?}: {r:?}"
        );
        let r = s.batch(vec![WriteOp::Delete(bad.to_string())]).await;
        assert!(
            matches!(r, Err(StorageError::InvalidKey(_))),
            "batch delete {bad:?}: {r:?}"
        );
        let r = s.delete(bad).await;
        assert!(
            matches!(r, Err(StorageError::InvalidKey(_))),
            "delete {bad:?}: {r:?}"
        );
    }
    same(
        list(s, "").await,
        Vec::<String>::new(),
        "nothing was written",
    );
}

fn kind_is_named(s: Arc<dyn Storage>) {
    assert!(!s.kind().is_empty(), "kind() names the backend");
}
