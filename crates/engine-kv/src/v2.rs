//! KV version 2: versioned secrets with check-and-set, soft delete, undelete and destroy.
//!
//! Storage layout inside the mount (see `store`):
//!
//! ```text
//! config                        mount-wide settings (max_versions, cas_required, ...)
//! metadata/<path>               one record per secret: versions, limits, custom metadata
//! versions/<hex(path)>/<n>      the data of version n
//! ```
//!
//! Metadata and versions live under separate keys so a write touches one small version and
//! one metadata record, never the whole history. Metadata keys keep the secret's own path,
//! so `LIST metadata/` is a plain storage list; version folders are hex-encoded so that one
//! secret's versions can never share a prefix with another secret's.
//!
//! Every change to one secret runs under that secret's lock and lands in one atomic batch,
//! so concurrent check-and-set writers see each other's versions.

mod path_config;
mod path_data;
mod path_delete;
mod path_invalid;
mod path_metadata;
mod path_subkeys;
mod store;

use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::framework::{Backend, Path};
use lessor_core::logical::{RawBody, Response};

pub use store::Clock;
use store::State;

/// The KV v2 backend.
pub struct KvV2 {
    paths: Vec<Path>,
}

impl KvV2 {
    pub fn new() -> Self {
        Self::with_clock(store::system_clock())
    }

    /// A backend whose notion of "now" (version times, `delete_version_after`) comes from
    /// `clock`, so tests can move time without sleeping.
    pub fn with_clock(clock: Clock) -> Self {
        let state = Arc::new(State::new(clock));
        // Order matters: the first matching pattern wins and the catch-all comes last.
        let paths = vec![
            path_config::path(&state),
            path_data::path(&state),
            path_delete::delete_path(&state),
            path_delete::undelete_path(&state),
            path_delete::destroy_path(&state),
            path_metadata::path(&state),
            path_subkeys::path(&state),
            path_invalid::path(),
        ];
        KvV2 { paths }
    }
}

impl Default for KvV2 {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Backend for KvV2 {
    fn paths(&self) -> &[Path] {
        &self.paths
    }
}

/// A patch of a secret that does not exist: Vault answers a bare 404 with no body at all
/// (not `{"errors":[]}`), and so do we.
fn patch_target_missing() -> Response {
    Response {
        raw: Some(RawBody {
            status: 404,
            body: None,
            content_type: None,
            text: None,
        }),
        ..Default::default()
    }
}
