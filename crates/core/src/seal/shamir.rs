//! Shamir's secret sharing in Vault's share format: the share bytes followed by one trailing
//! x-coordinate byte (33 bytes for a 32-byte key), so shares from `sys/init` look and combine
//! the way Vault operators expect. The field arithmetic is blahaj's; this module only converts
//! between its `x || y` layout and Vault's `y || x`, and checks what blahaj does not.

use blahaj::{Share, Sharks};
use zeroize::Zeroizing;

/// Splits `secret` into `shares` parts, any `threshold` of which recover it.
/// The caller has validated `2 <= threshold <= shares <= 255`.
pub(crate) fn split(secret: &[u8], shares: u8, threshold: u8) -> Vec<Vec<u8>> {
    Sharks(threshold)
        .dealer(secret)
        .take(usize::from(shares))
        .map(|share| {
            let xy = Zeroizing::new(Vec::<u8>::from(&share));
            let mut yx = Vec::with_capacity(xy.len());
            yx.extend_from_slice(&xy[1..]);
            yx.push(xy[0]);
            yx
        })
        .collect()
}

/// Recovers the secret from `parts` (Vault layout). Wrong but well-formed parts yield a wrong
/// secret, which the caller detects when the secret fails to decrypt what it protects.
pub(crate) fn combine(parts: &[Zeroizing<Vec<u8>>]) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    if parts.len() < 2 {
        return Err("less than two parts cannot be used to reconstruct the secret");
    }
    let len = parts[0].len();
    if len < 2 {
        return Err("parts must be at least two bytes");
    }
    if parts.iter().any(|p| p.len() != len) {
        return Err("all parts must be the same length");
    }
    let mut seen = [false; 256];
    let mut shares = Vec::with_capacity(parts.len());
    for part in parts {
        let x = part[len - 1];
        if std::mem::replace(&mut seen[usize::from(x)], true) {
            return Err("duplicate part detected");
        }
        let mut xy = Zeroizing::new(Vec::with_capacity(len));
        xy.push(x);
        xy.extend_from_slice(&part[..len - 1]);
        shares.push(Share::try_from(xy.as_slice())?);
    }
    // Every x is distinct, so requiring them all is the same as requiring the threshold.
    let threshold = u8::try_from(shares.len()).map_err(|_| "too many parts")?;
    Sharks(threshold)
        .recover(&shares)
        .map(Zeroizing::new)
        .map_err(|_| "failed to combine the parts")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(v: &[u8]) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(v.to_vec())
    }

    #[test]
    fn split_combine_any_threshold_subset() {
        let secret: Vec<u8> = (0..32).collect();
        let parts = split(&secret, 5, 3);
        assert_eq!(parts.len(), 5);
        assert!(parts.iter().all(|p| p.len() == 33));
        for (a, b, c) in [(0, 1, 2), (0, 2, 4), (4, 3, 1), (1, 2, 3)] {
            let got = combine(&[z(&parts[a]), z(&parts[b]), z(&parts[c])]).unwrap();
            assert_eq!(got.as_slice(), secret.as_slice());
        }
        // Two parts of a 3-threshold split combine to something, but not the secret.
        let two = combine(&[z(&parts[0]), z(&parts[1])]).unwrap();
        assert_ne!(two.as_slice(), secret.as_slice());
    }

    #[test]
    fn combine_rejects_malformed() {
        let parts = split(&[9u8; 32], 3, 2);
        assert!(combine(&[z(&parts[0])]).is_err());
        assert_eq!(
            combine(&[z(&parts[0]), z(&parts[0])]).unwrap_err(),
            "duplicate part detected"
        );
        assert_eq!(
            combine(&[z(&parts[0]), z(&parts[1][..20])]).unwrap_err(),
            "all parts must be the same length"
        );
        assert!(combine(&[z(&[1]), z(&[2])]).is_err());
    }
}
