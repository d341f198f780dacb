use std::sync::Arc;

use base64::Engine as _;
use lessor_storage::Storage;
use lessor_storage::inmem::InMem;

use super::*;

fn fresh() -> (Arc<InMem>, Arc<Seal>) {
    let physical = Arc::new(InMem::new());
    let seal = over(&physical);
    (physical, seal)
}

/// A new barrier and seal over existing physical storage, as after a restart.
fn over(physical: &Arc<InMem>) -> Arc<Seal> {
    let barrier = Barrier::new(physical.clone());
    Seal::new(physical.clone(), barrier)
}

async fn submit_all(seal: &Seal, keys: &[&Vec<u8>]) -> SealStatus {
    let mut last = None;
    for key in keys {
        last = Some(seal.submit_key(key).await.unwrap());
    }
    last.unwrap()
}

#[tokio::test]
async fn status_before_init() {
    let (_, seal) = fresh();
    let status = seal.status().await.unwrap();
    assert_eq!(
        status,
        SealStatus {
            kind: "shamir".into(),
            initialized: false,
            sealed: true,
            t: 0,
            n: 0,
            progress: 0,
            nonce: String::new(),
        }
    );
    let err = seal.submit_key(&[1u8; 33]).await.unwrap_err();
    assert_eq!(
        (err.status(), err.to_string().as_str()),
        (400, "Vault is not initialized")
    );
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["type"], "shamir");
}

#[tokio::test]
async fn five_three_any_three_unseal_two_do_not() {
    let (physical, seal) = fresh();
    let out = seal.init(5, 3).await.unwrap();
    assert_eq!(out.keys.len(), 5);
    assert!(out.keys.iter().all(|k| k.len() == 33));
    assert!(!format!("{out:?}").contains(&hex::encode(&out.keys[0])));
    let status = seal.status().await.unwrap();
    assert!(status.initialized && status.sealed);
    assert_eq!((status.t, status.n, status.progress), (3, 5, 0));
    assert!(seal.initialized().await.unwrap());
    assert!(seal.barrier().initialized().await.unwrap());

    // Two shares: progress, still sealed.
    let status = submit_all(&seal, &[&out.keys[3], &out.keys[1]]).await;
    assert!(status.sealed);
    assert_eq!(status.progress, 2);
    assert_eq!(seal.progress(), (2, 3, 5));
    // A share already given is ignored.
    let status = seal.submit_key(&out.keys[1]).await.unwrap();
    assert_eq!((status.progress, status.sealed), (2, true));
    let status = seal.submit_key(&out.keys[4]).await.unwrap();
    assert!(!status.sealed);
    assert_eq!(status.progress, 0);
    seal.barrier().put("kv/x", b"data".to_vec()).await.unwrap();

    // Submitting while unsealed is a no-op.
    let status = seal.submit_key(&out.keys[0]).await.unwrap();
    assert!(!status.sealed);
    assert_eq!(status.progress, 0);

    // Every 3-subset works, each time on a freshly started seal over the same storage.
    for a in 0..5 {
        for b in a + 1..5 {
            for c in b + 1..5 {
                let restarted = over(&physical);
                let status =
                    submit_all(&restarted, &[&out.keys[c], &out.keys[a], &out.keys[b]]).await;
                assert!(!status.sealed, "shares {a},{b},{c}");
                let value = restarted.barrier().get("kv/x").await.unwrap();
                assert_eq!(value.unwrap(), b"data");
            }
        }
    }

    // Seal forgets keys and progress.
    seal.submit_key(&out.keys[0]).await.unwrap();
    seal.seal().await;
    let status = seal.status().await.unwrap();
    assert!(status.sealed);
    assert!(seal.barrier().get("kv/x").await.is_err());
    let status2 = seal.submit_key(&out.keys[0]).await.unwrap();
    assert_eq!(status2.progress, 1);
    seal.reset();
    assert_eq!(seal.progress(), (0, 3, 5));
}

#[tokio::test]
async fn wrong_share_fails_with_400_and_resets() {
    let (_, seal) = fresh();
    let out = seal.init(5, 3).await.unwrap();
    let mut forged = out.keys[2].clone();
    forged[0] ^= 0xff;
    submit_all(&seal, &[&out.keys[0], &out.keys[1]]).await;
    let err = seal.submit_key(&forged).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("invalid unseal key"), "{err}");
    let status = seal.status().await.unwrap();
    assert!(status.sealed);
    assert_eq!(status.progress, 0);

    // A share of another cluster has a valid shape but the wrong secret.
    let (_, other) = fresh();
    let foreign = other.init(5, 3).await.unwrap();
    submit_all(&seal, &[&out.keys[0], &out.keys[1]]).await;
    assert_eq!(
        seal.submit_key(&foreign.keys[2])
            .await
            .unwrap_err()
            .status(),
        400
    );

    // Two different shares with the same x-coordinate.
    let mut same_x = out.keys[1].clone();
    same_x[5] ^= 1;
    submit_all(&seal, &[&out.keys[0], &out.keys[1]]).await;
    let err = seal.submit_key(&same_x).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("duplicate part detected"), "{err}");
    assert_eq!(seal.progress().0, 0);

    // After all that, the right shares still unseal.
    let status = submit_all(&seal, &[&out.keys[4], &out.keys[2], &out.keys[0]]).await;
    assert!(!status.sealed);
}

#[tokio::test]
async fn key_length_is_checked() {
    let (_, seal) = fresh();
    seal.init(3, 2).await.unwrap();
    let err = seal.submit_key(&[1u8; 15]).await.unwrap_err();
    assert_eq!(err.to_string(), "key is shorter than minimum 16 bytes");
    let err = seal.submit_key(&[1u8; 34]).await.unwrap_err();
    assert_eq!(err.to_string(), "key is longer than maximum 33 bytes");
    assert_eq!(seal.progress().0, 0);
    // Shares of different lengths cannot combine.
    seal.submit_key(&[1u8; 33]).await.unwrap();
    let err = seal.submit_key(&[2u8; 20]).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("same length"), "{err}");
}

#[tokio::test]
async fn one_share_is_the_key_itself() {
    let (physical, seal) = fresh();
    let out = seal.init(1, 1).await.unwrap();
    assert_eq!(out.keys.len(), 1);
    assert_eq!(out.keys[0].len(), 32);
    let status = seal.status().await.unwrap();
    assert_eq!((status.t, status.n, status.sealed), (1, 1, true));
    let err = seal.submit_key(&[0u8; 32]).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(seal.status().await.unwrap().sealed);
    let status = seal.submit_key(&out.keys[0]).await.unwrap();
    assert!(!status.sealed);
    seal.barrier().put("k", b"v".to_vec()).await.unwrap();

    // Neither key is stored in the clear.
    for (key, raw) in physical.scan("", None, usize::MAX).await.unwrap() {
        assert!(
            !raw.windows(32).any(|w| w == out.keys[0].as_slice()),
            "unseal key under {key}"
        );
    }
    let config: serde_json::Value =
        serde_json::from_slice(&physical.get(SEAL_CONFIG_PATH).await.unwrap().unwrap()).unwrap();
    assert_eq!(
        config,
        serde_json::json!({"type": "shamir", "secret_shares": 1, "secret_threshold": 1})
    );
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    let cases = [
        (0, 0, "shares must be at least one"),
        (3, 0, "threshold must be at least one"),
        (
            5,
            1,
            "threshold must be greater than one for multiple shares",
        ),
        (256, 3, "shares must be less than 256"),
        (3, 4, "threshold cannot be larger than shares"),
        (1, 2, "threshold cannot be larger than shares"),
    ];
    let (_, seal) = fresh();
    for (shares, threshold, msg) in cases {
        let err = seal.init(shares, threshold).await.unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(
            err.to_string(),
            format!("invalid seal configuration: {msg}")
        );
    }
    assert!(!seal.initialized().await.unwrap());
    let out = seal.init(255, 255).await.unwrap();
    assert_eq!(out.keys.len(), 255);
}

#[tokio::test]
async fn already_initialized() {
    let (physical, seal) = fresh();
    seal.init(2, 2).await.unwrap();
    let err = seal.init(2, 2).await.unwrap_err();
    assert_eq!(
        (err.status(), err.to_string().as_str()),
        (400, "Vault is already initialized")
    );
    let restarted = over(&physical);
    let err = restarted.init(1, 1).await.unwrap_err();
    assert_eq!(err.to_string(), "Vault is already initialized");
    let status = restarted.status().await.unwrap();
    assert!(status.initialized);
    assert_eq!((status.t, status.n), (2, 2));
}

#[tokio::test]
async fn restart_unseals_with_same_shares_and_reads_data() {
    let (physical, seal) = fresh();
    let out = seal.init(3, 2).await.unwrap();
    submit_all(&seal, &[&out.keys[0], &out.keys[2]]).await;
    let secret = b"the eagle lands at midnight";
    seal.barrier()
        .put("logical/x/secret", secret.to_vec())
        .await
        .unwrap();
    seal.barrier().rotate().await.unwrap();
    seal.barrier()
        .put("logical/x/later", secret.to_vec())
        .await
        .unwrap();
    for (key, raw) in physical.scan("", None, usize::MAX).await.unwrap() {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret),
            "plaintext under {key}"
        );
    }

    let restarted = over(&physical);
    assert!(restarted.status().await.unwrap().sealed);
    let status = submit_all(&restarted, &[&out.keys[1], &out.keys[0]]).await;
    assert!(!status.sealed);
    let barrier = restarted.barrier();
    assert_eq!(
        barrier.get("logical/x/secret").await.unwrap().unwrap(),
        secret
    );
    assert_eq!(
        barrier.get("logical/x/later").await.unwrap().unwrap(),
        secret
    );
    assert_eq!(barrier.key_status().unwrap().term, 2);
}

#[tokio::test]
async fn dev_init_unseals_at_once() {
    let (physical, seal) = fresh();
    let key = seal.dev_init().await.unwrap();
    assert_eq!(key.len(), 32);
    assert!(!seal.status().await.unwrap().sealed);
    seal.barrier().put("a", b"b".to_vec()).await.unwrap();
    let restarted = over(&physical);
    restarted.submit_key(&key).await.unwrap();
    assert_eq!(restarted.barrier().get("a").await.unwrap().unwrap(), b"b");
}

#[test]
fn decode_key_hex_then_base64() {
    let bytes: Vec<u8> = (0..33).collect();
    assert_eq!(decode_key(&hex::encode(&bytes)).unwrap(), bytes);
    assert_eq!(decode_key(&hex::encode_upper(&bytes)).unwrap(), bytes);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    assert_eq!(decode_key(&b64).unwrap(), bytes);
    for bad in ["not a key!", "abc", "zz"] {
        let err = decode_key(bad).unwrap_err();
        assert_eq!(
            (err.status(), err.to_string().as_str()),
            (400, BAD_ENCODING)
        );
    }
}
