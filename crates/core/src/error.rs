//! The one error type of the core. Every layer below HTTP returns it; the server maps it to a
//! status code and a Vault-style `{"errors":[...]}` body in exactly one place (`status`).

use lessor_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: invalid input, handler error responses, lease errors, login failures.
    #[error("{0}")]
    BadRequest(String),
    /// 403 with Vault's bare `permission denied`.
    #[error("permission denied")]
    PermissionDenied,
    /// 403 with a specific message (preflight checks, CIDR bindings).
    #[error("{0}")]
    PermissionDeniedMsg(String),
    /// 403 for a missing, unknown or expired token.
    #[error("permission denied")]
    InvalidToken,
    /// 404 with `{"errors":[]}`: read found nothing, empty list.
    #[error("not found")]
    NotFound,
    /// 404 with a message: unmounted path.
    #[error("{0}")]
    NoHandler(String),
    /// 405.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// 415: PATCH without a merge-patch content type.
    #[error("Unsupported Content-Type header {0:?}; must be application/merge-patch+json")]
    UnsupportedMediaType(String),
    /// 413.
    #[error("request body too large")]
    TooLarge,
    /// 429: quota exceeded.
    #[error("{0}")]
    QuotaExceeded(String),
    /// 500 with a message the client may see (never a secret).
    #[error("{0}")]
    Internal(String),
    /// 503.
    #[error("Vault is sealed")]
    Sealed,
    #[error("{0}")]
    Storage(#[from] StorageError),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn bad(msg: impl Into<String>) -> Self {
        Error::BadRequest(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::PermissionDenied | Error::PermissionDeniedMsg(_) | Error::InvalidToken => 403,
            Error::NotFound | Error::NoHandler(_) => 404,
            Error::UnsupportedOperation => 405,
            Error::TooLarge => 413,
            Error::UnsupportedMediaType(_) => 415,
            Error::QuotaExceeded(_) => 429,
            Error::Internal(_) | Error::Storage(_) => 500,
            Error::Sealed => 503,
        }
    }

    /// The strings of the `errors` array, worded as Vault words them.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Error::NotFound => Vec::new(),
            Error::PermissionDenied => vec!["1 error occurred:\n\t* permission denied\n\n".into()],
            Error::InvalidToken => {
                vec!["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n".into()]
            }
            Error::Storage(_) => vec!["internal error".into()],
            Error::UnsupportedOperation => {
                vec!["1 error occurred:\n\t* unsupported operation\n\n".into()]
            }
            other => vec![other.to_string()],
        }
    }
}
