//! CIDR blocks (`10.0.0.0/8`, `::1/128`, or a bare address) and the check of a client's
//! address against a list of them: a token's `bound_cidrs` are enforced by the core on every
//! use, and the auth methods check their role and secret-id bindings with the same code.

use std::net::{IpAddr, SocketAddr};

/// One parsed block: network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr: ip, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32)
                    == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }

    /// True when every address of `other` is in `self`.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }
}

fn masked(v: u128, prefix: u8, bits: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let shift = u32::from(bits - prefix);
    (v >> shift) << shift
}

/// Checks the client address against `list` (empty = anywhere). A request without a known
/// address fails a non-empty list; an entry that does not parse matches nothing.
pub fn allows(list: &[String], remote: Option<SocketAddr>) -> bool {
    if list.is_empty() {
        return true;
    }
    let Some(ip) = remote.map(|a| a.ip()) else {
        return false;
    };
    list.iter()
        .filter_map(|s| Cidr::parse(s))
        .any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(
            Cidr::parse("127.0.0.1")
                .unwrap()
                .contains("127.0.0.1".parse().unwrap())
        );
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("::1/128")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nope").is_none());
        assert!(c.covers(&Cidr::parse("10.1.3.0/24").unwrap()));
        assert!(!c.covers(&Cidr::parse("10.0.0.0/8").unwrap()));
    }

    #[test]
    fn client_check() {
        let list = vec!["127.0.0.0/8".to_string()];
        assert!(allows(&list, Some("127.0.0.1:5000".parse().unwrap())));
        assert!(!allows(&list, Some("10.0.0.1:5000".parse().unwrap())));
        assert!(!allows(&list, None));
        assert!(allows(&[], None));
    }
}
