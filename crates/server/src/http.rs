//! HTTP to logical and back: method mapping, request data from the query or the body,
//! tokens from headers, and the Vault envelope / `{"errors":[...]}` on the way out. This is
//! the one place where core errors become status codes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request as HttpRequest, StatusCode, header};
use axum::response::Response as HttpResponse;
use lessor_core::Error;
use lessor_core::core::Core;
use lessor_core::framework::field::{self, FieldType, Parsed};
use lessor_core::logical::{AuthSpec, Operation, Request, Response};
use serde_json::{Map, Value, json};

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
    pub max_request_size: usize,
}

/// The `/v1/*` handler.
pub async fn handle(State(state): State<AppState>, req: HttpRequest<Body>) -> HttpResponse {
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match build_request(&state, remote, req).await {
        Ok(lreq) => {
            let id = lreq.id.clone();
            // Run the request to completion even if the client goes away: an engine halfway
            // through issuing a credential must reach activation or rollback.
            let core = state.core.clone();
            match tokio::spawn(async move { core.handle(lreq).await }).await {
                Ok(Ok(resp)) => respond(&id, resp),
                Ok(Err(e)) => error_response(&e),
                Err(_) => error_response(&Error::internal("internal error")),
            }
        }
        Err(e) => error_response(&e),
    }
}

/// Anything outside `/v1/`.
pub async fn not_found() -> HttpResponse {
    json_response(StatusCode::NOT_FOUND, &json!({"errors": []}))
}

async fn build_request(
    state: &AppState,
    remote: Option<SocketAddr>,
    req: HttpRequest<Body>,
) -> Result<Request, Error> {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path();
    let path = raw_path.strip_prefix("/v1/").ok_or(Error::NotFound)?;
    let path = percent_decode(path);
    let query = parts.uri.query().unwrap_or("");
    check_namespace(&parts.headers)?;
    if let Some(v) = parts.headers.get("x-vault-wrap-ttl") {
        let s = v.to_str().unwrap_or("");
        lessor_core::duration::parse_str(s)
            .ok()
            .filter(|d| *d >= 0)
            .ok_or_else(|| {
                Error::bad(format!(
                    "error parsing X-Vault-Wrap-TTL header: invalid duration {s:?}"
                ))
            })?;
        // Answering unwrapped would hand the secret to whoever holds the response, which is
        // what the client asked wrapping to prevent: refuse until wrapping exists.
        return Err(Error::bad(
            "response wrapping is not supported by this server",
        ));
    }
    let mut head = false;
    let (mut operation, mut data) = match parts.method.as_str() {
        "GET" | "HEAD" => {
            head = parts.method == Method::HEAD;
            (Operation::Read, query_data(query))
        }
        "LIST" => (Operation::List, query_data(query)),
        "DELETE" => (Operation::Delete, query_data(query)),
        "POST" | "PUT" => (Operation::Update, Map::new()),
        "PATCH" => {
            let ct = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !ct.starts_with("application/merge-patch+json") {
                return Err(Error::UnsupportedMediaType(ct.to_string()));
            }
            (Operation::Patch, Map::new())
        }
        _ => return Err(Error::UnsupportedOperation),
    };
    if head && path.trim_end_matches('/') != "sys/health" {
        return Err(Error::UnsupportedOperation);
    }
    if operation == Operation::Read
        && let Some(v) = data.remove("list")
    {
        match field::parse("list", FieldType::Bool, &v) {
            Ok(Some(Parsed::Bool(true))) => operation = Operation::List,
            Ok(_) => {}
            Err(_) => return Err(Error::bad(format!("invalid value for \"list\": {v}"))),
        }
    }
    if matches!(operation, Operation::Update | Operation::Patch) {
        let bytes = axum::body::to_bytes(body, state.max_request_size)
            .await
            .map_err(|_| Error::TooLarge)?;
        data = body_data(&parts.headers, &bytes)?;
    }
    let mut path = path;
    if operation == Operation::List && !path.ends_with('/') {
        path.push('/');
    }
    let mut lreq = Request::new(operation, path).with_data(data);
    lreq.head = head;
    lreq.remote_addr = remote;
    lreq.client_token = token_from(&parts.headers);
    Ok(lreq)
}

fn check_namespace(headers: &HeaderMap) -> Result<(), Error> {
    if let Some(ns) = headers.get("x-vault-namespace") {
        let ns = ns.to_str().unwrap_or("?").trim();
        if !matches!(ns, "" | "root" | "/" | "root/") {
            return Err(Error::bad(format!("namespaces are not supported: {ns:?}")));
        }
    }
    Ok(())
}

/// `X-Vault-Token` wins; `Authorization: Bearer` otherwise; other schemes are ignored.
pub(crate) fn token_from(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(t.trim().to_string());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

fn percent_decode(p: &str) -> String {
    let bytes = p.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&p[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query string to data; a repeated key becomes a list.
fn query_data(q: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        let (k, v) = (k.into_owned(), Value::String(v.into_owned()));
        match m.get_mut(&k) {
            Some(Value::Array(a)) => a.push(v),
            Some(old) => {
                let first = old.take();
                *old = Value::Array(vec![first, v]);
            }
            None => {
                m.insert(k, v);
            }
        }
    }
    m
}

/// JSON body to data; form-urlencoded when the body does not look like JSON.
fn body_data(headers: &HeaderMap, bytes: &Bytes) -> Result<Map<String, Value>, Error> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::bad("failed to parse JSON input: invalid UTF-8"))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Map::new());
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("application/x-www-form-urlencoded") && !trimmed.starts_with('{') {
        return Ok(query_data(trimmed));
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(Error::bad(
            "failed to parse JSON input: request body must be a JSON object",
        )),
        Err(e) => Err(Error::bad(format!("failed to parse JSON input: {e}"))),
    }
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = HttpResponse::new(Body::from(bytes));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A plain body (Prometheus text from `sys/metrics`).
pub fn text_response(status: StatusCode, content_type: Option<&str>, text: String) -> HttpResponse {
    let mut r = HttpResponse::new(Body::from(text));
    *r.status_mut() = status;
    let ct = HeaderValue::from_str(content_type.unwrap_or("text/plain"))
        .unwrap_or_else(|_| HeaderValue::from_static("text/plain"));
    r.headers_mut().insert(header::CONTENT_TYPE, ct);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn empty(status: StatusCode) -> HttpResponse {
    let mut r = HttpResponse::new(Body::empty());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn status_of(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub fn error_response(e: &Error) -> HttpResponse {
    if let Error::Internal(_) | Error::Storage(_) = e {
        tracing::error!(error = %e, "request failed");
    }
    json_response(status_of(e.status()), &json!({"errors": e.messages()}))
}

fn auth_json(a: &AuthSpec) -> Value {
    let mut v = json!({
        "client_token": a.client_token,
        "accessor": a.accessor,
        "policies": a.policies,
        "token_policies": a.token_policies,
        "metadata": if a.metadata.is_empty() { Value::Null } else { json!(a.metadata) },
        "lease_duration": a.lease_duration,
        "renewable": a.renewable,
        "entity_id": a.entity_id,
        "token_type": if a.token_type.is_empty() { "service" } else { a.token_type.as_str() },
        "orphan": a.orphan,
        "mfa_requirement": null,
        "num_uses": a.num_uses,
    });
    if a.token_policies.is_empty()
        && let Some(o) = v.as_object_mut()
    {
        o.remove("token_policies");
    }
    v
}

/// The envelope (or raw body) of a successful request.
pub fn respond(request_id: &str, resp: Option<Response>) -> HttpResponse {
    let Some(r) = resp else {
        return empty(StatusCode::NO_CONTENT);
    };
    if let Some(raw) = r.raw {
        if let Some(text) = raw.text {
            return text_response(status_of(raw.status), raw.content_type.as_deref(), text);
        }
        return match raw.body {
            Some(body) => json_response(status_of(raw.status), &body),
            None => empty(status_of(raw.status)),
        };
    }
    let mut env = json!({
        "request_id": request_id,
        "lease_id": r.lease_id,
        "renewable": r.renewable,
        "lease_duration": r.lease_duration,
        "data": r.data.clone().map(Value::Object).unwrap_or(Value::Null),
        "wrap_info": null,
        "warnings": if r.warnings.is_empty() { Value::Null } else { json!(r.warnings) },
        "auth": r.auth.as_ref().map(auth_json).unwrap_or(Value::Null),
        "mount_type": r.mount_type,
    });
    if r.legacy_top_level
        && let (Some(o), Some(data)) = (env.as_object_mut(), r.data)
    {
        for (k, v) in data {
            o.entry(k).or_insert(v);
        }
    }
    json_response(status_of(r.status.unwrap_or(200)), &env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_repeats_become_lists() {
        let m = query_data("a=1&b=2&a=3");
        assert_eq!(m["a"], json!(["1", "3"]));
        assert_eq!(m["b"], json!("2"));
    }

    #[test]
    fn decodes_percent() {
        assert_eq!(percent_decode("secret/data/a%20b"), "secret/data/a b");
        assert_eq!(percent_decode("x%2"), "x%2");
    }
}
