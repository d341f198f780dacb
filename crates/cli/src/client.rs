//! A small blocking HTTP client for the Vault API, configured like the vault CLI.
//!
//! Address, token and TLS settings come from flags first, then `VAULT_*` (or `BAO_*`)
//! environment variables, then `~/.vault-token`. Every request carries `X-Vault-Request: true`
//! and, when known, `X-Vault-Token`; a LIST is sent as `GET ?list=true`, as the Go client does.
//! Errors render exactly like the Go client's, because scripts grep them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::args::Parsed;

/// Where vault's CLI looks by default; kept so an unset address behaves the same.
pub const DEFAULT_ADDR: &str = "https://127.0.0.1:8200";

/// A failed request: either the server answered with an error status, or it never answered.
#[derive(Debug)]
pub enum ApiError {
    Response {
        method: String,
        url: String,
        code: u16,
        errors: Vec<String>,
        /// The body was not a Vault `{"errors": [...]}` document.
        raw: bool,
    },
    Transport {
        method: String,
        url: String,
        message: String,
    },
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Response {
                method,
                url,
                code,
                errors,
                raw,
            } => {
                let label = if *raw { "Raw Message" } else { "Errors" };
                write!(
                    f,
                    "Error making API request.\n\nURL: {method} {url}\nCode: {code}. {label}:\n\n"
                )?;
                if *raw {
                    f.write_str(&errors.join("\n"))
                } else {
                    let lines: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
                    f.write_str(&lines.join("\n"))
                }
            }
            ApiError::Transport {
                method,
                url,
                message,
            } => {
                let verb = capitalize(method);
                write!(f, "{verb} \"{url}\": {message}")
            }
        }
    }
}

fn capitalize(method: &str) -> String {
    let lower = method.to_ascii_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// A successful answer: the JSON body, if there was one.
#[derive(Debug, Clone)]
pub struct Reply {
    pub body: Option<Value>,
}

/// Connection settings, resolved once per command.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub address: String,
    pub token: Option<String>,
    pub ca_cert: Option<String>,
    /// A directory of PEM files, all trusted.
    pub ca_path: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub skip_verify: bool,
    pub namespace: Option<String>,
    /// `X-Vault-Wrap-TTL`: ask the server to wrap the response.
    pub wrap_ttl: Option<String>,
    /// Extra headers from `-header=K=V`.
    pub headers: Vec<(String, String)>,
}

fn env_either(vault: &str, bao: &str) -> Option<String> {
    std::env::var(vault)
        .ok()
        .or_else(|| std::env::var(bao).ok())
        .filter(|v| !v.is_empty())
}

/// The file the token helper uses: `~/.vault-token`.
pub fn token_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".vault-token"))
}

impl Settings {
    /// Resolves settings from the common flags and the environment.
    pub fn resolve(flags: &Parsed) -> Settings {
        let address = flags
            .get("address")
            .map(str::to_string)
            .or_else(|| env_either("VAULT_ADDR", "BAO_ADDR"))
            .unwrap_or_else(|| DEFAULT_ADDR.to_string());
        let token = env_either("VAULT_TOKEN", "BAO_TOKEN").or_else(|| {
            token_file()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let flag_or_env = |flag: &str, vault: &str, bao: &str| {
            flags
                .get(flag)
                .map(str::to_string)
                .or_else(|| env_either(vault, bao))
        };
        let ca_cert = flag_or_env("ca-cert", "VAULT_CACERT", "BAO_CACERT");
        let skip_verify = if flags.has("tls-skip-verify") {
            flags.bool("tls-skip-verify")
        } else {
            env_either("VAULT_SKIP_VERIFY", "BAO_SKIP_VERIFY")
                .and_then(|v| crate::args::parse_bool(&v).ok())
                .unwrap_or(false)
        };
        let headers = flags
            .all("header")
            .iter()
            .filter_map(|h| h.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings {
            address: address.trim_end_matches('/').to_string(),
            token,
            ca_cert,
            ca_path: flag_or_env("ca-path", "VAULT_CAPATH", "BAO_CAPATH"),
            client_cert: flag_or_env("client-cert", "VAULT_CLIENT_CERT", "BAO_CLIENT_CERT"),
            client_key: flag_or_env("client-key", "VAULT_CLIENT_KEY", "BAO_CLIENT_KEY"),
            skip_verify,
            namespace: flag_or_env("namespace", "VAULT_NAMESPACE", "BAO_NAMESPACE"),
            wrap_ttl: flag_or_env("wrap-ttl", "VAULT_WRAP_TTL", "BAO_WRAP_TTL"),
            headers,
        }
    }
}

/// The HTTP client bound to one server and token.
pub struct Client {
    agent: ureq::Agent,
    pub settings: Settings,
}

/// How a request carries its data.
pub enum Body<'a> {
    None,
    Json(&'a Value),
    /// A JSON merge patch (`PATCH` needs this content type).
    MergePatch(&'a Value),
}

impl Client {
    pub fn new(settings: Settings) -> Result<Client, String> {
        let mut tls = ureq::tls::TlsConfig::builder().disable_verification(settings.skip_verify);
        let mut roots = Vec::new();
        if let Some(path) = &settings.ca_cert {
            roots.extend(read_pem(Path::new(path))?.0);
        }
        if let Some(dir) = &settings.ca_path {
            let entries =
                std::fs::read_dir(dir).map_err(|e| format!("error reading {dir}: {e}"))?;
            for entry in entries.flatten() {
                if entry.path().is_file() {
                    roots.extend(read_pem(&entry.path())?.0);
                }
            }
        }
        if settings.ca_cert.is_some() || settings.ca_path.is_some() {
            if roots.is_empty() {
                return Err("no CA certificate found".to_string());
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)));
        }
        if let (Some(cert), Some(key)) = (&settings.client_cert, &settings.client_key) {
            let (chain, _) = read_pem(Path::new(cert))?;
            let key = read_pem(Path::new(key))?
                .1
                .ok_or_else(|| format!("no private key found in {key}"))?;
            tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Client { agent, settings })
    }

    /// The same client without response wrapping (for lookups a command makes for itself,
    /// such as the KV preflight).
    pub fn unwrapped(&self) -> Client {
        let mut settings = self.settings.clone();
        settings.wrap_ttl = None;
        Client {
            agent: self.agent.clone(),
            settings,
        }
    }

    pub fn set_token(&mut self, token: Option<String>) {
        self.settings.token = token;
    }

    /// The full URL of an API path with its query string.
    pub fn url(&self, path: &str, query: &[(String, String)]) -> String {
        let mut url = format!(
            "{}/v1/{}",
            self.settings.address,
            path.trim_start_matches('/')
        );
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&percent_encode(k));
            url.push('=');
            url.push_str(&percent_encode(v));
        }
        url
    }

    /// Sends one request and returns the status, the raw text and the parsed JSON body,
    /// whatever the status.
    fn exchange(
        &self,
        method: &str,
        url: &str,
        body: Body<'_>,
    ) -> Result<(u16, String, Option<Value>), ApiError> {
        let transport = |message: String| ApiError::Transport {
            method: method.to_string(),
            url: url.to_string(),
            message,
        };
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("X-Vault-Request", "true");
        if let Some(token) = &self.settings.token {
            builder = builder.header("X-Vault-Token", token);
        }
        if let Some(ns) = &self.settings.namespace {
            builder = builder.header("X-Vault-Namespace", ns);
        }
        if let Some(ttl) = &self.settings.wrap_ttl {
            builder = builder.header("X-Vault-Wrap-TTL", ttl);
        }
        for (k, v) in &self.settings.headers {
            builder = builder.header(k, v);
        }
        let (content_type, payload) = match body {
            Body::None => (None, Vec::new()),
            Body::Json(v) => (Some("application/json"), v.to_string().into_bytes()),
            Body::MergePatch(v) => (
                Some("application/merge-patch+json"),
                v.to_string().into_bytes(),
            ),
        };
        if let Some(ct) = content_type {
            builder = builder.header("Content-Type", ct);
        }
        let request = builder
            .body(payload)
            .map_err(|e| transport(e.to_string()))?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| transport(e.to_string()))?;
        let parsed = if text.trim().is_empty() {
            None
        } else {
            serde_json::from_str(&text).ok()
        };
        Ok((status, text, parsed))
    }

    /// Sends one request. Any status >= 400 is an [`ApiError::Response`].
    pub fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Body<'_>,
    ) -> Result<Reply, ApiError> {
        let url = self.url(path, query);
        let (status, text, body) = self.exchange(method, &url, body)?;
        if status >= 400 {
            return Err(response_error(method, url, status, &text, body.as_ref()));
        }
        Ok(Reply { body })
    }

    /// A logical read: a 404 without data or warnings is "no value" (`Ok(None)`), as in the
    /// Go client.
    pub fn read(&self, path: &str, query: &[(String, String)]) -> Result<Option<Value>, ApiError> {
        self.absent_on_404(path, query)
    }

    /// A LIST, sent as `GET ?list=true`; 404 = no keys.
    pub fn list(&self, path: &str) -> Result<Option<Value>, ApiError> {
        let query = [("list".to_string(), "true".to_string())];
        self.absent_on_404(path, &query)
    }

    fn absent_on_404(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Value>, ApiError> {
        let url = self.url(path, query);
        let (status, text, body) = self.exchange("GET", &url, Body::None)?;
        if status == 404 {
            // A 404 may still carry a secret (a deleted KV v2 version keeps its metadata).
            let has_data = body
                .as_ref()
                .and_then(|b| b.get("data"))
                .is_some_and(|d| !d.is_null());
            let has_warnings = body
                .as_ref()
                .and_then(|b| b.get("warnings"))
                .and_then(Value::as_array)
                .is_some_and(|w| !w.is_empty());
            return Ok(body.filter(|_| has_data || has_warnings));
        }
        if status >= 400 {
            return Err(response_error("GET", url, status, &text, body.as_ref()));
        }
        Ok(body)
    }

    /// PUT with a JSON body.
    pub fn write(&self, path: &str, data: &Value) -> Result<Option<Value>, ApiError> {
        self.request("PUT", path, &[], Body::Json(data))
            .map(|r| r.body)
    }

    pub fn delete(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Value>, ApiError> {
        self.request("DELETE", path, query, Body::None)
            .map(|r| r.body)
    }
}

/// The certificates and the first private key of a PEM file.
type PemContents = (
    Vec<ureq::tls::Certificate<'static>>,
    Option<ureq::tls::PrivateKey<'static>>,
);

fn read_pem(path: &Path) -> Result<PemContents, String> {
    let pem = std::fs::read(path).map_err(|e| format!("error reading {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    let mut key = None;
    for item in ureq::tls::parse_pem(&pem).flatten() {
        match item {
            ureq::tls::PemItem::Certificate(c) => certs.push(c),
            ureq::tls::PemItem::PrivateKey(k) if key.is_none() => key = Some(k),
            _ => {}
        }
    }
    Ok((certs, key))
}

fn response_error(
    method: &str,
    url: String,
    code: u16,
    text: &str,
    body: Option<&Value>,
) -> ApiError {
    let errors = body
        .and_then(|b| b.get("errors"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                .collect::<Vec<_>>()
        });
    let (errors, raw) = match errors {
        Some(list) => (list, false),
        None => (vec![text.trim().to_string()], true),
    };
    ApiError::Response {
        method: method.to_string(),
        url,
        code,
        errors,
        raw,
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_renders_like_vault() {
        let e = ApiError::Response {
            method: "GET".into(),
            url: "http://127.0.0.1:8200/v1/secret/data/foo".into(),
            code: 403,
            errors: vec!["permission denied".into()],
            raw: false,
        };
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: GET http://127.0.0.1:8200/v1/secret/data/foo\nCode: 403. Errors:\n\n* permission denied"
        );
        let e = ApiError::Transport {
            method: "GET".into(),
            url: "http://x/v1/sys/seal-status".into(),
            message: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "Get \"http://x/v1/sys/seal-status\": connection refused"
        );
    }

    #[test]
    fn urls_and_encoding() {
        let c = Client::new(Settings {
            address: "http://127.0.0.1:1".into(),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(
            c.url(
                "/secret/x",
                &[("a b".into(), "c&d".into()), ("list".into(), "true".into())]
            ),
            "http://127.0.0.1:1/v1/secret/x?a%20b=c%26d&list=true"
        );
    }
}
