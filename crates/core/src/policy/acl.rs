//! The compiled ACL of a set of policies: built once per distinct policy set (and rebuilt only
//! when a policy changes), then consulted on every request without parsing or allocation-heavy
//! work.
//!
//! Rules are sorted into three kinds by pattern:
//! * exact (no wildcard): a hash map; a hit wins outright;
//! * prefix (`*`-suffixed, no `+` segment): a hash map keyed by the prefix, probed once per
//!   distinct prefix length (longest first), which finds the longest matching prefix;
//! * segment (`+` as a whole segment, maybe also `*`-suffixed): a short list matched segment by
//!   segment.
//!
//! Identical patterns from several policies (or repeated in one) union into one entry, where
//! `deny` wins; different patterns never merge: the single best match decides alone.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::ROOT_POLICY;
use super::capabilities::Capabilities;
use super::params::parameters_allowed;
use super::parse::{Permissions, Policy};

/// The outcome of an ACL check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Every needed capability is granted (and wrapping and parameter constraints hold).
    pub allowed: bool,
    /// The matched rule grants `sudo` (or the ACL is root): needed for root-protected paths.
    pub sudo: bool,
    /// The token holds the `root` policy.
    pub root: bool,
    /// Capabilities of the matched rule (`DENY` alone when denied, empty when nothing matched).
    pub capabilities: Capabilities,
}

/// A compiled set of policies.
#[derive(Debug, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Permissions>,
    prefix: HashMap<String, Permissions>,
    /// Distinct key lengths of `prefix`, longest first.
    prefix_lens: Vec<usize>,
    segment: Vec<SegmentRule>,
}

/// A `+` pattern, pre-split.
#[derive(Debug)]
struct SegmentRule {
    /// The pattern without its trailing `*` (tie-breaker (d) and (e) compare this).
    path: String,
    parts: Vec<String>,
    is_prefix: bool,
    /// Byte index of the first `+` (tie-breaker (a)).
    first_wildcard: usize,
    /// Number of `+` segments (tie-breaker (c)).
    wildcards: usize,
    perms: Permissions,
}

/// How a pattern matches, decided once at compile time.
enum Kind {
    Exact(String),
    Prefix(String),
    Segment(String),
}

fn classify(pattern: &str) -> Kind {
    let has_segment = pattern == "+" || pattern.contains("/+") || pattern.starts_with("+/");
    if has_segment {
        Kind::Segment(pattern.to_string())
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        Kind::Prefix(prefix.to_string())
    } else {
        Kind::Exact(pattern.to_string())
    }
}

/// Adds `new` to the permissions already held for the same pattern: `deny` wins; otherwise
/// capabilities union, the tighter wrapping TTLs win and parameter lists combine (an empty
/// list, meaning "any value", absorbs the others).
fn merge(existing: &mut Permissions, new: &Permissions) {
    if existing.capabilities.contains(Capabilities::DENY) {
        return;
    }
    if new.capabilities.contains(Capabilities::DENY) {
        *existing = Permissions {
            capabilities: Capabilities::DENY,
            ..Permissions::default()
        };
        return;
    }
    existing.capabilities |= new.capabilities;
    existing.min_wrapping_ttl = min_set(existing.min_wrapping_ttl, new.min_wrapping_ttl);
    existing.max_wrapping_ttl = min_set(existing.max_wrapping_ttl, new.max_wrapping_ttl);
    merge_params(&mut existing.allowed_parameters, &new.allowed_parameters);
    merge_params(&mut existing.denied_parameters, &new.denied_parameters);
    for p in &new.required_parameters {
        if !existing.required_parameters.contains(p) {
            existing.required_parameters.push(p.clone());
        }
    }
}

fn min_set(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn merge_params(existing: &mut HashMap<String, Vec<Value>>, new: &HashMap<String, Vec<Value>>) {
    if existing.is_empty() {
        existing.clone_from(new);
        return;
    }
    for (key, values) in new {
        match existing.get_mut(key) {
            Some(current) if current.is_empty() => {}
            Some(current) if values.is_empty() => current.clear(),
            Some(current) => current.extend(values.iter().cloned()),
            None => {
                existing.insert(key.clone(), values.clone());
            }
        }
    }
}

impl Acl {
    /// The ACL of a root token: everything, including sudo.
    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Acl::default()
        }
    }

    /// Compiles `policies` (a token's set). A policy named `root` makes the whole ACL root.
    pub fn new(policies: &[Arc<Policy>]) -> Acl {
        if policies.iter().any(|p| p.name == ROOT_POLICY) {
            return Acl::root();
        }
        let mut exact: HashMap<String, Permissions> = HashMap::new();
        let mut prefix: HashMap<String, Permissions> = HashMap::new();
        let mut segment: HashMap<String, Permissions> = HashMap::new();
        // Templated rules need an identity entity to expand; lessor tokens have none, so the
        // rules apply to nobody (as in Vault for entity-less tokens).
        let rules = policies
            .iter()
            .flat_map(|p| &p.rules)
            .filter(|r| !r.templated);
        for rule in rules {
            let (map, key) = match classify(&rule.pattern) {
                Kind::Exact(k) => (&mut exact, k),
                Kind::Prefix(k) => (&mut prefix, k),
                Kind::Segment(k) => (&mut segment, k),
            };
            match map.get_mut(&key) {
                Some(existing) => merge(existing, &rule.permissions),
                None => {
                    map.insert(key, rule.permissions.clone());
                }
            }
        }

        let mut prefix_lens: Vec<usize> = prefix.keys().map(String::len).collect();
        prefix_lens.sort_unstable_by(|a, b| b.cmp(a));
        prefix_lens.dedup();

        let segment = segment
            .into_iter()
            .filter(|(pattern, _)| !pattern.is_empty())
            .map(|(pattern, perms)| {
                let (path, is_prefix) = match pattern.strip_suffix('*') {
                    Some(p) => (p.to_string(), true),
                    None => (pattern.clone(), false),
                };
                let parts: Vec<String> = path.split('/').map(str::to_string).collect();
                SegmentRule {
                    first_wildcard: pattern.find('+').unwrap_or(pattern.len()),
                    wildcards: parts.iter().filter(|p| *p == "+").count(),
                    parts,
                    path,
                    is_prefix,
                    perms,
                }
            })
            .collect();

        Acl {
            root: false,
            exact,
            prefix,
            prefix_lens,
            segment,
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The capabilities a token has on `path`, as `sys/capabilities*` report them: sorted
    /// names, `["root"]` for root, `["deny"]` when denied or nothing matches. Evaluated like a
    /// LIST (the trailing-`/` fallbacks apply), as Vault does.
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        if self.root {
            return vec!["root".to_string()];
        }
        let caps = self
            .lookup(normalize(path), true)
            .map(|p| p.capabilities)
            .unwrap_or_default();
        if caps.is_empty() || caps.contains(Capabilities::DENY) {
            return vec!["deny".to_string()];
        }
        caps.names().into_iter().map(str::to_string).collect()
    }

    /// True when some rule grants a capability at or below `prefix` (a mount path): the
    /// CLI's preflight (`sys/internal/ui/mounts/<path>`) only proceeds for such tokens.
    pub fn has_any_under(&self, prefix: &str) -> bool {
        if self.root {
            return true;
        }
        let grants = |p: &Permissions| {
            !p.capabilities.is_empty() && !p.capabilities.contains(Capabilities::DENY)
        };
        let prefix = normalize(prefix);
        let exact = self
            .exact
            .iter()
            .any(|(k, p)| k.starts_with(prefix) && grants(p));
        let globs = self
            .prefix
            .iter()
            .any(|(k, p)| (k.starts_with(prefix) || prefix.starts_with(k.as_str())) && grants(p));
        let segments = self.segment.iter().any(|r| {
            let fixed = &r.path[..r.first_wildcard.min(r.path.len())];
            (fixed.starts_with(prefix) || prefix.starts_with(fixed)) && grants(&r.perms)
        });
        exact || globs || segments
    }

    /// Checks a request needing `needed` on `path` (LIST semantics when `needed` has `LIST`).
    /// With `data`, the matched rule's parameter constraints apply to it (for operations that
    /// carry parameters: read, create, update, patch). The request is taken as unwrapped: a
    /// rule with wrapping TTL bounds denies it (see `check_wrapped`).
    pub fn check(
        &self,
        path: &str,
        needed: Capabilities,
        data: Option<&Map<String, Value>>,
    ) -> Decision {
        self.check_wrapped(path, needed, data, None)
    }

    /// `check` for a request whose response will be wrapped with `wrap_ttl` (`None` =
    /// unwrapped), enforcing the rule's `min_wrapping_ttl`/`max_wrapping_ttl`.
    pub fn check_wrapped(
        &self,
        path: &str,
        needed: Capabilities,
        data: Option<&Map<String, Value>>,
        wrap_ttl: Option<Duration>,
    ) -> Decision {
        if self.root {
            return Decision {
                allowed: true,
                sudo: true,
                root: true,
                capabilities: Capabilities::ALL,
            };
        }
        let is_list = needed.contains(Capabilities::LIST);
        let Some(perms) = self.lookup(normalize(path), is_list) else {
            return Decision::default();
        };
        let caps = perms.capabilities;
        let denied = Decision {
            capabilities: caps,
            ..Decision::default()
        };
        if caps.contains(Capabilities::DENY) {
            return denied;
        }
        let sudo = caps.contains(Capabilities::SUDO);
        let denied = Decision { sudo, ..denied };
        if !caps.contains(needed) || !wrapping_ok(perms, wrap_ttl) {
            return denied;
        }
        let carries_params =
            Capabilities::READ | Capabilities::CREATE | Capabilities::UPDATE | Capabilities::PATCH;
        if let Some(data) = data
            && needed.intersects(carries_params)
            && !parameters_allowed(perms, data)
        {
            return denied;
        }
        Decision {
            allowed: true,
            ..denied
        }
    }

    /// The rule governing `path`: an exact rule, else the best wildcard rule. For LIST the
    /// path without its trailing `/` is tried first at each stage, since `secret/foo/` is
    /// usually granted as `secret/foo` or by a glob such as `secret/foo*`.
    fn lookup(&self, path: &str, is_list: bool) -> Option<&Permissions> {
        let trimmed = path.strip_suffix('/').filter(|_| is_list);
        if let Some(p) = self.exact.get(path) {
            return Some(p);
        }
        if let Some(p) = trimmed.and_then(|t| self.exact.get(t)) {
            return Some(p);
        }
        if let Some(p) = trimmed.and_then(|t| self.best_wildcard(t)) {
            return Some(p);
        }
        self.best_wildcard(path)
    }

    /// Longest matching prefix rule plus every matching segment rule; the most specific wins.
    fn best_wildcard(&self, path: &str) -> Option<&Permissions> {
        let prefix = self.longest_prefix(path);
        if self.segment.is_empty() {
            return prefix.map(|(_, p)| p);
        }
        let parts: Vec<&str> = path.split('/').collect();
        let mut best: Option<(Specificity<'_>, &Permissions)> = prefix.map(|(len, perms)| {
            let spec = Specificity {
                first_wildcard: len,
                not_prefix: false,
                fewer_wildcards: Reverse(0),
                len,
                path: &path[..len],
            };
            (spec, perms)
        });
        for rule in &self.segment {
            if !rule.matches(&parts) {
                continue;
            }
            let spec = rule.specificity();
            if best.as_ref().is_none_or(|(b, _)| spec > *b) {
                best = Some((spec, &rule.perms));
            }
        }
        best.map(|(_, p)| p)
    }

    fn longest_prefix(&self, path: &str) -> Option<(usize, &Permissions)> {
        self.prefix_lens
            .iter()
            .filter(|len| **len <= path.len() && path.is_char_boundary(**len))
            .find_map(|len| self.prefix.get(&path[..*len]).map(|p| (*len, p)))
    }
}

/// Tie-breakers between wildcard candidates, in order; the greatest wins: the first wildcard
/// comes later, not `*`-suffixed, fewer `+` segments, longer, lexicographically larger.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Specificity<'a> {
    first_wildcard: usize,
    not_prefix: bool,
    fewer_wildcards: Reverse<usize>,
    len: usize,
    path: &'a str,
}

impl SegmentRule {
    fn matches(&self, parts: &[&str]) -> bool {
        if parts.len() < self.parts.len() || (!self.is_prefix && parts.len() != self.parts.len()) {
            return false;
        }
        let last = self.parts.len() - 1;
        self.parts
            .iter()
            .zip(parts)
            .enumerate()
            .all(|(i, (rule, part))| {
                rule == "+"
                    || rule == part
                    || (self.is_prefix && i == last && part.starts_with(rule.as_str()))
            })
    }

    fn specificity(&self) -> Specificity<'_> {
        Specificity {
            first_wildcard: self.first_wildcard,
            not_prefix: !self.is_prefix,
            fewer_wildcards: Reverse(self.wildcards),
            len: self.path.len(),
            path: &self.path,
        }
    }
}

fn wrapping_ok(perms: &Permissions, wrap_ttl: Option<Duration>) -> bool {
    let above_min = perms
        .min_wrapping_ttl
        .is_none_or(|min| wrap_ttl.is_some_and(|t| t >= min));
    let below_max = perms
        .max_wrapping_ttl
        .is_none_or(|max| wrap_ttl.is_some_and(|t| t <= max));
    above_min && below_max
}

/// Request paths are matched without leading slashes.
fn normalize(path: &str) -> &str {
    path.trim_start_matches('/')
}
