//! The HTTPS client of methods that call other services (JWKS and OIDC discovery for JWT,
//! TokenReview for Kubernetes): rustls with the ring provider, trusting either the CA PEM a
//! method's config gives or the platform's roots. No redirects, no proxies from the
//! environment, and a bounded time per request, so a slow upstream cannot hold a login.

use std::sync::Arc;
use std::time::Duration;

use lessor_core::{Error, Result};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls_platform_verifier::BuilderVerifierExt;

/// Time allowed for one request, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A client trusting `ca_pem` (one or more PEM certificates) or, when empty, the system.
pub fn client(ca_pem: &str) -> Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS setup: {e}")))?;
    let config = if ca_pem.trim().is_empty() {
        builder
            .with_platform_verifier()
            .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| Error::bad(format!("invalid CA PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::bad(format!("invalid CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(Error::bad("no certificates found in the CA PEM"));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| Error::internal(format!("HTTP client setup: {e}")))
}

/// GETs `url` and parses the body as JSON; any failure is a message naming the URL.
pub async fn get_json(
    client: &reqwest::Client,
    url: &str,
) -> std::result::Result<serde_json::Value, String> {
    let resp = client
        .get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("fetching {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("fetching {url}: status {}", status.as_u16()));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("parsing the response of {url}: {e}"))
}
