//! The capability set of one path rule: a small bit set, so that unions, `deny` and the
//! per-request "does this rule grant what the operation needs" test are single instructions.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// A set of ACL capabilities. `DENY` overrides every other bit wherever it appears.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u16);

impl Capabilities {
    pub const NONE: Capabilities = Capabilities(0);
    pub const CREATE: Capabilities = Capabilities(1 << 0);
    pub const READ: Capabilities = Capabilities(1 << 1);
    pub const UPDATE: Capabilities = Capabilities(1 << 2);
    pub const PATCH: Capabilities = Capabilities(1 << 3);
    pub const DELETE: Capabilities = Capabilities(1 << 4);
    pub const LIST: Capabilities = Capabilities(1 << 5);
    pub const SUDO: Capabilities = Capabilities(1 << 6);
    pub const DENY: Capabilities = Capabilities(1 << 7);

    /// Every granting capability (what `root` has); excludes `DENY`.
    pub const ALL: Capabilities = Capabilities(0b0111_1111);

    /// Names in alphabetical order, which is the order Vault reports them in.
    const NAMED: [(&'static str, Capabilities); 8] = [
        ("create", Self::CREATE),
        ("delete", Self::DELETE),
        ("deny", Self::DENY),
        ("list", Self::LIST),
        ("patch", Self::PATCH),
        ("read", Self::READ),
        ("sudo", Self::SUDO),
        ("update", Self::UPDATE),
    ];

    /// The capability a policy names, if it is one.
    pub fn from_name(name: &str) -> Option<Capabilities> {
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every bit of `other` is set in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when `self` and `other` share at least one bit.
    pub const fn intersects(self, other: Capabilities) -> bool {
        self.0 & other.0 != 0
    }

    /// The names of the set bits, sorted.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMED
            .iter()
            .filter(|(_, c)| self.contains(*c))
            .map(|(n, _)| *n)
            .collect()
    }
}

impl BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

impl BitOrAssign for Capabilities {
    fn bitor_assign(&mut self, rhs: Capabilities) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_capability_names_round_trip_sorted() {
        let all = Capabilities::ALL | Capabilities::DENY;
        let names = all.names();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), 8);
        for n in names {
            let c = Capabilities::from_name(n).unwrap();
            assert_eq!(c.names(), vec![n]);
        }
        assert_eq!(Capabilities::from_name("scan"), None);
        assert!(!Capabilities::ALL.contains(Capabilities::DENY));
    }
}
