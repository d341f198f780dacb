//! The keyring: every data key the barrier has ever used, by term, and which term is active
//! for new writes. Old terms are kept forever so values written before a rotation still open.
//!
//! It is persisted as a small binary record (not JSON) so the key bytes never pass through an
//! intermediate string that could not be wiped:
//! `version (1) | active (u32) | count (u32) | count × (term u32 | install ns i128 | key 32)`,
//! integers big-endian. The record is sealed under the root key by the barrier.

use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::envelope::{self, EnvelopeError, KEY_LEN};

const FORMAT: u8 = 1;
const ENTRY_LEN: usize = 4 + 16 + KEY_LEN;

/// One data key.
pub(crate) struct Term {
    pub(crate) term: u32,
    pub(crate) install_time: OffsetDateTime,
    key: Zeroizing<[u8; KEY_LEN]>,
    pub(crate) cipher: Aes256Gcm,
}

impl Term {
    fn new(
        term: u32,
        install_time: OffsetDateTime,
        key: Zeroizing<[u8; KEY_LEN]>,
    ) -> Result<Self, EnvelopeError> {
        let cipher = envelope::cipher(key.as_ref())?;
        Ok(Self {
            term,
            install_time,
            key,
            cipher,
        })
    }
}

/// Terms in ascending order; the last one is the active term.
#[derive(Clone)]
pub(crate) struct Keyring {
    terms: Vec<Arc<Term>>,
}

impl Keyring {
    /// A keyring with a single fresh key at term 1.
    pub(crate) fn fresh() -> Result<Self, EnvelopeError> {
        let first = Term::new(1, OffsetDateTime::now_utc(), envelope::random_key())?;
        Ok(Self {
            terms: vec![Arc::new(first)],
        })
    }

    /// This keyring plus a fresh key one term above the active one, which becomes active.
    pub(crate) fn rotated(&self) -> Result<Self, EnvelopeError> {
        let next = self
            .active()
            .term
            .checked_add(1)
            .ok_or(EnvelopeError::UnknownTerm(u32::MAX))?;
        let mut terms = self.terms.clone();
        terms.push(Arc::new(Term::new(
            next,
            OffsetDateTime::now_utc(),
            envelope::random_key(),
        )?));
        Ok(Self { terms })
    }

    pub(crate) fn active(&self) -> &Term {
        // Construction guarantees at least one term; `fresh`/`decode` never build an empty ring.
        &self.terms[self.terms.len() - 1]
    }

    pub(crate) fn get(&self, term: u32) -> Option<&Term> {
        self.terms
            .binary_search_by_key(&term, |t| t.term)
            .ok()
            .map(|i| self.terms[i].as_ref())
    }

    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(9 + self.terms.len() * ENTRY_LEN));
        out.push(FORMAT);
        out.extend_from_slice(&self.active().term.to_be_bytes());
        // The count fits: a ring grows by one term per rotation and terms are u32.
        out.extend_from_slice(&(self.terms.len() as u32).to_be_bytes());
        for t in &self.terms {
            out.extend_from_slice(&t.term.to_be_bytes());
            out.extend_from_slice(&t.install_time.unix_timestamp_nanos().to_be_bytes());
            out.extend_from_slice(t.key.as_ref());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let mut r = Reader(bytes);
        if r.take::<1>()?[0] != FORMAT {
            return Err(EnvelopeError::Malformed);
        }
        let active = u32::from_be_bytes(r.take()?);
        let count = u32::from_be_bytes(r.take()?) as usize;
        if count == 0 || r.0.len() != count.saturating_mul(ENTRY_LEN) {
            return Err(EnvelopeError::Malformed);
        }
        let mut terms: Vec<Arc<Term>> = Vec::with_capacity(count);
        for _ in 0..count {
            let term = u32::from_be_bytes(r.take()?);
            let nanos = i128::from_be_bytes(r.take()?);
            let install_time = OffsetDateTime::from_unix_timestamp_nanos(nanos)
                .map_err(|_| EnvelopeError::Malformed)?;
            let key = Zeroizing::new(r.take::<KEY_LEN>()?);
            if terms.last().is_some_and(|prev| prev.term >= term) {
                return Err(EnvelopeError::Malformed);
            }
            terms.push(Arc::new(Term::new(term, install_time, key)?));
        }
        let ring = Self { terms };
        if ring.active().term != active {
            return Err(EnvelopeError::Malformed);
        }
        Ok(ring)
    }
}

/// Reads fixed-size fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        let (head, rest) = self.0.split_at_checked(N).ok_or(EnvelopeError::Malformed)?;
        self.0 = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_rotate() {
        let ring = Keyring::fresh()
            .unwrap()
            .rotated()
            .unwrap()
            .rotated()
            .unwrap();
        assert_eq!(ring.active().term, 3);
        let back = Keyring::decode(&ring.encode()).unwrap();
        assert_eq!(back.active().term, 3);
        for term in 1..=3 {
            let a = ring.get(term).unwrap();
            let b = back.get(term).unwrap();
            assert_eq!(a.key.as_ref(), b.key.as_ref());
            assert_eq!(a.install_time, b.install_time);
        }
        assert!(back.get(4).is_none());
        assert!(back.get(0).is_none());
    }

    #[test]
    fn decode_rejects_garbage() {
        let enc = Keyring::fresh().unwrap().encode();
        assert!(Keyring::decode(&enc[..enc.len() - 1]).is_err());
        assert!(Keyring::decode(&[]).is_err());
        let mut wrong_active = enc.to_vec();
        wrong_active[4] = 9;
        assert!(Keyring::decode(&wrong_active).is_err());
        let mut empty = enc.to_vec();
        empty.truncate(9);
        empty[5..9].copy_from_slice(&0u32.to_be_bytes());
        assert!(Keyring::decode(&empty).is_err());
    }
}
