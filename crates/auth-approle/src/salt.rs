//! The per-mount HMAC key: made once at first mount, kept in the mount's storage, cached.
//! Every secret id, role id and accessor is looked up by its HMAC under this key.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use lessor_auth_common::{get_json, put_json};
use lessor_core::{Error, Result};
use lessor_storage::Storage;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const SALT_KEY: &str = "salt";

#[derive(Serialize, Deserialize)]
struct Stored {
    key: String,
}

#[derive(Default)]
pub struct Salt(tokio::sync::OnceCell<Vec<u8>>);

impl Salt {
    /// The key, loaded or created on first use.
    pub async fn load(&self, storage: &Arc<dyn Storage>) -> Result<&[u8]> {
        self.0
            .get_or_try_init(|| async {
                if let Some(s) = get_json::<Stored>(storage, SALT_KEY).await? {
                    return hex::decode(&s.key).map_err(|_| Error::internal("corrupt salt"));
                }
                let mut key = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                put_json(
                    storage,
                    SALT_KEY,
                    &Stored {
                        key: hex::encode(&key),
                    },
                )
                .await?;
                Ok(key)
            })
            .await
            .map(Vec::as_slice)
    }

    /// HMAC-SHA256 of `value` under the mount's key, hex.
    pub async fn hash(&self, storage: &Arc<dyn Storage>, value: &str) -> Result<String> {
        let key = self.load(storage).await?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|_| Error::internal("invalid salt length"))?;
        mac.update(value.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }
}

/// Constant-time equality of two strings (secrets and their hashes).
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
