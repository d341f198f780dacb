//! The `sys/` backend: mounts, auth methods, policies, capabilities, keys, leases. One file per
//! path group; the raw (sealed-ok) endpoints are in `raw`.

pub mod raw;

mod path_audit;
mod path_capabilities;
mod path_keys;
mod path_lease_events;
mod path_leases;
mod path_metrics;
mod path_mounts;
mod path_policies;
mod path_quotas;

use std::sync::{Arc, Weak};

use crate::core::{Active, Core};
use crate::framework::{Backend, Path};
use crate::{Error, Result};

/// Root-protected `sys/` paths: `sudo` is needed besides the capability.
const SUDO_PATHS: &[&str] = &[
    "auth/*",
    "remount",
    "audit",
    "audit/*",
    "raw",
    "raw/*",
    "rotate",
    "rotate/*",
    "seal",
    "step-down",
    "config/cors",
    "config/auditing/*",
    "plugins/catalog/*",
    "revoke-prefix/*",
    "revoke-force/*",
    "leases/revoke-prefix/*",
    "leases/revoke-force/*",
    "leases/lookup/*",
    "leases",
    "leases/jobs",
    "leases/jobs/*",
    "leases/quarantine",
    "leases/quarantine/*",
];

/// What every `sys/` handler holds: a weak link to the core (the core owns the backend).
#[derive(Clone)]
pub(crate) struct SysRef(Weak<Core>);

impl SysRef {
    pub(crate) fn core(&self) -> Result<Arc<Core>> {
        self.0.upgrade().ok_or(Error::Sealed)
    }

    pub(crate) fn active(&self) -> Result<(Arc<Core>, Arc<Active>)> {
        let core = self.core()?;
        let active = core.active().ok_or(Error::Sealed)?;
        Ok((core, active))
    }
}

struct SysBackend {
    paths: Vec<Path>,
}

impl Backend for SysBackend {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn sudo_paths(&self) -> &[&'static str] {
        SUDO_PATHS
    }
}

pub fn backend(core: Weak<Core>) -> Arc<dyn Backend> {
    let s = SysRef(core);
    let mut paths = Vec::new();
    paths.extend(path_mounts::paths(&s));
    paths.extend(path_policies::paths(&s));
    paths.extend(path_capabilities::paths(&s));
    paths.extend(path_keys::paths(&s));
    paths.extend(path_leases::paths(&s));
    paths.extend(path_lease_events::paths(&s));
    paths.extend(path_quotas::paths(&s));
    paths.extend(path_audit::paths(&s));
    paths.extend(path_metrics::paths(&s));
    Arc::new(SysBackend { paths })
}
