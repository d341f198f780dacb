//! JSON records in a mount's (already encrypted) storage view.

use std::sync::Arc;

use lessor_core::{Error, Result};
use lessor_storage::Storage;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub async fn get_json<T: DeserializeOwned>(s: &Arc<dyn Storage>, key: &str) -> Result<Option<T>> {
    match s.get(key).await? {
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::internal(format!("decoding {}: {e}", kind_of(key)))),
        None => Ok(None),
    }
}

pub async fn put_json<T: Serialize>(s: &Arc<dyn Storage>, key: &str, v: &T) -> Result<()> {
    let b = serde_json::to_vec(v)
        .map_err(|e| Error::internal(format!("encoding {}: {e}", kind_of(key))))?;
    s.put(key, b).await?;
    Ok(())
}

pub async fn delete(s: &Arc<dyn Storage>, key: &str) -> Result<()> {
    s.delete(key).await?;
    Ok(())
}

/// The first path segment names the record kind in errors, never the key itself (keys may
/// carry hashes of secrets).
fn kind_of(key: &str) -> &str {
    key.split('/').next().unwrap_or("record")
}
