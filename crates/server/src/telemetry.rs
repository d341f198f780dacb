//! The optional unauthenticated metrics listener (`telemetry { metrics_address = ... }`):
//! `/metrics` answers Prometheus text, `/v1/sys/metrics` JSON unless `?format=prometheus`.
//! It serves nothing else, so it can be exposed to a scraper without exposing the API.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response as HttpResponse;
use axum::routing::get;
use lessor_core::core::Core;
use lessor_core::metrics::{PROMETHEUS_CONTENT_TYPE, Rendered, wants_prometheus};

async fn scrape(core: &Core, prometheus: bool) -> HttpResponse {
    match core.metrics.render(core, prometheus).await {
        Ok(Rendered::Text(t)) => {
            crate::http::text_response(StatusCode::OK, Some(PROMETHEUS_CONTENT_TYPE), t)
        }
        Ok(Rendered::Json(v)) => {
            crate::http::respond("", Some(lessor_core::logical::Response::raw(200, v)))
        }
        Err(e) => crate::http::error_response(&e),
    }
}

async fn prometheus(State(core): State<Arc<Core>>) -> HttpResponse {
    scrape(&core, true).await
}

async fn sys_metrics(
    State(core): State<Arc<Core>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    match wants_prometheus(q.get("format").map(String::as_str).unwrap_or("")) {
        Ok(p) => scrape(&core, p).await,
        Err(e) => crate::http::error_response(&e),
    }
}

pub async fn listen(
    address: &str,
    core: Arc<Core>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("error binding telemetry listener {address}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Router::new()
        .route("/metrics", get(prometheus))
        .route("/v1/sys/metrics", get(sys_metrics))
        .with_state(core);
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.changed().await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "telemetry listener failed");
        }
    });
    Ok((addr, task))
}
