//! Core: requests, the router and mount table, the path framework, ACL, tokens, leases,
//! barrier and seal. No HTTP, no AWS: the server crate turns HTTP into `logical::Request`.

pub mod error;

pub use error::{Error, Result};
