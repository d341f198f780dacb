use std::sync::Arc;

use lessor_storage::inmem::InMem;
use lessor_storage::{Storage, StorageError, WriteOp};

use super::*;

const ROOT: [u8; 32] = [7u8; 32];

async fn unsealed() -> (Arc<InMem>, Arc<Barrier>) {
    let physical = Arc::new(InMem::new());
    let barrier = Barrier::new(physical.clone());
    barrier.initialize(&ROOT).await.unwrap();
    barrier.unseal(&ROOT).await.unwrap();
    (physical, barrier)
}

/// Every raw value in the physical store, reserved paths included.
async fn raw_values(physical: &InMem) -> Vec<(String, Vec<u8>)> {
    physical.scan("", None, usize::MAX).await.unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn term_of(raw: &[u8]) -> u32 {
    assert_eq!(raw[0], envelope::VERSION);
    u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]])
}

#[tokio::test]
async fn sealed_barrier_refuses_all_io() {
    let physical = Arc::new(InMem::new());
    let barrier = Barrier::new(physical.clone());
    assert!(barrier.sealed());
    assert!(!barrier.initialized().await.unwrap());
    // Before init and after init-but-sealed alike.
    for round in 0..2 {
        assert!(matches!(barrier.get("a").await, Err(StorageError::Closed)));
        assert!(matches!(
            barrier.put("a", b"v".to_vec()).await,
            Err(StorageError::Closed)
        ));
        assert!(matches!(
            barrier.delete("a").await,
            Err(StorageError::Closed)
        ));
        assert!(matches!(barrier.list("").await, Err(StorageError::Closed)));
        assert!(matches!(
            barrier.scan("", None, 10).await,
            Err(StorageError::Closed)
        ));
        assert!(matches!(
            barrier
                .batch(vec![WriteOp::Put("a".into(), b"v".to_vec())])
                .await,
            Err(StorageError::Closed)
        ));
        assert!(matches!(barrier.key_status(), Err(Error::Sealed)));
        assert!(matches!(barrier.rotate().await, Err(Error::Sealed)));
        if round == 0 {
            barrier.initialize(&ROOT).await.unwrap();
            assert!(barrier.initialized().await.unwrap());
            assert!(barrier.sealed(), "initialize leaves the barrier sealed");
        }
    }
    assert!(physical.get("a").await.unwrap().is_none());
}

#[tokio::test]
async fn initialize_twice_is_refused() {
    let (_, barrier) = unsealed().await;
    let err = barrier.initialize(&[1u8; 32]).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(err.to_string(), "Vault is already initialized");
}

#[tokio::test]
async fn wrong_root_key_stays_sealed() {
    let physical = Arc::new(InMem::new());
    let barrier = Barrier::new(physical.clone());
    let err = barrier.unseal(&ROOT).await.unwrap_err();
    assert_eq!(err.status(), 400, "unseal before init");
    barrier.initialize(&ROOT).await.unwrap();
    for wrong in [&[8u8; 32][..], &[7u8; 16][..], &[][..]] {
        let err = barrier.unseal(wrong).await.unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(barrier.sealed());
    }
    barrier.unseal(&ROOT).await.unwrap();
    assert!(!barrier.sealed());
    // Unsealing again is a no-op, even with a wrong key.
    barrier.unseal(&[8u8; 32]).await.unwrap();
    assert!(!barrier.sealed());
}

#[tokio::test]
async fn round_trip_and_seal_again() {
    let (_, barrier) = unsealed().await;
    barrier.put("a/b", b"one".to_vec()).await.unwrap();
    barrier
        .batch(vec![
            WriteOp::Put("a/c".into(), b"two".to_vec()),
            WriteOp::Put("d".into(), b"three".to_vec()),
        ])
        .await
        .unwrap();
    assert_eq!(barrier.get("a/b").await.unwrap().unwrap(), b"one");
    assert_eq!(barrier.get("missing").await.unwrap(), None);
    assert_eq!(barrier.list("").await.unwrap(), vec!["a/", "core/", "d"]);
    assert_eq!(barrier.list("a/").await.unwrap(), vec!["b", "c"]);
    let rows = barrier.scan("a/", None, 10).await.unwrap();
    assert_eq!(
        rows,
        vec![
            ("a/b".to_string(), b"one".to_vec()),
            ("a/c".to_string(), b"two".to_vec())
        ]
    );
    barrier
        .batch(vec![WriteOp::Delete("a/b".into())])
        .await
        .unwrap();
    barrier.delete("a/c").await.unwrap();
    assert_eq!(barrier.list("a/").await.unwrap(), Vec::<String>::new());
    assert_eq!(barrier.key_status().unwrap().encryptions, 3);

    barrier.seal();
    assert!(barrier.sealed());
    assert!(matches!(barrier.get("d").await, Err(StorageError::Closed)));
    barrier.unseal(&ROOT).await.unwrap();
    assert_eq!(barrier.get("d").await.unwrap().unwrap(), b"three");
    assert_eq!(barrier.key_status().unwrap().encryptions, 0);
}

#[tokio::test]
async fn physical_store_never_holds_plaintext() {
    let (physical, barrier) = unsealed().await;
    let secret = b"correct horse battery staple";
    barrier.put("kv/one", secret.to_vec()).await.unwrap();
    barrier
        .batch(vec![WriteOp::Put("kv/two".into(), secret.to_vec())])
        .await
        .unwrap();
    barrier.rotate().await.unwrap();
    barrier.put("kv/three", secret.to_vec()).await.unwrap();
    let raw = raw_values(&physical).await;
    assert!(raw.len() >= 4);
    for (key, value) in &raw {
        assert!(!contains(value, secret), "plaintext under {key}");
        assert!(
            !contains(value, &secret[..8]),
            "plaintext fragment under {key}"
        );
    }
}

#[tokio::test]
async fn ciphertext_moved_to_another_key_fails() {
    let (physical, barrier) = unsealed().await;
    barrier.put("secret/a", b"value-a".to_vec()).await.unwrap();
    let raw = physical.get("secret/a").await.unwrap().unwrap();
    physical.put("secret/b", raw.clone()).await.unwrap();
    assert!(matches!(
        barrier.get("secret/b").await,
        Err(StorageError::Corrupt(_))
    ));
    assert!(matches!(
        barrier.scan("secret/", None, 10).await,
        Err(StorageError::Corrupt(_))
    ));

    // Tampered, truncated, unknown term, unknown version: errors, never panics.
    let mut flipped = raw.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let mut unknown_term = raw.clone();
    unknown_term[1..5].copy_from_slice(&99u32.to_be_bytes());
    let mut unknown_version = raw.clone();
    unknown_version[0] = 9;
    for bad in [
        flipped,
        raw[..10].to_vec(),
        Vec::new(),
        unknown_term,
        unknown_version,
    ] {
        physical.put("secret/c", bad).await.unwrap();
        let err = barrier.get("secret/c").await.unwrap_err();
        assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
    }
    assert_eq!(barrier.get("secret/a").await.unwrap().unwrap(), b"value-a");
}

#[tokio::test]
async fn rotation_keeps_old_terms_readable() {
    let (physical, barrier) = unsealed().await;
    let before = barrier.key_status().unwrap();
    assert_eq!(before.term, 1);
    time::OffsetDateTime::parse(&before.install_time, &Rfc3339).unwrap();
    barrier
        .put("old", b"written under term 1".to_vec())
        .await
        .unwrap();

    let status = barrier.rotate().await.unwrap();
    assert_eq!(status.term, 2);
    assert_eq!(status.encryptions, 0);
    barrier
        .put("new", b"written under term 2".to_vec())
        .await
        .unwrap();
    assert_eq!(barrier.key_status().unwrap().encryptions, 1);
    assert_eq!(term_of(&physical.get("old").await.unwrap().unwrap()), 1);
    assert_eq!(term_of(&physical.get("new").await.unwrap().unwrap()), 2);
    assert_eq!(
        barrier.get("old").await.unwrap().unwrap(),
        b"written under term 1"
    );
    assert_eq!(
        barrier.get("new").await.unwrap().unwrap(),
        b"written under term 2"
    );

    // Rewriting an old value moves it to the active term.
    barrier.put("old", b"rewritten".to_vec()).await.unwrap();
    assert_eq!(term_of(&physical.get("old").await.unwrap().unwrap()), 2);

    assert_eq!(barrier.rotate().await.unwrap().term, 3);

    // The rotated keyring is persisted: a fresh barrier over the same storage reads it all.
    let again = Barrier::new(physical.clone());
    again.unseal(&ROOT).await.unwrap();
    assert_eq!(again.key_status().unwrap().term, 3);
    assert_eq!(again.get("old").await.unwrap().unwrap(), b"rewritten");
    assert_eq!(
        again.get("new").await.unwrap().unwrap(),
        b"written under term 2"
    );
    again.put("newest", b"x".to_vec()).await.unwrap();
    assert_eq!(term_of(&physical.get("newest").await.unwrap().unwrap()), 3);
}

#[tokio::test]
async fn concurrent_rotations_yield_distinct_terms() {
    let (_, barrier) = unsealed().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let b = barrier.clone();
        tasks.push(tokio::spawn(async move { b.rotate().await.unwrap().term }));
    }
    let mut terms = Vec::new();
    for t in tasks {
        terms.push(t.await.unwrap());
    }
    terms.sort_unstable();
    assert_eq!(terms, (2..=9).collect::<Vec<_>>());
}

#[tokio::test]
async fn reserved_paths_are_unreachable_through_the_barrier() {
    let (physical, barrier) = unsealed().await;
    physical
        .put(SEAL_CONFIG_PATH, b"{}".to_vec())
        .await
        .unwrap();
    physical
        .put(ROOT_KEY_PATH, b"sealed".to_vec())
        .await
        .unwrap();
    let keyring = physical.get(KEYRING_PATH).await.unwrap().unwrap();
    for path in RESERVED {
        assert_eq!(barrier.get(path).await.unwrap(), None);
        assert!(matches!(
            barrier.put(path, b"x".to_vec()).await,
            Err(StorageError::InvalidKey(_))
        ));
        assert!(matches!(
            barrier.delete(path).await,
            Err(StorageError::InvalidKey(_))
        ));
        let batch = vec![
            WriteOp::Put("core/mounts".into(), b"m".to_vec()),
            WriteOp::Delete(path.to_string()),
        ];
        assert!(matches!(
            barrier.batch(batch).await,
            Err(StorageError::InvalidKey(_))
        ));
    }
    assert_eq!(physical.get(KEYRING_PATH).await.unwrap().unwrap(), keyring);
    assert_eq!(
        barrier.get("core/mounts").await.unwrap(),
        None,
        "a refused batch writes nothing"
    );

    // Ordinary keys under core/ are fine and listed; reserved ones are not.
    barrier.put("core/mounts", b"m".to_vec()).await.unwrap();
    assert_eq!(barrier.list("core/").await.unwrap(), vec!["mounts"]);
    let rows = barrier.scan("", None, 10).await.unwrap();
    assert_eq!(rows, vec![("core/mounts".to_string(), b"m".to_vec())]);
}

#[tokio::test]
async fn scan_pages_fill_past_reserved_entries() {
    let (physical, barrier) = unsealed().await;
    physical
        .put(SEAL_CONFIG_PATH, b"{}".to_vec())
        .await
        .unwrap();
    physical
        .put(ROOT_KEY_PATH, b"sealed".to_vec())
        .await
        .unwrap();
    // Sorted: core/a, core/keyring, core/m, core/root-key, core/seal-config, core/z.
    for key in ["core/a", "core/m", "core/z"] {
        barrier.put(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let page = barrier.scan("core/", None, 2).await.unwrap();
    let keys: Vec<_> = page.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["core/a", "core/m"]);
    let page = barrier.scan("core/", Some("core/m"), 2).await.unwrap();
    assert_eq!(page, vec![("core/z".to_string(), b"core/z".to_vec())]);
    assert!(barrier.scan("core/", None, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn view_prefixes_and_strips() {
    let (physical, barrier) = unsealed().await;
    let mount = View::new(barrier.clone(), "logical/1234/");
    let other = View::new(barrier.clone(), "logical/5678/");
    assert_eq!(mount.prefix(), "logical/1234/");
    mount.put("config", b"c".to_vec()).await.unwrap();
    mount
        .batch(vec![
            WriteOp::Put("roles/a".into(), b"ra".to_vec()),
            WriteOp::Put("roles/b".into(), b"rb".to_vec()),
            WriteOp::Put("roles/deep/c".into(), b"rc".to_vec()),
        ])
        .await
        .unwrap();
    other.put("config", b"other".to_vec()).await.unwrap();

    assert_eq!(mount.get("config").await.unwrap().unwrap(), b"c");
    assert_eq!(other.get("config").await.unwrap().unwrap(), b"other");
    assert_eq!(
        barrier.get("logical/1234/roles/a").await.unwrap().unwrap(),
        b"ra"
    );
    // The barrier below the view still encrypts under the full path.
    assert!(physical.get("logical/1234/roles/a").await.unwrap().unwrap() != b"ra");

    assert_eq!(mount.list("").await.unwrap(), vec!["config", "roles/"]);
    assert_eq!(mount.list("roles/").await.unwrap(), vec!["a", "b", "deep/"]);
    let rows = mount.scan("roles/", None, 10).await.unwrap();
    let keys: Vec<_> = rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["roles/a", "roles/b", "roles/deep/c"]);
    let rows = mount.scan("", Some("roles/a"), 2).await.unwrap();
    assert_eq!(
        rows,
        vec![
            ("roles/b".to_string(), b"rb".to_vec()),
            ("roles/deep/c".to_string(), b"rc".to_vec())
        ]
    );

    let roles = mount.sub("roles/");
    assert_eq!(roles.prefix(), "roles/");
    assert_eq!(roles.get("b").await.unwrap().unwrap(), b"rb");
    assert_eq!(roles.list("").await.unwrap(), vec!["a", "b", "deep/"]);
    roles.delete("a").await.unwrap();
    mount
        .batch(vec![WriteOp::Delete("roles/b".into())])
        .await
        .unwrap();
    assert_eq!(mount.list("roles/").await.unwrap(), vec!["deep/"]);

    for bad in ["../5678/config", "roles/../../x"] {
        assert!(matches!(
            mount.get(bad).await,
            Err(StorageError::InvalidKey(_))
        ));
        assert!(matches!(
            mount.put(bad, vec![]).await,
            Err(StorageError::InvalidKey(_))
        ));
    }
    assert_eq!(mount.kind(), "inmem");

    barrier.seal();
    assert!(matches!(
        mount.get("config").await,
        Err(StorageError::Closed)
    ));
}
