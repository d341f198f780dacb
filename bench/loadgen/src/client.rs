//! A keep-alive HTTP/1 client bound to one Vault-compatible address and token.
//!
//! Connections are pooled and reused, so after the first request of each worker the numbers
//! measure the server, not TCP handshakes. Plain http only: the benchmarks run on loopback.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{Error, Result, Snippet};

/// One request of a workload, relative to `/v1/`.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<Bytes>,
}

impl Call {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: None,
        }
    }

    pub fn post(path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            body: Some(body.into()),
        }
    }
}

/// What came back: the status and the whole body (read to the end so the connection can be
/// reused).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Client {
    pool: Pool<HttpConnector, Full<Bytes>>,
    base: String,
    token: HeaderValue,
}

impl Client {
    /// `addr` is the server's base address such as `http://127.0.0.1:8200`; `connections` is the
    /// number of idle connections to keep, one per worker.
    pub fn new(addr: &str, token: &str, connections: usize) -> Result<Self> {
        let base = addr.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            return Err(Error::Usage(format!(
                "address `{base}` must start with http:// (no TLS in the load generator)"
            )));
        }
        let mut token = HeaderValue::from_str(token)
            .map_err(|_| Error::Usage("the token is not a valid header value".into()))?;
        token.set_sensitive(true);
        let mut connector = HttpConnector::new();
        // Small request/response pairs: Nagle's delay would dominate the latency otherwise.
        connector.set_nodelay(true);
        let pool = Pool::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self { pool, base, token })
    }

    pub async fn send(&self, call: &Call) -> Result<Reply> {
        let builder = Request::builder()
            .method(call.method.clone())
            .uri(format!("{}/v1/{}", self.base, call.path))
            .header("X-Vault-Token", self.token.clone());
        let request = match &call.body {
            Some(body) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))?,
            None => builder.body(Full::new(Bytes::new()))?,
        };
        let response = self.pool.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }

    /// For setup steps: a non-2xx status is an error naming the step.
    pub async fn expect_ok(&self, step: &str, call: &Call) -> Result<Reply> {
        let reply = self.send(call).await?;
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(Error::Setup {
                step: step.to_owned(),
                status: reply.status.as_u16(),
                body: Snippet::of(&reply.body),
            })
        }
    }
}
