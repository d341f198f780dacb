//! HTTP layer: /v1 routing, envelope, status codes, limits, TLS; and `lessor server`.
//!
//! `router(state)` is apart from `serve_main` so tests drive the server in-process.

pub mod config;
mod events;
pub mod http;
mod serve;
mod telemetry;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::any;
use lessor_core::core::Factory;

pub use http::AppState;
pub use serve::{Server, serve_main, serve_with};

/// Every `/v1/*` request goes to the core; anything else is a 404.
pub fn router(state: AppState) -> Router {
    Router::new()
        // Before the catch-all: the lease event stream is served as SSE, not as JSON.
        .route("/v1/sys/leases/events", any(events::stream))
        .route("/v1/{*path}", any(http::handle))
        .fallback(http::not_found)
        .with_state(state)
}

/// The secrets engines and auth methods this binary can mount, by type.
pub fn factories() -> BTreeMap<String, Factory> {
    let mut f: BTreeMap<String, Factory> = BTreeMap::new();
    f.insert(
        "kv".into(),
        Arc::new(|entry| lessor_engine_kv::factory(&entry.options)),
    );
    f.insert("approle".into(), Arc::new(lessor_auth_approle::factory));
    f.insert("jwt".into(), Arc::new(lessor_auth_jwt::factory));
    f.insert("oidc".into(), Arc::new(lessor_auth_jwt::factory));
    f.insert("aws".into(), Arc::new(lessor_engine_aws::factory));
    f.insert(
        "kubernetes".into(),
        Arc::new(lessor_auth_kubernetes::factory),
    );
    f
}
