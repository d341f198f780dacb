//! The one ciphertext format of lessor: every value the barrier writes, the keyring under the
//! root key, and the root key under the unseal key.
//!
//! Layout: `version (1) | term (u32 BE) | nonce (12) | ciphertext + tag (16)`. The term names
//! the keyring key that sealed the value, so old terms keep decrypting after a rotation. The
//! caller's associated data (always the storage path) is authenticated but not stored: a
//! ciphertext copied to another path fails to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

/// The only format version written so far.
pub(crate) const VERSION: u8 = 1;
/// The term of envelopes that are not sealed by a keyring key (keyring, root key).
pub(crate) const NO_TERM: u32 = 0;
pub(crate) const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// Why an envelope could not be made or opened. Carries no key or value material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvelopeError {
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("unsupported ciphertext version {0}")]
    Version(u8),
    #[error("no key for term {0}")]
    UnknownTerm(u32),
    #[error("message authentication failed")]
    Auth,
    #[error("encryption failed")]
    Encrypt,
    #[error("key must be {KEY_LEN} bytes")]
    KeyLength,
}

/// An AES-256-GCM cipher from raw key bytes.
pub(crate) fn cipher(key: &[u8]) -> Result<Aes256Gcm, EnvelopeError> {
    if key.len() != KEY_LEN {
        return Err(EnvelopeError::KeyLength);
    }
    Aes256Gcm::new_from_slice(key).map_err(|_| EnvelopeError::KeyLength)
}

/// A fresh random 32-byte key.
pub(crate) fn random_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(key.as_mut());
    key
}

/// Seals `plaintext` under `cipher`, recording `term` and binding `aad`.
pub(crate) fn seal(
    cipher: &Aes256Gcm,
    term: u32,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| EnvelopeError::Encrypt)?;
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The term recorded in an envelope, checked for shape and version first.
pub(crate) fn term(envelope: &[u8]) -> Result<u32, EnvelopeError> {
    if envelope.len() < HEADER_LEN + TAG_LEN {
        return Err(EnvelopeError::Malformed);
    }
    if envelope[0] != VERSION {
        return Err(EnvelopeError::Version(envelope[0]));
    }
    let mut term = [0u8; 4];
    term.copy_from_slice(&envelope[1..5]);
    Ok(u32::from_be_bytes(term))
}

/// Opens an envelope whose term the caller has already resolved to `cipher`.
pub(crate) fn open(
    cipher: &Aes256Gcm,
    aad: &[u8],
    envelope: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    term(envelope)?;
    let nonce = Nonce::from_slice(&envelope[5..HEADER_LEN]);
    cipher
        .decrypt(
            nonce,
            Payload {
                msg: &envelope[HEADER_LEN..],
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = random_key();
        let c = cipher(key.as_ref()).unwrap();
        let env = seal(&c, 7, b"a/b", b"hello").unwrap();
        assert_eq!(term(&env).unwrap(), 7);
        assert_eq!(env.len(), HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(open(&c, b"a/b", &env).unwrap().as_slice(), b"hello");
        assert_eq!(open(&c, b"a/c", &env).unwrap_err(), EnvelopeError::Auth);
        let mut bad = env.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(open(&c, b"a/b", &bad).unwrap_err(), EnvelopeError::Auth);
        assert_eq!(term(&env[..10]).unwrap_err(), EnvelopeError::Malformed);
        let mut v2 = env;
        v2[0] = 2;
        assert_eq!(term(&v2).unwrap_err(), EnvelopeError::Version(2));
        assert_eq!(cipher(&[0u8; 16]).err(), Some(EnvelopeError::KeyLength));
    }
}
