//! Core: requests, the router and mount table, the path framework, ACL, tokens, leases,
//! barrier and seal. No HTTP, no AWS: the server crate turns HTTP into `logical::Request`.

pub mod duration;
pub mod barrier;
pub mod error;
pub mod seal;
pub mod framework;
pub mod logical;
pub mod policy;
pub mod ttl;

pub use error::{Error, Result};
