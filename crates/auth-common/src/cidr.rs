//! CIDR blocks and the check of the client's address against them, as the login methods
//! use them. The block type lives in the core, which enforces a token's own bindings.

use std::net::SocketAddr;

pub use lessor_core::token::cidr::Cidr;
use lessor_core::{Error, Result};

/// Parses a list of blocks; the first bad one is a 400 naming it.
pub fn parse_cidrs(list: &[String]) -> Result<Vec<Cidr>> {
    list.iter()
        .map(|s| Cidr::parse(s).ok_or_else(|| Error::bad(format!("invalid CIDR block {s:?}"))))
        .collect()
}

/// Checks the client address against `list` (empty = anywhere). A request without a known
/// address fails a non-empty list.
pub fn check_cidrs(list: &[String], remote: Option<SocketAddr>) -> bool {
    lessor_core::token::cidr::allows(list, remote)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_check() {
        let list = vec!["127.0.0.0/8".to_string()];
        assert!(check_cidrs(&list, Some("127.0.0.1:5000".parse().unwrap())));
        assert!(!check_cidrs(&list, Some("10.0.0.1:5000".parse().unwrap())));
        assert!(parse_cidrs(&["x".into()]).is_err());
        assert_eq!(parse_cidrs(&list).unwrap().len(), 1);
    }
}
