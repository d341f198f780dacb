//! `GET /v1/sys/leases/events`: the lease event stream as Server-Sent Events.
//!
//! The request first goes through the core as an ordinary read of `sys/leases/events`, so
//! the token (`X-Vault-Token` or `Authorization: Bearer`), the ACL (`read` on that path) and
//! the query (`prefix`, `before` as a duration) are checked and parsed exactly as for any
//! other request, errors included. Then the stream: `event: <kind>` and `data: <json>` per
//! event, a `: keep-alive` comment after 15 s of silence, and a final `event: lagged` when
//! this client reads too slowly to keep up (it is then dropped; the lease manager never
//! waits for it).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, Method, Request as HttpRequest, StatusCode, header};
use axum::response::Response as HttpResponse;
use lessor_core::Error;
use lessor_core::expiration::{Item, Subscription};
use lessor_core::logical::{Operation, Request};
use serde_json::{Map, Value};

use crate::http::{AppState, error_response, token_from};

/// The path, relative to `/v1/`.
pub const PATH: &str = "sys/leases/events";
/// Silence after which a comment line keeps proxies and clients from timing out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The route's handler. Other methods than GET take the ordinary way (and its errors).
pub async fn stream(State(state): State<AppState>, req: HttpRequest<Body>) -> HttpResponse {
    if req.method() != Method::GET {
        return crate::http::handle(State(state), req).await;
    }
    match subscribe(&state, req).await {
        Ok(sub) => sse(sub),
        Err(e) => error_response(&e),
    }
}

async fn subscribe(state: &AppState, req: HttpRequest<Body>) -> Result<Subscription, Error> {
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let (parts, _) = req.into_parts();
    let mut data = Map::new();
    for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        data.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    let mut lreq = Request::new(Operation::Read, PATH).with_data(data);
    lreq.client_token = token_from(&parts.headers);
    lreq.remote_addr = remote;
    let resp = state.core.handle(lreq).await?.unwrap_or_default();
    let params = resp.data.unwrap_or_default();
    let prefix = params.get("prefix").and_then(Value::as_str).unwrap_or("");
    let before = params
        .get("before")
        .and_then(Value::as_i64)
        .map(|s| Duration::from_secs(s.max(0) as u64));
    let active = state.core.active().ok_or(Error::Sealed)?;
    active.expiration.events.subscribe(prefix, before).await
}

/// One SSE frame of an item.
fn frame(item: &Item) -> Bytes {
    match item {
        Item::Event(ev) => Bytes::from(format!(
            "event: {}\ndata: {}\n\n",
            ev.kind.as_str(),
            ev.data_json()
        )),
        Item::Lagged => Bytes::from_static(b"event: lagged\ndata: {}\n\n"),
    }
}

fn sse(sub: Subscription) -> HttpResponse {
    // The first chunk tells the client the subscription is in place.
    let opening = futures_util::stream::once(async {
        Ok::<_, Infallible>(Bytes::from_static(b": subscribed\n\n"))
    });
    let events = futures_util::stream::unfold(Some(sub), |state| async move {
        let mut sub = state?;
        match tokio::time::timeout(KEEP_ALIVE, sub.next()).await {
            Err(_) => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some(sub))),
            Ok(Some(item)) => {
                let bytes = frame(&item);
                // After `lagged` nothing follows: end the stream with it.
                let next = (item != Item::Lagged).then_some(sub);
                Some((Ok(bytes), next))
            }
            Ok(None) => None,
        }
    });
    let body = Body::from_stream(futures_util::StreamExt::chain(opening, events));
    let mut r = HttpResponse::new(body);
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lessor_core::expiration::{EventKind, LeaseEvent};

    use super::*;

    #[test]
    fn frames_are_sse() {
        let ev = LeaseEvent {
            kind: EventKind::ExpiringSoon,
            lease_id: "test/creds/r/x".into(),
            mount: "test/".into(),
            token: false,
            time: 0,
            expire_time: 30,
            attempt: None,
            error: None,
        };
        let f = frame(&Item::Event(Arc::new(ev)));
        let text = String::from_utf8_lossy(&f);
        assert!(text.starts_with("event: expiring-soon\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"));
        assert_eq!(
            text.trim_end().lines().count(),
            2,
            "one data line: the JSON has no newline"
        );
        assert_eq!(&frame(&Item::Lagged)[..], b"event: lagged\ndata: {}\n\n");
    }
}
