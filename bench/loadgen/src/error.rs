//! The one error type of the load generator: everything that stops a run before it produces
//! numbers (bad arguments, an unreachable server, a setup step the server refused).

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    Usage(String),
    #[error("request failed: {0}")]
    Transport(#[from] hyper_util::client::legacy::Error),
    #[error("reading response body failed: {0}")]
    Body(#[from] hyper::Error),
    #[error("building request failed: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("setup step `{step}` got HTTP {status}: {body}")]
    Setup {
        step: String,
        status: u16,
        body: Snippet,
    },
    #[error("setup step `{step}` failed: {reason}")]
    SetupOther { step: String, reason: String },
    #[error("histogram: {0}")]
    Histogram(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The start of a response body, for error messages. Bodies of Vault errors are short JSON; the
/// cut keeps an unexpected HTML page from flooding the report.
#[derive(Debug)]
pub struct Snippet(pub String);

impl Snippet {
    const MAX: usize = 300;

    pub fn of(body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let mut cut: String = text.chars().take(Self::MAX).collect();
        if text.chars().count() > Self::MAX {
            cut.push('…');
        }
        Self(cut.trim().to_owned())
    }
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
